"""``toy-crasher``: a model whose process dies in ``train_step`` (as a Ray worker killed for memory does),
filling the 5-way row ``Toy Crasher`` of the toy table. Run it only in a worker, never in the test process."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from harness import hookimpl
from harness.specs import ModelContext, ModelSpec
from harness.tables import TableRow
from harness_test_plugins.weighted_protonet import harness_models as protonet_models


class Crasher:
    """Ends its process on the first training step."""

    def __init__(self, context: ModelContext) -> None:
        self.context = context

    def train_step(self, batch: Any) -> float:
        """Exit the process at once, as a killed worker does."""
        os._exit(1)

    def predict(self, inputs: Any) -> Any:
        """Never reached."""
        raise AssertionError("unreachable")

    def state_dict(self) -> dict[str, Any]:
        """Nothing to save."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Nothing to restore."""


@hookimpl
def harness_models() -> list[ModelSpec]:
    """Register ``toy-crasher``."""
    (spec,) = protonet_models()
    row = TableRow("toy-table", "Toy Crasher", settings=("5-way 1-shot",))
    return [dataclasses.replace(spec, name="toy-crasher", factory=Crasher, defaults={}, rows=(row,))]
