"""Seeded episode streams, checked predictions, and scoring a model on test or validation episodes.

Episode ``i`` of a stream is drawn from ``default_rng([seed, stream, i])``: training
episodes from the run's ``seed`` on ``TRAIN``, test and validation episodes from
``eval_seed`` on ``TEST`` and ``VAL``; the dataset is told ``i`` too, so fixed episodes are
served by index. A model predicts from ``batch.inputs()`` alone;
its answer is checked (shape, label range, no NaN) before a metric sees it, and a
sequence model is checked once per evaluation for reading steps after the one it predicts.
A metric's answer is checked too: a dict of one number per episode under each key, keys
that can name a file member (no ``/``, ``\\`` or control characters), and a ``Summary`` from
its ``aggregate``; what its plugin raises or returns otherwise is a one-line ``MetricError``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.episodes import EpisodeBatch, EpisodeSettings, Prediction, SequenceBatch
from harness.errors import HarnessError
from harness.guard import MetricError, culprit, metric_call
from harness.per_episode import PerEpisode
from harness.prefetch import prefetched
from harness.specs import MetricSpec, Model, Summary

if TYPE_CHECKING:
    from harness.prepare import Prepared

TRAIN, TEST, VAL = 0, 1, 2
"""Episode streams."""

Summaries = dict[str, dict[str, dict[str, Any]]]
"""``{metric: {key: {mean, ci95, n}}}``."""


def episode_rngs(seed: int, stream: int, first: int, count: int) -> list[np.random.Generator]:
    """The generators of episodes ``first .. first + count - 1`` of a stream."""
    return [np.random.default_rng([seed, stream, first + i]) for i in range(count)]


def batches(
    prepared: Prepared, split: str, stream: int, seed: int, episodes: int, start: int = 0
) -> Generator[EpisodeBatch, None, None]:
    """Batches of ``batch_size`` episodes ``start .. episodes - 1``, the next one drawn in the background.

    ``TEST`` episodes come from the test dataset, the others from the training dataset.
    """
    size = prepared.config.batch_size
    source = prepared.test_source if stream == TEST else prepared.source

    def make(first: int) -> EpisodeBatch:
        count = min(size, episodes - first)
        rngs = episode_rngs(seed, stream, first, count)
        return source.sample(split, prepared.settings, rngs, list(range(first, first + count)))

    return prefetched(make, range(start, episodes, size))


def as_prediction(output: Any, shape: tuple[int, ...], settings: EpisodeSettings, model: str) -> Prediction:
    """A model's answer as a checked ``Prediction``: label ids of ``shape`` in ``0..num_labels - 1``.

    ``output`` is a ``Prediction``, label ids, or scores with one more axis of ``num_labels``; ``model``
    names the model in errors (``'mann' (plugin 'mann')``, as ``Prepared.model_label`` gives it).
    """
    classes = settings.num_labels
    if isinstance(output, Prediction):
        labels, scores = np.asarray(output.labels), output.scores
    else:
        labels, scores = np.asarray(output), None
        if labels.shape == (*shape, classes) and labels.dtype.kind == "f":
            labels, scores = labels.argmax(-1), labels
    if labels.shape != shape:
        raise HarnessError(
            f"model {model} predicted shape {labels.shape}, expected {shape} (label ids) "
            f"or {(*shape, classes)} (scores)"
        )
    values = None if scores is None else np.asarray(scores)
    if values is not None and values.dtype.kind in "fc" and bool(np.isnan(values).any()):
        raise HarnessError(
            f"model {model} predicted NaN scores, which would count as label 0; check its weights and its "
            "forward pass for NaN"
        )
    integral = labels.dtype.kind in "iu" or (
        labels.dtype.kind == "f" and bool(np.all(np.isfinite(labels))) and bool(np.all(labels == np.round(labels)))
    )
    if not integral:
        raise HarnessError(f"model {model} predicted labels that are not integers (NaN or fractions)")
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        raise HarnessError(
            f"model {model} predicted label {int(labels.max() if labels.max() >= classes else labels.min())}, "
            f"outside 0..{classes - 1}"
        )
    return Prediction(labels.astype(np.int64), scores)


def predict(model: Model, batch: EpisodeBatch, name: str) -> Prediction:
    """``model``'s checked prediction for ``batch``, from its inputs alone."""
    return as_prediction(model.predict(batch.inputs()), batch.targets.shape, batch.settings, name)


def check_causal(model: Model, batch: SequenceBatch, full: Prediction, name: str) -> None:
    """Refuse a sequence model whose prediction at a step changes when later steps are removed.

    The label of step t is shown with step t + 1, so a model that looks ahead reads the
    answers. Predicting the first half of the episodes again must give the same labels.
    """
    cut = batch.images.shape[1] // 2
    if cut < 1:
        return
    inputs = batch.inputs().steps(cut)
    part = as_prediction(model.predict(inputs), (len(batch), cut), batch.settings, name)
    differ = np.flatnonzero((part.labels != full.labels[:, :cut]).any(axis=0))
    if differ.size:
        raise HarnessError(
            f"model {name} predicts step {int(differ[0])} differently once steps {cut}.. are removed: "
            "it reads later steps, whose label codes are this step's answer; use steps 0..t only"
        )


