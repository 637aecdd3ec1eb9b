"""Tests of the example plugin, run against an installed harness (``pytest`` in this folder)."""

from __future__ import annotations

import pickle
import subprocess
import sys

import harness_example_plugin
import numpy as np
import pytest

from harness.episodes import EpisodeKind, EpisodeSettings, FewShotBatch, Prediction
from harness.plugins import PluginHost
from harness.specs import Model, ModelContext
from harness.torch import TorchModel

SETTINGS = EpisodeSettings(EpisodeKind.FEWSHOT, ways=5, shots=1, queries=3)


@pytest.fixture(scope="module")
def host() -> PluginHost:
    """Built-ins plus this plugin, registered by hand: no install or entry point needed."""
    host = PluginHost(autoload=False, modules=[], strict=True)
    host.register(harness_example_plugin, "example")
    return host


@pytest.fixture(scope="module")
def source(host: PluginHost):
    spec = host.datasets.get("synthetic")
    return spec.factory({**spec.options, "train_classes": 20, "test_classes": 10})


def batch(source, split: str, first: int, size: int = 4) -> FewShotBatch:
    """Episodes ``first .. first + size - 1``, each from its own seeded generator."""
    indices = range(first, first + size)
    return source.sample(split, SETTINGS, [np.random.default_rng([0, i]) for i in indices], indices)


def build(host: PluginHost, source, seed: int = 0) -> Model:
    spec = host.models.get("example-protonet")
    return spec.factory(ModelContext(SETTINGS, source.input_shape(), dict(spec.defaults), seed, device="cpu"))


def test_registered(host: PluginHost) -> None:
    spec = host.models.get("example-protonet")
    assert spec.episode_kinds == (EpisodeKind.FEWSHOT,)
    assert host.info("example").provides["models"] == ["example-protonet"]


def test_plugin_import_does_not_import_torch() -> None:
    code = "import sys, harness_example_plugin; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_trains_and_predicts(host: PluginHost, source) -> None:
    pytest.importorskip("torch")
    model = build(host, source)
    assert isinstance(model, Model) and isinstance(model, TorchModel)
    losses = [float(model.train_step(batch(source, "train", 4 * i))) for i in range(5)]
    assert all(np.isfinite(losses))
    test = batch(source, "test", 1000, size=8)
    prediction = model.predict(test.inputs())
    assert isinstance(prediction, Prediction) and prediction.labels.dtype == np.int64
    assert prediction.labels.shape == test.query_targets.shape
    assert prediction.scores is not None and prediction.scores.shape == (*test.query_targets.shape, SETTINGS.ways)
    assert ((prediction.labels >= 0) & (prediction.labels < SETTINGS.ways)).all()


def test_same_seed_same_run(host: PluginHost, source) -> None:
    pytest.importorskip("torch")
    first, second = (float(build(host, source, seed=3).train_step(batch(source, "train", 0))) for _ in range(2))
    assert first == second


def test_resume_matches_exactly(host: PluginHost, source) -> None:
    torch = pytest.importorskip("torch")
    model = build(host, source)
    for i in range(2):
        model.train_step(batch(source, "train", 4 * i))
    state = pickle.loads(pickle.dumps(model.state_dict()))  # the runner pickles checkpoints
    continued = [float(model.train_step(batch(source, "train", 4 * i))) for i in range(2, 4)]

    resumed = build(host, source, seed=99)  # the seed must not matter once the state is loaded
    resumed.load_state_dict(state)
    assert [float(resumed.train_step(batch(source, "train", 4 * i))) for i in range(2, 4)] == continued
    for a, b in zip(model.module.state_dict().values(), resumed.module.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    test = batch(source, "test", 1000).inputs()
    np.testing.assert_array_equal(model.predict(test).labels, resumed.predict(test).labels)
