"""``harness status``: each cell's state read from its folder, without taking a lock or writing a file."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import TESTS, harness_cli
from lock_holder import held_elsewhere

from harness import checkpoints, leaderboard, per_episode
from harness import status as status_module
from harness.errors import DataError
from harness.reproduce import FAILED, claim_and_run, reproduce, table_cells
from harness.specs import mean_ci95
from harness.status import table_status

TOY = "harness_test_plugins.toy_table"
SEED0 = "toy-table/quick/toy-protonet/5-way-1-shot/seed0"


@pytest.fixture
def results(toy_host, tmp_path):
    """A results folder where the toy table's seed-0 cells are done."""
    reproduce(toy_host.tables.get("toy-table"), toy_host, tmp_path / "results", seeds=[0])
    return tmp_path / "results"


def copy_cell(results, seed: int, record: bool = False):
    """The seed-0 cell copied as seed ``seed``: its cell file and checkpoint (and record), as a run part way."""
    source, target = results / SEED0, results / SEED0.replace("seed0", f"seed{seed}")
    target.mkdir()
    cell = json.loads((source / "cell.json").read_text())
    (target / "cell.json").write_text(json.dumps({**cell, "seed": seed}))
    shutil.copy(source / "checkpoint.pkl", target / "checkpoint.pkl")
    if record:
        shutil.copy(source / "record.json", target / "record.json")
    return target


def states(statuses):
    return {(s.setting, s.seed): s.state for s in statuses}


def test_done_running_interrupted_not_started_and_damaged_cells(toy_host, results, monkeypatch):
    table = toy_host.tables.get("toy-table")
    interrupted = copy_cell(results, 1) / "checkpoint.pkl"  # a checkpoint and nobody running it: interrupted
    with monkeypatch.context() as patch:
        patch.setattr(checkpoints, "PART_BYTES", 5000)
        checkpoints.save(interrupted, saved := checkpoints.load(interrupted))  # in parts, as a big model's is
    assert checkpoints.part_files(interrupted)
    running = copy_cell(results, 2)
    reused = copy_cell(results, 12)  # a killed run's lock file naming a pid now another process's (this one)
    (reused / ".lock").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": "now"}))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    killed = copy_cell(results, 3)  # a killed run leaves its lock file behind, naming a process that is gone
    (killed / ".lock").write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname(), "since": "x"}))
    for seed, pid in ((6, -1), (7, 2**70)):  # a lock file naming no possible process
        odd = copy_cell(results, seed)
        (odd / ".lock").write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "since": "x"}))
    os.mkfifo(copy_cell(results, 9) / ".lock")  # a FIFO for a lock file or a checkpoint: never read, never hangs
    (results.parent / "elsewhere.txt").write_text("not a lock")
    (copy_cell(results, 11) / ".lock").symlink_to(results.parent / "elsewhere.txt")  # never followed
    done_linked = copy_cell(results, 14, record=True)  # its record made seed 14's, as a run of that seed writes it
    shutil.copy(results / SEED0 / "episodes.npz", done_linked / "episodes.npz")
    record = json.loads((done_linked / "record.json").read_text())
    stamp = {**record["cell"], "seed": 14}
    (done_linked / "record.json").write_text(json.dumps({**record, "seed": 14, "cell": stamp}))
    (done_linked / ".lock").symlink_to(results.parent / "elsewhere.txt")  # done all the same
    fifo_checkpoint = copy_cell(results, 10)
    (fifo_checkpoint / "checkpoint.pkl").unlink()
    os.mkfifo(fifo_checkpoint / "checkpoint.pkl")
    nameless = copy_cell(results, 8)
    (nameless / "cell.json").write_text(json.dumps({"table": "toy-table"}))
    damaged = copy_cell(results, 4, record=True)
    (damaged / "record.json").write_text("{not json")
    other = copy_cell(results, 13)  # its lock file names a live run that holds the lock of another cell
    with held_elsewhere(running) as holder:
        (other / ".lock").write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname(), "since": "now"}))
        before = {p: p.stat().st_mtime_ns for p in results.rglob("*")}
        statuses = table_status(results, "toy-table", table_cells(table, toy_host, "quick", seeds=[0, 5]))
    assert states(statuses) == {
        ("5-way 1-shot", 0): "done", ("10-way 1-shot", 0): "done",
        ("5-way 1-shot", 1): "interrupted", ("5-way 1-shot", 2): "running", ("5-way 1-shot", 3): "interrupted",
        ("5-way 1-shot", 4): "damaged", ("5-way 1-shot", 6): "interrupted", ("5-way 1-shot", 7): "interrupted",
        ("5-way 1-shot", 9): "damaged", ("5-way 1-shot", 10): "damaged", ("5-way 1-shot", 11): "damaged",
        ("5-way 1-shot", 12): "interrupted", ("5-way 1-shot", 13): "interrupted", ("5-way 1-shot", 14): "done",
        ("5-way 1-shot", 5): "not started", ("10-way 1-shot", 5): "not started", ("5-way-1-shot", -1): "damaged",
    }  # fmt: skip
    by_seed = {(s.setting, s.seed): s for s in statuses}
    done = by_seed["5-way 1-shot", 0]
    assert (done.episodes, done.total, done.budget, done.row) == (64, 64, "quick", "Toy ProtoNet")
    assert f"pid {holder.pid} on {socket.gethostname()}" in by_seed["5-way 1-shot", 2].note
    assert by_seed["5-way 1-shot", 3].note == "rerun its command to resume it"
    part_way = by_seed["5-way 1-shot", 1]
    assert (part_way.episodes, part_way.total, part_way.wall_time_s) == (64, 64, saved["wall_time_s"])
    unnamed = next(s for s in statuses if s.directory == nameless)
    assert (unnamed.state, unnamed.seed) == (
        "damaged",
        -1,
    ) and "does not name table 'toy-table' and the row" in unnamed.note
    assert "is not a regular file" in by_seed["5-way 1-shot", 10].note
    for seed in (9, 11, 14):  # a run would refuse them as its lock (the leaderboard shows seed 14's numbers)
        assert by_seed["5-way 1-shot", seed].note.endswith(
            "as a lock must be; move it away (or delete it) and run again"
        )
    note = by_seed["5-way 1-shot", 4].note
    assert "not valid JSON" in note and "\n" not in note
    assert {p: p.stat().st_mtime_ns for p in results.rglob("*")} == before, "status writes nothing"


