"""``harness.torch``: devices, precision, optimizers and schedules, checkpoints across devices, exact resume."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
from conftest import fewshot_config, harness_cli, killed_and_whole

from harness import checkpoints
from harness.checkpoint_eval import evaluate_checkpoint
from harness.checkpoints import load as load_checkpoint
from harness.errors import ConfigError, DataError
from harness.prepare import prepare
from harness.reproduce import reproduce
from harness.runner import run

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

from harness_test_plugins import torch_protonet, toy_table  # noqa: E402

from harness.torch import TorchModel  # noqa: E402

QUIET = {"log": lambda _: None}
PLUGIN = "harness_test_plugins.torch_protonet"


@pytest.fixture
def host(host):
    host.register(torch_protonet, "torch-protonet-plugin")
    return host


def config(**overrides):
    return fewshot_config(**{"model": "torch-protonet", "episodes": 64, "eval_episodes": 48, **overrides})


def test_trains_with_tensor_losses_and_records_where_it_ran(host, tmp_path):
    record = run(config(augment=True), host, tmp_path, name="r", **QUIET)
    assert record["runtime"]["device"] == "cpu" and record["runtime"]["torch_threads"] >= 1
    assert record["runtime"]["precision"] == "fp32" and record["runtime"]["compile"] == "off"
    assert all(np.isfinite(loss) for _, loss in record["loss_history"])
    assert record["metrics"]["accuracy"]["accuracy"]["mean"] > 0.3


def test_gpu_written_checkpoint_resumes_and_evaluates_on_the_cpu(host, tmp_path, monkeypatch):
    record = run(config(), host, tmp_path, name="r", **QUIET)
    path = tmp_path / "r" / "checkpoint.pkl"
    state = load_checkpoint(path)
    built = prepare(config(), host).build_model()
    built.load_state_dict(state["model_state"])
    # What a GPU run writes: every storage tagged "cuda:0".
    monkeypatch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
    gpu_state = built.state_dict()
    monkeypatch.undo()
    with pytest.raises(RuntimeError, match="CUDA"):
        torch.load(io.BytesIO(gpu_state["torch"]), weights_only=True)  # a plain load needs a GPU
    state.update(model_state=gpu_state, config={**state["config"], "device": "cuda"})
    checkpoints.save(path, {k: v for k, v in state.items() if k != "format"})
    assert evaluate_checkpoint(path, host, device="cpu")["metrics"] == record["metrics"]
    (tmp_path / "r" / "record.json").unlink()
    resumed = run(config(device="cpu"), host, tmp_path, name="r", **QUIET)
    assert resumed["metrics"] == record["metrics"] and resumed["resumes"] == 0  # trained: tested again, no resume


class _Shell:
    """Pickles to a call of ``os.system``: what forged weights would run if they were loaded unsafely."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        import os

        return (os.system, (self.command,))


def test_forged_torch_weights_in_a_checkpoint_are_refused_unloaded_naming_the_file(host, tmp_path):
    run(config(), host, tmp_path, name="r", **QUIET)
    path = tmp_path / "r" / "checkpoint.pkl"
    state = load_checkpoint(path)
    marker = tmp_path / "PWNED"
    forged = io.BytesIO()
    torch.save({"module": _Shell(f"touch '{marker}'")}, forged)
    state["model_state"] = {**state["model_state"], "torch": forged.getvalue()}
    checkpoints.save(path, {k: v for k, v in state.items() if k != "format"})
    refused = ("its torch weights name the global posix.system, which no run saves: a forged or foreign file, "
               "refused unloaded; delete it")  # fmt: skip
    with pytest.raises(DataError) as caught:
        evaluate_checkpoint(path, host)
    assert str(caught.value) == f"{path}: {refused}"
    with pytest.raises(DataError) as caught:
        run(config(init_from=str(path), episodes=32), host, tmp_path, name="s", **QUIET)
    assert str(caught.value) == f"init_from {path}: {refused}"
    (tmp_path / "r" / "record.json").unlink()
    state.update(final=False, episodes_trained=32)  # part way: a rerun resumes it
    checkpoints.save(path, {k: v for k, v in state.items() if k != "format"})
    with pytest.raises(DataError) as caught:
        run(config(), host, tmp_path, name="r", **QUIET)
    assert str(caught.value) == f"{path}: {refused}"
    assert not marker.exists()


