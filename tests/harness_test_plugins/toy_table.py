"""A third-party-style plugin with its own table on synthetic data and a model row for it."""

from __future__ import annotations

import dataclasses

from harness import hookimpl
from harness.specs import ModelSpec
from harness.tables import TableRow, TableSetting, TableSpec
from harness_test_plugins.weighted_protonet import harness_models as protonet_models

DATA = {"train_classes": 30, "val_classes": 5, "test_classes": 12}
PAPER_CSV = """row,setting,metric,key,value,ci95,paper,table,source,checked,note
Toy ProtoNet,5-way 1-shot,nway_kshot_accuracy,5-way 1-shot,90.0,1.5,"Toy et al. 2026",Table 1,paper,tables.md,
Toy Human,10-way 1-shot,nway_kshot_accuracy,10-way 1-shot,95.5,,"Toy et al. 2026",Table 1,paper,tables.md,
"""


def toy_table() -> TableSpec:
    """Two settings on synthetic data, short budgets."""
    settings = tuple(
        TableSetting(f"{ways}-way 1-shot", {"dataset": "synthetic", "kind": "fewshot", "ways": ways, "data": DATA})
        for ways in (5, 10)
    )
    budgets = {"quick": {"episodes": 64, "eval_episodes": 48, "batch_size": 8, "checkpoint_every": 8}}
    return TableSpec("toy-table", "Toy table", "Toy et al. 2026", "nway_kshot_accuracy", None, settings, budgets)


@hookimpl
def harness_tables() -> list[TableSpec]:
    """Register the toy table."""
    return [toy_table()]


@hookimpl
def harness_models() -> list[ModelSpec]:
    """``toy-protonet``: the test protonet, declaring a row of the toy table."""
    (spec,) = protonet_models()
    return [dataclasses.replace(spec, name="toy-protonet", rows=(TableRow("toy-table", "Toy ProtoNet"),))]
