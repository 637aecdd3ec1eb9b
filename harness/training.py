"""Training options every ``harness.torch`` model takes, kept free of torch so plugins can list them.

A torch model plugin declares ``defaults={**TRAINING_DEFAULTS, ...its own...}`` in its
``ModelSpec``; a run overrides them with ``--param``. What each does:

- ``optimizer``: ``adam`` (default), ``rmsprop`` (what MANN used) or ``sgd``.
- ``lr``: learning rate (1e-3). ``weight_decay``: L2 penalty (0). ``momentum``: for
  ``sgd`` and ``rmsprop`` only (0, below 1; a new run refuses it with ``adam``).
- ``clip_norm``: clip the gradients' global norm to this value; 0 does not clip.
- ``schedule``: ``none``, ``step`` (multiply ``lr`` by ``lr_decay``, above 0 and at most 1,
  every ``lr_step`` training episodes; a new run refuses ``lr_step`` with another schedule) or
  ``cosine`` (from ``lr`` to 0 over the run's training steps).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from harness.config import did_you_mean
from harness.errors import ConfigError

OPTIMIZERS = ("adam", "rmsprop", "sgd")
SCHEDULES = ("none", "step", "cosine")

TRAINING_DEFAULTS: dict[str, Any] = {
    "optimizer": "adam",
    "lr": 1e-3,
    "weight_decay": 0.0,
    "momentum": 0.0,
    "clip_norm": 0.0,
    "schedule": "none",
    "lr_step": 0,
    "lr_decay": 0.5,
}


FLOAT32_MAX = 3.4028234663852886e38
"""The largest float32: a learning rate above it overflows the first update."""

NUMBER_BOUNDS: dict[str, tuple[Callable[[float], bool], str]] = {
    "lr": (lambda v: 0 < v <= FLOAT32_MAX, "above 0 and at most 3.4e38 (float32's largest)"),
    "weight_decay": (lambda v: v >= 0, ">= 0"),
    "momentum": (lambda v: 0 <= v < 1, ">= 0 and below 1"),
    "clip_norm": (lambda v: v >= 0, ">= 0 (0 does not clip)"),
    "lr_decay": (lambda v: 0 < v <= 1, "above 0 and at most 1 (lr is multiplied by it every lr_step episodes)"),
}
"""The numeric training options: whether a value is in range, and the range in words, of each."""


def check_training(params: Mapping[str, Any], model: str) -> None:
    """Raise ``ConfigError`` (one line, naming the valid values) for a bad training option."""
    for key, choices in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES)):
        value = params[key]
        if value not in choices:
            raise ConfigError(
                f"model {model!r} parameter {key} must be one of {', '.join(choices)}, got {value!r}"
                f"{did_you_mean(str(value), list(choices))}"
            )
    for key, (in_range, bounds) in NUMBER_BOUNDS.items():
        value = params[key]
        number = not isinstance(value, bool) and isinstance(value, int | float)
        if not (number and -math.inf < value < math.inf and in_range(value)):  # NaN fails; an int never overflows
            raise ConfigError(f"model {model!r} parameter {key} must be a finite number {bounds}, got {value!r}")
    step, schedule = params["lr_step"], params["schedule"]
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ConfigError(
            f"model {model!r} parameter lr_step must be a whole number of training episodes >= 0, got {step!r}"
        )
    if schedule == "step" and step < 1:
        raise ConfigError(f"model {model!r}: schedule = step needs lr_step (training episodes between decays) >= 1")


def unread_problem(params: Mapping[str, Any]) -> str | None:
    """An option ``params`` give that the rest leave unread (``momentum`` with adam, ``lr_step`` without schedule
    step), with its fix; ``None`` if there is none, or the params are not these options. A new run is refused for
    one; a run saved with one before they were refused still resumes and is tested, the option unread as it was."""
    if not all(key in params for key in ("optimizer", "momentum", "schedule", "lr_step")):
        return None
    if params["schedule"] != "step" and params["lr_step"] > 0:
        return (
            f"lr_step is read only by schedule = step, and schedule is {params['schedule']}: pass schedule=step or "
            "drop lr_step"
        )
    if params["optimizer"] == "adam" and params["momentum"] > 0:
        return (
            "momentum is read only by optimizer sgd or rmsprop (adam keeps its own averages): pass optimizer=sgd or "
            "optimizer=rmsprop, or drop momentum"
        )
    return None
