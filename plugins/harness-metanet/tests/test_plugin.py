"""The plugin through the harness: registration, one-line errors, runs, checkpoints, learning on Omniglot."""

from __future__ import annotations

import os
from pathlib import Path

import harness_metanet
import pytest

from harness.checkpoint_eval import evaluate_checkpoint
from harness.config import build_config
from harness.errors import ConfigError
from harness.plugins import PluginHost
from harness.prepare import prepare
from harness.runner import run
from harness.testing import write_miniimagenet

QUIET = {"log": lambda _: None}
REPO = Path(__file__).resolve().parents[3]
OMNIGLOT = Path(os.environ.get("HARNESS_OMNIGLOT_DIR") or REPO.parent / "shared" / "data" / "omniglot")
SMALL = {"filters": 8}
"""The paper's architecture, narrower: keeps the runs below a few seconds."""


@pytest.fixture
def host() -> PluginHost:
    host = PluginHost(autoload=False, modules=[], strict=True)
    host.register(harness_metanet, "metanet")
    return host


def config(**values):
    params = {**SMALL, **values.pop("params", {})}
    base = {"model": "metanet", "kind": "fewshot", "ways": 3, "shots": 2, "queries": 2, "episodes": 8,
            "batch_size": 4, "eval_episodes": 8, "checkpoint_every": 4, "device": "cpu", "params": params,
            "data": {"train_classes": 12, "val_classes": 3, "test_classes": 6}}  # fmt: skip
    return build_config({**base, **values}, "test")


def test_rows_use_the_papers_labels(host):
    from harness.builtins.tables import tables

    spec = host.models.get("metanet")
    rows = {(r.table, r.row, tuple(r.params.items()), r.settings) for r in spec.rows}
    assert rows == {
        ("metanet-omniglot", "MetaNet", (("variant", "full"),), ()),
        ("metanet-omniglot", "MetaNet\u2212", (("variant", "minus"),), ()),  # U+2212, as the paper prints it
        ("metanet-omniglot", "MetaNet+", (("variant", "plus"),), ()),
        ("metanet-miniimagenet", "MetaNet", (("variant", "full"),), ()),
    }
    assert {r.table for r in spec.rows} <= {t.name for t in tables()}
    assert [k.value for k in spec.episode_kinds] == ["fewshot"]
    assert spec.defaults["rep_loss_weight"] == 1.0 and spec.defaults["backbone"] == "auto"


def test_importing_the_plugin_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, harness_metanet; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"kind": "sequence"}, r"model 'metanet' with dataset 'synthetic' accepts only fewshot episodes, not sequence"),
        ({"params": {"variant": "metanet++"}}, r"metanet parameter variant must be one of full, minus, plus, got 'me"),
        (
            {"params": {"backbone": "resnet"}},
            r"metanet parameter backbone must be one of auto, omniglot, miniimagenet,",
        ),
        (
            {"data": {"image_size": 40}},
            r"metanet: image_size 40 does not fit backbone 'omniglot'; valid: 8\.\.32 \(set",
        ),
        (
            {"params": {"backbone": "miniimagenet"}},
            r"image_size 28 does not fit backbone 'miniimagenet'; valid: 65\.\.96",
        ),
        ({"params": {"rep_samples": 0}}, r"metanet parameter rep_samples must be an integer >= 1, got 0"),
        ({"params": {"grad_p": 0.0}}, r"metanet parameter grad_p must be a finite number > 0, got 0\.0"),
        ({"params": {"margin": -1.0}}, r"metanet parameter margin must be a finite number >= 0, got -1\.0"),
        ({"params": {"margin": float("inf")}}, r"'metanet' parameter margin must be a finite float \(or an int\)"),
        ({"params": {"rep_loss": "triplet"}}, r"metanet parameter rep_loss must be one of auto, ce, contrastive"),
    ],
)
def test_settings_metanet_cannot_take_stop_with_one_line(host, tmp_path, values, message):
    with pytest.raises(ConfigError, match=message) as err:
        run(config(**values), host, tmp_path, **QUIET)
    assert "\n" not in str(err.value)
    # No file (checkpoint, record, lock) is left.  Since harness d35bcb8 the runner locks, and so creates, the run
    # directory before the model is built, and a refused run leaves that directory behind, empty.
    assert not [p for p in tmp_path.rglob("*") if not p.is_dir()], "a refused run must leave nothing behind"


def test_the_training_loss_is_the_query_loss_plus_the_representation_loss(host):
    """Every slow parameter (b, u, m, d) learns from it; ``rep_loss_weight=0`` leaves the query loss alone."""
    import torch
    import torch.nn.functional as F

    from harness.evaluation import TRAIN, episode_rngs

    for weight in (1.0, 0):  # one shot, T >= N: every support example is sampled, no randomness
        prepared = prepare(config(shots=1, params={"rep_loss_weight": weight}), host)
        model = prepared.build_model()
        batch = prepared.source.sample("train", prepared.settings, episode_rngs(0, TRAIN, 0, 4))
        data = batch.to_torch(model.device)
        model.module.train()
        loss = model.loss(data)
        with torch.no_grad():
            logits = model.logits(data)
        query = F.cross_entropy(logits.flatten(0, 1), data["query_targets"].flatten())
        rep = model.module.last_rep_loss if weight else torch.zeros(())
        torch.testing.assert_close(loss.detach(), query + rep)
        loss.backward()
        groups = {name.split(".")[0] for name, p in model.module.named_parameters() if p.grad is not None}
        assert groups == {"b", "u", "m", "d"}
        assert all(p.grad.abs().sum() > 0 for p in model.module.parameters())


