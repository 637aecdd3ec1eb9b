"""Shared fixtures: a fresh plugin host, test plugins on the path, subprocess helpers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.config import build_config
from harness.plugins import PluginHost

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
OMNIGLOT_DIR = Path(os.environ.get("HARNESS_OMNIGLOT_DIR") or REPO.parent / "shared" / "data" / "omniglot")
"""The Omniglot archives: ``$HARNESS_OMNIGLOT_DIR``, else ``../shared/data/omniglot``."""
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from harness_test_plugins import weighted_protonet  # noqa: E402

PROTONET = "harness_test_plugins.weighted_protonet"


@pytest.fixture
def host() -> PluginHost:
    """Built-ins only: no entry points, no HARNESS_PLUGINS."""
    return PluginHost(autoload=False, modules=[], strict=False)


@pytest.fixture
def protonet_host(host: PluginHost) -> PluginHost:
    """Built-ins plus the trainable test model ``weighted-protonet``."""
    host.register(weighted_protonet, "weighted-protonet-plugin")
    return host


@pytest.fixture
def toy_host(host: PluginHost) -> PluginHost:
    """Built-ins plus the toy table (``harness_test_plugins.toy_table``) over synthetic data."""
    from harness_test_plugins import toy_table

    host.register(toy_table, "toy-plugin")
    return host


def rngs(seed: int, n: int = 4) -> list:
    """``n`` episode generators for one seed, as the runner makes them."""
    import numpy as np

    return [np.random.default_rng([seed, i]) for i in range(n)]


def fewshot_config(**overrides):
    """A small 5-way 1-shot run of ``weighted-protonet`` on synthetic data."""
    values = {
        "model": "weighted-protonet",
        "kind": "fewshot",
        "ways": 5,
        "shots": 1,
        "queries": 2,
        "episodes": 96,
        "batch_size": 8,
        "eval_episodes": 64,
        "checkpoint_every": 16,
        "data": {"train_classes": 30, "val_classes": 5, "test_classes": 10},
    }
    values.update(overrides)
    return build_config(values, "test")


class Killed(BaseException):
    """Stands in for the process being killed (a BaseException, like KeyboardInterrupt, so no guard wraps it)."""


def killed_after(steps: int, model_class: type, config, host: PluginHost, directory: Path, monkeypatch) -> None:
    """Run ``config`` into ``directory`` and stop it as a kill would, in training step ``steps + 1`` of
    ``model_class`` (its checkpoints so far stay)."""
    from harness.runner import run

    done, train_step = 0, model_class.train_step

    def killed(self, batch):
        nonlocal done
        done += 1
        if done > steps:
            raise Killed
        return train_step(self, batch)

    with monkeypatch.context() as patch:
        patch.setattr(model_class, "train_step", killed)
        with pytest.raises(Killed):
            run(config, host, directory.parent, name=directory.name, log=lambda _: None)


def harness_cli(*args: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.CompletedProcess:
    """Run ``python -m harness ARGS`` with the test plugins importable."""
    full_env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], capture_output=True, text=True, env=full_env, **kwargs
    )


def killed_and_whole(args: list[str], out: Path, plugin: str, min_step: int) -> tuple[dict, dict, int]:
    """Run ``harness ARGS --out OUT/killed``, SIGKILL it once its checkpoint reaches ``min_step``,
    rerun it to the end; also run it whole in ``OUT/whole``. Returns both records and the episode killed at.
    """
    import json
    import signal
    import time

    from harness.checkpoints import load

    env = {"HARNESS_PLUGINS": plugin}
    checkpoint = out / "killed" / "r" / "checkpoint.pkl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", *args, "--out", str(out / "killed")],
        env={**os.environ, "PYTHONPATH": str(TESTS), **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (checkpoint.exists() and load(checkpoint)["step"] >= min_step):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = load(checkpoint)["episodes_trained"]
    resumed = harness_cli(*args, "--out", str(out / "killed"), env=env)
    whole = harness_cli(*args, "--out", str(out / "whole"), env=env)
    assert resumed.returncode == 0 and whole.returncode == 0, resumed.stderr + whole.stderr
    return json.loads(resumed.stdout), json.loads(whole.stdout), killed_at