def _compressed(data: bytes) -> bytes:
    """``data`` (a torch.save zip) with every entry deflated, as a forger would make a small file unpack large."""
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            target.writestr(info.filename, source.read(info))
    return out.getvalue()


def _weights(module: dict) -> bytes:
    buffer = io.BytesIO()
    torch.save({"module": module}, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("forge", "problem"),
    [
        (_compressed, "its torch weights are compressed, which torch.save never does (a few megabytes could unpack"),
        (lambda data: b"not torch at all", "its torch weights cannot be read (UnpicklingError: "),
        (lambda data: data[: len(data) // 2], "its torch weights cannot be read ("),
        (lambda data: _weights({"0.weight": torch.zeros(3, 3)}), "its weights do not fit this model (RuntimeError: "),
        (lambda data: b"", "its torch weights cannot be read ("),  # empty
    ],
)
def test_damaged_or_compressed_torch_weights_are_named_as_the_checkpoints_fault(host, tmp_path, forge, problem):
    run(config(), host, tmp_path, name="r", **QUIET)
    path = tmp_path / "r" / "checkpoint.pkl"
    state = load_checkpoint(path)
    state["model_state"] = {**state["model_state"], "torch": forge(state["model_state"]["torch"])}
    checkpoints.save(path, {k: v for k, v in state.items() if k != "format"})
    with pytest.raises(DataError) as caught:
        evaluate_checkpoint(path, host)
    assert str(caught.value).startswith(f"{path}: {problem}") and "\n" not in str(caught.value)


def test_a_checkpoint_whose_config_its_model_refuses_is_named_by_evaluate(host, tmp_path):
    run(config(), host, tmp_path, name="r", **QUIET)
    path = tmp_path / "r" / "checkpoint.pkl"
    state = load_checkpoint(path)
    state["config"] = {**state["config"], "params": {**state["config"]["params"], "lr_decay": 2.0}}
    checkpoints.save(path, {k: v for k, v in state.items() if k != "format"})
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: model 'torch-protonet' parameter lr_decay must"):
        evaluate_checkpoint(path, host)


RUN_ARGS = [
    "run", "--model", "torch-protonet", "--kind", "fewshot", "--queries", "2", "--episodes", "96",
    "--batch-size", "8", "--checkpoint-every", "8", "--eval-episodes", "24", "--augment", "--val-every", "32",
    "--val-episodes", "16", "--data", "train_classes=30", "--data", "test_classes=10", "--name", "r", "--json",
    "--no-progress",
]  # fmt: skip


@pytest.mark.slow
def test_sigkill_resume_is_bit_identical_with_dropout_and_augmentation(tmp_path):
    a, b, killed_at = killed_and_whole(RUN_ARGS, tmp_path, PLUGIN, min_step=5)
    assert 32 < killed_at < 96, "the run should have been killed after a validation, part way"
    assert a["resumes"] == 1 and b["resumes"] == 0
    for key in ("metrics", "loss_history", "val_history", "episodes_trained"):
        assert a[key] == b[key], key
    final_a, final_b = (
        torch.load(io.BytesIO(load_checkpoint(tmp_path / run / "r" / "checkpoint.pkl")["model_state"]["torch"]))
        for run in ("killed", "whole")
    )
    for key, tensor in final_a["module"].items():
        assert torch.equal(tensor, final_b["module"][key]), key


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"optimizer": "adamw"}, r"parameter optimizer must be one of adam, rmsprop, sgd, got 'adamw'; did you mean"),
        ({"schedule": "linear"}, r"parameter schedule must be one of none, step, cosine, got 'linear'"),
        (
            {"lr": -1.0},
            r"parameter lr must be a finite number above 0 and at most 3\.4e38 \(float32's largest\), got -1\.0",
        ),
        ({"lr": 0}, r"parameter lr must be a finite number above 0 and at most 3\.4e38 \(float32's largest\), got 0"),
        (
            {"lr": 1e300},
            r"parameter lr must be a finite number above 0 and at most 3\.4e38 \(float32's largest\), got 1e",
        ),
        ({"lr_decay": -0.5}, r"parameter lr_decay must be a finite number above 0 and at most 1 \(lr is multip"),
        ({"lr_decay": 0}, r"parameter lr_decay must be a finite number above 0 and at most 1 \(lr is multiplied"),
        ({"lr_decay": 2}, r"parameter lr_decay must be a finite number above 0 and at most 1 \(lr is multiplied"),
        ({"optimizer": "sgd", "momentum": 1.5}, r"parameter momentum must be a finite number >= 0 and below 1, got"),
        ({"lr": float("nan")}, r"parameter lr must be a finite float \(or an int\) like its default 0\.01, got nan"),
        ({"clip_norm": float("inf")}, r"parameter clip_norm must be a finite float \(or an int\) like its default"),
        ({"schedule": "step"}, r"schedule = step needs lr_step"),
        ({"schedule": "step", "lr_step": 2.5}, r"parameter lr_step must be an int like its default 0, got 2\.5"),
        ({"lr_step": -3}, r"parameter lr_step must be a whole number of training episodes >= 0, got -3"),
        (
            {"lr_step": 100},
            r"lr_step is read only by schedule = step, and schedule is none: pass schedule=step or drop",
        ),
        ({"momentum": 0.9}, r"momentum is read only by optimizer sgd or rmsprop \(adam keeps its own averages\)"),
    ],
)
def test_bad_training_options_are_one_line(host, tmp_path, params, message):
    with pytest.raises(ConfigError, match=message) as err:
        run(config(params=params), host, tmp_path, **QUIET)
    assert "\n" not in str(err.value)


