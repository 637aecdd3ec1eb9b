"""Cells on Ray (``harness.executors``): the driver's plugins, paths, environment and threads reach the workers,
and a wrong address, a dead worker and Ray's own output are each one line."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import TESTS, harness_cli
from harness_test_plugins import toy_ray
from lock_holder import held_elsewhere

from harness import hookimpl
from harness.errors import ConfigError, PluginError
from harness.executors import check_address, run_cell, worker_env
from harness.reproduce import reproduce, table_cells

TOY = "harness_test_plugins.toy_table"
TOY_RAY = "harness_test_plugins.toy_ray"
CRASHING = "harness_test_plugins.crashing"
CELL_5WAY = "toy-table/quick/toy-protonet/5-way-1-shot/seed0"


def test_the_ray_task_body_leaves_a_held_cell_alone_and_skips_a_done_one(toy_host, tmp_path):
    table = toy_host.tables.get("toy-table")
    (cell,) = (c for c in table_cells(table, toy_host, "quick", seeds=[0]) if c.name == CELL_5WAY)
    args = (
        cell.config.to_dict(),
        str(tmp_path / CELL_5WAY),
        {},
        cell.describe(),
        dict(cell.setting_config),
        toy_host.setup(),
    )
    with held_elsewhere(tmp_path / CELL_5WAY) as holder:
        outcome, holder_text = run_cell(*args)
    assert outcome == "elsewhere" and holder_text.startswith(f"pid {holder.pid} on ")
    assert [p.name for p in (tmp_path / CELL_5WAY).iterdir()] == [".lock"]
    reproduce(table, toy_host, tmp_path, seeds=[0])
    assert run_cell(*args) == ("skipped", "")


def test_a_worker_builds_the_drivers_plugins_those_registered_at_run_time_included(toy_host):
    toy_host.register(toy_ray, "ray-rows")
    rebuilt = toy_host.setup().build()
    assert [(i.name, i.origin) for i in rebuilt.plugins()] == [(i.name, i.origin) for i in toy_host.plugins()]
    assert rebuilt.models.names() == toy_host.models.names() and "toy-torch-protonet" in rebuilt.models


def test_a_plugin_object_registered_at_run_time_is_refused_for_ray_in_one_line(toy_host, tmp_path):
    class Models:
        @hookimpl
        def harness_metrics(self) -> list:
            return []

    toy_host.register(Models(), "object-plugin")
    with pytest.raises(PluginError) as err:
        reproduce(toy_host.tables.get("toy-table"), toy_host, tmp_path, executor="ray")
    assert str(err.value) == (
        "plugin 'object-plugin' is registered at run time as a Models object, which a Ray worker cannot import "
        "by name; register an importable module instead (or list it in HARNESS_PLUGINS)"
    )
    assert not any(tmp_path.iterdir())


def test_an_address_without_the_ray_executor_is_refused(toy_host, tmp_path):
    with pytest.raises(ConfigError, match=r"^--address is the address of a Ray cluster; add --executor ray"):
        reproduce(toy_host.tables.get("toy-table"), toy_host, tmp_path, address="127.0.0.1:6379")
    result = harness_cli("reproduce", "toy-table", "--address", "auto", "--results", str(tmp_path),
                         env={"HARNESS_PLUGINS": TOY})  # fmt: skip
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "add --executor ray" in result.stderr
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("address", ["cluster", "cluster:", ":6379", "ray://host:port"])
def test_an_address_that_is_not_host_and_port_is_refused(address):
    with pytest.raises(ConfigError, match=rf"^--address '{address}' is not HOST:PORT"):
        check_address(address)


def test_a_wrong_address_fails_in_one_line_within_seconds(tmp_path):
    start = time.monotonic()
    result = harness_cli("reproduce", "toy-table", "--executor", "ray", "--address", "127.0.0.1:1",
                         "--results", str(tmp_path), env={"HARNESS_PLUGINS": TOY}, timeout=120)  # fmt: skip
    assert time.monotonic() - start < 30
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "harness: error: no Ray cluster answers at 127.0.0.1:1 (Connection refused); "
        "start one there with 'ray start --head', or fix --address\n"
    )


def test_worker_env_carries_harness_variables_with_absolute_folders(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HARNESS_CACHE_DIR", "cache")
    monkeypatch.setenv("HARNESS_OMNIGLOT_DIR", "../shared/data/omniglot")
    monkeypatch.setenv("HARNESS_BLOCK_PLUGINS", "some-plugin")
    monkeypatch.syspath_prepend("src")
    env = worker_env()
    assert env["HARNESS_CACHE_DIR"] == str(tmp_path / "cache")
    assert env["HARNESS_OMNIGLOT_DIR"] == str(tmp_path.parent / "shared" / "data" / "omniglot")
    assert env["HARNESS_BLOCK_PLUGINS"] == "some-plugin"
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(tmp_path / "src")


@pytest.mark.slow
def test_plugins_registered_at_run_time_reach_a_local_ray(toy_host, tmp_path, monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.delenv("HARNESS_PLUGINS", raising=False)  # the toy table is registered in this process only
    table = toy_host.tables.get("toy-table")
    reproduce(table, toy_host, tmp_path / "local")
    done = reproduce(table, toy_host, tmp_path / "ray", executor="ray")
    assert len(done["run"]) == 2 and not done["failed"]
    for name in done["run"]:
        local = json.loads((tmp_path / "local" / name / "record.json").read_text())
        remote = json.loads((tmp_path / "ray" / name / "record.json").read_text())
        assert remote["metrics"] == local["metrics"] and remote["loss_history"] == local["loss_history"]


@pytest.mark.slow
def test_a_ray_the_caller_started_itself_still_gets_the_workers_environment(toy_host, tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    monkeypatch.delenv("HARNESS_PLUGINS", raising=False)  # the toy table is registered in this process only
    monkeypatch.delenv("PYTHONPATH", raising=False)  # so a worker imports it only through the tasks' environment
    table = toy_host.tables.get("toy-table")
    ray.init(include_dashboard=False, log_to_driver=False, num_cpus=2)  # a driver's own Ray, without our variables
    try:
        done = reproduce(table, toy_host, tmp_path, executor="ray")
        assert ray.is_initialized(), "the caller's Ray is left running"
    finally:
        ray.shutdown()
    assert len(done["run"]) == 2 and not done["failed"], done


@pytest.mark.slow
def test_a_worker_that_dies_fails_its_cell_in_one_line_and_stdout_keeps_the_results(tmp_path):
    pytest.importorskip("ray")
    env = {"HARNESS_PLUGINS": f"{TOY},{CRASHING}"}
    result = harness_cli("reproduce", "toy-table", "--executor", "ray", "--model", "toy-crasher", "--no-progress",
                         "--results", str(tmp_path / "out"), env=env, timeout=600)  # fmt: skip
    cell = "toy-table/quick/toy-crasher/5-way-1-shot/seed0"
    assert result.returncode == 2, result.stderr
    assert result.stdout.splitlines()[0] == "toy-table: 0 cells run, 0 already done, 1 failed"
    assert [line for line in result.stdout.splitlines() if not line.startswith("  leaderboard: ")][1:] == []
    failed = [line for line in result.stderr.splitlines() if line.startswith(f"{cell}: failed: ")]
    assert failed == [
        f"{cell}: failed: its Ray worker failed ({failed[0].split('(', 1)[1].split(')')[0]}); "
        "rerun the same command to resume it from its last checkpoint"
    ]
    assert "WorkerCrashedError" in failed[0] and "Traceback" not in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("sigint", ["default", "ignored"])  # ignored: as a shell starts a background job, or nohup
def test_sigterm_to_the_driver_has_each_running_cell_save_its_checkpoint_and_the_rerun_resumes_them(tmp_path, sigint):
    pytest.importorskip("ray")
    from harness.checkpoints import load

    results = tmp_path / "out"
    args = [sys.executable, "-m", "harness", "reproduce", "toy-table", "--executor", "ray", "--no-progress",
            "--results", str(results)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(TESTS), "HARNESS_PLUGINS": TOY, "HARNESS_TEST_DELAY": "0.5"}
    handler = signal.SIG_IGN if sigint == "ignored" else signal.SIG_DFL  # Python turns SIG_DFL into Ctrl-C's
    driver = subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, handler),
    )  # fmt: skip
    deadline = time.monotonic() + 120  # both cells training: each has saved a checkpoint (8 steps of 0.5 s each)
    while time.monotonic() < deadline and len(list(results.rglob("checkpoint.pkl"))) < 2:
        time.sleep(0.1)
    driver.send_signal(signal.SIGTERM)
    _, stderr = driver.communicate(timeout=180)
    assert driver.returncode == 128 + signal.SIGTERM, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("harness: ")]
    assert lines == [
        "harness: stopping 2 cells, each at a checkpoint it saves (Ctrl-C again: at once)",
        "harness: stopped by SIGTERM; the cells that were running saved their checkpoints; "
        "rerun the same command to resume them",
    ]
    assert not list(results.rglob(".lock")), "each cell let go of its directory: it stopped, it was not killed"
    assert all(0 < load(path)["step"] < 8 for path in results.rglob("checkpoint.pkl"))
    rerun = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    records = [json.loads(path.read_text()) for path in results.rglob("record.json")]
    assert len(records) == 2 and all(r["resumes"] == 1 and r["episodes_trained"] == 64 for r in records)


CLUSTER_ENV = {"RAY_AUTH_MODE": "disabled"}
"""The test cluster and its drivers go without token authentication (loopback only)."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def ray_cluster(tmp_path):
    """A ``ray start --head`` on 127.0.0.1 of the test's own (port, temp dir, 2 CPUs), stopped at the end."""
    pytest.importorskip("ray")
    port, temp = _free_port(), tempfile.mkdtemp(prefix="h-ray-")  # Ray's socket paths must stay short
    folder = tmp_path / "cluster"
    folder.mkdir()
    env = {**os.environ, **CLUSTER_ENV, "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0", "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    log = folder / "ray-start.log"
    with open(log, "w") as out:
        head = subprocess.Popen(
            [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
             f"--port={port}", f"--temp-dir={temp}", "--num-cpus=2", "--include-dashboard=false",
             "--disable-usage-stats", f"--object-store-memory={100 * 2**20}"],
            cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while "block forever" not in log.read_text():
            assert head.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        head.terminate()
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.torch
def test_a_ray_cluster_joined_by_address_from_another_folder_gives_the_in_process_numbers(ray_cluster, tmp_path):
    pytest.importorskip("torch")
    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    (work / "data" / toy_ray.MARKER).write_text("")
    env = {"PYTHONPATH": os.path.relpath(TESTS, work), "HARNESS_PLUGINS": f"{TOY},{TOY_RAY}", **CLUSTER_ENV}
    args = ("reproduce", "toy-table", "toy-rooted", "--data-dir", "rooted=data", "--no-progress")
    on_ray = harness_cli(*args, "--executor", "ray", "--address", ray_cluster, "--results", "ray",
                         env=env, cwd=work, timeout=600)  # fmt: skip
    here = harness_cli(*args, "--results", "here", env=env, cwd=work, timeout=600)
    assert on_ray.returncode == 0 and here.returncode == 0, on_ray.stderr + here.stderr
    assert on_ray.stdout.replace("ray/", "here/") == here.stdout  # only the results on stdout
    names = sorted(str(p.parent.relative_to(work / "here")) for p in (work / "here").rglob("record.json"))
    assert names == sorted(str(p.parent.relative_to(work / "ray")) for p in (work / "ray").rglob("record.json"))
    assert len(names) == 5 and any("toy-torch-protonet" in name for name in names)
    for name in names:
        local = json.loads((work / "here" / name / "record.json").read_text())
        remote = json.loads((work / "ray" / name / "record.json").read_text())
        assert remote["config"] == local["config"] and remote["config"]["threads"] == 1
        assert remote["metrics"] == local["metrics"] and remote["loss_history"] == local["loss_history"]
        assert remote["runtime"] == local["runtime"]
    too_many = harness_cli(*args, "--executor", "ray", "--address", ray_cluster, "--results", "ray3", "--threads", "3",
                           env=env, cwd=work, timeout=600)  # fmt: skip
    assert too_many.returncode == 2 and too_many.stderr.splitlines()[-1] == (
        "harness: error: a cell with threads = 3 needs 3 CPUs on one Ray node, and the largest node has 2; "
        "lower --threads or add a larger node"
    )
