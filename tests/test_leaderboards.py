"""The committed leaderboards under ``leaderboards/`` come from the committed runs, exactly."""

from __future__ import annotations

import itertools
import json
import math
import re
import shutil
import statistics
from pathlib import Path

import pandas as pd
import pytest
from conftest import OMNIGLOT_DIR, REPO

from harness import leaderboard
from harness.checkpoint_eval import evaluate_checkpoint
from harness.errors import ConfigError

BOARDS = REPO / "leaderboards"
RUNS = BOARDS / "runs"
OMNIGLOT = OMNIGLOT_DIR
COMMITTED = sorted(p.stem for p in BOARDS.glob("*.csv"))
WITHOUT_DATA = ("metanet-miniimagenet", "snail-table2")
"""Tables of mini-ImageNet, which cannot be downloaded: no run of ours."""


@pytest.mark.parametrize("name", COMMITTED)
def test_committed_leaderboard_rebuilds_from_committed_runs(host, name):
    table = host.tables.get(name)
    rebuilt = leaderboard.build(table, RUNS)
    committed = pd.read_csv(BOARDS / f"{name}.csv", keep_default_na=False)
    assert list(rebuilt["row"]) == list(committed["row"])
    assert list(rebuilt["source"]) == list(committed["source"])
    assert list(rebuilt["text"]) == list(committed["text"])
    ours = committed[committed["source"].str.startswith("ours")]
    if name in WITHOUT_DATA:  # the papers' rows alone, and the leaderboard says why
        assert ours.empty and "cannot be downloaded" in (BOARDS / f"{name}.md").read_text()
        return
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


# --- what the leaderboard says about its numbers -----------------------------------------------------


@pytest.mark.parametrize(
    ("df", "quantile"),
    [(1, 12.706), (2, 4.303), (3, 3.182), (4, 2.776), (9, 2.262), (29, 2.045), (30, 2.042), (40, 2.021),
     (60, 2.000), (120, 1.980), (10**6, 1.960)],
)  # fmt: skip
def test_student_t_quantiles_match_the_tables(df, quantile):
    assert leaderboard.t975(df) == pytest.approx(quantile, abs=5e-4)


def test_student_t_falls_towards_the_normal_quantile():
    values = [leaderboard.t975(df) for df in range(1, 200)]
    assert all(a > b for a, b in itertools.pairwise(values)) and values[-1] > 1.959964
    with pytest.raises(ValueError):
        leaderboard.t975(0)


def _seed_run(results: Path, seed: int, mean: float, ci95: float = 0.01, **extra: object) -> None:
    folder = results / "toy-table/quick/toy-protonet/5-way-1-shot" / f"seed{seed}"
    folder.mkdir(parents=True)
    cell = {"table": "toy-table", "row": "Toy ProtoNet", "setting": "5-way 1-shot", "seed": seed, "budget": "quick"}
    (folder / "cell.json").write_text(json.dumps(cell))
    record = {
        "status": "complete", "episodes_trained": 64, "config": {"model": "toy"},
        "provenance": {"git": {"commit": "abc", "dirty": False}},
        "metrics": {"nway_kshot_accuracy": {"5-way 1-shot": {"mean": mean, "ci95": ci95, "n": 48}}}, **extra,
    }  # fmt: skip
    (folder / "record.json").write_text(json.dumps(record))


def test_an_interval_over_seeds_is_students_t_and_values_are_rounded_at_the_source(host, tmp_path):
    from harness_test_plugins import toy_table

    with host.registered(toy_table, "toy-plugin"):
        table = host.tables.get("toy-table")
    means = [0.501, 0.499, 0.503]  # 100 * mean(...) is 50.099999999999994 in floating point
    for seed, mean in enumerate(means):
        _seed_run(tmp_path, seed, mean)
    (ours,) = leaderboard.our_results(table, tmp_path)
    sd = statistics.stdev(100 * m for m in means)
    assert ours["value"] == 50.1 and ours["seeds"] == 3
    assert ours["ci95"] == round(4.303 * sd / math.sqrt(3), 2) == 0.5  # 1.96 would give 0.23
    frame = leaderboard.build(table, tmp_path)
    written = frame.to_csv(index=False)
    assert not re.search(r"\d\.\d{3,}", written), "no float noise in the CSV"
    assert frame[frame["source"] != "paper"]["diff"].tolist() == [-39.9]


def test_seeds_that_agree_exactly_keep_the_interval_over_test_episodes_not_zero(host, tmp_path):
    from harness_test_plugins import toy_table

    with host.registered(toy_table, "toy-plugin"):
        table = host.tables.get("toy-table")
    for seed in range(3):  # a model the seed does not change (knn) on the table's fixed test episodes
        _seed_run(tmp_path, seed, 0.5, ci95=0.012)
    (ours,) = leaderboard.our_results(table, tmp_path)
    assert (ours["value"], ours["ci95"], ours["seeds"], ours["text"]) == (50.0, 1.2, 3, "50.0 ± 1.2")
    for no_interval in range(3):  # whichever seed's record gives none, and one a rounding apart still agrees
        shutil.rmtree(tmp_path / "toy-table")
        for seed in range(3):
            _seed_run(tmp_path, seed, 0.5000000000000001 if seed == 1 else 0.5, None if seed == no_interval else 0.012)
        (ours,) = leaderboard.our_results(table, tmp_path)
        assert ours["text"] == "50.0 ± 1.2", no_interval