def test_a_run_saved_with_an_option_now_refused_as_unread_still_resumes_and_is_tested(host, tmp_path):
    """Momentum with adam was ignored before a new run refused it: a checkpoint that holds it goes on as it began."""
    old = config(episodes=32, checkpoint_every=8)
    run(old, host, tmp_path, name="r", **QUIET)
    path = tmp_path / "r" / "checkpoint.pkl"
    state = checkpoints.load_run(path)
    state["config"]["params"]["momentum"] = 0.9  # what a run of before the refusal saved
    state["episodes_trained"], state["final"] = 16, False
    checkpoints.save(path, state)
    for name in ("record.json", "episodes.npz"):
        (tmp_path / "r" / name).unlink()
    record = run(config(episodes=32, checkpoint_every=8, params={"momentum": 0.9}), host, tmp_path, name="r", **QUIET)
    assert record["status"] == "complete" and record["episodes_trained"] == 32
    assert evaluate_checkpoint(path, host)["metrics"]["accuracy"]["accuracy"]["mean"] > 0
    with pytest.raises(ConfigError, match="momentum is read only by optimizer sgd or rmsprop"):  # a new run is not
        run(config(params={"momentum": 0.9}), host, tmp_path, name="new", **QUIET)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_one_line(host, tmp_path):
    with pytest.raises(
        ConfigError, match=r"device 'cuda' asked for, but this machine has no CUDA GPU; use --device"
    ) as e:
        run(config(device="cuda"), host, tmp_path, **QUIET)
    assert "\n" not in str(e.value)
    result = harness_cli("run", "--model", "torch-protonet", "--kind", "fewshot", "--device", "cuda:1", "--out",
                         str(tmp_path), "--no-progress", env={"HARNESS_PLUGINS": PLUGIN})  # fmt: skip
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "no CUDA GPU" in result.stderr
    host.register(toy_table, "toy-plugin")
    with pytest.raises(ConfigError, match=r"^device 'cuda' asked for, but this machine has no CUDA GPU; use --device"):
        reproduce(host.tables.get("toy-table"), host, tmp_path / "table", device="cuda")
    assert not (tmp_path / "table").exists()  # refused before any cell ran
    run(config(episodes=8), host, tmp_path, name="cpu", **QUIET)
    with pytest.raises(ConfigError, match=r"^device 'cuda' asked for, but this machine has no CUDA GPU; use --device"):
        evaluate_checkpoint(tmp_path / "cpu" / "checkpoint.pkl", host, device="cuda")  # the flag's, not the file's


