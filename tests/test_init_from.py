"""``init_from``: a new run starting from the tested weights of a finished run, its optimizer afresh."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import shutil

import numpy as np
import pytest
from conftest import fewshot_config

from harness import checkpoints, hookimpl
from harness.cli import main
from harness.config import build_config
from harness.errors import ConfigError, HarnessError
from harness.reproduce import reproduce
from harness.runner import run
from harness.specs import ModelSpec
from harness.table_checks import check_table
from harness.tables import TableRow, TableSetting, TableSpec

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

from harness_test_plugins import torch_protonet  # noqa: E402

QUIET = {"log": lambda _: None}
DATA = {"train_classes": 30, "val_classes": 5, "test_classes": 10}


@pytest.fixture
def host(protonet_host):
    protonet_host.register(torch_protonet, "torch-protonet-plugin")
    return protonet_host


def config(**overrides):
    return fewshot_config(**{"model": "torch-protonet", "episodes": 32, "eval_episodes": 32, **overrides})


@pytest.fixture
def finished(host, tmp_path):
    """A finished ``torch-protonet`` run to start from, and its record."""
    return tmp_path / "a", run(config(), host, tmp_path, name="a", **QUIET)


def test_a_run_starts_from_the_tested_weights_and_says_so_in_its_record(host, tmp_path, finished):
    source, record = finished
    untrained = run(config(episodes=0, init_from=str(source)), host, tmp_path, name="b", **QUIET)
    assert untrained["metrics"] == record["metrics"], "nothing trained: the weights tested are the finished run's"
    assert run(config(episodes=0), host, tmp_path, name="c", **QUIET)["metrics"] != record["metrics"]
    tuned = run(config(init_from=str(source), params={"lr": 0.001}), host, tmp_path, name="d", **QUIET)
    init = tuned["init_from"]
    assert init["from"] == str(source) and init["run_id"] == record["run_id"] and init["episodes_trained"] == 32
    assert init["kept"] == record["kept"] and init["params"]["lr"] == 0.01 and len(init["checkpoint_sha256"]) == 64
    assert (
        tuned["config"]["init_from"] == str(source)
        and run(config(), host, tmp_path, name="e", **QUIET)["init_from"] is None
    )


def test_resuming_with_another_init_from_is_a_changed_config(host, tmp_path, finished):
    source, _ = finished
    run(config(episodes=0, checkpoint_every=8), host, tmp_path, name="b", **QUIET)
    (tmp_path / "b" / "record.json").unlink()
    with pytest.raises(ConfigError, match=r"init_from: None -> '.*a'"):
        run(config(init_from=str(source)), host, tmp_path, name="b", **QUIET)


def _rewrite(path, **changes):
    state = checkpoints.load(path)
    state.update(changes)
    checkpoints.save(path, {k: v for k, v in state.items() if k != "format"})


def _weights_of_another_shape() -> dict:
    buffer = io.BytesIO()
    torch.save({"module": {"0.weight": torch.zeros(3, 3)}}, buffer)
    return {"format": "harness-torch/1", "device": "cpu", "torch": buffer.getvalue()}


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda a: a.rename(a.with_name("gone")), "init_from {a}: no run's checkpoint.pkl there; give the directory"),
        (lambda a: (a / "checkpoint.pkl").unlink(), "no run's checkpoint.pkl there"),
        (
            lambda a: ((a / "checkpoint.pkl").unlink(), os.mkfifo(a / "checkpoint.pkl")),
            "init_from {a}: {a}/checkpoint.pkl is not a regular file, as a run's checkpoint.pkl is; give the dir",
        ),
        (
            lambda a: ((a / "checkpoint.pkl").unlink(), (a / "checkpoint.pkl").symlink_to("/dev/zero")),
            "{a}/checkpoint.pkl is not a regular file, as a run's checkpoint.pkl is",
        ),
        (lambda a: _rewrite(a / "checkpoint.pkl", final=False), "that run has not finished (32 episodes trained)"),
        (
            lambda a: _rewrite(a / "checkpoint.pkl", model_state=_weights_of_another_shape()),
            "its weights do not fit this model (RuntimeError: Error(s) in loading state_dict for Sequential: Missing",
        ),
        (
            lambda a: _rewrite(a / "checkpoint.pkl", kept={"which": "last", "episode": 32, "extra": np.arange(3)}),
            "its checkpoint holds values that are not JSON (kept, params); give the directory",
        ),
        (
            lambda a: (a / "checkpoint.pkl").write_bytes(b"junk"),
            "a/checkpoint.pkl cannot be read: not a harness checkpoint",
        ),
    ],
)
def test_a_source_that_cannot_be_started_from_is_refused_in_one_line(host, tmp_path, finished, damage, message):
    source, _ = finished
    damage(source)
    with pytest.raises(HarnessError) as caught:
        run(config(init_from=str(source)), host, tmp_path, name="b", **QUIET)
    assert message.format(a=source) in str(caught.value) and "\n" not in str(caught.value)
    assert not (tmp_path / "b" / "checkpoint.pkl").exists(), "nothing is written for a run that cannot start"


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("~no-such-user-here/x", "init_from ~no-such-user-here/x: Could not determine home directory"),
        ("x" * 5000, "cannot be read (OSError: "),
    ],
)
def test_a_path_that_cannot_be_looked_at_is_refused_in_one_line(host, tmp_path, given, message):
    with pytest.raises(ConfigError) as caught:
        run(config(init_from=given), host, tmp_path, name="b", **QUIET)
    assert message in str(caught.value) and "\n" not in str(caught.value) and len(str(caught.value)) < 600


def test_its_own_directory_is_refused_even_to_a_restart(host, tmp_path, finished):
    source, record = finished
    with pytest.raises(ConfigError, match="is this run's own directory, which the run replaces"):
        run(config(init_from=str(source)), host, tmp_path, name="a", restart=True, **QUIET)
    assert json.loads((source / "record.json").read_text())["run_id"] == record["run_id"], "the source stands"


def test_the_same_source_named_another_way_resumes(host, tmp_path, finished, monkeypatch):
    source, _ = finished
    monkeypatch.chdir(tmp_path)
    run(config(init_from="a", checkpoint_every=8), host, tmp_path, name="b", **QUIET)
    (tmp_path / "b" / "record.json").unlink()
    again = run(config(init_from=f"{source}/", checkpoint_every=8), host, tmp_path, name="b", **QUIET)
    assert again["init_from"]["from"] == "a", "tested again, not trained anew: the source is the one it began with"


def test_a_model_without_final_weights_says_so_instead_of_asking_to_finish_a_finished_run(host, tmp_path):
    run(fewshot_config(), host, tmp_path, name="w", **QUIET)
    with pytest.raises(ConfigError, match="keeps no tested weights apart from its training state"):
        run(fewshot_config(init_from=str(tmp_path / "w")), host, tmp_path, name="b", **QUIET)


@pytest.mark.parametrize(
    ("budgets", "message"),
    [
        ({"quick": {}, "tuned": {"init_from": "budget:nope"}}, "budget 'tuned' carries on from budget 'nope'"),
        ({"quick": {}, "tuned": {"init_from": "budget:../quick"}}, "from budget '../quick' ('budget:../quick'), which"),
        ({"quick": {}, "tuned": {"init_from": "budget:tuned"}}, "round a loop: tuned -> tuned"),
        ({"a": {"init_from": "budget:b"}, "b": {"init_from": "budget:a"}}, "round a loop: a -> b -> a"),
    ],
)
def test_a_budget_carrying_on_from_one_the_table_lacks_or_from_itself_is_refused(budgets, message):
    setting = TableSetting("5-way 1-shot", {"kind": "fewshot"})
    with pytest.raises(ValueError, match=re.escape(message)):
        check_table(TableSpec("t", "T", "Toy 2026", "nway_kshot_accuracy", None, (setting,), budgets))


def test_another_model_is_refused_and_one_without_training_ignores_it(host, tmp_path, finished):
    source, _ = finished
    with pytest.raises(ConfigError, match="holds a run of model 'torch-protonet', not 'weighted-protonet'"):
        run(fewshot_config(init_from=str(source)), host, tmp_path, name="b", **QUIET)
    knn = build_config({"model": "knn", "kind": "fewshot", "eval_episodes": 8, "init_from": str(source)}, "test")
    assert run(knn, host, tmp_path, name="c", **QUIET)["init_from"] is None  # nothing to train: ignored
    with pytest.raises(ConfigError, match="init_from in test must name a finished run's directory"):
        config(init_from=" ")


def test_the_command_line_flag(tmp_path, capsys):
    args = ["run", "--model", "knn", "--kind", "fewshot", "--eval-episodes", "8", "--out", str(tmp_path)]
    assert main([*args, "--init-from", str(tmp_path)]) == 0
    assert "note: model 'knn' has nothing to train; --init-from ignored" in capsys.readouterr().err


class TunedTable:
    """A table whose ``tuned`` budget carries on from its ``quick`` cells (``init_from = "budget:quick"``)."""

    @hookimpl
    def harness_tables(self) -> list[TableSpec]:
        setting = TableSetting("5-way 1-shot", {"dataset": "synthetic", "kind": "fewshot", "ways": 5, "data": DATA})
        quick = {"episodes": 32, "eval_episodes": 32, "batch_size": 8, "checkpoint_every": 8, "queries": 2}
        budgets = {"quick": quick, "tuned": {**quick, "episodes": 16, "init_from": "budget:quick"}}
        return [TableSpec("tuned-table", "Tuned", "Toy 2026", "nway_kshot_accuracy", None, (setting,), budgets)]

    @hookimpl
    def harness_models(self) -> list[ModelSpec]:
        (spec,) = torch_protonet.harness_models()
        row = TableRow("tuned-table", "Tuned ProtoNet", budget_params={"tuned": {"lr": 0.001}})
        return [dataclasses.replace(spec, name="tuned-protonet", rows=(row,))]


def test_a_budget_carries_on_from_the_same_cell_at_another_budget(host, tmp_path):
    host.register(TunedTable(), "tuned-plugin")
    table, results = host.tables.get("tuned-table"), tmp_path / "results"
    messages: list[str] = []
    assert reproduce(table, host, results, budget="tuned", seeds=[0], log=messages.append)["failed"]
    first = "the cell at that budget (" + str(results / "tuned-table/quick/tuned-protonet/5-way-1-shot/seed0")
    fix = (
        ") has no checkpoint.pkl; run it first: harness reproduce tuned-table --budget quick --row 'Tuned ProtoNet' "
        f"--setting '5-way 1-shot' --seeds 0 --results {results}"
    )
    assert any(first + fix in m for m in messages), messages
    reproduce(table, host, results, budget="quick", seeds=[0, 1], log=lambda _: None)
    reproduce(table, host, results, budget="tuned", seeds=[0, 1], log=lambda _: None)
    for seed in (0, 1):
        started, tuned = (
            json.loads(
                (results / f"tuned-table/{budget}/tuned-protonet/5-way-1-shot/seed{seed}/record.json").read_text()
            )
            for budget in ("quick", "tuned")
        )
        assert tuned["init_from"]["run_id"] == started["run_id"] and tuned["episodes_trained"] == 16
        assert tuned["config"]["init_from"] == "budget:quick" and tuned["config"]["params"]["lr"] == 0.001
        named = tuned["init_from"]["from"]
        assert named == f"../../../../quick/tuned-protonet/5-way-1-shot/seed{seed}", "relative: no machine's path"
        directory = results / f"tuned-table/tuned/tuned-protonet/5-way-1-shot/seed{seed}"
        assert json.loads((directory / named / "record.json").read_text())["run_id"] == started["run_id"]
    with pytest.raises(ConfigError, match="names a budget, which only a cell of harness reproduce has"):
        run(config(init_from="budget:quick"), host, tmp_path, name="b", **QUIET)


def test_a_budget_refuses_a_start_cell_copied_from_another_seed_or_without_its_checkpoint(host, tmp_path):
    host.register(TunedTable(), "tuned-plugin")
    table, results = host.tables.get("tuned-table"), tmp_path / "results"
    reproduce(table, host, results, budget="quick", seeds=[0], log=lambda _: None)
    cells = results / "tuned-table/quick/tuned-protonet/5-way-1-shot"
    shutil.copytree(cells / "seed0", cells / "seed1")  # seed 0's run where seed 1's belongs

    def failure(seed: int) -> str:
        messages: list[str] = []
        assert reproduce(table, host, results, budget="tuned", seeds=[seed], log=messages.append)["failed"]
        return next(m for m in messages if "cell.json" in m or "init_from" in m)

    assert "describes the cell tuned-table/quick/tuned-protonet/5-way-1-shot/seed0 but lies in" in failure(1)
    cell = json.loads((cells / "seed1/cell.json").read_text())
    (cells / "seed1/cell.json").write_text(json.dumps({**cell, "seed": 1}))  # the copy relabelled by hand
    command = "harness reproduce tuned-table --budget quick --row 'Tuned ProtoNet' --setting '5-way 1-shot' --seeds 1"
    assert (
        "is a run of seed 0 at budget 'quick', not this cell's seed 1 at 'quick' (a copied checkpoint?); "
        f"delete {cells / 'seed1'} and run it again: {command}"
    ) in failure(1)
    checkpoints.remove(cells / "seed0/checkpoint.pkl")  # finished, so reproduce would skip it: say how to remake it
    assert (
        f"has a record but no checkpoint.pkl; restore that file (e.g. git checkout), or delete {cells / 'seed0'} and "
        "run it again: harness reproduce tuned-table --budget quick"
    ) in failure(0)
    assert not list((results / "tuned-table/tuned").glob("*/*/*/record.json")), "nothing trained from them"