@pytest.mark.parametrize(
    ("file", "change", "problem"),
    [
        ("cell.json", {"seed": float("inf")}, "does not name table 'toy-table' and the row"),
        ("cell.json", {"seed": 1.7}, "does not name table 'toy-table' and the row"),
        ("cell.json", {"seed": True}, "does not name table 'toy-table' and the row"),
        ("cell.json", {"table": "other-table"}, "does not name table 'toy-table' and the row"),
        ("cell.json", {"seed": 1}, "describes the cell toy-table/quick/toy-protonet/5-way-1-shot/seed1 but lies in"),
        ("record.json", {"val_history": [["a", 1]]}, "(val_history in a form the harness cannot read)"),
        ("record.json", {"val_history": [[1]]}, "(val_history in a form the harness cannot read)"),
        ("record.json", {"val_history": 5}, "(val_history in a form the harness cannot read)"),
        ("record.json", {"episodes_trained": "many"}, "(episodes_trained in a form the harness cannot read)"),
        ("record.json", {"episodes_trained": None}, "(no count of the episodes trained)"),
        ("record.json", {"train_wall_time_s": "x"}, "(train_wall_time_s in a form the harness cannot read)"),
        ("record.json", {"stopped_early": {"x": 1}}, "(stopped_early in a form the harness cannot read)"),
        ("record.json", {"metrics": {}}, "has no nway_kshot_accuracy '5-way 1-shot' mean (a fraction) and ci95"),
        ("record.json", {"metrics": {"nway_kshot_accuracy": {"5-way 1-shot": {"mean": 1.5, "ci95": 0.1}}}},
         "holds nway_kshot_accuracy '5-way 1-shot' mean 1.5, not a fraction from 0 to 1, which the leaderboard shows "
         "in percent: give table 'toy-table' a metric of fractions (TableSpec.metric); if the record was damaged, "
         "delete"),
        ("record.json", {"metrics": {"nway_kshot_accuracy": {"5-way 1-shot": {"mean": "0.5", "ci95": 0.1}}}},
         "(a summary in metrics whose mean, ci95 or n is not a number as a run writes it)"),
        ("record.json", {"metrics": {"nway_kshot_accuracy": []}}, "(metrics is not {metric: {key: summary}})"),
        ("record.json", {"episodes_trained": 10**30}, "(episodes_trained in a form the harness cannot read)"),
        ("record.json", {"status": "bogus"}, "(status 'bogus', where a run writes 'complete')"),
        ("record.json", {"config": None}, "(no config naming its model and metrics)"),
    ],
)  # fmt: skip
def test_status_and_the_leaderboard_refuse_the_same_damaged_values_in_one_line(
    toy_host, results, file, change, problem
):
    path = results / SEED0 / file
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    spec = toy_host.tables.get("toy-table")
    (damaged,) = [s for s in table_status(results, "toy-table", spec=spec) if s.state == "damaged"]
    assert problem in damaged.note and "\n" not in damaged.note
    if file == "record.json":
        assert "harness reproduce toy-table --budget quick" in damaged.note
    with pytest.raises(DataError) as caught:
        leaderboard.our_results(toy_host.tables.get("toy-table"), results)
    assert str(caught.value).startswith(str(path.parent)) and "\n" not in str(caught.value)
    result = harness_cli("status", "toy-table", "--results", str(results), "--json", env={"HARNESS_PLUGINS": TOY})
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("mean", 0.99, "mean is 0.99, where its episodes.npz gives 0."),
        ("n", 100_000, "n is 100000, where its episodes.npz gives 48"),
        ("ci95", None, "lacks its ci95, which its episodes.npz gives (0."),  # None: the field removed
    ],
)
def test_a_record_whose_numbers_are_not_what_its_per_episode_values_give_is_refused(
    toy_host, results, field, value, said
):
    path = results / SEED0 / "record.json"
    record = json.loads(path.read_text())
    summary = record["metrics"]["nway_kshot_accuracy"]["5-way 1-shot"]
    changed = {k: v for k, v in summary.items() if k != field} if value is None else {**summary, field: value}
    path.write_text(json.dumps({**record, "metrics": {"nway_kshot_accuracy": {"5-way 1-shot": changed}}}))
    problem = f"{path}: its nway_kshot_accuracy '5-way 1-shot' {said}"
    spec = toy_host.tables.get("toy-table")
    (damaged,) = [
        s for s in table_status(results, "toy-table", spec=spec, metrics=toy_host.metrics) if s.state != "done"
    ]
    assert (
        damaged.state == "damaged" and damaged.note.startswith(problem) and f"delete {path} and rerun" in damaged.note
    )
    with pytest.raises(DataError, match=re.escape(problem)):
        leaderboard.our_results(spec, results, metrics=toy_host.metrics)
    result = harness_cli("leaderboard", "toy-table", "--results", str(results), env={"HARNESS_PLUGINS": TOY})
    assert result.returncode != 0 and problem in result.stderr
    outcome = reproduce(spec, toy_host, results, seeds=[0], log=None)  # the cell fails, as one of another config does
    assert outcome[FAILED] == [SEED0] and SEED0 not in outcome["skipped"]
    path.unlink()  # the fix: the cell's checkpoint is tested again, without training
    reproduce(spec, toy_host, results, seeds=[0])
    assert json.loads(path.read_text())["metrics"] == record["metrics"]