def test_device_is_not_part_of_what_a_resume_must_match(host, tmp_path):
    first = run(config(device="cpu"), host, tmp_path, name="r", **QUIET)
    again = run(config(device="auto"), host, tmp_path, name="r", **QUIET)
    assert again == json.loads(json.dumps(first))


def test_bf16_autocast_trains(host, tmp_path):
    record = run(config(precision="bf16"), host, tmp_path, **QUIET)
    assert record["runtime"]["precision"] == "bf16"
    assert all(np.isfinite(loss) for _, loss in record["loss_history"])


def test_cosine_schedule_and_clipping(host, tmp_path):
    prepared = prepare(config(params={"schedule": "cosine", "clip_norm": 0.5, "optimizer": "rmsprop"}), host)
    model = prepared.build_model()
    assert isinstance(model.optimizer, torch.optim.RMSprop)
    source = prepared.source
    for step in range(prepared.total_steps):
        rngs = [np.random.default_rng([0, step, i]) for i in range(8)]
        model.train_step(source.sample("train", prepared.settings, rngs))
    assert model.optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-9)


def test_compile_that_fails_falls_back_with_a_warning(host, tmp_path, monkeypatch, capsys):
    def broken_compile(module):
        def call(*args, **kwargs):
            raise RuntimeError("inductor needs a compiler\nsecond line")

        return call

    monkeypatch.setattr(torch, "compile", broken_compile)
    record = run(config(compile=True), host, tmp_path, **QUIET)
    assert record["runtime"]["compile"].startswith("failed, ran without: RuntimeError: inductor needs a compiler")
    assert "torch.compile does not work for this model here" in capsys.readouterr().err
    plain = run(config(), host, tmp_path / "plain", **QUIET)
    assert record["metrics"] == plain["metrics"]


def test_base_class_needs_the_three_methods():
    from harness.episodes import EpisodeKind, EpisodeSettings
    from harness.specs import ModelContext
    from harness.training import TRAINING_DEFAULTS

    context = ModelContext(EpisodeSettings(EpisodeKind.FEWSHOT, 5), (1, 8, 8), TRAINING_DEFAULTS, 0, device="cpu")
    with pytest.raises(NotImplementedError):
        TorchModel(context)


def test_a_finished_run_keeps_only_the_tested_weights(host, tmp_path):
    record = run(config(val_every=32, val_episodes=16, keep="best"), host, tmp_path, name="r", **QUIET)
    state = load_checkpoint(tmp_path / "r" / "checkpoint.pkl")
    assert state["final"] and state["best"] is None and state["kept"] == record["kept"]
    assert set(torch.load(io.BytesIO(state["model_state"]["torch"]), weights_only=True)) == {"module"}
    result = evaluate_checkpoint(tmp_path / "r" / "checkpoint.pkl", host)
    assert result["metrics"] == record["metrics"] and result["kept"] == "best"
    assert result["kept_episode"] == record["kept"]["episode"]
    assert result["data"] == record["provenance"]["data"]["test_dataset"] is not None, "tested on the same images"


@pytest.mark.parametrize("inference_mode", [True, False])
def test_prediction_runs_in_inference_mode_unless_the_model_opts_out(host, inference_mode):
    """``inference_mode = False`` predicts under ``no_grad`` (a forward pass that takes gradients itself needs it)."""
    model = prepare(config(), host).build_model()
    model.inference_mode = inference_mode
    seen = []
    model.module.register_forward_hook(
        lambda *_: seen.append((torch.is_inference_mode_enabled(), torch.is_grad_enabled()))
    )
    batch = prepare(config(), host).source.sample("test", model.context.settings, [np.random.default_rng(0)])
    model.predict(batch.inputs())
    assert seen == [(inference_mode, False)]
