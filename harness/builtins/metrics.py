"""Built-in metrics: accuracy, accuracy per instance (MANN) and N-way K-shot accuracy."""

from __future__ import annotations

import numpy as np

from harness import hookimpl
from harness.episodes import EpisodeBatch, EpisodeKind, Prediction, SequenceBatch
from harness.specs import MetricSpec

INSTANCES = (1, 2, 3, 4, 5, 10)
"""Presentations reported by MANN's tables."""


def ordinal(n: int) -> str:
    """``1 -> '1st'``, ``10 -> '10th'``."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _correct(batch: EpisodeBatch, prediction: Prediction) -> np.ndarray:
    return (prediction.labels == batch.targets).astype(np.float64)


def accuracy(batch: EpisodeBatch, prediction: Prediction) -> dict[str, np.ndarray]:
    """Per episode, the fraction of predicted steps (sequence) or queries (few-shot) that are right."""
    return {"accuracy": _correct(batch, prediction).mean(axis=1)}


def accuracy_per_instance(batch: EpisodeBatch, prediction: Prediction) -> dict[str, np.ndarray]:
    """Per episode, accuracy on the n-th presentation of a class, n in 1, 2, 3, 4, 5, 10."""
    assert isinstance(batch, SequenceBatch)
    correct = _correct(batch, prediction)
    out = {}
    for n in INSTANCES:
        mask = batch.instance == n
        hits = (correct * mask).sum(axis=1)
        count = mask.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[ordinal(n)] = np.where(count > 0, hits / np.maximum(count, 1), np.nan)
    return out


def nway_kshot_accuracy(batch: EpisodeBatch, prediction: Prediction) -> dict[str, np.ndarray]:
    """Per episode, query accuracy, keyed by the setting (e.g. ``5-way 1-shot``)."""
    return {batch.settings.describe(): _correct(batch, prediction).mean(axis=1)}


@hookimpl
def harness_metrics() -> list[MetricSpec]:
    """Register the built-in metrics."""
    both = (EpisodeKind.SEQUENCE, EpisodeKind.FEWSHOT)
    return [
        MetricSpec("accuracy", "Fraction of predictions that are right, mean over episodes.", True, both, accuracy),
        MetricSpec(
            "accuracy_per_instance",
            "Accuracy at the 1st, 2nd, 3rd, 4th, 5th and 10th presentation of a class (MANN tables).",
            True,
            (EpisodeKind.SEQUENCE,),
            accuracy_per_instance,
        ),
        MetricSpec(
            "nway_kshot_accuracy",
            "Query accuracy of N-way K-shot episodes with 95% CI (SNAIL and MetaNet tables).",
            True,
            (EpisodeKind.FEWSHOT,),
            nway_kshot_accuracy,
        ),
    ]