@pytest.mark.parametrize("target", ["nowhere.json", "record.json"])  # a link to nothing, a link to itself
def test_a_record_that_is_a_link_to_nothing_is_damaged_for_status_and_the_leaderboard(toy_host, results, target):
    record = results / SEED0 / "record.json"
    record.unlink()
    record.symlink_to(target)
    spec = toy_host.tables.get("toy-table")
    (damaged,) = [s for s in table_status(results, "toy-table", spec=spec) if s.state == "damaged"]
    assert damaged.note.startswith(f"{record} cannot be read (") and "\n" not in damaged.note
    with pytest.raises(DataError, match=re.escape(f"{record} cannot be read (")):
        leaderboard.our_results(spec, results)


def test_status_and_the_leaderboard_agree_on_a_removed_setting_and_on_a_copy_nested_in_a_cell(toy_host, results):
    spec = toy_host.tables.get("toy-table")
    shutil.copytree(results / SEED0, results / SEED0 / "backup")  # a user's copy inside the cell: no cell
    before = [(s.setting, s.state) for s in table_status(results, "toy-table", spec=spec)]
    assert len(leaderboard.our_results(spec, results)) == 2 and ("5-way 1-shot", "done") in before
    moved = results / SEED0.replace("5-way-1-shot", "9-way")
    shutil.copytree(results / SEED0, moved)
    (moved / "cell.json").write_text(json.dumps({**json.loads((moved / "cell.json").read_text()), "setting": "9-way"}))
    message = (
        f"{moved / 'cell.json'} describes setting '9-way', which table 'toy-table' does not have; delete its folder"
    )
    (damaged,) = [s for s in table_status(results, "toy-table", spec=spec) if s.state == "damaged"]
    assert damaged.note == message
    with pytest.raises(DataError, match=re.escape(message)):
        leaderboard.our_results(spec, results)


