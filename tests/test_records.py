"""Damaged or tampered run records and cell files: one-line errors naming the file and the fix, never a traceback."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from conftest import fewshot_config, harness_cli
from harness_test_plugins import toy_table

from harness import checkpoints, leaderboard, per_episode, records
from harness.cli import main
from harness.config import build_config
from harness.errors import ConfigError, DataError
from harness.plugins import PluginHost
from harness.prepare import prepare
from harness.reproduce import _complete, table_cells
from harness.runner import Run, run
from harness.status import table_status

KNN = {"model": "knn", "kind": "fewshot", "ways": 5, "eval_episodes": 8}
DAMAGED = {
    "truncated": b'{"status": "compl',
    "not utf-8": b"\xff\xfe",
    "a list": b"[1, 2]",
    "no config": b'{"status": "complete"}',
    "config without model": b'{"status": "complete", "config": {}, "metrics": {}}',
    "metrics of the wrong shape": b'{"status": "complete", "config": {"model": "knn"}, "metrics": {"a": 1}}',
}


def knn_run(out: Path, messages: list[str] | None = None, **options) -> dict:
    """A quick knn run named ``r`` under ``out`` (nothing to train), its log lines added to ``messages``."""
    log = (messages if messages is not None else []).append
    host = PluginHost(autoload=False, modules=[], strict=False)
    return run(build_config(KNN, "test"), host, out, name="r", log=log, **options)


@pytest.mark.parametrize("content", DAMAGED.values(), ids=DAMAGED.keys())
def test_a_damaged_record_stops_a_rerun_in_one_line_naming_restart(tmp_path, content):
    knn_run(tmp_path)
    record = tmp_path / "r" / "record.json"
    record.write_bytes(content)
    with pytest.raises(DataError) as caught:
        knn_run(tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{record} ") and "pass --restart" in message and "\n" not in message
    assert knn_run(tmp_path, restart=True)["status"] == "complete"


def test_the_command_line_says_it_in_one_line(tmp_path, capsys):
    args = ["run", "--model", "knn", "--kind", "fewshot", "--eval-episodes", "8", "--out", str(tmp_path)]
    assert main([*args, "--name", "r", "--no-progress"]) == 0
    (tmp_path / "r" / "record.json").write_bytes(b"\xff\xfe")
    capsys.readouterr()
    assert main([*args, "--name", "r", "--no-progress"]) == 2
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith(f"harness: error: {tmp_path / 'r' / 'record.json'} cannot be read: not UTF-8 text")
    assert last.endswith(
        f"delete {tmp_path / 'r' / 'record.json'} and rerun: it carries on from the run's checkpoint (tests it "
        "again, without training, if finished) (or pass --restart to train it again)"
    )


@pytest.mark.parametrize("damage", ["delete", "junk"])
def test_a_complete_run_whose_per_episode_file_is_gone_or_damaged_is_tested_again(tmp_path, damage):
    first = knn_run(tmp_path)
    if damage == "delete":
        (tmp_path / "r" / per_episode.FILE).unlink()
    else:
        (tmp_path / "r" / per_episode.FILE).write_bytes(b"junk")
    messages: list[str] = []
    again = knn_run(tmp_path, messages)
    problem = "is missing" if damage == "delete" else "does not match the SHA-256 in record.json"
    assert f"testing {tmp_path / 'r'} again (its episodes.npz {problem})" in messages
    assert again["metrics"] == first["metrics"] and per_episode.load(tmp_path / "r").episodes.tolist() == list(range(8))
    messages.clear()
    knn_run(tmp_path, messages)
    assert "already complete" in messages[0]


def test_reproduce_refuses_a_damaged_cell_record_and_reruns_one_without_its_values(tmp_path):
    knn_run(tmp_path)
    directory = tmp_path / "r"
    (directory / "cell.json").write_text("{}")  # what makes it a cell of 'harness reproduce', which has no --restart
    record = json.loads((directory / "record.json").read_text())
    cell = {"setting": "5-way 1-shot", "seed": record["seed"], "budget": record["budget"]}
    assert _complete(directory, cell, {"ways": 5})
    (directory / per_episode.FILE).unlink()
    assert not _complete(directory, cell, {"ways": 5}), "its test is run again"
    (directory / "record.json").write_text("[]")
    with pytest.raises(DataError) as caught:
        _complete(directory, cell, {"ways": 5})
    assert str(caught.value) == (
        f"{directory / 'record.json'} cannot be read: it holds an array, not an object; "
        f"delete {directory / 'record.json'} and rerun: it carries on from the cell's checkpoint (tests it again, "
        "without training, if finished)"
    )


def test_reproduce_refuses_a_record_another_row_trained_though_it_names_no_cell(tmp_path):
    knn_run(tmp_path)  # knn with k=1: the record of a row whose cell.json was copied along (or of before stamps)
    directory = tmp_path / "r"
    (directory / "cell.json").write_text("{}")
    record = json.loads((directory / "record.json").read_text())
    assert record["config"]["params"] == {"k": 1} and record.get("cell") is None
    cell = {"row": "Matching Nets", "setting": "5-way 1-shot", "seed": record["seed"], "budget": record["budget"]}
    assert _complete(directory, cell, {"ways": 5, "model": "knn", "params": {"k": 1}})
    assert _complete(directory, cell, {"ways": 5, "model": "knn", "params": {}}), "a row giving no k fixes none"
    for fixed, problem in [
        ({"model": "protonet"}, "it was trained with model 'knn', but its cell's row 'Matching Nets' has 'protonet'"),
        ({"model": "knn", "params": {"k": 5}}, "the hyperparameter k=1, but its cell's row 'Matching Nets' has k=5"),
    ]:
        with pytest.raises(DataError) as caught:
            _complete(directory, cell, {"ways": 5, **fixed})
        assert problem in str(caught.value) and "the cell's checkpoint is of the same run" in str(caught.value)


ROWS = {"HARNESS_PLUGINS": "harness_test_plugins.rows_table,harness_test_plugins.rows_table_rows"}
AT = "but its cell's setting '5-way 1-shot' at budget 'quick' has"
AT_ROW = "but its cell's row {row!r} in setting '5-way 1-shot' at budget 'quick' has"


def _forge(cells: Path, source: str, target: str, **config) -> Path:
    """Put the record (and per-episode file) of cell ``source`` into cell ``target``, its stamp removed and its config
    changed by ``config`` (``params.k=None``: that key removed), as a record of another run; the target's folder."""
    directory = cells / target / "seed0"
    record = json.loads((cells / source / "seed0" / "record.json").read_text())
    for key, value in config.items():
        *parents, last = key.split(".")
        holder = record["config"]
        for parent in parents:
            holder = holder[parent]
        if value is None:
            del holder[last]
        else:
            holder[last] = value
    record.update(cell=None, run_id="another-run")
    (directory / "record.json").write_text(json.dumps(record))
    if source != target:
        shutil.copy(cells / source / "seed0" / per_episode.FILE, directory / per_episode.FILE)
    return directory


