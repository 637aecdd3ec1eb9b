"""Example plugin: the 20 official runs of Lake et al.'s Omniglot one-shot classification task.

It registers, each through its own hook:

- dataset ``omniglot-runs``: the runs as fixed test episodes (a test split only, 20 episodes);
- model ``mhd``: the modified Hausdorff distance classifier, nothing to train;
- metric ``error_rate``: the fraction of queries misclassified (shown in percent), scoring only ``omniglot-runs``;
- table ``lake-oneshot``: the runs as one table, with the authors' reference number shipped
  as package data (``papers/lake-oneshot.csv``), the ``mhd`` row and a row for the harness's
  built-in ``knn`` (through ``harness_table_rows``).

Nothing heavy is imported here: ``harness plugins`` imports this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from harness import hookimpl
from harness.episodes import EpisodeBatch, EpisodeKind, Prediction
from harness.specs import DatasetSpec, MetricSpec, Model, ModelContext, ModelSpec
from harness.tables import TableRow, TableSetting, TableSpec

__version__ = "0.1.0"

DATASET = "omniglot-runs"
TABLE = "lake-oneshot"
SETTING = "20-way 1-shot"


def open_runs(options: Mapping[str, Any]) -> Any:
    """Dataset factory."""
    from harness_omniglot_runs.dataset import OmniglotRuns

    return OmniglotRuns(options)


def build_mhd(context: ModelContext) -> Model:
    """Model factory."""
    from harness_omniglot_runs.hausdorff import ModifiedHausdorff

    return ModifiedHausdorff(context)


def error_rate(batch: EpisodeBatch, prediction: Prediction) -> dict[str, np.ndarray]:
    """Per run, the fraction of test drawings given the wrong class, keyed by the setting."""
    return {batch.settings.describe(): (prediction.labels != batch.targets).mean(axis=1)}


@hookimpl
def harness_datasets() -> list[DatasetSpec]:
    """Register ``omniglot-runs``."""
    from harness_omniglot_runs.dataset import OPTIONS, SPLIT

    return [
        DatasetSpec(
            name=DATASET,
            description="Lake et al.'s 20 official one-shot runs (20-way 1-shot, test split only), from all_runs.zip.",
            splits=(SPLIT,),
            episode_kinds=(EpisodeKind.FEWSHOT,),
            factory=open_runs,
            options=OPTIONS,
            test_split=SPLIT,
            val_split=None,
            location_options=("runs_dir",),
        )
    ]


@hookimpl
def harness_models() -> list[ModelSpec]:
    """Register ``mhd``."""
    return [
        ModelSpec(
            name="mhd",
            description="Modified Hausdorff distance nearest neighbour on inked pixels (nothing to train).",
            episode_kinds=(EpisodeKind.FEWSHOT,),
            factory=build_mhd,
            trainable=False,
            rows=(TableRow(TABLE, "Modified Hausdorff distance"),),
        )
    ]


@hookimpl
def harness_metrics() -> list[MetricSpec]:
    """Register ``error_rate``, for ``omniglot-runs`` only."""
    return [
        MetricSpec(
            "error_rate",
            "Fraction of test drawings misclassified, per run (the one-shot task's own measure; shown in percent).",
            False,
            (EpisodeKind.FEWSHOT,),
            error_rate,
            datasets=(DATASET,),
        )
    ]


@hookimpl
def harness_tables() -> list[TableSpec]:
    """Register ``lake-oneshot``: one setting, the 20 runs, nothing to train at either budget."""
    setting = TableSetting(
        SETTING, {"dataset": DATASET, "kind": "fewshot", "ways": 20, "shots": 1, "queries": 1, "eval_episodes": 20}
    )
    budget = {"episodes": 0, "batch_size": 20}
    return [
        TableSpec(
            name=TABLE,
            title="Omniglot one-shot classification: the 20 official runs (percent error)",
            paper="Lake, Salakhutdinov & Tenenbaum 2015, Science 350(6266)",
            metric="error_rate",
            keys=None,
            settings=(setting,),
            budgets={"quick": budget, "paper": budget},
            numbers="harness_omniglot_runs:papers/lake-oneshot.csv",
            notes=("Lower is better: the cells are percent errors over the 20 runs, 20 test drawings each.",),
            quantity="error",
        )
    ]


@hookimpl
def harness_table_rows() -> list[TableRow]:
    """A row for the harness's built-in ``knn`` (raw pixels), a model this plugin does not provide."""
    return [TableRow(TABLE, "kNN (raw pixels)", model="knn")]