def test_a_missing_or_damaged_cell_file_is_shown_and_the_fix_it_names_writes_it_again_without_training(
    toy_host, results
):
    table = toy_host.tables.get("toy-table")
    missing, damaged = results / SEED0, results / SEED0.replace("5-way", "10-way")
    (missing / "cell.json").unlink()
    (damaged / "cell.json").write_text("[")
    trained = {d: (d / "record.json").read_bytes() for d in (missing, damaged)}
    statuses = {s.directory: s for s in table_status(results, "toy-table")}
    fix = (
        f"rerun 'harness reproduce toy-table --budget quick --results {results}' with the --row, --setting and "
        "--seeds of this cell: "
        "it writes the file again and keeps what the cell trained"
    )
    elsewhere = f" (a folder that is no cell of the table, which that command leaves alone: move it out of {results}"
    for directory in (missing, damaged):
        assert statuses[directory].state == "damaged" and fix in statuses[directory].note
    assert statuses[damaged].note.endswith(fix)
    assert statuses[missing].note.startswith(f"{missing} holds a run but no cell.json; delete")
    with pytest.raises(DataError, match=r"holds a run but no cell\.json") as caught:
        leaderboard.our_results(table, results)
    assert str(caught.value).endswith(f"{fix}{elsewhere}/toy-table) (and 1 more damaged cell: 'harness status "
                                      f"toy-table --results {results}' lists each with its fix)")  # fmt: skip
    (damaged / "cell.json").unlink()  # the fix, as it says
    outcome = reproduce(table, toy_host, results, seeds=[0])
    assert outcome["run"] == [] and len(outcome["skipped"]) == 2
    assert {d: (d / "record.json").read_bytes() for d in (missing, damaged)} == trained, "nothing trained again"
    assert states(table_status(results, "toy-table")) == {("5-way 1-shot", 0): "done", ("10-way 1-shot", 0): "done"}
    assert {row["setting"] for row in leaderboard.our_results(table, results)} == {"5-way 1-shot", "10-way 1-shot"}


def test_a_cell_stopped_by_its_patience_before_its_test_has_no_training_left(results):
    stopped = copy_cell(results, 1) / "checkpoint.pkl"
    checkpoints.save(stopped, {**checkpoints.load(stopped), "episodes_trained": 32, "stopped_early": 32, "step": 4})
    (status,) = [s for s in table_status(results, "toy-table") if s.seed == 1]
    assert (status.state, status.episodes, status.total, status.left_s) == ("interrupted", 32, 32, None)
    assert status.note == "validation stopped its training at episode 32; rerun its command to test it"