@pytest.mark.parametrize(
    ("source", "target", "config", "problem"),
    [
        ("knn-k3/5-way-1-shot", "knn/5-way-1-shot", {},
         "it was trained with the hyperparameter k=3, but its cell's row 'kNN' has k=1"),
        ("knn/5-way-1-shot", "knn-k3/5-way-1-shot", {"params.k": None},  # k lacking counts at its default
         "it was trained with the hyperparameter k=1, but its cell's row 'kNN k3' has k=3"),
        ("knn/5-way-1-shot-larger", "knn/5-way-1-shot", {},
         f"it was trained with data option image_size 12, {AT_ROW.format(row='kNN')} data option image_size 8"),
        ("knn-noisy/5-way-1-shot", "knn/5-way-1-shot", {},  # an option only a row gives
         f"it was trained with data option noise 0.2, {AT_ROW.format(row='kNN')} data option noise 0.05"),
        ("knn/5-way-1-shot", "knn/5-way-1-shot", {"eval_episodes": 2},  # a plain run's, tested on other episodes
         f"it was trained with eval_episodes 2, {AT} eval_episodes 16"),
        ("knn/5-way-1-shot", "knn/5-way-1-shot", {"eval_seed": 7},
         f"it was trained with eval_seed 7, {AT} eval_seed 0"),
    ],
    ids=["a row at its default", "a key lacking", "a setting's dataset option", "a row's dataset option", "budget",
         "test episodes"],
)  # fmt: skip
def test_a_record_of_a_cell_alike_but_for_one_value_is_refused_by_reproduce_status_and_leaderboard(
    tmp_path, source, target, config, problem
):
    results = tmp_path / "R"
    reproduce = ["reproduce", "rows-table", "--results", str(results), "--no-progress"]
    assert harness_cli(*reproduce, env=ROWS).returncode == 0
    _forge(results / "rows-table" / "quick", source, target, **config)
    for command in (reproduce, ["status", *reproduce[1:4]], ["leaderboard", *reproduce[1:4]]):
        result = harness_cli(*command, env=ROWS)
        assert f"{problem}: a record copied from another cell" in result.stderr + result.stdout, command
        assert result.returncode != 0 or command[0] == "status", command
    assert "damaged" in harness_cli("status", *reproduce[1:4], env=ROWS).stdout


