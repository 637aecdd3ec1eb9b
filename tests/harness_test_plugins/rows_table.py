"""A table whose settings differ only in a dataset option (its rows: ``rows_table_rows``): with those rows, the cells
whose records look most alike, for the checks that tell them apart."""

from __future__ import annotations

import dataclasses

from harness import hookimpl
from harness.tables import TableSetting, TableSpec

DATA = {"train_classes": 30, "val_classes": 5, "test_classes": 12, "image_size": 8}


@hookimpl
def harness_tables() -> list[TableSpec]:
    """``rows-table``: 5-way 1-shot on synthetic images, and the same on larger ones."""
    settings = (
        TableSetting("5-way 1-shot", {"dataset": "synthetic", "kind": "fewshot", "ways": 5, "data": DATA}),
        TableSetting("5-way 1-shot (larger)", {"dataset": "synthetic", "kind": "fewshot", "ways": 5,
                                                "data": {**DATA, "image_size": 12}}),
    )  # fmt: skip
    budgets = {"quick": {"eval_episodes": 16}}
    numbers = "harness_test_plugins:papers/rows-table.csv"
    spec = TableSpec("rows-table", "Rows table", "Rows et al. 2026", "nway_kshot_accuracy", None, settings, budgets)
    return [dataclasses.replace(spec, numbers=numbers)]
