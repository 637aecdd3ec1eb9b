"""Rows for the Ray tests: a torch model in the toy table, and a table on a dataset found through a folder.

``rooted`` is the synthetic dataset behind a ``root`` location option that must hold
``MARKER``: a relative ``--data-dir rooted=DIR`` works only where it is resolved against the
directory the command runs in.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness import hookimpl
from harness.builtins.synthetic import OPTIONS, open_synthetic
from harness.episodes import EpisodeKind
from harness.errors import DataError
from harness.sampling import ArrayEpisodeSource
from harness.specs import DatasetSpec, ModelSpec
from harness.tables import TableRow, TableSetting, TableSpec
from harness_test_plugins.torch_protonet import harness_models as torch_models
from harness_test_plugins.toy_table import DATA
from harness_test_plugins.weighted_protonet import harness_models as protonet_models

MARKER = "rooted.txt"


def open_rooted(options: Mapping[str, Any]) -> ArrayEpisodeSource:
    """The synthetic episodes, once ``root`` is found to hold ``MARKER``."""
    root = Path(options["root"])
    if not (root / MARKER).is_file():
        raise DataError(f"no {MARKER} in {root}; pass --data-dir rooted=DIR")
    return open_synthetic({k: v for k, v in options.items() if k != "root"})


@hookimpl
def harness_datasets() -> list[DatasetSpec]:
    """Register ``rooted``."""
    return [
        DatasetSpec(
            "rooted", "Synthetic glyphs behind a root folder (test).", ("train", "val", "test"),
            (EpisodeKind.FEWSHOT,), open_rooted, options={**OPTIONS, "root": ""}, location_options=("root",),
        )
    ]  # fmt: skip


@hookimpl
def harness_tables() -> list[TableSpec]:
    """``toy-rooted``: one 5-way 1-shot setting on ``rooted``."""
    setting = TableSetting("5-way 1-shot", {"dataset": "rooted", "kind": "fewshot", "ways": 5, "data": DATA})
    budgets = {"quick": {"episodes": 32, "eval_episodes": 32, "batch_size": 8, "checkpoint_every": 8}}
    numbers = "harness_test_plugins:papers/toy-rooted.csv"
    title, paper = "Toy rooted table", "Toy et al. 2026"
    return [TableSpec("toy-rooted", title, paper, "nway_kshot_accuracy", None, (setting,), budgets, numbers=numbers)]


@hookimpl
def harness_models() -> list[ModelSpec]:
    """``toy-torch-protonet`` fills a row of the toy table; ``toy-rooted-protonet`` the row of ``toy-rooted``."""
    (torch_spec,) = torch_models()
    (numpy_spec,) = protonet_models()
    return [
        dataclasses.replace(torch_spec, name="toy-torch-protonet", rows=(TableRow("toy-table", "Toy Torch ProtoNet"),)),
        dataclasses.replace(numpy_spec, name="toy-rooted-protonet", rows=(TableRow("toy-rooted", "Toy ProtoNet"),)),
    ]