def test_a_cell_whose_row_changed_since_it_ran_says_so_and_rows_not_installed_are_not_guessed(tmp_path):
    results = tmp_path / "R"
    reproduce = ["reproduce", "rows-table", "--results", str(results), "--no-progress"]
    assert harness_cli(*reproduce, env=ROWS).returncode == 0
    directory = results / "rows-table" / "quick" / "knn" / "5-way-1-shot" / "seed0"
    record = json.loads((directory / "record.json").read_text())
    (directory / "record.json").write_text(json.dumps({**record, "config": {**record["config"], "params": {"k": 3}}}))
    result = harness_cli(*reproduce, env=ROWS)  # the checkpoint saved k=1, as the row has it: the record was edited
    assert (
        "it was trained with the hyperparameter k=3, but its cell's row 'kNN' has k=1; the cell's checkpoint, of the "
        "same run, fits the cell, so the record was changed after the run wrote it; delete "
        f"{directory / 'record.json'} and rerun"  # the record alone: the checkpoint is tested again
    ) in result.stderr
    state = checkpoints.load(directory / "checkpoint.pkl")
    checkpoints.save(directory / "checkpoint.pkl", {**state, "config": {**state["config"], "params": {"k": 3}}})
    result = harness_cli(*reproduce, env=ROWS)  # the record and checkpoint of one run: the row was k=3 when it ran
    assert (
        "it was trained with the hyperparameter k=3, but its cell's row 'kNN' has k=1, and the cell's checkpoint is of "
        "the same run: the cell's row, setting or budget changed since it ran (or the cell was copied whole); to run "
        f"it as it is now, delete {directory} and rerun 'harness reproduce rows-table --budget quick "
        f"--results {results}' with the --row"
    ) in result.stderr
    (directory / "record.json").write_text(json.dumps(record))
    # without the rows' plugin a cell's row cannot change its setting's options: the larger images of 'kNN big' pass
    table_only = {"HARNESS_PLUGINS": "harness_test_plugins.rows_table"}
    result = harness_cli("status", *reproduce[1:4], env=table_only)
    assert result.returncode == 0 and "damaged" not in result.stdout and "7 done" in result.stdout
    leaderboard = harness_cli("leaderboard", *reproduce[1:4], env=table_only)
    assert leaderboard.returncode == 0 and "kNN big" in (results / "leaderboards" / "rows-table.md").read_text()


