"""``init_from``: a new run starting from the tested weights of a finished run, its optimizer afresh."""

from __future__ import annotations

import io

import pytest
from conftest import fewshot_config

from harness import checkpoints
from harness.cli import main
from harness.config import build_config
from harness.errors import ConfigError, HarnessError
from harness.runner import run

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

from harness_test_plugins import torch_protonet  # noqa: E402

QUIET = {"log": lambda _: None}


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
        (lambda a: _rewrite(a / "checkpoint.pkl", final=False), "that run has not finished (32 episodes trained)"),
        (
            lambda a: _rewrite(a / "checkpoint.pkl", model_state=_weights_of_another_shape()),
            "its weights do not fit this model (RuntimeError: Error(s) in loading state_dict for Sequential: Missing",
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


def test_another_model_or_one_without_training_is_refused(host, tmp_path, finished):
    source, _ = finished
    with pytest.raises(ConfigError, match="holds a run of model 'torch-protonet', not 'weighted-protonet'"):
        run(fewshot_config(init_from=str(source)), host, tmp_path, name="b", **QUIET)
    knn = build_config({"model": "knn", "kind": "fewshot", "eval_episodes": 8, "init_from": str(source)}, "test")
    with pytest.raises(ConfigError, match="model 'knn' has nothing to train, so init_from does not apply; drop it"):
        run(knn, host, tmp_path, name="c", **QUIET)
    with pytest.raises(ConfigError, match="init_from in test must name a finished run's directory"):
        config(init_from=" ")


def test_the_command_line_flag(tmp_path, capsys):
    code = main(["run", "--model", "knn", "--kind", "fewshot", "--init-from", str(tmp_path), "--out", str(tmp_path)])
    assert code == 2 and "init_from does not apply" in capsys.readouterr().err
