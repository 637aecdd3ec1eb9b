"""``harness reproduce`` and ``harness leaderboard`` on a small table over synthetic data."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import types

import pytest
from conftest import REPO, TESTS, harness_cli
from harness_test_plugins import misbehaving, toy_table
from lock_holder import held_elsewhere

from harness import hookimpl, leaderboard
from harness.checkpoint_eval import evaluate_checkpoint
from harness.checkpoints import load as load_checkpoint
from harness.errors import ConfigError, DataError, UnknownNameError
from harness.reproduce import reproduce, select, table_cells
from harness.tables import TableRow, slug

TOY = "harness_test_plugins.toy_table"
MISBEHAVING = "harness_test_plugins.misbehaving"


@pytest.fixture
def papers(tmp_path):
    folder = tmp_path / "papers"
    folder.mkdir()
    (folder / "toy-table.csv").write_text(toy_table.PAPER_CSV)
    return folder


def test_reproduce_then_leaderboard_puts_our_rows_beside_the_papers(toy_host, tmp_path, papers):
    table = toy_host.tables.get("toy-table")
    done = reproduce(table, toy_host, tmp_path / "results")
    assert done["skipped"] == [] and len(done["run"]) == 2
    paths = leaderboard.write(table, tmp_path / "results", tmp_path / "boards", [papers])
    frame = leaderboard.build(table, tmp_path / "results", [papers])
    ours = frame[frame["source"] == "ours (quick budget)"].set_index("setting")
    assert list(ours["row"]) == ["Toy ProtoNet", "Toy ProtoNet"]
    record = json.loads((tmp_path / "results/toy-table/quick/toy-protonet/5-way-1-shot/seed0/record.json").read_text())
    expected = round(100 * record["metrics"]["nway_kshot_accuracy"]["5-way 1-shot"]["mean"], 2)
    assert ours.loc["5-way 1-shot", "value"] == expected
    assert ours.loc["5-way 1-shot", "diff"] == round(expected - 90.0, 2)
    assert ours.loc["5-way 1-shot", "episodes_trained"] == 64
    assert pd_isna(ours.loc["10-way 1-shot", "paper_value"])  # the paper has no Toy ProtoNet 10-way cell
    paper = frame[frame["source"] == "paper"]
    assert sorted(paper["row"]) == ["Toy Human", "Toy ProtoNet"]
    markdown = paths["md"].read_text()
    assert "| Toy ProtoNet | ours (quick budget) |" in markdown and "| Toy ProtoNet | paper | 90.0 ± 1.5 |" in markdown
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    checkpoint = tmp_path / "results/toy-table/quick/toy-protonet/5-way-1-shot/seed0/checkpoint.pkl"
    assert evaluate_checkpoint(checkpoint, toy_host)["metrics"] == record["metrics"]


def pd_isna(value) -> bool:
    import pandas as pd

    return bool(pd.isna(value))


def test_row_option_runs_only_that_row_and_a_misspelt_one_says_the_right_label(toy_host, tmp_path):
    table = toy_host.tables.get("toy-table")
    with pytest.raises(ConfigError, match=r"has no row 'Toy Protonet' \(its rows: .*\); did you mean 'Toy ProtoNet'\?"):
        reproduce(table, toy_host, tmp_path, seeds=[0], rows=["Toy Protonet"])
    assert not any(tmp_path.iterdir())
    done = reproduce(table, toy_host, tmp_path, seeds=[0], rows=["Toy ProtoNet"])
    assert len(done["run"]) == 2 and all("/toy-protonet/" in name for name in done["run"])


def test_setting_option_runs_only_that_setting_and_a_misspelt_one_says_the_right_name(tmp_path):
    env = {"HARNESS_PLUGINS": TOY}
    args = ["reproduce", "toy-table", "--results", str(tmp_path), "--seeds", "0", "--no-progress"]
    wrong = harness_cli(*args, "--setting", "5-way 1-shto", env=env)
    assert wrong.returncode == 2 and wrong.stderr.count("\n") == 1
    assert (
        "has no setting '5-way 1-shto' (its settings: " in wrong.stderr
        and "did you mean '5-way 1-shot'?" in wrong.stderr
    )
    assert not any(tmp_path.iterdir())
    ran = harness_cli(*args, "--setting", "5-way 1-shot", env=env)
    assert ran.returncode == 0, ran.stderr
    assert sorted(p.parent.parent.name for p in tmp_path.rglob("record.json")) == ["5-way-1-shot"]


def test_over_several_tables_a_budget_row_or_setting_picks_the_tables_that_have_it(host, tmp_path):
    tables = [host.tables.get(name) for name in ("mann-table1", "metanet-omniglot", "snail-table1")]
    assert [s.table.name for s in select(tables, host, "short")] == ["metanet-omniglot"]
    chosen = select(tables, host, "paper", settings=["5-way 1-shot", "5-way"], rows=["kNN (raw pixels)"])
    assert [(s.table.name, s.settings) for s in chosen] == [
        ("mann-table1", ["5-way"]), ("metanet-omniglot", ["5-way 1-shot"]), ("snail-table1", ["5-way 1-shot"]),
    ]  # fmt: skip
    refused = {
        "budget": (lambda: select(tables, host, "shrot"), "has a budget 'shrot' (theirs: quick, paper, long, xl, "
                   "xxl, xxl-lr-drop, xxl-lr-drop2, short, paper-lr-drop, long-lr-drop, long-lr-drop2); did you mean "
                   "'short'?"),
        "row": (lambda: select(tables, host, "paper", rows=["kNN (raw pixel)"]), "did you mean 'kNN (raw pixels)'?"),
        "both": (lambda: select(tables, host, "xl", settings=["5-way 1-shot"]),
                 "together with the models, rows and settings"),
    }  # fmt: skip
    for call, message in refused.values():
        with pytest.raises(ConfigError, match=re.escape(message)):
            call()
    assert [s.table.name for s in select(tables[:1], host, "short")] == ["mann-table1"]  # table_cells refuses it
    assert len(select(tables, host, "paper", models=["knn"])) == 3
    with pytest.raises(UnknownNameError, match="did you mean 'knn'"):
        select(tables, host, "paper", models=["kmn"])
    status = harness_cli("status", "mann-table1", "metanet-omniglot", "--budget", "short", "--results", str(tmp_path))
    assert status.returncode == 0, status.stderr
    assert "mann-table1: no cells" in status.stdout and "short   kNN (raw pixels)  5-way 1-shot" in status.stdout
    wrong = harness_cli("reproduce", "all", "--budget", "shrot", "--results", str(tmp_path / "r"))
    assert wrong.returncode == 2 and wrong.stderr.count("\n") == 1 and "did you mean 'short'?" in wrong.stderr
    assert not (tmp_path / "r").exists()


def test_a_table_named_on_the_command_line_and_left_out_is_named(tmp_path):
    command = ["reproduce", "toy-table", "snail-table1", "--model", "toy-protonet", "--results", str(tmp_path)]
    result = harness_cli(*command, "--no-progress", env={"HARNESS_PLUGINS": "harness_test_plugins.toy_table"})
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "harness: note: table 'snail-table1' has no cell at the budget, models, rows and settings given; left out"
    ]
    assert not (tmp_path / "snail-table1").exists() and (tmp_path / "toy-table").is_dir()


def test_a_model_or_row_and_setting_that_select_no_cell_are_named_as_such(toy_host):
    table = toy_host.tables.get("toy-table")
    with pytest.raises(ConfigError) as caught:
        table_cells(table, toy_host, "quick", models=["knn"])
    assert str(caught.value) == "'knn' fills no row of table 'toy-table'; its rows are filled by toy-protonet"
    with pytest.raises(ConfigError) as caught:
        table_cells(table, toy_host, "quick", models=["knn"], settings=["5-way 1-shot"])
    assert str(caught.value).startswith("'knn' fills no row of table 'toy-table' at the --setting given")
    with pytest.raises(ConfigError) as caught:  # one model asked for fills it, the other would be dropped unsaid
        table_cells(table, toy_host, "quick", models=["toy-protonet", "knn"])
    assert str(caught.value) == "'knn' fills no row of table 'toy-table'; its rows are filled by toy-protonet"


def test_a_model_or_row_that_the_other_filters_leave_without_a_cell_is_named(toy_host):
    five = TableRow("toy-table", "kNN five", model="knn", settings=("5-way 1-shot",))
    toy_host.register(types.SimpleNamespace(harness_table_rows=hookimpl(lambda: [five])), "five")
    table = toy_host.tables.get("toy-table")
    refused = {
        "'knn' fills no row of table 'toy-table' at the --setting given; its rows are filled by "
        "toy-protonet": {"models": ["toy-protonet", "knn"], "settings": ["10-way 1-shot"]},
        "row 'kNN five' of table 'toy-table' has no cell at the --model given; drop that --row": {
            "models": ["toy-protonet"], "rows": ["Toy ProtoNet", "kNN five"]},
        "setting '10-way 1-shot' of table 'toy-table' has no cell at the --row given; drop that --setting": {
            "rows": ["kNN five"], "settings": ["5-way 1-shot", "10-way 1-shot"]},
    }  # fmt: skip
    for message, filters in refused.items():
        with pytest.raises(ConfigError) as caught:
            table_cells(table, toy_host, "quick", **filters)
        assert str(caught.value) == message
    tables = [table, toy_host.tables.get("snail-table1")]
    with pytest.raises(ConfigError) as caught:  # knn fills snail-table1, but not at 10-way
        select(tables, toy_host, "quick", models=["toy-protonet", "knn"], settings=["10-way 1-shot"])
    assert str(caught.value).startswith("'knn' fills no row of toy-table at the budget")
    chosen = select(tables, toy_host, "quick", models=["knn"], settings=["5-way 1-shot"])
    assert [(s.table.name, s.models, s.settings) for s in chosen] == [
        ("toy-table", ["knn"], ["5-way 1-shot"]), ("snail-table1", ["knn"], ["5-way 1-shot"]),
    ]  # fmt: skip


def test_a_setting_no_row_covers_is_named_as_such(toy_host):
    part = dataclasses.replace(toy_host.tables.get("toy-table"), name="toy-part")
    five = TableRow("toy-part", "kNN five", model="knn", settings=("5-way 1-shot",))
    plugin = types.SimpleNamespace(harness_tables=hookimpl(lambda: [part]), harness_table_rows=hookimpl(lambda: [five]))
    toy_host.register(plugin, "part")
    for models in (None, ["knn"]):  # not "at the --model given": dropping --model would not help
        with pytest.raises(ConfigError) as caught:
            table_cells(part, toy_host, "quick", models=models, settings=["10-way 1-shot"])
        assert str(caught.value) == (
            "no row of table 'toy-part' covers setting '10-way 1-shot' (its rows cover 5-way 1-shot); drop that "
            "--setting"
        )


def test_over_several_tables_a_model_that_fills_no_row_asked_for_is_named(toy_host):
    tables = [toy_host.tables.get(name) for name in ("toy-table", "snail-table1")]
    rows = ["Toy ProtoNet", "kNN (raw pixels)"]
    chosen = select(tables, toy_host, "quick", models=["knn", "toy-protonet"], rows=rows)
    assert [(s.table.name, s.models, s.rows) for s in chosen] == [
        ("toy-table", ["toy-protonet"], ["Toy ProtoNet"]), ("snail-table1", ["knn"], ["kNN (raw pixels)"]),
    ]  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        select(tables, toy_host, "quick", models=["knn", "toy-protonet"], rows=rows[:1])
    assert str(caught.value) == (
        "'knn' fills no row of toy-table at the budget, models, rows and settings given; drop that --model"
    )


def test_rows_told_apart_by_a_sign_get_folders_of_their_own_and_a_clash_is_left_out_naming_both(toy_host):
    assert len({slug("MetaNet"), slug("MetaNet\u2212"), slug("MetaNet+")}) == 3
    twin = dataclasses.replace(
        toy_host.models.get("toy-protonet"), name="toy-protonet-2", rows=(TableRow("toy-table", "Toy ProtoNet!"),)
    )
    again = TableRow("toy-table", "Toy ProtoNet", model="knn")
    five = TableRow("toy-table", "kNN", model="knn", settings=("5-way 1-shot",))
    ten = TableRow("toy-table", "kNN!", model="knn", settings=("10-way 1-shot",))  # one folder, no setting in common
    clashing = types.SimpleNamespace(
        harness_models=hookimpl(lambda: [twin]), harness_table_rows=hookimpl(lambda: [again, five, ten])
    )
    with toy_host.registered(clashing, "clashing"):
        assert toy_host.info("clashing").warnings == [
            "plugin 'clashing' lists row 'Toy ProtoNet!' of table 'toy-table', but plugin 'toy-plugin' lists row "
            "'Toy ProtoNet', whose label makes the same folder, already; give it a label that differs in letters or "
            "digits; the row is left out",
            "plugin 'clashing' lists row 'Toy ProtoNet' of table 'toy-table', but plugin 'toy-plugin' lists the row "
            "already; give it a label that differs in letters or digits; the row is left out",
        ]
        cells = table_cells(toy_host.tables.get("toy-table"), toy_host, "quick", seeds=[0])
        assert sorted((cell.row, cell.config.model) for cell in cells) == [
            ("Toy ProtoNet", "toy-protonet"), ("Toy ProtoNet", "toy-protonet"), ("kNN", "knn"), ("kNN!", "knn"),
        ]  # fmt: skip
        assert "toy-protonet-2" in toy_host.models  # the model stays, without the row


def test_reproduce_skips_finished_cells(toy_host, tmp_path):
    table = toy_host.tables.get("toy-table")
    first = reproduce(table, toy_host, tmp_path, seeds=[0])
    again = reproduce(table, toy_host, tmp_path, seeds=[0, 1])
    assert sorted(again["skipped"]) == sorted(first["run"])
    assert all(name.endswith("seed1") for name in again["run"]) and len(again["run"]) == 2


@pytest.mark.parametrize("mean", ["0.5", float("nan"), True])
def test_a_finished_cell_whose_numbers_were_damaged_fails_alone_instead_of_counting_as_done(toy_host, tmp_path, mean):
    table = toy_host.tables.get("toy-table")
    first = reproduce(table, toy_host, tmp_path, seeds=[0])
    path = tmp_path / CELL_5WAY / "record.json"
    record = json.loads(path.read_text())
    (metric,) = record["metrics"].values()
    next(iter(metric.values()))["mean"] = mean
    path.write_text(json.dumps(record))  # json writes NaN, which a run never does
    messages: list[str] = []
    again = reproduce(table, toy_host, tmp_path, seeds=[0], log=messages.append)
    assert again["failed"] == [CELL_5WAY] and sorted(again["skipped"]) == sorted(set(first["run"]) - {CELL_5WAY})
    (message,) = messages
    assert f"{path} is not a run record the harness can use (a summary in metrics whose mean" in message
    assert "delete " in message and "tests it again" in message, "the fix: test the checkpoint again"


def test_harness_run_refuses_a_cell_folder_even_with_restart(toy_host, tmp_path):
    from harness.config import build_config
    from harness.runner import run

    first = reproduce(toy_host.tables.get("toy-table"), toy_host, tmp_path, seeds=[0])
    cell = tmp_path / first["run"][0]
    record = (cell / "record.json").read_bytes()
    config = build_config({"model": "knn", "kind": "fewshot", "eval_episodes": 8}, "test")
    for restart in (False, True):
        with pytest.raises(ConfigError, match=r"is a cell of 'harness reproduce' \(cell.json says which\); run it wi"):
            run(config, toy_host, cell.parent, name=cell.name, restart=restart, log=lambda _: None)
    assert (cell / "record.json").read_bytes() == record


def test_a_run_of_another_config_at_a_cells_path_is_not_taken_as_the_cell(toy_host, tmp_path):
    from harness.config import build_config
    from harness.runner import run

    table = toy_host.tables.get("toy-table")
    cell = "toy-table/quick/toy-protonet/5-way-1-shot/seed3"  # harness run got there before reproduce
    config = build_config({"model": "knn", "kind": "fewshot", "seed": 3, "eval_episodes": 8}, "test")
    run(config, toy_host, tmp_path, name=cell, log=lambda _: None)
    said: list[str] = []
    outcome = reproduce(table, toy_host, tmp_path, seeds=[3], settings=["5-way 1-shot"], log=said.append)
    assert outcome["failed"] == [cell] and not (tmp_path / cell / "cell.json").exists()
    (line,) = said
    assert line.startswith(f"{cell}: failed: {tmp_path / cell} holds a run of another config than this cell's (")
    assert line.endswith(f") and no cell.json: it is no run of this table; move it out of {tmp_path / 'toy-table'}")
    with pytest.raises(DataError, match=r"holds a run but no cell\.json"):  # nor does it reach the leaderboard
        leaderboard.our_results(table, tmp_path)


@pytest.mark.slow
def test_interrupted_reproduce_resumes_without_redoing_finished_cells(tmp_path, papers):
    env = {"HARNESS_PLUGINS": TOY, "HARNESS_PAPERS_DIR": str(papers)}
    args = ["reproduce", "toy-table", "--results", str(tmp_path), "--no-progress"]
    slow = {**os.environ, **env, "PYTHONPATH": str(TESTS)}
    base = tmp_path / "toy-table/quick/toy-protonet"
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", *args], env={**slow, "HARNESS_TEST_DELAY": "0.2"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    second = base / "10-way-1-shot/seed0/checkpoint.pkl"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not second.exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first_record = base / "5-way-1-shot/seed0/record.json"
    assert first_record.exists() and not (base / "10-way-1-shot/seed0/record.json").exists()
    stamp = first_record.stat().st_mtime_ns
    killed_at = load_checkpoint(second)["episodes_trained"]
    result = harness_cli(*args, env=env)
    assert result.returncode == 0, result.stderr
    assert "toy-table: 1 cell run, 1 already done" in result.stdout
    assert first_record.stat().st_mtime_ns == stamp
    resumed = json.loads((base / "10-way-1-shot/seed0/record.json").read_text())
    assert resumed["resumes"] == (1 if killed_at < 64 else 0)


CELL_5WAY = "toy-table/quick/toy-protonet/5-way-1-shot/seed0"
CELL_10WAY = "toy-table/quick/toy-protonet/10-way-1-shot/seed0"


def test_a_cell_held_by_another_process_is_left_to_it_and_run_once_it_is_free(toy_host, tmp_path):
    table = toy_host.tables.get("toy-table")
    messages: list[str] = []
    with held_elsewhere(tmp_path / CELL_5WAY) as holder:
        done = reproduce(table, toy_host, tmp_path, seeds=[0], log=messages.append)
    assert done == {"run": [CELL_10WAY], "skipped": [], "elsewhere": [CELL_5WAY], "failed": []}
    assert [p.name for p in (tmp_path / CELL_5WAY).iterdir()] == [".lock"]  # of the holder, killed at the end
    assert messages == [f"{tmp_path / CELL_5WAY}: running elsewhere (pid {holder.pid} on {socket.gethostname()} "
                        f"since {messages[0].split(' since ')[1]}"]  # fmt: skip
    again = reproduce(table, toy_host, tmp_path, seeds=[0])
    assert again == {"run": [CELL_5WAY], "skipped": [CELL_10WAY], "elsewhere": [], "failed": []}


@pytest.mark.slow
def test_two_reproduce_commands_on_one_results_folder_share_the_cells(tmp_path, papers):
    env = {**os.environ, "PYTHONPATH": str(TESTS), "HARNESS_PLUGINS": TOY, "HARNESS_PAPERS_DIR": str(papers)}
    args = [sys.executable, "-m", "harness", "reproduce", "toy-table", "--results", str(tmp_path), "--no-progress"]
    slow = {**env, "HARNESS_TEST_DELAY": "0.3"}
    first = subprocess.Popen(args, env=slow, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = tmp_path / CELL_5WAY / ".lock"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and first.poll() is None and not (lock.exists() and lock.read_text()):
        time.sleep(0.02)
    second = subprocess.run(args, env=slow, capture_output=True, text=True, timeout=180)
    first_out, first_err = first.communicate(timeout=180)
    assert first.returncode == 0 and second.returncode == 0, first_err + second.stderr
    ran = [int(re.search(r"(\d+) cells? run", out).group(1)) for out in (first_out, second.stdout)]
    assert ran == [1, 1], first_out + second.stdout
    assert "1 running elsewhere" in first_out + second.stdout
    assert "running elsewhere (pid " in first_err + second.stderr
    for name in (CELL_5WAY, CELL_10WAY):
        record = json.loads((tmp_path / name / "record.json").read_text())
        assert record["resumes"] == 0 and record["episodes_trained"] == 64
        files = ["cell.json", "checkpoint.pkl", "episodes.npz", "record.json"]
        assert sorted(p.name for p in (tmp_path / name).iterdir()) == files


def test_third_party_row_appears_without_core_changes(host, tmp_path, papers):
    with host.registered(toy_table, "toy-plugin"):
        reproduce(host.tables.get("toy-table"), host, tmp_path, seeds=[3])
        frame = leaderboard.build(host.tables.get("toy-table"), tmp_path, [papers])
    assert set(frame["row"]) == {"Toy ProtoNet", "Toy Human"}
    assert set(frame[frame["row"] == "Toy ProtoNet"]["source"]) == {"paper", "ours (quick budget)"}


def test_bad_table_name_missing_paper_file_and_malformed_row(toy_host, tmp_path, papers):
    with pytest.raises(UnknownNameError, match=re.escape("unknown table 'toy-tabel'; did you mean 'toy-table'?")):
        toy_host.tables.get("toy-tabel")
    table = dataclasses.replace(toy_host.tables.get("toy-table"), numbers="")
    (tmp_path / "results" / "toy-table").mkdir(parents=True)
    with pytest.raises(DataError) as err:
        leaderboard.build(table, tmp_path / "results", [tmp_path])
    assert str(err.value) == (
        f"no paper numbers for table 'toy-table' (looked in: {tmp_path}); "
        "pass --papers DIR holding toy-table.csv, or ship it with the table (TableSpec.numbers)"
    )
    with pytest.raises(DataError, match=r"^papers folder .*nowhere does not exist; pass a folder holding"):
        leaderboard.build(table, tmp_path / "results", [tmp_path / "nowhere"])
    (papers / "toy-table.csv").write_text(toy_table.PAPER_CSV.replace("90.0", "ninety"))
    with pytest.raises(DataError) as err:
        leaderboard.build(table, tmp_path / "results", [papers])
    assert "toy-table.csv:2" in str(err.value) and "\n" not in str(err.value)
    result = harness_cli("leaderboard", "toy-tabel", env={"HARNESS_PLUGINS": TOY})
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "did you mean 'toy-table'" in result.stderr


FAILING = [f"toy-table/quick/toy-failing/{setting}/seed0" for setting in ("5-way-1-shot", "10-way-1-shot")]


def test_a_row_whose_model_raises_fails_alone_and_is_tried_again_on_a_rerun(toy_host, tmp_path):
    toy_host.register(misbehaving, "misbehaving-plugin")
    table = toy_host.tables.get("toy-table")
    messages: list[str] = []
    done = reproduce(table, toy_host, tmp_path, seeds=[0], log=messages.append)
    assert sorted(done["run"]) == sorted([CELL_5WAY, CELL_10WAY]) and sorted(done["failed"]) == sorted(FAILING)
    assert sorted(messages) == sorted(
        f"{name}: failed: model 'failing' (plugin 'misbehaving-plugin') failed in train_step: "
        "ValueError: shapes do not match"
        for name in FAILING
    )
    for name in FAILING:
        assert not (tmp_path / name / "record.json").exists()
    again = reproduce(table, toy_host, tmp_path, seeds=[0], log=messages.append)
    assert sorted(again["failed"]) == sorted(FAILING) and sorted(again["skipped"]) == sorted([CELL_5WAY, CELL_10WAY])


def test_a_cells_failure_line_is_escaped_and_shortened(toy_host, tmp_path):
    def boom(context):
        raise ValueError("bad\x1b[31m " + "Q" * 100_000 + " end")

    row = TableRow("toy-table", "Boom", settings=("5-way 1-shot",))
    spec = dataclasses.replace(toy_host.models.get("knn"), name="boom", factory=boom, rows=(row,))
    toy_host.register(types.SimpleNamespace(harness_models=hookimpl(lambda: [spec])), "boom")
    messages: list[str] = []
    reproduce(toy_host.tables.get("toy-table"), toy_host, tmp_path, models=["boom"], log=messages.append)
    (line,) = messages
    assert "\x1b" not in line and "bad\\x1b[31m" in line and line.endswith(" end") and len(line) < 2200


def test_cli_reproduce_runs_the_working_rows_and_exits_2_naming_the_failed_cells(tmp_path, papers):
    env = {"HARNESS_PLUGINS": f"{TOY},{MISBEHAVING}", "HARNESS_PAPERS_DIR": str(papers)}
    args = ["reproduce", "toy-table", "--results", str(tmp_path), "--no-progress"]
    result = harness_cli(*args, env=env)
    assert result.returncode == 2, result.stderr
    assert "toy-table: 2 cells run, 0 already done, 2 failed" in result.stdout and "leaderboard: " in result.stdout
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("harness: error: 2 of 4 cells failed (see above): ") and all(n in last for n in FAILING)
    assert f"{FAILING[0]}: failed: model 'failing' (plugin '{MISBEHAVING}') failed in train_step" in result.stderr
    traced = harness_cli("--traceback", *args, env=env)
    assert traced.returncode == 2 and "toy-table: 0 cells run, 2 already done, 2 failed" in traced.stdout
    assert "Traceback" in traced.stderr and 'raise ValueError("shapes do not match")' in traced.stderr


def test_a_data_dir_for_an_unknown_dataset_is_refused(toy_host, tmp_path):
    table = toy_host.tables.get("toy-table")
    with pytest.raises(UnknownNameError, match=re.escape("unknown dataset 'synthetik'; did you mean 'synthetic'?")):
        reproduce(table, toy_host, tmp_path, locations={"synthetik": {"root": "/x"}})
    result = harness_cli("reproduce", "toy-table", "--data-dir", "bogus=/x", "--results", str(tmp_path),
                         env={"HARNESS_PLUGINS": TOY})  # fmt: skip
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "unknown dataset 'bogus'" in result.stderr
    assert not any(tmp_path.iterdir())


def test_data_hints_name_the_option_the_command_has(host, tmp_path):
    table = host.tables.get("mann-table1")
    with pytest.raises(DataError) as err:
        reproduce(table, host, tmp_path, models=["knn"], locations={"omniglot": {"root": str(tmp_path / "none")}})
    assert "pass --data-dir omniglot=DIR or set HARNESS_OMNIGLOT_DIR" in str(err.value)
    checkpoint = REPO / "leaderboards/runs/mann-table1/paper/knn-raw-pixels/5-way/seed0/checkpoint.pkl"
    result = harness_cli("evaluate", "--checkpoint", str(checkpoint), "--data-dir", str(tmp_path / "none"))
    assert result.returncode == 2 and "pass --data-dir DIR or set HARNESS_OMNIGLOT_DIR" in result.stderr
    assert "--data root" not in result.stderr


# --- where the papers' numbers come from ----------------------------------------------------------


def test_papers_adds_to_the_search_path(tmp_path):
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "toy-table.csv").write_text(toy_table.PAPER_CSV.replace("90.0,1.5", "91.5,1.5"))
    (tmp_path / "results").mkdir()
    args = ["leaderboard", "mann-table1", "toy-table", "--results", str(tmp_path / "results")]
    for how, env in (("--papers", {}), ("HARNESS_PAPERS_DIR", {"HARNESS_PAPERS_DIR": str(extra)})):
        out = tmp_path / how
        flags = ["--papers", str(extra)] if how == "--papers" else []
        where = "--out" if how == "--papers" else "--leaderboards"  # reproduce's name for it works too
        result = harness_cli(*args, where, str(out), *flags, cwd=tmp_path, env={"HARNESS_PLUGINS": TOY, **env})
        assert result.returncode == 0, result.stderr
        assert "| Toy ProtoNet | paper | 91.5 ± 1.5 |" in (out / "toy-table.md").read_text()  # DIR's file comes first
        assert "| Human | paper | 34.5 |" in (out / "mann-table1.md").read_text()  # the built-in numbers still found


def test_a_table_ships_its_numbers_as_package_data(toy_host, tmp_path, monkeypatch):
    from harness.paper_tables import paper_cells, paper_file

    monkeypatch.delenv("HARNESS_PAPERS_DIR", raising=False)
    monkeypatch.chdir(tmp_path)  # found through the plugin, wherever the command runs
    table = toy_host.tables.get("toy-table")
    assert paper_file(table) == TESTS / "harness_test_plugins" / "papers" / "toy-table.csv"
    assert [(c.row, c.value) for c in paper_cells(table)] == [("Toy ProtoNet", 90.0), ("Toy Human", 95.5)]
    mann = toy_host.tables.get("mann-table1")
    assert paper_file(mann).read_text() == (REPO / "leaderboards/papers/mann-table1.csv").read_text()
    with pytest.raises(DataError) as err:
        paper_cells(dataclasses.replace(table, numbers="harness_nowhere:papers/toy-table.csv"))
    assert str(err.value) == (
        "table 'toy-table': package 'harness_nowhere' of its numbers is not installed; reinstall the plugin"
    )
    with pytest.raises(DataError, match=r"'papers/toy-table.csv' is not '<package>:<path>'; write e\.g\. 'my_plugin:"):
        paper_cells(dataclasses.replace(table, numbers="papers/toy-table.csv"))
    missing = dataclasses.replace(table, numbers="harness_test_plugins:papers/none.csv")
    with pytest.raises(DataError, match=r"looked in: harness_test_plugins:papers/none.csv \(missing from the"):
        paper_cells(missing)


def test_reproduce_checks_the_papers_numbers_before_training(tmp_path, papers):
    (papers / "toy-table.csv").write_text(toy_table.PAPER_CSV.replace("5-way 1-shot,90.0", "5-way 1-shot,ninety"))
    args = ["reproduce", "toy-table", "--results", str(tmp_path / "results"), "--papers", str(papers)]
    result = harness_cli(*args, "--no-progress", env={"HARNESS_PLUGINS": TOY})
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "toy-table.csv:2: value 'ninety' is not a number" in result.stderr
    assert not (tmp_path / "results" / "toy-table").exists()


# --- rows: dataset options, and rows for a model another plugin provides -----------------------------


class KnnRows:
    """A table plugin's rows for the built-in ``knn``."""

    def __init__(self, *rows: TableRow) -> None:
        self.rows = list(rows)

    @hookimpl
    def harness_table_rows(self) -> list[TableRow]:
        return self.rows