def test_a_cell_fixes_its_budget_setting_rows_model_and_what_tells_its_row_apart():
    host = PluginHost(autoload=False, modules=["harness_test_plugins.toy_table"], strict=True)
    (cell, *_) = table_cells(host.tables.get("toy-table"), host, "quick", settings=["10-way 1-shot"])
    fixed = cell.fixed_config
    assert fixed["ways"] == 10 and fixed["episodes"] == 64 and fixed["eval_episodes"] == 48
    assert "checkpoint_every" not in fixed, "a run saved at another interval is the same run"
    assert fixed["data"] == cell.setting_config["data"] and fixed["data_defaults"]["test_classes"] == 32
    assert (fixed["model"], fixed["params"], fixed["param_defaults"]) == ("toy-protonet", {}, {})
    rows = PluginHost(
        autoload=False, modules=["harness_test_plugins.rows_table", "harness_test_plugins.rows_table_rows"]
    )
    cells = {
        c.row: c.fixed_config
        for c in table_cells(rows.tables.get("rows-table"), rows, "quick", settings=["5-way 1-shot"])
    }
    assert cells["kNN"]["params"] == {"k": 1} and cells["kNN k3"]["params"] == {"k": 3}
    assert cells["kNN"]["data"]["noise"] == 0.05 and cells["kNN noisy"]["data"]["noise"] == 0.2
    assert cells["kNN big"]["data"]["image_size"] == 12 and cells["kNN"]["data"]["image_size"] == 8


def test_a_damaged_record_fails_its_cell_alone_and_a_copied_one_is_refused_everywhere(tmp_path):
    results, env = tmp_path / "R", {"HARNESS_PLUGINS": "harness_test_plugins.toy_table"}
    reproduce = ["reproduce", "toy-table", "--results", str(results), "--no-progress", "--threads", "1"]
    assert harness_cli(*reproduce, env=env).returncode == 0
    five, ten = (results / f"toy-table/quick/toy-protonet/{n}-way-1-shot/seed0" for n in (5, 10))
    shutil.rmtree(ten)
    (five / "record.json").write_text("garbage")
    again = harness_cli(*reproduce, env=env)
    assert again.returncode == 2  # the damaged cell fails, the other runs
    assert (
        "5-way-1-shot/seed0: failed: " in again.stderr and "record.json cannot be read: not valid JSON" in again.stderr
    )
    assert json.loads((ten / "record.json").read_text())["status"] == "complete"
    shutil.copy(ten / "record.json", five / "record.json")  # a record copied from another cell, with its values
    shutil.copy(ten / per_episode.FILE, five / per_episode.FILE)
    copied = json.loads((five / "record.json").read_text())
    assert copied["cell"]["setting"] == "10-way 1-shot"  # the cell it names
    named = "it is the record of the cell toy-table/quick/toy-protonet/10-way-1-shot/seed0, not of toy-table/quick/toy"
    by_setting = (
        "trained with ways 10, but its cell's setting '5-way 1-shot' at budget 'quick' has ways 5: a record copied"
    )
    for problem in (named, by_setting):  # then a record of before records named their cells
        for command in (reproduce, ["status", *reproduce[1:4]], ["leaderboard", *reproduce[1:4]]):
            result = harness_cli(*command, env=env)
            assert problem in result.stderr + result.stdout, command
        (five / "record.json").write_text(json.dumps({**copied, "cell": None}))


def test_a_table_whose_leaderboard_fails_does_not_stop_the_tables_after_it(tmp_path):
    env = {"HARNESS_PLUGINS": "harness_test_plugins.toy_table,harness_test_plugins.toy_ray"}
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "rooted.txt").write_text("")
    results = tmp_path / "R"
    command = ["reproduce", "toy-table", "toy-rooted", "--model", "toy-protonet", "--model", "toy-rooted-protonet",
               "--data-dir", f"rooted={tmp_path / 'root'}", "--results", str(results), "--no-progress"]  # fmt: skip
    assert harness_cli(*command, env=env).returncode == 0
    rooted = results / "toy-rooted/quick/toy-protonet/5-way-1-shot/seed0"
    assert rooted.is_dir()
    shutil.rmtree(rooted)
    record_path = results / "toy-table/quick/toy-protonet/5-way-1-shot/seed0/record.json"
    record = json.loads(record_path.read_text())
    record["metrics"]["nway_kshot_accuracy"]["5-way 1-shot"]["mean"] = 5.0  # done for reproduce, refused in the table
    del record["per_episode"]  # as an older harness wrote it: nothing to check the numbers against
    record_path.write_text(json.dumps(record))
    again = harness_cli(*command, env=env)
    assert again.returncode == 2
    assert "toy-table: 0 cells run, 2 already done" in again.stdout
    assert "  leaderboard: not written: " in again.stderr and "toy-rooted: 1 cell run" in again.stdout
    assert json.loads((rooted / "record.json").read_text())["status"] == "complete"
    assert "the leaderboards of toy-table were not written (see above)" in again.stderr


