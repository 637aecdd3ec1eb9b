"""The ``threads`` run setting: torch's CPU threads, fixed per run, recorded, and old checkpoints resume."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from conftest import TESTS, fewshot_config, harness_cli
from harness_test_plugins import toy_table

from harness import checkpoints
from harness.config import build_config
from harness.errors import ConfigError
from harness.reproduce import reproduce
from harness.runner import run

QUIET = {"log": lambda _: None}


@pytest.fixture
def torch_host(host):
    """Built-ins plus ``torch-protonet``; torch's thread count is put back afterwards."""
    torch = pytest.importorskip("torch")
    from harness_test_plugins import torch_protonet

    before = torch.get_num_threads()
    host.register(torch_protonet, "torch-protonet-plugin")
    yield host
    torch.set_num_threads(before)


@pytest.mark.torch
@pytest.mark.parametrize("threads", [2, 1])
def test_a_torch_run_uses_and_records_the_threads_it_is_given(torch_host, tmp_path, threads):
    import torch

    torch.set_num_threads(3)  # whatever the process had before, the run decides
    config = fewshot_config(model="torch-protonet", episodes=16, eval_episodes=16, threads=threads)
    record = run(config, torch_host, tmp_path, name="r", **QUIET)
    assert record["config"]["threads"] == threads and record["runtime"]["torch_threads"] == threads
    assert checkpoints.load(tmp_path / "r" / "checkpoint.pkl")["config"]["threads"] == threads


def test_a_numpy_model_run_leaves_torch_unimported(tmp_path):
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from harness.config import build_config
        from harness.plugins import PluginHost
        from harness.runner import run
        config = build_config({{"model": "knn", "kind": "fewshot", "eval_episodes": 8, "threads": 2}})
        run(config, PluginHost(autoload=False, modules=[]), Path({str(tmp_path)!r}), log=lambda _: None)
        print("torch" in sys.modules)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=TESTS)
    assert (out.returncode, out.stdout.strip()) == (0, "False"), out.stderr


def test_threads_is_a_flag_of_run_and_of_reproduce(host, tmp_path):
    result = harness_cli("run", "--model", "knn", "--kind", "fewshot", "--eval-episodes", "8", "--threads", "2",
                         "--json", "--out", str(tmp_path / "run"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["config"]["threads"] == 2
    host.register(toy_table, "toy-plugin")
    done = reproduce(host.tables.get("toy-table"), host, tmp_path / "table", threads=2)
    for name in done["run"]:
        assert json.loads((tmp_path / "table" / name / "record.json").read_text())["config"]["threads"] == 2
    for threads, given in ((0, "0"), (100_000, "100,000")):  # 100,000 crashed the process (no thread left)
        with pytest.raises(ConfigError, match=rf"^--threads must be from 1 to 1,024, got {given}$"):
            reproduce(host.tables.get("toy-table"), host, tmp_path / "bad", threads=threads)
    assert not (tmp_path / "bad").exists()


def test_a_checkpoint_from_before_threads_resumes_as_one_thread_and_no_other(protonet_host, tmp_path):
    run(fewshot_config(), protonet_host, tmp_path, name="r", **QUIET)
    (tmp_path / "r" / "record.json").unlink()
    path = tmp_path / "r" / "checkpoint.pkl"
    state = checkpoints.load(path)
    del state["config"]["threads"]  # as every checkpoint written before the key existed
    checkpoints.save(path, {k: v for k, v in state.items() if k != "format"})
    with pytest.raises(ConfigError, match=r"holds a run with another config \(threads: 1 -> 2\)"):
        run(fewshot_config(threads=2), protonet_host, tmp_path, name="r", **QUIET)
    messages: list[str] = []
    record = run(fewshot_config(), protonet_host, tmp_path, name="r", log=messages.append)
    assert record["resumes"] == 0 and record["config"]["threads"] == 1  # trained already: tested again
    assert any(m.startswith("testing the trained checkpoint of ") for m in messages)


def test_threads_must_be_a_positive_integer():
    with pytest.raises(ConfigError, match=r"^threads in test must be at least 1, got 0$"):
        build_config({"model": "knn", "threads": 0}, "test")
    with pytest.raises(ConfigError, match=r"^threads in test must be at most 1,024, got 100,000$"):
        build_config({"model": "knn", "threads": 100_000}, "test")
    with pytest.raises(ConfigError, match=r"^threads in test must be int, got '2'$"):
        build_config({"model": "knn", "threads": "2"}, "test")
