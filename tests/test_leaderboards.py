"""The committed leaderboards under ``leaderboards/`` come from the committed runs, exactly."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from conftest import OMNIGLOT_DIR, REPO

from harness import leaderboard
from harness.runner import evaluate_checkpoint

BOARDS = REPO / "leaderboards"
RUNS = BOARDS / "runs"
OMNIGLOT = OMNIGLOT_DIR
COMMITTED = sorted(p.stem for p in BOARDS.glob("*.csv"))


@pytest.mark.parametrize("name", COMMITTED)
def test_committed_leaderboard_rebuilds_from_committed_runs(host, name):
    table = host.tables.get(name)
    rebuilt = leaderboard.build(table, RUNS)
    committed = pd.read_csv(BOARDS / f"{name}.csv", keep_default_na=False)
    assert list(rebuilt["row"]) == list(committed["row"])
    assert list(rebuilt["source"]) == list(committed["source"])
    assert list(rebuilt["text"]) == list(committed["text"])
    ours = committed[committed["source"] != "paper"]
    assert not ours.empty, f"{name}.csv has no row of ours"
    assert set(ours["commit"]) != {""}, "our rows carry the commit they ran at"


@pytest.mark.omniglot
@pytest.mark.parametrize(
    "cell", ["mann-table2/paper/knn-raw-pixels/15-way/seed0", "snail-table1/paper/knn-raw-pixels/5-way-1-shot/seed0"]
)
def test_evaluating_a_committed_checkpoint_gives_the_number_in_the_table(host, cell):
    if not (OMNIGLOT / "images_background.zip").exists():
        pytest.skip(f"Omniglot archives not found in {OMNIGLOT}; set HARNESS_OMNIGLOT_DIR")
    record = json.loads((RUNS / cell / "record.json").read_text())
    result = evaluate_checkpoint(RUNS / cell / "checkpoint.pkl", host, data={"root": str(OMNIGLOT)})
    assert result["metrics"] == record["metrics"]