def test_a_run_trained_at_other_threads_is_kept_naming_the_threads_to_rerun_with(protonet_host, tmp_path):
    run(fewshot_config(), protonet_host, tmp_path, name="r", log=lambda _: None)
    (tmp_path / "r" / "record.json").unlink()  # so the rerun reads the checkpoint, which knows its threads
    with pytest.raises(ConfigError) as caught:
        run(fewshot_config(threads=2), protonet_host, tmp_path, name="r", log=lambda _: None)
    assert str(caught.value) == (
        f"{tmp_path / 'r'} holds a run with another config (threads: 1 -> 2); rerun with --threads 1, the threads it "
        "trained with (or pass --name for a new run or --restart to discard it)"
    )
    with pytest.raises(ConfigError, match=r"\(episodes: 96 -> 97, threads: 1 -> 2\); pass --name for a new run or"):
        run(fewshot_config(threads=2, episodes=97), protonet_host, tmp_path, name="r", log=lambda _: None)


def test_a_record_far_larger_than_a_run_writes_is_refused_unread(tmp_path):
    knn_run(tmp_path)
    record = tmp_path / "r" / "record.json"
    os.truncate(record, 5 * 2**30)  # sparse: read whole, it would take 5 GiB and more to parse
    with pytest.raises(DataError) as caught:
        knn_run(tmp_path)
    assert str(caught.value).startswith(
        f"{record} cannot be read: 5,368,709,120 bytes, more than the 67,108,864 accepted, far more than a run writes;"
    )


def test_a_trained_cell_whose_record_is_deleted_is_tested_again_without_training(protonet_host, tmp_path):
    first = run(fewshot_config(), protonet_host, tmp_path, name="r", log=lambda _: None)
    (tmp_path / "r" / "record.json").unlink()
    messages: list[str] = []
    again = run(fewshot_config(), protonet_host, tmp_path, name="r", log=messages.append)
    assert messages == [f"testing the trained checkpoint of {tmp_path / 'r'} at episode {first['episodes_trained']}"]
    for key in ("metrics", "episodes_trained", "loss_history", "sessions", "resumes"):
        assert again[key] == first[key], key


def _toy_cell(results: Path, record: object, cell: object | None = None) -> Path:
    """A cell of the toy table holding ``record`` (and ``cell``) as JSON; its folder."""
    folder = results / "toy-table/quick/toy-protonet/5-way-1-shot/seed0"
    folder.mkdir(parents=True)
    default = {"table": "toy-table", "row": "Toy ProtoNet", "setting": "5-way 1-shot", "seed": 0, "budget": "quick"}
    (folder / "cell.json").write_text(json.dumps(default if cell is None else cell))
    (folder / "record.json").write_text(json.dumps(record))
    return folder


def _record(metrics: object) -> dict:
    return {
        "status": "complete",
        "episodes_trained": 64,
        "config": {"model": "toy"},
        "metrics": {"nway_kshot_accuracy": metrics},
    }


