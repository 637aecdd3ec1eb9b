"""Training options every ``harness.torch`` model takes, kept free of torch so plugins can list them.

A torch model plugin declares ``defaults={**TRAINING_DEFAULTS, ...its own...}`` in its
``ModelSpec``; a run overrides them with ``--param``. What each does:

- ``optimizer``: ``adam`` (default), ``rmsprop`` (what MANN used) or ``sgd``.
- ``lr``: learning rate (1e-3). ``weight_decay``: L2 penalty (0). ``momentum``: for
  ``sgd`` and ``rmsprop`` (0, below 1).
- ``clip_norm``: clip the gradients' global norm to this value; 0 does not clip.
- ``schedule``: ``none``, ``step`` (multiply ``lr`` by ``lr_decay``, above 0 and at most 1,
  every ``lr_step`` training episodes) or ``cosine`` (from ``lr`` to 0 over the run's training steps).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
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


def check_training(params: Mapping[str, Any], model: str) -> None:
    """Raise ``ConfigError`` (one line, naming the valid values) for a bad training option."""
    for key, choices in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES)):
        value = params[key]
        if value not in choices:
            raise ConfigError(
                f"model {model!r} parameter {key} must be one of {', '.join(choices)}, got {value!r}"
                f"{did_you_mean(str(value), list(choices))}"
            )
    for key in ("lr", "weight_decay", "momentum", "clip_norm", "lr_decay"):
        value = params[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:  # NaN too
            above = "above 0" if key == "lr" else ">= 0"
            raise ConfigError(f"model {model!r} parameter {key} must be a finite number {above}, got {value!r}")
    if params["lr"] == 0:
        raise ConfigError(f"model {model!r} parameter lr must be a finite number above 0, got 0")
    if not 0 < params["lr_decay"] <= 1:
        raise ConfigError(
            f"model {model!r} parameter lr_decay (what lr is multiplied by every lr_step episodes) must be above 0 "
            f"and at most 1, got {params['lr_decay']!r}"
        )
    if params["momentum"] >= 1:
        raise ConfigError(f"model {model!r} parameter momentum must be below 1, got {params['momentum']!r}")
    if params["schedule"] == "step" and (not isinstance(params["lr_step"], int) or params["lr_step"] < 1):
        raise ConfigError(f"model {model!r}: schedule = step needs lr_step (training episodes between decays) >= 1")