def score(
    prepared: Prepared, model: Model, *, progress: bool = False, split: str | None = None
) -> tuple[Summaries, PerEpisode]:
    """``model``'s metrics on the fixed test episodes: ``{metric: {key: {mean, ci95, n}}}`` and every episode's value.

    ``split``: another split of the test dataset to draw the fixed episodes from; the run's own validation
    split gives the episodes validation drew. A key a metric leaves out of a batch is NaN for that batch's episodes.
    """
    from tqdm import tqdm

    config = prepared.config
    total = config.eval_episodes
    plugins = {m.name: prepared.host.metrics.plugin_of(m.name) for m in prepared.metrics}
    values: dict[str, dict[str, np.ndarray]] = {m.name: {} for m in prepared.metrics}
    split = prepared.test_spec.test_split if split is None else split
    own_val = config.test_dataset is None and split == prepared.dataset_spec.val_split
    stream = batches(prepared, split, VAL if own_val else TEST, config.eval_seed, total)
    first = 0
    with (
        tqdm(total=total, unit="ep", desc=split, disable=not progress, dynamic_ncols=True) as bar,
        contextlib.closing(stream),
    ):
        for index, batch in enumerate(stream):
            prediction = predict(model, batch, prepared.model_label)
            if index == 0 and isinstance(batch, SequenceBatch):
                check_causal(model, batch, prediction, prepared.model_label)
            for metric in prepared.metrics:
                for key, per_episode in _metric_values(metric, plugins[metric.name], batch, prediction).items():
                    column = values[metric.name].setdefault(key, np.full(total, np.nan))
                    column[first : first + len(batch)] = per_episode
            first += len(batch)
            bar.update(len(batch))
    summaries = {
        m.name: {key: summary(m, plugins[m.name], key, column) for key, column in values[m.name].items()}
        for m in prepared.metrics
    }
    return summaries, PerEpisode(np.arange(total), values)


def _metric_values(
    metric: MetricSpec, plugin: str, batch: EpisodeBatch, prediction: Prediction
) -> dict[str, np.ndarray]:
    """``metric``'s values for ``batch``, checked: one float per episode under each key."""
    with metric_call(metric.name, plugin, "per_episode"):
        result = metric.per_episode(batch, prediction)
    who = culprit("metric", metric.name, plugin)
    if not isinstance(result, Mapping):
        raise MetricError(
            f"{who}: per_episode returned {type(result).__name__}, not a dict of one value per episode "
            "under each key; fix the metric plugin"
        )
    return {_checked_key(key, who): _one_per_episode(v, len(batch), who, key) for key, v in result.items()}


def summary(metric: MetricSpec, plugin: str, key: str, column: np.ndarray) -> dict[str, Any]:
    """``metric``'s ``aggregate`` of one key's values over all episodes, as a plain dict."""
    with metric_call(metric.name, plugin, f"aggregate (key {key!r})"):
        result = metric.aggregate(column)
        if isinstance(result, Summary):
            return result.as_dict()
    raise MetricError(
        f"{culprit('metric', metric.name, plugin)}: aggregate returned {type(result).__name__} for key {key!r}, "
        "not a harness.specs.Summary; fix the metric plugin"
    )


def _checked_key(key: Any, who: str) -> str:
    """``key`` if it can name a metric's values in a file: a non-empty string without path or control characters."""
    if not isinstance(key, str) or key in ("", ".", "..") or any(c in "/\\" or not c.isprintable() for c in key):
        raise MetricError(
            f"{who}: per_episode returned the key {key!r}; keys must be non-empty strings without '/', '\\' "
            "or control characters; fix the metric plugin"
        )
    return key


def _one_per_episode(values: Any, episodes: int, who: str, key: str) -> np.ndarray:
    """A metric's values for one key as floats, refused unless numbers, one per episode."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise MetricError(
            f"{who} returned values for key {key!r} that are not numbers ({type(values).__name__}); "
            "return one float per episode; fix the metric plugin"
        ) from None
    if array.shape != (episodes,):
        raise MetricError(
            f"{who} returned values of shape {array.shape} for key {key!r}, expected ({episodes},): "
            "one per episode of the batch; fix the metric plugin"
        )
    return array


def validation_scores(
    prepared: Prepared, model: Model, stopped: Callable[[], bool] = lambda: False
) -> tuple[float, list[float | None] | None] | None:
    """Mean accuracy on the fixed validation episodes (``val_episodes`` from ``eval_seed``) and, for label
    sequences, the accuracy at each presentation of a class (1st, 2nd, ...; ``None`` for few-shot episodes).
    ``None`` if ``stopped()`` turned true between two batches (a signal came: the validation is left undone)."""
    config = prepared.config
    split = prepared.dataset_spec.val_split
    assert split is not None, "prepare() refuses val_every without a validation split"
    size = prepared.settings.instances + 1  # presentation numbers run from 1 to ``instances``
    correct: list[np.ndarray] = []
    hits, shown = np.zeros(size, dtype=np.int64), np.zeros(size, dtype=np.int64)
    with contextlib.closing(batches(prepared, split, VAL, config.eval_seed, config.val_episodes)) as stream:
        for batch in stream:
            if stopped():
                return None
            right = predict(model, batch, prepared.model_label).labels == batch.targets
            correct.append(right.mean(axis=1))
            if isinstance(batch, SequenceBatch):
                hits += np.bincount(batch.instance[right], minlength=size)
                shown += np.bincount(batch.instance.ravel(), minlength=size)
    accuracy = float(np.concatenate(correct).mean())
    if not shown.any():  # few-shot episodes
        return accuracy, None
    return accuracy, [float(h / n) if n else None for h, n in zip(hits[1:], shown[1:], strict=True)]