@pytest.mark.parametrize("variant", ["full", "minus", "plus"])
def test_each_variant_runs_end_to_end_and_the_checkpoint_gives_the_record(host, tmp_path, variant):
    """3-way 2-shot: contrastive pairs are sampled, so this also checks that evaluation does not depend on history."""
    record = run(config(params={"variant": variant}), host, tmp_path, name="r", **QUIET)
    assert record["episodes_trained"] == 8 and record["runtime"]["device"] == "cpu"
    assert record["config"]["params"]["variant"] == variant
    assert evaluate_checkpoint(tmp_path / "r" / "checkpoint.pkl", host)["metrics"] == record["metrics"]


def test_the_miniimagenet_backbone_runs_end_to_end_on_generated_84x84_colour_images(host, tmp_path):
    """mini-ImageNet is not on this machine: the batch-normalised backbone runs on small generated colour images."""
    root = write_miniimagenet(tmp_path / "mini")
    data = {"root": str(root), "cache_dir": str(tmp_path / "cache")}
    values = {"dataset": "miniimagenet", "ways": 2, "shots": 1, "queries": 1, "episodes": 2, "batch_size": 2,
              "eval_episodes": 2, "checkpoint_every": 2, "data": data}  # fmt: skip
    record = run(config(**values), host, tmp_path / "runs", name="mini", **QUIET)
    assert record["episodes_trained"] == 2
    assert record["config"]["params"]["backbone"] == "auto"
    assert prepare(config(**values), host).build_model().module.backbone == "miniimagenet"
    again = evaluate_checkpoint(tmp_path / "runs" / "mini" / "checkpoint.pkl", host, data=data, device="cpu")
    assert again["metrics"] == record["metrics"]


@pytest.mark.skipif(not (OMNIGLOT / "images_background.zip").exists(), reason="Omniglot archives not found")
def test_a_short_run_on_omniglot_beats_chance_in_seconds(host, tmp_path):
    """150 steps of 3-way 1-shot on real Omniglot (4 tasks of 5 queries per class, filters 8, Adam 5e-3), one
    thread: 57.5% +- 1.9% on 300 test episodes against the 33% of guessing, in 22-34 s on a loaded 2-core machine.

    Query loss alone (``rep_loss_weight=0``): with the representation loss added (the default) runs this short stayed
    at chance more often (README.md). When training leaves chance varies with the seed: from about step 50, and one
    seed of four was still at 39% after 200 steps.
    """
    import torch

    values = {"dataset": "omniglot", "ways": 3, "shots": 1, "queries": 5, "episodes": 600, "batch_size": 4,
              "eval_episodes": 300, "checkpoint_every": 600, "seed": 0, "params": {"lr": 0.005, "rep_loss_weight": 0},
              "data": {"root": str(OMNIGLOT)}}  # fmt: skip
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the measured run; other thread counts round differently
    try:
        record = run(config(**values), host, tmp_path, name="omniglot", **QUIET)
    finally:
        torch.set_num_threads(threads)
    accuracy = record["metrics"]["accuracy"]["accuracy"]
    assert accuracy["mean"] - accuracy["ci95"] > 1 / 3 + 0.1, accuracy


RUNS = REPO / "leaderboards" / "runs"
COMMITTED = sorted(str(p.parent.relative_to(RUNS)) for p in RUNS.glob("metanet-*/*/metanet*/*/seed*/record.json"))
CHECKED_EPISODES = 20
"""Test episodes re-evaluated per committed cell: a MetaNet test episode costs about half a second here, so the
first 20 of the 1,000 (the same episodes: each is drawn from the test stream by its index) stand for the rest."""


@pytest.mark.parametrize("cell", COMMITTED)
def test_a_committed_checkpoint_gives_the_values_in_its_record(host, cell, tmp_path):
    import numpy as np

    from harness import per_episode

    if not (OMNIGLOT / "images_background.zip").exists():
        pytest.skip(f"Omniglot archives not found in {OMNIGLOT}; set HARNESS_OMNIGLOT_DIR")
    directory = RUNS / cell
    assert (directory / "checkpoint.pkl").exists(), f"{cell}: its record is committed, its checkpoint is not"
    out = tmp_path / "episodes.npz"
    evaluate_checkpoint(
        directory / "checkpoint.pkl", host, eval_episodes=CHECKED_EPISODES, data={"root": str(OMNIGLOT)},
        device="cpu", episodes_out=out,
    )  # fmt: skip
    committed = per_episode.load(directory)
    with np.load(out) as again:
        assert list(again["episodes"]) == list(committed.episodes[:CHECKED_EPISODES])
        for metric, keys in committed.values.items():
            for key, column in keys.items():
                np.testing.assert_array_equal(again[f"{metric}/{key}"], column[:CHECKED_EPISODES])


def test_prediction_takes_its_per_example_gradients_outside_inference_mode(host):
    """Inside ``torch.inference_mode()`` torch 2.11 gave all-zero per-example gradients (measured on CPU and CUDA), so
    predictions were constant and accuracy exactly chance: MetaNet predicts under ``no_grad``, where they are right."""
    import torch

    from harness.evaluation import TEST, episode_rngs

    prepared = prepare(config(shots=1), host)
    model = prepared.build_model()
    batch = prepared.source.sample("test", prepared.settings, episode_rngs(0, TEST, 0, 2))
    seen = []
    model.module.register_forward_hook(lambda *_: seen.append(torch.is_inference_mode_enabled()))
    model.predict(batch.inputs())
    assert seen == [False]
    net, data = model.module, batch.inputs().to_torch(model.device)
    feats = net.b.trunk(data["support_images"]).flatten(0, 1)
    with torch.no_grad():
        grads = net.per_example_grads(net.b, feats, data["support_targets"].flatten())
    assert all(g.abs().sum() > 0 for g in grads.values())