@pytest.mark.parametrize("checkpoint", [True, False])
def test_a_done_cell_whose_episodes_file_was_damaged_is_refused_naming_how_to_mend_it(toy_host, results, checkpoint):
    (results / SEED0 / "episodes.npz").write_bytes(b"junk")
    if not checkpoint:
        (results / SEED0 / "checkpoint.pkl").unlink()
    (status,) = [s for s in table_status(results, "toy-table") if s.directory == results / SEED0]
    record = results / SEED0 / "record.json"
    problem = (
        f"{record}: its episodes.npz does not match the SHA-256 in record.json, so its numbers cannot be checked; "
    )
    fix = "it tests the cell's checkpoint again and writes both anew" if checkpoint else "restore that file (e.g. git"
    assert status.state == "damaged" and status.note.startswith(problem) and fix in status.note
    with pytest.raises(DataError, match=re.escape(problem)):  # the leaderboard cannot check its numbers either
        leaderboard.our_results(toy_host.tables.get("toy-table"), results)
    (results / SEED0 / ".lock").symlink_to("elsewhere")  # each problem is said, each fix is needed
    (status,) = [s for s in table_status(results, "toy-table") if s.directory == results / SEED0]
    assert status.note.startswith(problem) and "; and " in status.note
    assert status.note.endswith("as a lock must be; move it away (or delete it) and run again")
    (results / SEED0 / ".lock").unlink()
    outcome = reproduce(toy_host.tables.get("toy-table"), toy_host, results, seeds=[0], settings=["5-way 1-shot"])
    if checkpoint:  # tested again: the file is written anew
        assert outcome["run"] == [SEED0] and table_status(results, "toy-table")[0].state == "done"
    else:
        assert outcome["failed"] == [SEED0]


def test_a_per_episode_file_of_chosen_episodes_is_refused_though_its_record_agrees_with_it(toy_host, results):
    directory = results / SEED0
    values = per_episode.load(directory)
    column = values.values["nway_kshot_accuracy"]["5-way 1-shot"]
    best = np.sort(np.argsort(-column, kind="stable")[:8])  # the 8 best of 48 episodes, kept in order
    chosen = per_episode.PerEpisode(values.episodes[best], {"nway_kshot_accuracy": {"5-way 1-shot": column[best]}})
    reference = per_episode.write(directory, chosen)  # its SHA-256 and numbers made to agree: all but the count
    record = json.loads((directory / "record.json").read_text())
    summary = mean_ci95(column[best]).as_dict()
    (directory / "record.json").write_text(json.dumps({
        **record, "per_episode": reference, "metrics": {"nway_kshot_accuracy": {"5-way 1-shot": summary}},
    }))  # fmt: skip
    spec = toy_host.tables.get("toy-table")
    (damaged,) = [
        s for s in table_status(results, "toy-table", spec=spec, metrics=toy_host.metrics) if s.state != "done"
    ]
    assert "its episodes.npz does not hold its 48 test episodes, each once, in order (eval_episodes)" in damaged.note
    with pytest.raises(DataError, match=r"does not hold its 48 test episodes"):
        leaderboard.our_results(spec, results, metrics=toy_host.metrics)


def test_a_record_naming_no_per_episode_file_is_done_and_says_its_numbers_are_not_checked(toy_host, results):
    path = results / SEED0 / "record.json"
    record = json.loads(path.read_text())
    path.write_text(json.dumps({key: value for key, value in record.items() if key != "per_episode"}))  # older
    (status,) = [s for s in table_status(results, "toy-table") if s.directory == results / SEED0]
    assert (status.state, status.note) == ("done", status_module.UNCHECKED)
    assert len(leaderboard.our_results(toy_host.tables.get("toy-table"), results, metrics=toy_host.metrics)) == 2


def test_an_episodes_file_that_is_a_folder_is_named_so_and_a_rerun_says_what_to_move(toy_host, results):
    (results / SEED0 / "episodes.npz").unlink()
    (results / SEED0 / "episodes.npz").mkdir()
    (status,) = [s for s in table_status(results, "toy-table") if s.directory == results / SEED0]
    assert status.note.startswith(f"{results / SEED0 / 'record.json'}: its episodes.npz is a folder, not the file")
    table = toy_host.tables.get("toy-table")
    messages: list[str] = []
    outcome = reproduce(table, toy_host, results, seeds=[0], settings=["5-way 1-shot"], log=messages.append)
    assert outcome[FAILED] == [SEED0] and len(messages) == 1
    assert "a folder is where this file goes; move the folder away" in messages[0] and "episodes.npz" in messages[0]
    assert f"move {results / SEED0 / 'episodes.npz'} away, then rerun" in status.note  # the fix status names
    assert not [p for p in (results / SEED0).iterdir() if p.name.endswith(".tmp")], "no temporary file is left"