@pytest.mark.parametrize(
    ("record", "cell", "problem"),
    [
        (_record({}), None, r"record.json has no nway_kshot_accuracy '5-way 1-shot' mean \(a fraction\) and ci95"),
        (
            _record({"5-way 1-shot": {"mean": "high", "ci95": 0.1}}),
            None,
            r"record.json is not a run record the harness can use \(a summary in metrics whose mean",
        ),
        (
            _record({"5-way 1-shot": {"mean": float("nan"), "ci95": 0.1}}),
            None,
            r"record.json is not a run record the harness can use \(a summary in metrics whose mean",
        ),
        (_record({"5-way 1-shot": {"mean": None, "ci95": 0.1}}), None, r"record.json has no nway_kshot_accuracy"),
        (_record({"5-way 1-shot": {"mean": -5, "ci95": 0.1}}), None, r"mean -5, not a fraction from 0 to 1"),
        (
            _record({"5-way 1-shot": {"mean": 0.5, "ci95": -0.01}}),
            None,
            r"record.json is not a run record the harness can use \(a summary in metrics whose mean",
        ),
        (
            _record({"5-way 1-shot": {"mean": 0.5, "ci95": float("inf")}}),
            None,
            r"record.json is not a run record the harness can use \(a summary in metrics whose mean",
        ),
        (_record({"5-way 1-shot": {"mean": 0.5, "ci95": 0.1}}), [1], r"cell.json cannot be read: it holds an array"),
        (_record({"5-way 1-shot": {"mean": 0.5, "ci95": 0.1}}), {"table": "toy-table"}, r"cell.json does not name"),
        ({**_record({}), "episodes_trained": "many"}, None, r"record.json is not a run record .*episodes_trained in a"),
        ({**_record({}), "metrics": []}, None, r"record.json is not a run record the harness can use"),
    ],
)
def test_the_leaderboard_refuses_a_damaged_cell_naming_it(host, tmp_path, record, cell, problem):
    with host.registered(toy_table, "toy-plugin"):
        table = host.tables.get("toy-table")
    folder = _toy_cell(tmp_path, record, cell)
    with pytest.raises(DataError, match=problem) as caught:
        leaderboard.our_results(table, tmp_path)
    message = str(caught.value)
    assert message.startswith(str(folder)) and "\n" not in message
    rerun = (
        f"rerun 'harness reproduce toy-table --budget quick --results {tmp_path}' with the --row, --setting and "
        "--seeds of this cell"
    )
    if "cell.json" in problem:  # written again by reproduce, which keeps the cell's training
        assert message.endswith(f"delete {folder / 'cell.json'} if it is there and {rerun}: it writes the file again "
                                "and keeps what the cell trained")  # fmt: skip
    else:
        assert message.endswith(f"delete {folder} and {rerun} to run the cell again")