def test_where_patience_stopped_a_seed_is_counted_in_either_form_a_record_may_give_it(host, tmp_path):
    from harness_test_plugins import toy_table

    with host.registered(toy_table, "toy-plugin"):
        table = host.tables.get("toy-table")
    _seed_run(tmp_path, 0, 0.5, stopped_early={"at_episode": 48, "patience": 2})  # as the runner writes it
    _seed_run(tmp_path, 1, 0.5, stopped_early=32)  # as a checkpoint holds it
    _seed_run(tmp_path, 2, 0.5, stopped_early=None)
    (ours,) = leaderboard.our_results(table, tmp_path)
    assert (ours["seeds"], ours["stopped_early"]) == (3, 2)
    text = leaderboard.to_markdown(table, leaderboard.build(table, tmp_path))
    assert "validation stopped 2 of 3 seed(s) early" in text


def test_the_text_shown_is_rounded_once(host, tmp_path):
    from harness_test_plugins import toy_table

    with host.registered(toy_table, "toy-plugin"):
        table = host.tables.get("toy-table")
    _seed_run(tmp_path, 0, 0.466533, 0.002549)
    (ours,) = leaderboard.our_results(table, tmp_path)
    assert (ours["value"], ours["ci95"], ours["text"]) == (46.65, 0.25, "46.7 ± 0.3")  # not "46.6 ± 0.2"


def test_numbers_quoted_by_a_secondary_source_are_shown_as_such(host):
    table = host.tables.get("metanet-omniglot")
    frame = leaderboard.build(table, RUNS)
    metanet = frame[frame["row"] == "MetaNet"]
    assert {s for s in metanet["source"] if not s.startswith("ours")} == {"secondary"}  # beside our runs of it
    assert set(frame["citation"]) - {""} == {"Munkhdalai & Yu 2017, Meta Networks, ICML"}  # no trailing comma
    markdown = leaderboard.to_markdown(table, frame)
    assert "| MetaNet | secondary | 98.95 |" in markdown
    assert (
        "- MetaNet: Munkhdalai & Yu 2017, Meta Networks, ICML, as quoted by secondary sources; "
        "checked against the secondary sources that quote it, not the paper itself." in markdown
    )
    assert "tables.md" not in markdown and "tables.md" not in frame.to_csv(index=False)


def test_the_knn_note_explains_its_first_instance_and_holds(host):
    from types import SimpleNamespace

    from conftest import rngs

    from harness.builtins.knn import NearestNeighbour
    from harness.config import build_config
    from harness.prepare import prepare

    table = host.tables.get("mann-table1")
    markdown = leaderboard.to_markdown(table, leaderboard.build(table, RUNS))
    assert "- kNN (raw pixels) at the 1st instance: a nearest neighbour answers a label it has already seen" in markdown
    # The note's claim: at a class's 1st instance the kNN is right only at the first step (label 0), 1 time in N.
    config = build_config({"model": "knn", "kind": "sequence", "ways": 5, "instances": 10}, "test")
    prepared = prepare(config, host)
    batch = prepared.test_source.sample("test", prepared.settings, rngs(0, 256), list(range(256)))
    right = NearestNeighbour(SimpleNamespace(params={"k": 1})).predict(batch.inputs()) == batch.targets
    first = batch.instance == 1
    assert first[:, 0].all() and not right[:, 1:][first[:, 1:]].any()
    assert 0.1 < right[:, 0].mean() < 0.3  # label 0 is the first class's 1 time in 5


def test_a_table_with_no_number_yet_gets_its_csv_and_markdown_but_no_plot(host, tmp_path):
    import dataclasses

    from harness_test_plugins import toy_table

    with host.registered(toy_table, "toy-plugin"):
        table = dataclasses.replace(host.tables.get("toy-table"), numbers="")
    papers = tmp_path / "papers"
    papers.mkdir()
    (papers / "toy-table.csv").write_text("row,setting,metric,key,value,ci95,paper,table,source,checked,note\n")
    results, out = tmp_path / "results", tmp_path / "boards"
    results.mkdir()
    out.mkdir()
    (out / "toy-table.png").write_bytes(b"\x89PNG\r\n\x1a\nan older plot, of numbers no longer there")
    paths = leaderboard.write(table, results, out, [papers])
    assert sorted(paths) == ["csv", "md"] and sorted(p.name for p in out.iterdir()) == ["toy-table.csv", "toy-table.md"]
    assert leaderboard.write(table, results, out, [papers]) == paths  # its own files it replaces
    for name in ("toy-table.csv", "toy-table.md", "toy-table.png"):  # the papers file, or notes of the user's
        mine = tmp_path / name.replace(".", "-")
        mine.mkdir()
        (mine / name).write_bytes((papers / "toy-table.csv").read_bytes())
        with pytest.raises(ConfigError, match=re.escape(f"{mine / name} is not a leaderboard the harness wrote")):
            leaderboard.write(table, results, mine, [papers])
        assert [path.name for path in mine.iterdir()] == [name]
        assert (mine / name).read_bytes() == (papers / "toy-table.csv").read_bytes()
