"""A run config resolved against the installed plugins: model, datasets, kind, options and metrics.

``prepare`` checks everything a run needs before any work starts (names, episode kind,
hyperparameters, dataset options and splits, episode counts, image shapes) and opens the
datasets; the runner, ``harness reproduce`` and the executors then work from ``Prepared``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import devices, hints
from harness.config import RunConfig, dataset_options, merge_options
from harness.episodes import EpisodeKind, EpisodeSettings
from harness.errors import ConfigError
from harness.guard import ModelError, model_call
from harness.plugins import PluginHost
from harness.sources import check_episode_count, fingerprint, open_source
from harness.specs import DatasetSpec, EpisodeSource, MetricSpec, Model, ModelContext, ModelSpec


@dataclass
class Prepared:
    """A config resolved against the installed plugins, with its datasets opened."""

    config: RunConfig
    settings: EpisodeSettings
    model_spec: ModelSpec
    dataset_spec: DatasetSpec
    metrics: list[MetricSpec]
    source: EpisodeSource
    """The training dataset (the test dataset's when only evaluating)."""
    host: PluginHost
    test_spec: DatasetSpec
    """The dataset test episodes come from: ``test_dataset``, else ``dataset``."""
    test_source: EpisodeSource
    metrics_given: bool = True
    """False when the config named no metrics: a resumed run then keeps the ones it was started with."""
    data: dict[str, str | None] = dataclasses.field(default_factory=dict)
    """The ``fingerprint()`` of the data of ``dataset`` and ``test_dataset`` (``None``: the source gives none)."""

    def build_model(self, run_dir: Path | None = None) -> Model:
        """A fresh model from the model plugin's factory."""
        c = self.config
        context = ModelContext(
            self.settings, self.source.input_shape(), c.params, c.seed, model=c.model, batch_size=c.batch_size,
            total_steps=self.total_steps, device=c.device, precision=c.precision, compile=c.compile, run_dir=run_dir,
        )  # fmt: skip
        with model_call(c.model, self.model_plugin, "its factory"):
            model = self.model_spec.factory(context)
        missing = [name for name in MODEL_METHODS if not callable(getattr(model, name, None))]
        if missing:
            raise ModelError(
                f"model {c.model!r} (plugin {self.model_plugin!r}): its factory returned {type(model).__name__}, "
                f"which has no {', '.join(missing)}; return an object with the methods of harness.specs.Model"
            )
        devices.set_threads(c.threads)  # after the factory, which may be what imports torch
        return model

    @property
    def model_plugin(self) -> str:
        """Name of the plugin that registered the model."""
        return self.host.models.plugin_of(self.model_spec.name)

    @property
    def model_label(self) -> str:
        """The model as errors name it: ``'mann' (plugin 'mann')``."""
        return f"{self.model_spec.name!r} (plugin {self.model_plugin!r})"

    @property
    def total_steps(self) -> int:
        """Training batches the run makes (0 for models with nothing to train)."""
        if not self.model_spec.trainable:
            return 0
        return math.ceil(self.config.episodes / self.config.batch_size)


MODEL_METHODS = ("train_step", "predict", "state_dict", "load_state_dict")
"""What a model plugin's factory must return (``harness.specs.Model``), checked before any training."""


def prepare(
    config: RunConfig,
    host: PluginHost,
    sources: dict[str, EpisodeSource] | None = None,
    *,
    input_shape: tuple[int, int, int] | None = None,
    evaluating: bool = False,
) -> Prepared:
    """Resolve names, kind, hyperparameters and options; open the datasets and check they fit.

    ``sources`` shares opened datasets between runs with the same dataset and options. With
    ``input_shape`` (that of the images a checkpoint's model was trained on) only the test
    dataset is opened and checked: the model is evaluated, not trained. ``evaluating``: for
    ``harness evaluate``, whose hints name its own options.
    """
    model_spec = host.models.get(config.model)
    dataset_spec = host.datasets.get(config.dataset)
    test_spec = dataset_spec if config.test_dataset is None else host.datasets.get(config.test_dataset)
    kind = _kind(config, model_spec, dataset_spec, test_spec)
    params = merge_options(model_spec.defaults, config.params, f"model {model_spec.name!r}", "parameter")
    data = dataset_options(dataset_spec, config.data)
    test_data = data if config.test_dataset is None else dataset_options(test_spec, config.test_data)
    metrics = resolve_metrics(host, config.metrics, kind, test_spec.name)
    resolved = dataclasses.replace(
        config, kind=kind.value, params=params, metrics=tuple(m.name for m in metrics),
        data=_portable(dataset_spec, data), test_data=_portable(test_spec, test_data) if config.test_dataset else {},
    )  # fmt: skip
    settings = resolved.settings()
    training = input_shape is None and model_spec.trainable and resolved.episodes > 0
    _check_splits(resolved, dataset_spec, test_spec, training)
    separate = input_shape is None and config.test_dataset is not None
    form = hints.EVALUATE if evaluating else hints.TEST if separate else hints.RUN
    with hints.dataset_hints(test_spec, form):
        test_source = _opened(host, test_spec, test_data, sources)
    source = _opened(host, dataset_spec, data, sources) if separate else test_source
    if training:
        source.check(dataset_spec.train_split, settings)
        check_episode_count(source, dataset_spec, dataset_spec.train_split, resolved.episodes, "--episodes")
        if resolved.val_every and dataset_spec.val_split is not None:
            try:
                source.check(dataset_spec.val_split, settings)
            except ConfigError as exc:  # validation is what asks for this split: not validating is a fix too
                raise ConfigError(f"{exc}, or drop val_every (validation draws from that split)") from None
            check_episode_count(source, dataset_spec, dataset_spec.val_split, resolved.val_episodes, "--val-episodes")
    try:
        test_source.check(test_spec.test_split, settings)
    except ConfigError as exc:
        if input_shape is None:
            raise
        # its fix ("lower ways") is not one evaluate has: the checkpoint fixes the setting
        raise ConfigError(
            f"{str(exc).rsplit('; ', 1)[0]}, and the checkpoint's model takes {settings.describe()} episodes; "
            "evaluate on another dataset or split (--dataset, --data, --split)"
        ) from None
    check_episode_count(test_source, test_spec, test_spec.test_split, resolved.eval_episodes, "--eval-episodes")
    trained_on = tuple(source.input_shape() if input_shape is None else input_shape)
    if tuple(test_source.input_shape()) != trained_on:
        flag = "--data" if input_shape is not None else "--test-data"
        raise ConfigError(
            f"test dataset {test_spec.name!r} has images of shape {tuple(test_source.input_shape())}, but model "
            f"{model_spec.name!r} is trained on {trained_on} (dataset {dataset_spec.name!r}); "
            f"pick options that make them agree ({flag} KEY=VALUE)"
        )
    fingerprints = {"dataset": fingerprint(source), "test_dataset": fingerprint(test_source)}  # checked before training
    return Prepared(
        resolved, settings, model_spec, dataset_spec, metrics, source, host, test_spec, test_source,
        bool(config.metrics), fingerprints,
    )  # fmt: skip


def _kind(config: RunConfig, model_spec: ModelSpec, dataset_spec: DatasetSpec, test_spec: DatasetSpec) -> EpisodeKind:
    """The run's episode kind: the one given, or the only one model and datasets share."""
    datasets = f"dataset {dataset_spec.name!r}"
    if test_spec is not dataset_spec:
        datasets += f" and test dataset {test_spec.name!r}"
    kinds = [k for k in model_spec.episode_kinds if k in dataset_spec.episode_kinds and k in test_spec.episode_kinds]
    if not kinds:
        raise ConfigError(f"model {model_spec.name!r} and {datasets} share no episode kind")
    if config.kind is None:
        if len(kinds) > 1:
            raise ConfigError(
                f"model {model_spec.name!r} accepts {' and '.join(k.value for k in kinds)} episodes; "
                "choose one with --kind"
            )
        return kinds[0]
    kind = EpisodeKind(config.kind)
    if kind not in kinds:
        raise ConfigError(
            f"model {model_spec.name!r} with {datasets} accepts only "
            f"{', '.join(k.value for k in kinds)} episodes, not {kind.value}"
        )
    return kind


def _portable(spec: DatasetSpec, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` without those that say where the data lives (kept out of the run config)."""
    return {k: v for k, v in options.items() if k not in spec.location_options}


def _opened(
    host: PluginHost, spec: DatasetSpec, options: dict[str, Any], sources: dict[str, EpisodeSource] | None
) -> EpisodeSource:
    """The dataset opened with ``options``, from ``sources`` when it is there already."""
    key = json.dumps([spec.name, options], sort_keys=True, default=str)
    source = sources.get(key) if sources is not None else None
    if source is None:
        source = open_source(spec, options, host.datasets.plugin_of(spec.name))
        if sources is not None:
            sources[key] = source
    return source


def _check_splits(config: RunConfig, spec: DatasetSpec, test_spec: DatasetSpec, training: bool) -> None:
    """Raise ``ConfigError`` when a split the run draws from is not among its dataset's ``splits``."""
    if training and spec.train_split not in spec.splits:
        raise ConfigError(
            f"dataset {spec.name!r} has no {spec.train_split!r} split to train model {config.model!r} on "
            f"(splits: {', '.join(spec.splits)}); train on another and test on this one: "
            f"--dataset NAME --test-dataset {spec.name}"
        )
    if training and config.val_every and (spec.val_split is None or spec.val_split not in spec.splits):
        raise ConfigError(f"dataset {spec.name!r} has no validation split; drop val_every")
    if test_spec.test_split not in test_spec.splits:
        raise ConfigError(
            f"dataset {test_spec.name!r} has no {test_spec.test_split!r} split to test on "
            f"(splits: {', '.join(test_spec.splits)}); test on another with --test-dataset NAME"
        )


def resolve_metrics(host: PluginHost, names: tuple[str, ...], kind: EpisodeKind, dataset: str) -> list[MetricSpec]:
    """The metrics ``names``, checked to apply; with none named, all that score ``kind`` episodes of ``dataset``.

    A name given twice, or no metric at all to score the run, is refused before any work.
    """
    if not names:
        applying = [m for m in host.metrics if m.applies_to(kind, dataset)]
        if not applying:
            raise ConfigError(
                f"no installed metric scores {kind.value} episodes of dataset {dataset!r}, so the run would "
                "record no results; install or unblock a metric plugin ('harness plugins' lists them)"
            )
        return applying
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ConfigError(f"metric {twice[0]!r} is given more than once; give each --metric once")
    metrics = [host.metrics.get(name) for name in names]
    for metric in metrics:
        if kind not in metric.episode_kinds:
            raise ConfigError(
                f"metric {metric.name!r} does not apply to {kind.value} episodes; drop --metric {metric.name}"
            )
        if not metric.applies_to(kind, dataset):
            raise ConfigError(
                f"metric {metric.name!r} scores only datasets {', '.join(metric.datasets)}, not {dataset!r}; "
                f"drop --metric {metric.name}"
            )
    return metrics


def default_name(config: RunConfig) -> str:
    """Run directory name, e.g. ``knn-synthetic-fewshot-5w1s-seed0`` (``knn-omniglot-test-NAME-...``)."""
    if config.kind == EpisodeKind.SEQUENCE.value:
        shape = f"{config.ways}w{config.instances}i-{config.labels}"
    else:
        shape = f"{config.ways}w{config.shots}s"
    datasets = config.dataset if config.test_dataset is None else f"{config.dataset}-test-{config.test_dataset}"
    return _one_folder(f"{config.model}-{datasets}-{config.kind}-{shape}-seed{config.seed}")


def _one_folder(name: str) -> str:
    """``name`` as one folder name: each character other than a letter, digit, ``.``, ``_``, ``+`` or ``-`` is ``-``."""
    return re.sub(r"[^\w.+-]", "-", name)
