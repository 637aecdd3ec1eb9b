"""``failing``: a model that breaks where its ``fail`` parameter says, with rows in the toy table.

``fail`` is one of ``factory``, ``train_step``, ``predict``, ``loss`` (a loss that is not
a number), ``state`` (a ``state_dict`` that cannot be saved), ``runtime`` (a ``runtime`` a record cannot
hold), ``exit`` (``SystemExit`` in
``train_step``), ``no_model`` (the factory returns ``None``), ``no_predict`` (it returns a
model without ``predict``) or ``none``. ``ExitingHook`` is a plugin whose hook raises ``SystemExit``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness import hookimpl
from harness.episodes import EpisodeBatch, EpisodeKind, FewShotInputs
from harness.specs import ModelContext, ModelSpec
from harness.tables import TableRow

__version__ = "0.0.1"


class Failing:
    """Breaks at the point its ``fail`` parameter names."""

    def __init__(self, context: ModelContext) -> None:
        self.fail = context.params["fail"]
        if self.fail == "factory":
            raise RuntimeError("cannot build the network")
        if self.fail == "runtime":
            self.runtime = {"device": object()}
        self.steps = 0

    def train_step(self, batch: EpisodeBatch) -> Any:
        """Count the step, or fail."""
        self.steps += 1
        if self.fail == "train_step":
            raise ValueError("shapes do not match")
        if self.fail == "exit":
            raise SystemExit(3)
        return "abc" if self.fail == "loss" else 1.0

    def predict(self, inputs: FewShotInputs) -> np.ndarray:
        """Label 0 everywhere, or fail."""
        if self.fail == "predict":
            raise RuntimeError("no prediction")
        return np.zeros(inputs.query_images.shape[:2], dtype=np.int64)

    def state_dict(self) -> dict[str, Any]:
        """The step count (and, with ``fail = state``, something that cannot be saved)."""
        return {"steps": self.steps, "fn": (lambda: 0) if self.fail == "state" else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the step count."""
        self.steps = state["steps"]


class NoPredict:
    """A model that forgot ``predict``."""

    def train_step(self, batch: EpisodeBatch) -> float:
        """Nothing to learn."""
        return 1.0

    def state_dict(self) -> dict[str, Any]:
        """Nothing to keep."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Nothing to restore."""


def build(context: ModelContext) -> Failing | NoPredict | None:
    """The factory: a ``Failing``, or with ``fail = no_model`` / ``no_predict`` what the harness cannot use."""
    fail = context.params["fail"]
    return None if fail == "no_model" else NoPredict() if fail == "no_predict" else Failing(context)


@hookimpl
def harness_models() -> list[ModelSpec]:
    """Register ``failing``, filling the row ``Toy Failing`` of the toy table (failing in ``train_step``)."""
    row = TableRow("toy-table", "Toy Failing", params={"fail": "train_step"})
    return [
        ModelSpec("failing", "Fails on purpose (test).", (EpisodeKind.FEWSHOT,), build, {"fail": "none"}, True, (row,))
    ]


class ExitingHook:
    """Its model hook calls ``sys.exit``."""

    @hookimpl
    def harness_models(self) -> list[ModelSpec]:
        raise SystemExit("leaving now")