@pytest.mark.parametrize("parts", [False, True])
def test_an_interrupted_cell_says_which_signal_stopped_it_and_whether_a_validation_waits(results, monkeypatch, parts):
    stopped, waiting = copy_cell(results, 1) / "checkpoint.pkl", copy_cell(results, 2) / "checkpoint.pkl"
    with monkeypatch.context() as patch:
        patch.setattr(checkpoints, "PART_BYTES", 5000 if parts else checkpoints.PART_BYTES)
        checkpoints.save(stopped, {**checkpoints.load(stopped), "stopped_by": "SIGTERM"})
        checkpoints.save(waiting, {**checkpoints.load(waiting), "stopped_by": "SIGINT", "unvalidated": True})
    assert bool(checkpoints.part_files(stopped)) == parts
    notes = {s.seed: s.note for s in table_status(results, "toy-table")}
    assert notes[1] == "stopped by SIGTERM; rerun its command to resume it"
    assert notes[2] == "stopped by SIGINT, its validation there left for the rerun; rerun its command to resume it"


def test_cli_status_text_and_json(results):
    env = {"HARNESS_PLUGINS": TOY}
    text = harness_cli("status", "toy-table", "--results", str(results), "--budget", "quick", env=env)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0] == f"toy-table ({results / 'toy-table'}): 2 done"
    assert lines[1].split()[:5] == ["budget", "row", "setting", "seed", "state"]
    assert any(line.startswith("quick   Toy ProtoNet  5-way 1-shot") and " done " in line for line in lines)
    as_json = harness_cli("status", "toy-table", "--results", str(results), "--json", env=env)
    cells = json.loads(as_json.stdout)["toy-table"]
    assert [(c["setting"], c["state"], c["episodes"]) for c in cells] == [
        ("10-way 1-shot", "done", 64),
        ("5-way 1-shot", "done", 64),
    ]


def test_cli_status_of_an_empty_results_folder_and_a_misspelt_table(tmp_path):
    env = {"HARNESS_PLUGINS": TOY}
    empty = harness_cli("status", "toy-table", "--results", str(tmp_path), env=env)
    assert (
        empty.stdout.strip()
        == f"toy-table: no cells under {tmp_path / 'toy-table'} yet (harness reproduce toy-table starts them)"
    )
    wrong = harness_cli("status", "toy-tabel", "--results", str(tmp_path), env=env)
    assert wrong.returncode != 0 and "did you mean 'toy-table'" in wrong.stderr and wrong.stderr.count("\n") == 1
    budget = harness_cli("status", "toy-table", "--budget", "quikc", "--results", str(tmp_path), env=env)
    assert budget.returncode != 0 and "has no budget 'quikc'" in budget.stderr
    assert "did you mean 'quick'?" in budget.stderr and budget.stderr.count("\n") == 1


def test_status_of_all_tables_leaves_out_a_table_no_installed_model_fills_and_rows_of_absent_models(tmp_path):
    (tmp_path / "unfilled.py").write_text(
        "import dataclasses\n"
        "from harness import hookimpl\n"
        "from harness.tables import TableRow\n"
        "from harness_test_plugins.toy_table import toy_table\n\n\n"
        "@hookimpl\n"
        "def harness_tables():\n"
        "    return [dataclasses.replace(toy_table(), name=name) for name in ('unfilled-table', 'unfilled-2')]\n\n\n"
        "@hookimpl\n"
        "def harness_table_rows():\n"
        "    return [TableRow('toy-table', 'Ghost', model='a-model-not-installed')]\n"
    )
    env = {"HARNESS_PLUGINS": f"{TOY},unfilled", "PYTHONPATH": os.pathsep.join([str(tmp_path), str(TESTS)])}
    status = harness_cli("status", "all", "--budget", "quick", "--results", str(tmp_path), env=env)
    assert status.returncode == 0, status.stderr
    assert status.stderr == "".join(
        f"harness: note: no installed model fills table {name!r}; only the cells in {tmp_path} are shown\n"
        for name in ("unfilled-2", "unfilled-table")
    )
    assert "quick   Toy ProtoNet  5-way 1-shot" in status.stdout and "Ghost" not in status.stdout
    assert "unfilled-table: no cells under" in status.stdout
    single = harness_cli("status", "unfilled-table", "--budget", "quick", "--results", str(tmp_path), env=env)
    assert single.returncode == 0 and "unfilled-table: no cells under" in single.stdout  # its finished cells would show
    assert single.stderr == (
        f"harness: note: no installed model fills table 'unfilled-table'; only the cells in {tmp_path} are shown\n"
    )
    both = harness_cli(
        "status", "unfilled-table", "unfilled-2", "--budget", "quick", "--results", str(tmp_path), env=env
    )
    assert both.returncode == 0 and both.stdout.count("no cells under") == 2, both.stderr
    wrong = harness_cli("status", "unfilled-table", "--budget", "quikc", "--results", str(tmp_path), env=env)
    assert wrong.returncode == 2 and "has no budget 'quikc' (budgets: quick); did you mean 'quick'?" in wrong.stderr


