"""Run checkpoints: what a run saves while it trains, so that it can resume exactly.

A checkpoint is one atomically written file holding the step reached, the loss and
validation curves, the model's state (weights, optimizer, RNG) and, with ``keep =
best``, the state of the best validated model.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from harness import atomic
from harness.errors import HarnessError

CHECKPOINT = "checkpoint.pkl"
FORMAT = "harness-checkpoint/1"


def load(path: Path) -> dict[str, Any]:
    """Read a checkpoint, with one-line errors for a missing or foreign file."""
    try:
        with open(path, "rb") as handle:
            state = pickle.load(handle)
    except FileNotFoundError:
        raise HarnessError(f"checkpoint {path} does not exist; check the path") from None
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
        raise HarnessError(f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise HarnessError(f"{path} is not a harness checkpoint")
    return state


def save(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` (plus the format tag) atomically."""
    atomic.write_pickle(path, {"format": FORMAT, **state})