def test_the_leaderboard_names_the_first_damaged_cell_and_counts_the_others_once_each(host, tmp_path):
    with host.registered(toy_table, "toy-plugin"):
        table = host.tables.get("toy-table")
    damaged = _toy_cell(tmp_path, _record({"5-way 1-shot": {"mean": "high", "ci95": 0.1}}))
    orphan = damaged.with_name("seed1")
    shutil.copytree(damaged, orphan)
    (orphan / "cell.json").unlink()
    good = damaged.with_name("seed2")
    shutil.copytree(damaged, good)
    cell = {"table": "toy-table", "row": "Toy ProtoNet", "setting": "5-way 1-shot", "seed": 2, "budget": "quick"}
    (good / "cell.json").write_text(json.dumps(cell))
    (good / "record.json").write_text(json.dumps(_record({"5-way 1-shot": {"mean": 0.5, "ci95": 0.1}})))
    fourth = damaged.with_name("seed3")
    fourth.mkdir()
    (fourth / "cell.json").symlink_to("/dev/zero")  # no file: one damaged cell, counted once
    shutil.copy(damaged / "record.json", fourth / "record.json")
    with pytest.raises(DataError) as caught:
        leaderboard.our_results(table, tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{orphan} holds a run but no cell.json") and "\n" not in message
    assert message.endswith(f" (and 2 more damaged cells: 'harness status toy-table --results {tmp_path}' lists "
                            "each with its fix)")  # fmt: skip
    statuses = table_status(tmp_path, "toy-table", spec=table)
    assert {s.directory for s in statuses if s.state == "damaged"} == {orphan, damaged, fourth}


def test_the_leaderboard_refuses_a_cell_of_a_setting_its_table_does_not_have(host, tmp_path):
    with host.registered(toy_table, "toy-plugin"):
        table = host.tables.get("toy-table")
    good = _record({"7-way 3-shot": {"mean": 0.5, "ci95": 0.1}})
    cell = {"table": "toy-table", "row": "Toy ProtoNet", "setting": "7-way 3-shot", "seed": 0, "budget": "quick"}
    folder = _toy_cell(tmp_path, good, cell)
    folder.parent.rename(folder.parent.with_name("7-way-3-shot"))  # where that cell would lie
    with pytest.raises(DataError, match=r"describes setting '7-way 3-shot', which table 'toy-table' does not have; de"):
        leaderboard.our_results(table, tmp_path)


def test_the_leaderboard_refuses_a_cell_copied_to_another_seed_instead_of_counting_it_twice(host, tmp_path):
    with host.registered(toy_table, "toy-plugin"):
        table = host.tables.get("toy-table")
    good = _record({"5-way 1-shot": {"mean": 0.5, "ci95": 0.1}})
    folder = _toy_cell(tmp_path, {**good, "seed": 0})
    assert [row["seeds"] for row in leaderboard.our_results(table, tmp_path)] == [1]
    copy = folder.parent / "seed1"
    shutil.copytree(folder, copy)
    with pytest.raises(DataError) as caught:
        leaderboard.our_results(table, tmp_path)
    assert str(caught.value) == (
        f"{copy / 'cell.json'} describes the cell toy-table/quick/toy-protonet/5-way-1-shot/seed0 but lies in {copy}: "
        "a copied or moved cell folder; delete it, or move it to "
        "<results>/toy-table/quick/toy-protonet/5-way-1-shot/seed0 if that cell is missing (if only the file was "
        f"edited, delete {copy / 'cell.json'} if it is there and rerun 'harness reproduce toy-table --budget quick "
        f"--results {tmp_path}' with the --row, --setting and --seeds of this cell: it writes the file again and keeps "
        "what the cell trained)"
    )
    cell = json.loads((copy / "cell.json").read_text())
    (copy / "cell.json").write_text(json.dumps({**cell, "seed": 1}))  # the cell made to match, the record not
    with pytest.raises(DataError, match=r"record.json: it is the record of seed 0, but its cell is seed 1: a record"):
        leaderboard.our_results(table, tmp_path)


def test_the_leaderboard_asks_to_delete_only_the_record_of_a_cell_with_a_checkpoint(host, tmp_path):
    with host.registered(toy_table, "toy-plugin"):
        table = host.tables.get("toy-table")
    folder = _toy_cell(tmp_path, _record({}), None)
    (folder / "checkpoint.pkl").write_bytes(b"")  # its presence is what the advice depends on
    with pytest.raises(DataError) as caught:
        leaderboard.our_results(table, tmp_path)
    assert str(caught.value).endswith(
        f"delete {folder / 'record.json'} and rerun 'harness reproduce toy-table --budget quick --results "
        f"{tmp_path}' with the --row, --setting and --seeds of this cell: it carries on from the cell's checkpoint "
        "(tests it again, without training, if finished)"
    )


def test_the_leaderboard_shows_a_mean_and_interval_kept_as_null(host, tmp_path):
    with host.registered(toy_table, "toy-plugin"):
        table = host.tables.get("toy-table")
    _toy_cell(tmp_path, _record({"5-way 1-shot": {"mean": 0.5, "ci95": None, "n": 1}}))
    (ours,) = leaderboard.our_results(table, tmp_path)
    assert ours["value"] == 50.0 and ours["text"] == "50.0" and ours["commit"] == "unknown"


def _tamper(run_dir: Path, change) -> None:
    path = run_dir / "record.json"
    record = json.loads(path.read_text())
    path.write_text(json.dumps(change(record)))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda r: [r],
            r"record.json cannot be read: it holds an array, not an object; delete \S+ and rerun its command",
        ),
        (lambda r: {**r, "metrics": "none"}, r"is not a run record the harness can use \(metrics is not"),
        (lambda r: {**r, "metrics": {"accuracy": [1]}}, r"is not a run record the harness can use \(metrics is not"),
        (lambda r: {**r, "per_episode": {**r["per_episode"], "file": "x\0y"}}, r"per_episode does not name a file"),
        (lambda r: {**r, "per_episode": {**r["per_episode"], "file": "../x"}}, r"per_episode does not name a file"),
        (lambda r: {**r, "per_episode": {**r["per_episode"], "sha256": 7}}, r"per_episode does not name a file"),
        (lambda r: {**r, "per_episode": "episodes.npz"}, r"per_episode does not name a file"),
        (lambda r: {k: v for k, v in r.items() if k != "per_episode"}, r"keeps no per-episode values \(an older"),
        (lambda r: {**r, "per_episode": {**r["per_episode"], "file": "sub"}}, r"sub is a folder, not the file"),
    ],
)
def test_per_episode_values_of_a_tampered_record_are_refused_in_one_line(tmp_path, change, message):
    knn_run(tmp_path)
    (tmp_path / "r" / "sub").mkdir()
    _tamper(tmp_path / "r", change)
    with pytest.raises(DataError, match=message) as caught:
        per_episode.load(tmp_path / "r")
    assert "\n" not in str(caught.value)