def test_a_reader_that_stops_early_is_not_an_error(results):
    env = {**os.environ, "HARNESS_PLUGINS": TOY, "PYTHONPATH": str(Path(__file__).parent)}
    env.pop("PYTHONUNBUFFERED", None)  # stdout buffered, as it is by default: the write fails at the last flush
    args = [sys.executable, "-m", "harness", "status", "toy-table", "--results", str(results)]
    child = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    child.stdout.close()  # like `| head -0`: closed before the command writes anything
    stderr = child.stderr.read().decode()
    assert child.wait() == 141 and stderr == ""


def test_a_cell_file_cannot_reach_the_terminal_raw(results):
    from harness.status import render

    cell = results / SEED0 / "cell.json"
    cell.write_text(json.dumps({**json.loads(cell.read_text()), "row": "Toy\x1b[2J\nrow"}))
    moved = results / "toy-table" / "quick" / "toy-2j-row"  # the folder of that row: the cell is not damaged
    (results / SEED0).parent.parent.rename(moved)
    text = render("toy-table", results, table_status(results, "toy-table"))
    assert "\x1b" not in text and "Toy\\x1b[2J\\nrow" in text and len(text.splitlines()) == 4


def test_a_cell_part_way_says_how_long_it_has_left_at_its_pace(results):
    part_way = copy_cell(results, 1) / "checkpoint.pkl"
    saved = checkpoints.load(part_way)
    checkpoints.save(part_way, {**saved, "episodes_trained": 16, "wall_time_s": 120.0})  # 16 of 64 in 2 min
    statuses = {s.seed: s for s in table_status(results, "toy-table")}
    assert statuses[1].state == "interrupted" and statuses[1].left_s == pytest.approx(360.0)  # 48 more: 6 min
    assert statuses[0].left_s is None, "a finished cell has nothing left"
    text = harness_cli("status", "toy-table", "--results", str(results), env={"HARNESS_PLUGINS": TOY}).stdout
    assert next(line for line in text.splitlines() if " interrupted " in line).count("2 min, ~6 min left") == 1
    as_json = harness_cli("status", "toy-table", "--results", str(results), "--json", env={"HARNESS_PLUGINS": TOY})
    assert [c["left_s"] for c in json.loads(as_json.stdout)["toy-table"] if c["seed"] == 1] == [pytest.approx(360.0)]
    checkpoints.save(part_way, {**saved, "episodes_trained": 1, "wall_time_s": 1e308})  # forged: 63e308 s left
    assert {s.seed: s for s in table_status(results, "toy-table")}[1].left_s is None
    as_json = harness_cli("status", "toy-table", "--results", str(results), "--json", env={"HARNESS_PLUGINS": TOY})
    assert as_json.returncode == 0 and "Infinity" not in as_json.stdout, as_json.stderr


def test_a_record_that_gives_the_episode_patience_stopped_at_alone_is_read(results):
    path = results / SEED0 / "record.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "stopped_early": 48}))
    (done,) = [s for s in table_status(results, "toy-table") if s.directory == results / SEED0]
    assert done.state == "done" and done.note == "validation stopped it at episode 48"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.4, "0 s"), (50.0, "50 s"), (89.0, "89 s"), (90.0, "2 min"), (7140.0, "119 min"), (9000.0, "2.5 h")],
)
def test_durations_read_in_seconds_minutes_or_hours(seconds, text):
    from harness.status import _duration

    assert _duration(seconds) == text


