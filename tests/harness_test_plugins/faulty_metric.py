"""``faulty_metric``: a few-shot metric with the fault ``$FAULTY_METRIC`` names at call time (unset: none).

``raise`` and ``exit`` raise or call ``sys.exit(0)`` in ``per_episode``; ``none``, ``list``,
``strings``, ``slash`` and ``int_key`` make it return ``None``, a list, strings, the key
``../../x`` or the key 3; ``inf`` gives infinite values; ``aggregate`` raises in ``aggregate``
and ``summary`` returns a dict from it instead of a ``Summary``.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np

from harness import hookimpl
from harness.episodes import EpisodeBatch, EpisodeKind, Prediction
from harness.specs import MetricSpec, mean_ci95

ENV = "FAULTY_METRIC"


def _mode() -> str:
    return os.environ.get(ENV, "ok")


def per_episode(batch: EpisodeBatch, prediction: Prediction) -> Any:
    """Per episode, the number of right predictions; or the fault ``$FAULTY_METRIC`` names."""
    mode, right = _mode(), (prediction.labels == batch.targets).sum(axis=1).astype(float)
    if mode == "raise":
        raise ZeroDivisionError("division by zero")
    if mode == "exit":
        sys.exit(0)
    faults = {
        "none": None,
        "list": right.tolist(),
        "strings": {"right": ["a"] * len(batch)},
        "slash": {"../../x": right},
        "int_key": {3: right},
        "inf": {"right": np.full(len(batch), np.inf)},
    }
    return faults.get(mode, {"right": right})


def aggregate(values: np.ndarray) -> Any:
    """``mean_ci95``, or the fault ``$FAULTY_METRIC`` names."""
    if _mode() == "aggregate":
        raise RuntimeError("no values")
    summary = mean_ci95(values)
    return summary.as_dict() if _mode() == "summary" else summary


@hookimpl
def harness_metrics() -> list[MetricSpec]:
    """Register ``faulty_metric``."""
    kinds = (EpisodeKind.FEWSHOT,)
    return [MetricSpec("faulty_metric", "Breaks on purpose (test).", True, kinds, per_episode, aggregate)]