def test_a_finished_record_without_its_checkpoint_stands_and_names_the_fix_of_its_command(protonet_host, tmp_path):
    run(fewshot_config(), protonet_host, tmp_path, name="r", log=lambda _: None)
    directory = tmp_path / "r"
    (directory / "checkpoint.pkl").unlink()
    with pytest.raises(ConfigError) as caught:
        run(fewshot_config(), protonet_host, tmp_path, name="r", log=lambda _: None)
    stands = f"{directory} holds the record of a finished run but not its checkpoint; the record stands: "
    assert str(caught.value) == stands + "pass --name for a new run or --restart to discard it"
    (directory / "cell.json").write_text("{}")  # what makes a folder a cell of harness reproduce
    with pytest.raises(ConfigError) as caught:
        Run(prepare(fewshot_config(), protonet_host), directory).execute(log=lambda _: None)
    assert str(caught.value) == stands + f"delete {directory} and rerun to run the cell again"
    assert (directory / "record.json").is_file(), "nothing is lost"


@pytest.mark.parametrize(
    ("record", "saved", "another"),
    [
        ({"run_id": "a", "episodes_trained": 48}, {"run_id": "a", "episodes_trained": 48}, False),
        ({"run_id": "a", "episodes_trained": 48}, {"run_id": "b", "episodes_trained": 48}, True),  # a --restart
        ({"episodes_trained": 48}, {"run_id": "b", "episodes_trained": 16}, True),  # a record from before run ids
        ({"run_id": "a", "episodes_trained": 48}, {"run_id": "a", "episodes_trained": 16}, True),  # rewound
        ({"episodes_trained": 48}, {"episodes_trained": 16}, True),  # both from before run ids
        ({"episodes_trained": 48}, {"episodes_trained": 48}, False),
        ({}, {"run_id": "", "episodes_trained": 16}, False),  # what the record does not say cannot differ
        ({"episodes_trained": 48}, {"episodes_trained": None}, False),  # nor what the checkpoint does not
    ],
)
def test_a_record_is_another_runs_than_its_checkpoint_by_run_id_or_by_length(record, saved, another):
    assert records.of_another_run(record, saved) is another


def test_a_model_with_nothing_to_train_never_writes_over_the_record_of_another_run(protonet_host, tmp_path):
    run(fewshot_config(), protonet_host, tmp_path, name="r", log=lambda _: None)
    directory = tmp_path / "r"
    (directory / "checkpoint.pkl").unlink()
    before = (directory / "record.json").read_bytes()
    with pytest.raises(ConfigError, match="holds the record of a finished run but not its checkpoint; the record st"):
        knn_run(tmp_path)
    (directory / "notes.txt").write_text("mine")
    (directory / "record.json").write_text("my notes, not JSON")
    with pytest.raises(DataError, match=r"record\.json cannot be read") as caught:
        knn_run(tmp_path)
    assert "\n" not in str(caught.value) and (directory / "record.json").read_text() == "my notes, not JSON"
    (directory / "record.json").write_bytes(before)
    assert knn_run(tmp_path, restart=True)["model"] == "knn", "--restart replaces it, as asked"


def test_the_record_names_the_data_its_episodes_came_from(tmp_path):
    data = knn_run(tmp_path / "a")["provenance"]["data"]
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", data["dataset"]) and data["test_dataset"] == data["dataset"]
    host = PluginHost(autoload=False, modules=[], strict=False)
    other = build_config({**KNN, "data": {"seed": 1}}, "test")
    changed = run(other, host, tmp_path / "b", name="r", log=lambda _: None)["provenance"]["data"]
    assert changed["dataset"] != data["dataset"], "other images, another fingerprint"