def test_a_file_where_a_tables_runs_belong_is_refused_by_status_and_the_leaderboard(tmp_path):
    (tmp_path / "toy-table").write_text("")
    expected = f"harness: error: {tmp_path / 'toy-table'} is a file, where the runs of table 'toy-table' belong; move"
    for command in ("status", "leaderboard"):
        result = harness_cli(command, "toy-table", "--results", str(tmp_path), env={"HARNESS_PLUGINS": TOY})
        assert result.returncode == 2 and result.stderr.startswith(expected), result.stderr


def test_a_link_for_a_tables_folder_or_a_cell_folder_is_refused_in_one_line_and_reproduce_writes_none(
    toy_host, results, tmp_path
):
    table = toy_host.tables.get("toy-table")
    budget = results / "toy-table" / "quick"
    aliased = results / "toy-table" / "other"  # an alias of a budget folder inside the results folder
    cases = {
        aliased: (budget, f"to {budget}"),
        budget / "p": (Path("/"), "to /"),  # the root of the disk
        budget / "loop": (budget / "loop", "in a loop"),
        results / SEED0.replace("seed0", "seed5"): (tmp_path / "missing", "to nothing"),  # a dangling cell folder
    }
    for link, (target, where) in cases.items():
        link.symlink_to(target)
        message = (f"{link} is a symbolic link ({where}); a table's cells are read and written in real folders only: "
                   "replace the link with a folder (or move the folder it names there), or link the results folder "
                   "itself")  # fmt: skip
        for read in (lambda: table_status(results, "toy-table"), lambda: leaderboard.our_results(table, results)):
            with pytest.raises(DataError) as caught:
                read()
            assert str(caught.value) == message
        result = harness_cli("status", "toy-table", "--results", str(results), env={"HARNESS_PLUGINS": TOY})
        assert result.returncode == 2 and result.stderr == f"harness: error: {message}\n", result.stderr
        link.unlink()
    (results / SEED0.replace("seed0", "seed5")).symlink_to(tmp_path / "missing")
    with pytest.raises(DataError, match=r"seed5 is a symbolic link \(to nothing\)"):
        reproduce(table, toy_host, results, seeds=[5])
    assert not (tmp_path / "missing").exists()
    (results / SEED0.replace("seed0", "seed5")).unlink()
    table_folder = tmp_path / "linked" / "toy-table"  # a table's folder linked to another's: refused as well
    table_folder.parent.mkdir()
    table_folder.symlink_to(results / "toy-table")
    with pytest.raises(DataError, match=r"toy-table is a symbolic link \(to "):
        table_status(table_folder.parent, "toy-table")
    (tmp_path / "through").symlink_to(results)  # the results folder itself may be a link
    assert {s.state for s in table_status(tmp_path / "through", "toy-table")} == {"done"}
    (budget / "notes.txt").symlink_to(tmp_path / "linked")  # a link that is no folder: left alone
    outside = tmp_path / "outside"
    outside.mkdir()
    late = results / SEED0.replace("seed0", "seed6")
    late.symlink_to(outside)  # made after reproduce planned its cells: refused when the cell is claimed
    outcome, detail = claim_and_run(late, {}, {}, lambda: pytest.fail("never prepared"))
    assert outcome == FAILED and detail.startswith(f"{late} is a symbolic link (to {outside})")
    assert list(outside.iterdir()) == []
    late.unlink()
    os.mkfifo(results / "toy-table" / "blocked")  # no folder where a budget's cells belong: refused before a run
    blocked = dataclasses.replace(table, budgets={"blocked": table.budgets["quick"]})
    with pytest.raises(DataError, match=r"toy-table/blocked is a file, where a folder of the cells of table 'toy-t"):
        reproduce(blocked, toy_host, results, budget="blocked", seeds=[0])


def test_a_folder_of_a_tables_cells_that_cannot_be_read_is_named_in_one_line(toy_host, results, monkeypatch):
    budget = results / "toy-table" / "quick"
    listing = Path.iterdir

    def denied(self):  # what a folder without read permission gives a user who is not root
        if self == budget:
            raise PermissionError(13, "Permission denied", str(self))
        return listing(self)

    monkeypatch.setattr(Path, "iterdir", denied)
    for read in (lambda: table_status(results, "toy-table"),
                 lambda: leaderboard.our_results(toy_host.tables.get("toy-table"), results)):  # fmt: skip
        with pytest.raises(DataError) as caught:
            read()
        assert str(caught.value) == f"{budget} cannot be read (permission denied); make it readable, then rerun"
