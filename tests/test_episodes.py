"""Samplers, label codes, built-in metrics and the nearest-neighbour baseline on small real arrays."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import rngs

from harness.builtins.knn import NearestNeighbour
from harness.builtins.metrics import accuracy_per_instance, nway_kshot_accuracy, ordinal
from harness.builtins.synthetic import OPTIONS, make_splits
from harness.episodes import (
    EpisodeKind,
    EpisodeSettings,
    LabelEncoding,
    Prediction,
    string_label_code,
    string_label_decode,
    string_label_text,
)
from harness.sampling import ArrayEpisodeSource
from harness.specs import ModelContext, mean_ci95

SEQ = EpisodeSettings(EpisodeKind.SEQUENCE, ways=5, instances=10)
SEQ_STRING = EpisodeSettings(EpisodeKind.SEQUENCE, ways=5, instances=10, labels=LabelEncoding.STRING)
FEW = EpisodeSettings(EpisodeKind.FEWSHOT, ways=5, shots=2, queries=3)


@pytest.fixture(scope="module")
def source() -> ArrayEpisodeSource:
    return ArrayEpisodeSource(make_splits(OPTIONS), name="synthetic")


def test_string_labels_round_trip():
    ids = np.array([0, 1, 5, 3124])
    code = string_label_code(ids)
    assert code.shape == (4, 25) and (code.reshape(4, 5, 5).sum(-1) == 1).all()
    assert (string_label_decode(code) == ids).all()
    assert [string_label_text(i) for i in (0, 1, 5, 3124)] == ["aaaaa", "baaaa", "abaaa", "eeeee"]


@pytest.mark.parametrize("settings", [SEQ, SEQ_STRING, FEW])
def test_episodes_depend_only_on_their_generator(source, settings):
    batch = source.sample("train", settings, rngs(0, 4))
    again = source.sample("train", settings, rngs(0, 4))
    other = source.sample("train", settings, rngs(1, 4))
    alone = source.sample("train", settings, [np.random.default_rng([0, 2])])
    images = "images" if settings.kind is EpisodeKind.SEQUENCE else "query_images"
    assert np.array_equal(getattr(batch, images), getattr(again, images))
    assert not np.array_equal(getattr(batch, images), getattr(other, images))
    assert np.array_equal(getattr(batch, images)[2:3], getattr(alone, images))


def test_sequence_episode_structure(source):
    batch = source.sample("train", SEQ, rngs(0, 8))
    assert batch.images.shape == (8, 50, 1, 28, 28) and batch.images.dtype == np.float32
    assert batch.images.min() >= 0.0 and batch.images.max() <= 1.0
    for b in range(8):
        assert sorted(np.bincount(batch.classes[b])) == [10] * 5
        assert sorted(set(batch.targets[b])) == [0, 1, 2, 3, 4]
        for t in range(50):
            assert batch.instance[b, t] == (batch.classes[b, : t + 1] == batch.classes[b, t]).sum()
    assert (batch.previous_codes[:, 0] == 0).all()
    assert np.array_equal(batch.previous_codes[:, 1:], batch.codes[:, :-1])
    assert np.array_equal(batch.codes.argmax(-1), batch.targets)


def test_string_label_episodes(source):
    batch = source.sample("train", SEQ_STRING, rngs(3, 8))
    assert batch.codes.shape == (8, 50, 25)
    assert (string_label_decode(batch.codes) == batch.targets).all()
    for b in range(8):
        labels = {int(batch.targets[b, batch.classes[b] == c][0]) for c in range(5)}
        assert len(labels) == 5 and max(labels) < 3125


def test_fewshot_episode_structure(source):
    batch = source.sample("test", FEW, rngs(0, 4))
    assert batch.support_images.shape == (4, 10, 1, 28, 28) and batch.query_images.shape == (4, 15, 1, 28, 28)
    for b in range(4):
        assert sorted(np.bincount(batch.support_targets[b])) == [2] * 5
        assert sorted(np.bincount(batch.query_targets[b])) == [3] * 5
        flat = np.concatenate([batch.support_images[b], batch.query_images[b]]).reshape(25, -1)
        assert len({row.tobytes() for row in flat}) == 25, "an example appears twice in one episode"


def test_rotations_are_distinct_classes():
    base = np.arange(2 * 3 * 16, dtype=np.uint8).reshape(2, 3, 1, 4, 4)
    source = ArrayEpisodeSource({"train": base, "test": base}, rotations=True)
    assert source.num_classes("train") == 8
    settings = EpisodeSettings(EpisodeKind.FEWSHOT, ways=8, shots=1, queries=1)
    batch = source.sample("train", settings, rngs(0, 1))
    seen = {img.tobytes() for img in batch.support_images[0]}
    expected = {
        (np.rot90(base[c, e, 0], k).astype(np.float32) / 255).tobytes()
        for c in range(2) for e in range(3) for k in range(4)
    }  # fmt: skip
    assert seen <= expected and len(seen) == 8


def test_to_torch():
    torch = pytest.importorskip("torch")
    source = ArrayEpisodeSource(make_splits({**OPTIONS, "image_size": 20}))
    tensors = source.sample("train", SEQ, rngs(0, 2)).to_torch()
    assert tensors["images"].shape == (2, 50, 1, 20, 20) and tensors["images"].dtype == torch.float32
    assert tensors["targets"].dtype == torch.int64 and tensors["previous_codes"].shape == (2, 50, 5)


def test_metrics_by_hand():
    batch = ArrayEpisodeSource(make_splits(OPTIONS)).sample("train", SEQ, rngs(0, 2))
    predictions = batch.targets.copy()
    predictions[batch.instance == 1] = -1  # wrong on every first presentation
    per = accuracy_per_instance(batch, Prediction(predictions))
    assert list(per) == ["1st", "2nd", "3rd", "4th", "5th", "10th"]
    assert (per["1st"] == 0).all() and (per["2nd"] == 1).all() and (per["10th"] == 1).all()
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd",
    ]  # fmt: skip
    summary = mean_ci95(np.array([0.0, 1.0, 1.0, 1.0, np.nan]))
    assert summary.n == 4 and summary.mean == 0.75
    assert summary.ci95 == pytest.approx(1.96 * 0.5 / 2)


def test_knn_is_right_when_the_nearest_earlier_step_is_its_class(source):
    batch = source.sample("test", SEQ, rngs(0, 16))
    model = NearestNeighbour(ModelContext(SEQ, (1, 28, 28), {"k": 1}, 0))
    predictions = model.predict(batch.inputs())
    assert (predictions[:, 0] == 0).all()
    assert accuracy_per_instance(batch, Prediction(predictions))["2nd"].mean() > 0.9
    voting = NearestNeighbour(ModelContext(SEQ, (1, 28, 28), {"k": 3}, 0)).predict(batch.inputs())
    assert (voting[:, 1] == predictions[:, 1]).all()  # one earlier step: both take it
    few = source.sample("test", FEW, rngs(0, 16))
    assert nway_kshot_accuracy(few, Prediction(model.predict(few.inputs())))["5-way 2-shot"].mean() > 0.9


def test_the_fingerprint_changes_with_any_image_and_with_rotations():
    splits = make_splits(OPTIONS)
    first = ArrayEpisodeSource(splits).fingerprint()
    assert first == ArrayEpisodeSource({k: v.copy() for k, v in splits.items()}).fingerprint()
    assert first.startswith("sha256:") and len(first) == 7 + 64
    touched = {k: v.copy() for k, v in splits.items()}
    touched["test"][3, 1, 0, 5, 5] ^= 1
    assert ArrayEpisodeSource(touched).fingerprint() != first, "one pixel of one image"
    assert ArrayEpisodeSource(splits, rotations=True).fingerprint() != first
    renamed = {("other" if k == "val" else k): v for k, v in splits.items()}
    assert ArrayEpisodeSource(renamed).fingerprint() != first
