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

import pytest
from conftest import REPO, TESTS, harness_cli
from harness_test_plugins import misbehaving, toy_table
from lock_holder import held_elsewhere

from harness import hookimpl, leaderboard
from harness.checkpoints import load as load_checkpoint
from harness.errors import ConfigError, DataError, UnknownNameError
from harness.reproduce import reproduce, run_cell, table_cells
from harness.runner import evaluate_checkpoint
from harness.specs import ModelSpec
from harness.tables import TableRow, slug

TOY = "harness_test_plugins.toy_table"
MISBEHAVING = "harness_test_plugins.misbehaving"


@pytest.fixture
def papers(tmp_path):
    folder = tmp_path / "papers"
    folder.mkdir()
    (folder / "toy-table.csv").write_text(toy_table.PAPER_CSV)
    return folder


@pytest.fixture
def toy_host(host):
    host.register(toy_table, "toy-plugin")
    return host


def test_reproduce_then_leaderboard_puts_our_rows_beside_the_papers(toy_host, tmp_path, papers):
    table = toy_host.tables.get("toy-table")
    done = reproduce(table, toy_host, tmp_path / "results")
    assert done["skipped"] == [] and len(done["run"]) == 2
    paths = leaderboard.write(table, tmp_path / "results", tmp_path / "boards", papers)
    frame = leaderboard.build(table, tmp_path / "results", papers)
    ours = frame[frame["source"] == "ours (quick budget)"].set_index("setting")
    assert list(ours["row"]) == ["Toy ProtoNet", "Toy ProtoNet"]
    record = json.loads((tmp_path / "results/toy-table/quick/toy-protonet/5-way-1-shot/seed0/record.json").read_text())
    expected = 100 * record["metrics"]["nway_kshot_accuracy"]["5-way 1-shot"]["mean"]
    assert ours.loc["5-way 1-shot", "value"] == pytest.approx(expected)
    assert ours.loc["5-way 1-shot", "diff"] == pytest.approx(expected - 90.0)
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


def test_rows_told_apart_by_a_sign_get_folders_of_their_own_and_a_clash_is_refused(toy_host, tmp_path):
    assert len({slug("MetaNet"), slug("MetaNet\u2212"), slug("MetaNet+")}) == 3

    twin = dataclasses.replace(
        toy_host.models.get("toy-protonet"), name="toy-protonet-2", rows=(TableRow("toy-table", "Toy ProtoNet!"),)
    )

    class Clashing:
        @hookimpl
        def harness_models(self) -> list[ModelSpec]:
            return [twin]

    toy_host.register(Clashing(), "clashing")
    with pytest.raises(
        ConfigError, match=r"rows 'Toy ProtoNet' and 'Toy ProtoNet!' of table 'toy-table' share the folder"
    ):
        reproduce(toy_host.tables.get("toy-table"), toy_host, tmp_path)


def test_reproduce_skips_finished_cells(toy_host, tmp_path):
    table = toy_host.tables.get("toy-table")
    first = reproduce(table, toy_host, tmp_path, seeds=[0])
    again = reproduce(table, toy_host, tmp_path, seeds=[0, 1])
    assert sorted(again["skipped"]) == sorted(first["run"])
    assert all(name.endswith("seed1") for name in again["run"]) and len(again["run"]) == 2


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
    assert "toy-table: 1 cells run, 1 already done" in result.stdout
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


def test_the_ray_task_body_leaves_a_held_cell_alone_and_skips_a_done_one(toy_host, tmp_path):
    table = toy_host.tables.get("toy-table")
    (cell,) = (c for c in table_cells(table, toy_host, "quick", seeds=[0]) if c.name == CELL_5WAY)
    args = (cell.config.to_dict(), str(tmp_path / CELL_5WAY), {}, cell.describe())
    with held_elsewhere(tmp_path / CELL_5WAY) as holder:
        outcome, holder_text = run_cell(*args)
    assert outcome == "elsewhere" and holder_text.startswith(f"pid {holder.pid} on ")
    assert [p.name for p in (tmp_path / CELL_5WAY).iterdir()] == [".lock"]
    reproduce(table, toy_host, tmp_path, seeds=[0])
    assert run_cell(*args) == ("skipped", "")


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
    ran = [int(re.search(r"(\d+) cells run", out).group(1)) for out in (first_out, second.stdout)]
    assert ran == [1, 1], first_out + second.stdout
    assert "1 running elsewhere" in first_out + second.stdout
    assert "running elsewhere (pid " in first_err + second.stderr
    for name in (CELL_5WAY, CELL_10WAY):
        record = json.loads((tmp_path / name / "record.json").read_text())
        assert record["resumes"] == 0 and record["episodes_trained"] == 64
        assert sorted(p.name for p in (tmp_path / name).iterdir()) == ["cell.json", "checkpoint.pkl", "record.json"]


@pytest.mark.slow
def test_local_ray_gives_the_same_numbers_as_in_process(toy_host, tmp_path, monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.setenv("HARNESS_PLUGINS", TOY)
    monkeypatch.setenv("PYTHONPATH", str(TESTS))
    table = toy_host.tables.get("toy-table")
    reproduce(table, toy_host, tmp_path / "local")
    done = reproduce(table, toy_host, tmp_path / "ray", executor="ray")
    assert len(done["run"]) == 2
    for name in done["run"]:
        local = json.loads((tmp_path / "local" / name / "record.json").read_text())
        remote = json.loads((tmp_path / "ray" / name / "record.json").read_text())
        assert remote["metrics"] == local["metrics"] and remote["loss_history"] == local["loss_history"]


def test_third_party_row_appears_without_core_changes(host, tmp_path, papers):
    with host.registered(toy_table, "toy-plugin"):
        reproduce(host.tables.get("toy-table"), host, tmp_path, seeds=[3])
        frame = leaderboard.build(host.tables.get("toy-table"), tmp_path, papers)
    assert set(frame["row"]) == {"Toy ProtoNet", "Toy Human"}
    assert set(frame[frame["row"] == "Toy ProtoNet"]["source"]) == {"paper", "ours (quick budget)"}


def test_bad_table_name_missing_paper_file_and_malformed_row(toy_host, tmp_path, papers):
    with pytest.raises(UnknownNameError, match=re.escape("unknown table 'toy-tabel'; did you mean 'toy-table'?")):
        toy_host.tables.get("toy-tabel")
    table = toy_host.tables.get("toy-table")
    (tmp_path / "results" / "toy-table").mkdir(parents=True)
    with pytest.raises(DataError) as err:
        leaderboard.build(table, tmp_path / "results", tmp_path / "nowhere")
    assert "toy-table.csv does not exist" in str(err.value) and "\n" not in str(err.value)
    (papers / "toy-table.csv").write_text(toy_table.PAPER_CSV.replace("90.0", "ninety"))
    with pytest.raises(DataError) as err:
        leaderboard.build(table, tmp_path / "results", papers)
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