def test_a_row_sets_dataset_options_over_the_settings(host):
    raw = TableRow("snail-table1", "kNN (105x105)", data={"image_size": 105}, model="knn")
    with host.registered(KnnRows(raw), "raw-rows"):
        cells = table_cells(host.tables.get("snail-table1"), host, "paper", rows=["kNN (105x105)"])
    assert len(cells) == 4 and {c.config.model for c in cells} == {"knn"}
    assert {c.config.data["image_size"] for c in cells} == {105}  # the settings say 28
    assert all(c.name.startswith("snail-table1/paper/knn-105x105/") for c in cells)


def test_a_row_sets_params_for_one_budget_over_its_others(host):
    row = TableRow("snail-table1", "kNN (k)", params={"k": 1}, model="knn", budget_params={"paper": {"k": 3}})
    with host.registered(KnnRows(row), "budget-rows"):
        table = host.tables.get("snail-table1")
        paper = table_cells(table, host, "paper", rows=["kNN (k)"])
        quick = table_cells(table, host, "quick", rows=["kNN (k)"])
    assert {c.config.params["k"] for c in paper} == {3}
    assert {c.config.params["k"] for c in quick} == {1}


def test_a_budget_sets_the_queries_and_batch_of_the_few_shot_settings(host):
    table = host.tables.get("metanet-omniglot")
    short = table_cells(table, host, "short", rows=["kNN (raw pixels)"])
    paper = table_cells(table, host, "paper", rows=["kNN (raw pixels)"])
    assert {(c.config.queries, c.config.batch_size) for c in short} == {(10, 1)}  # the authors' training script's
    assert {(c.config.queries, c.config.batch_size) for c in paper} == {(1, 16)}
    mann = host.tables.get("mann-table1")
    assert {c.config.episodes for c in table_cells(mann, host, "xl")} == {1_600_000}
    assert {(c.config.episodes, c.config.patience) for c in table_cells(mann, host, "xxl")} == {(3_200_000, 20)}


