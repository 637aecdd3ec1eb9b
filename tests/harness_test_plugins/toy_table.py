"""A third-party-style plugin with its own table on synthetic data, the table's numbers and a model row for it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from harness import hookimpl
from harness.specs import ModelSpec
from harness.tables import TableRow, TableSetting, TableSpec
from harness_test_plugins.weighted_protonet import harness_models as protonet_models

DATA = {"train_classes": 30, "val_classes": 5, "test_classes": 12}
NUMBERS = "harness_test_plugins:papers/toy-table.csv"
"""The toy paper's numbers, shipped with the plugin as package data."""
PAPER_CSV = (Path(__file__).parent / "papers" / "toy-table.csv").read_text(encoding="utf-8")


def toy_table() -> TableSpec:
    """Two settings on synthetic data, short budgets."""
    settings = tuple(
        TableSetting(f"{ways}-way 1-shot", {"dataset": "synthetic", "kind": "fewshot", "ways": ways, "data": DATA})
        for ways in (5, 10)
    )
    budgets = {"quick": {"episodes": 64, "eval_episodes": 48, "batch_size": 8, "checkpoint_every": 8}}
    return TableSpec(
        "toy-table", "Toy table", "Toy et al. 2026", "nway_kshot_accuracy", None, settings, budgets, numbers=NUMBERS
    )


@hookimpl
def harness_tables() -> list[TableSpec]:
    """Register the toy table."""
    return [toy_table()]


@hookimpl
def harness_models() -> list[ModelSpec]:
    """``toy-protonet``: the test protonet, declaring a row of the toy table."""
    (spec,) = protonet_models()
    return [dataclasses.replace(spec, name="toy-protonet", rows=(TableRow("toy-table", "Toy ProtoNet"),))]
