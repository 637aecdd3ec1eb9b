"""A dataset whose data directory option is ``folder``, not ``root``, with a table and a model row on it."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness import hookimpl
from harness.builtins import knn
from harness.builtins.synthetic import OPTIONS, open_synthetic
from harness.episodes import EpisodeKind
from harness.errors import DataError
from harness.sampling import ArrayEpisodeSource
from harness.specs import DatasetSpec, ModelSpec
from harness.tables import TableRow, TableSetting, TableSpec

PAPER_CSV = """row,setting,metric,key,value,ci95,paper,table,source,checked,note
kNN,5-way 1-shot,nway_kshot_accuracy,5-way 1-shot,50.0,,"Folder et al. 2026",Table 1,paper,the paper's Table 1,
"""


def open_folder(options: Mapping[str, Any]) -> ArrayEpisodeSource:
    """Synthetic glyphs, once ``folder`` names an existing folder."""
    if options["folder"] is None or not Path(options["folder"]).is_dir():
        raise DataError(f"folder-glyphs needs an existing folder, got {options['folder']!r}; pass --data folder=DIR")
    return open_synthetic({key: value for key, value in options.items() if key != "folder"})


@hookimpl
def harness_datasets() -> list[DatasetSpec]:
    """``folder-glyphs``: synthetic glyphs that want a folder."""
    return [
        DatasetSpec(
            name="folder-glyphs",
            description="Synthetic glyphs behind a folder option.",
            splits=("train", "val", "test"),
            episode_kinds=(EpisodeKind.FEWSHOT,),
            factory=open_folder,
            options={**OPTIONS, "folder": None},
            location_options=("folder",),
        )
    ]


@hookimpl
def harness_tables() -> list[TableSpec]:
    """``folder-table``: one 5-way 1-shot setting on ``folder-glyphs``."""
    setting = TableSetting("5-way 1-shot", {"dataset": "folder-glyphs", "kind": "fewshot", "ways": 5})
    budgets = {"quick": {"episodes": 0, "eval_episodes": 8}}
    return [
        TableSpec(
            "folder-table", "Folder table", "Folder et al. 2026", "nway_kshot_accuracy", None, (setting,), budgets
        )
    ]


@hookimpl
def harness_models() -> list[ModelSpec]:
    """``folder-knn``: the nearest-neighbour baseline as the table's row."""
    (spec,) = knn.harness_models()
    return [dataclasses.replace(spec, name="folder-knn", rows=(TableRow("folder-table", "kNN"),))]
