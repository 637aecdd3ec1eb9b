"""The plugin through the command line, from a folder outside the repository, as a user runs it.

The plugin must be installed (its entry point is how the harness finds it).
"""

from __future__ import annotations

import csv
import json
import shlex
from pathlib import Path

import numpy as np
import pytest

from harness import per_episode
from harness.cli import main


@pytest.fixture(autouse=True)
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test runs in an empty folder, with no paper folders of the repository around."""
    work = tmp_path / "elsewhere"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("HARNESS_PAPERS_DIR", raising=False)
    return work


def harness(command: str) -> int:
    """``harness COMMAND`` (a shell-quoted string), with progress bars off where the command has them."""
    args = shlex.split(command)
    return main(args if args[0] == "leaderboard" else [*args, "--no-progress"])


def test_run_scores_the_runs_and_keeps_each_runs_error(runs_dir: Path) -> None:
    run = f"run --model mhd --dataset omniglot-runs --ways 5 --shots 1 --eval-episodes 3 --data runs_dir={runs_dir}"
    assert harness(f"{run} --out results --name mhd") == 0
    record = json.loads(Path("results/mhd/record.json").read_text())
    assert record["episodes_trained"] == 0
    error = record["metrics"]["error_rate"]["5-way 1-shot"]
    accuracy = record["metrics"]["nway_kshot_accuracy"]["5-way 1-shot"]
    assert error["n"] == 3 and error["mean"] == pytest.approx(1 - accuracy["mean"])
    values = per_episode.load(Path("results/mhd"))
    np.testing.assert_array_equal(values.episodes, [0, 1, 2])
    assert values.values["error_rate"]["5-way 1-shot"].mean() == pytest.approx(error["mean"])


def test_more_episodes_than_runs_are_refused_before_any_work(runs_dir: Path, capsys: pytest.CaptureFixture) -> None:
    run = f"run --model mhd --dataset omniglot-runs --ways 5 --shots 1 --data runs_dir={runs_dir}"
    assert harness(f"{run} --out results --name mhd") == 2
    assert "has 3 test episodes, fewer than the 1000 asked for; pass --eval-episodes 3" in capsys.readouterr().err
    assert not Path("results/mhd").exists()


def test_without_its_runs_the_dataset_says_where_they_come_from(capsys: pytest.CaptureFixture) -> None:
    assert harness("run --model mhd --dataset omniglot-runs --ways 5 --shots 1 --eval-episodes 3 --out results") == 2
    assert "omniglot-runs needs the runs: pass --data runs_dir=DIR" in capsys.readouterr().err


def test_error_rate_scores_only_the_runs(runs_dir: Path) -> None:
    assert (
        harness(
            "run --model knn --dataset synthetic --kind fewshot --ways 5 --eval-episodes 8 --out results --name knn"
        )
        == 0
    )
    assert "error_rate" not in json.loads(Path("results/knn/record.json").read_text())["metrics"]


def test_a_model_run_on_one_dataset_is_evaluated_on_the_runs(runs_dir: Path, capsys: pytest.CaptureFixture) -> None:
    run = "run --model knn --dataset synthetic --kind fewshot --ways 5 --data image_size=28 --eval-episodes 8"
    assert harness(f"{run} --out results --name knn") == 0
    capsys.readouterr()
    on_runs = f"--dataset omniglot-runs --data runs_dir={runs_dir} --data image_size=28 --eval-episodes 3"
    assert harness(f"evaluate --checkpoint results/knn/checkpoint.pkl {on_runs} --json") == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["dataset"], result["test_dataset"]) == ("synthetic", "omniglot-runs")
    assert result["metrics"]["error_rate"]["5-way 1-shot"]["n"] == 3


def test_reproduce_and_leaderboard_with_the_tables_own_numbers(official_shape_runs: Path) -> None:
    where = f"--data-dir omniglot-runs={official_shape_runs}"
    assert harness(f"reproduce lake-oneshot --row 'kNN (raw pixels)' {where} --results results") == 0
    with open("results/leaderboards/lake-oneshot.csv", newline="", encoding="utf-8") as f:
        rows = {(r["row"], r["source"]): r for r in csv.DictReader(f)}
    published = rows[("Modified Hausdorff distance", "secondary")]
    assert float(published["value"]) == 38.8
    ours = rows[("kNN (raw pixels)", "ours (quick budget)")]
    assert 0.0 <= float(ours["value"]) <= 100.0 and ours["seeds"] == "1"
    markdown = Path("results/leaderboards/lake-oneshot.md").read_text(encoding="utf-8")
    assert "percent error" in markdown and "Lower is better" in markdown
    Path("results/leaderboards").rename("first")
    assert harness("leaderboard lake-oneshot --results results --out again") == 0
    assert Path("again/lake-oneshot.csv").read_text() == Path("first/lake-oneshot.csv").read_text()