def test_table_rows_hook_puts_the_builtin_knn_in_a_plugin_table(toy_host, tmp_path):
    toy_host.register(KnnRows(TableRow("toy-table", "Toy kNN", settings=("5-way 1-shot",), model="knn")), "knn-rows")
    assert "toy-table/Toy kNN" in toy_host.rows and toy_host.info("knn-rows").provides["rows"] == ["toy-table/Toy kNN"]
    table = toy_host.tables.get("toy-table")
    done = reproduce(table, toy_host, tmp_path, rows=["Toy kNN"])
    assert done["run"] == ["toy-table/quick/toy-knn/5-way-1-shot/seed0"]
    frame = leaderboard.build(table, tmp_path)
    assert list(frame[frame["row"] == "Toy kNN"]["source"]) == ["ours (quick budget)"]


def test_bad_table_rows_are_refused_in_one_line(toy_host):
    table = toy_host.tables.get("toy-table")

    def refused(row: TableRow) -> str:
        with toy_host.registered(KnnRows(row), "rows"), pytest.raises((ConfigError, UnknownNameError)) as err:
            table_cells(table, toy_host, "quick")
        return str(err.value)

    assert refused(TableRow("toy-table", "Toy kNN")) == (
        "row 'Toy kNN' of table 'toy-table' (plugin 'rows') names no model; "
        "set TableRow(model=...) to the model that fills it"
    )
    with toy_host.registered(KnnRows(TableRow("toy-table", "Toy ProtoNet", model="knn")), "rows"):
        assert toy_host.problems() == [
            "plugin 'rows' lists row 'Toy ProtoNet' of table 'toy-table', but plugin 'toy-plugin' lists the row "
            "already; give it a label that differs in letters or digits; the row is left out"
        ]
    twice = TableRow("toy-table", "Toy kNN", model="knn")
    with toy_host.registered(KnnRows(twice), "rows"), toy_host.registered(KnnRows(twice), "rows-again"):
        assert toy_host.problems() == [
            "row 'toy-table/Toy kNN' is registered by both plugin 'rows' and plugin 'rows-again'; "
            "kept the one from 'rows', skipped the other; uninstall or disable one of them"
        ]


def test_reproduce_loads_the_leaderboard_code_before_the_first_cell_trains(tmp_path):
    # A reproduction trains for hours; the leaderboard it writes at the end must be the code it started with,
    # not a newer checkout's module meeting its already-loaded ones.
    spy = (
        "import sys\n"
        "import harness.reproduce as r\n"
        "real = r.reproduce\n"
        "def first_cell(*a, **k):\n"
        "    loaded = sorted(m for m in ('harness.leaderboard', 'harness.plots') if m in sys.modules)\n"
        "    print('loaded before training:', loaded)\n"
        "    return real(*a, **k)\n"
        "r.reproduce = first_cell\n"
        "from harness.cli import main\n"
        f"sys.exit(main(['reproduce', 'toy-table', '--results', {str(tmp_path)!r}, '--seeds', '0', '--no-progress']))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(TESTS), "HARNESS_PLUGINS": TOY}
    ran = subprocess.run([sys.executable, "-c", spy], capture_output=True, text=True, env=env)
    assert ran.returncode == 0, ran.stderr
    assert "loaded before training: ['harness.leaderboard', 'harness.plots']" in ran.stdout
