"""Augmentation: the batched float32 warp against a per-image reference, and per-episode draws."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import rngs

from harness.builtins.synthetic import OPTIONS, make_splits
from harness.episodes import EpisodeKind, EpisodeSettings
from harness.sampling import ArrayEpisodeSource, affine_draws, random_affine, warp_affine

SEQ = EpisodeSettings(EpisodeKind.SEQUENCE, ways=5, instances=4, augment=True)
FEW = EpisodeSettings(EpisodeKind.FEWSHOT, ways=5, shots=2, queries=3, augment=True)


def reference_affine(images: np.ndarray, rng: np.random.Generator, max_shift: float, max_degrees: float) -> np.ndarray:
    """The per-image float64 warp ``random_affine`` used to be, one image at a time."""
    out = np.zeros(images.shape, dtype=np.float64)
    n, _, h, w = images.shape
    angles = np.deg2rad(rng.uniform(-max_degrees, max_degrees, n))
    shifts = rng.uniform(-max_shift, max_shift, (n, 2))
    cy, cx = (h - 1) / 2, (w - 1) / 2
    for i in range(n):
        cos, sin = np.cos(angles[i]), np.sin(angles[i])
        for y in range(h):
            for x in range(w):
                dy, dx = y - cy - shifts[i, 0], x - cx - shifts[i, 1]
                sy, sx = cos * dy - sin * dx + cy, sin * dy + cos * dx + cx
                y0, x0 = int(np.floor(sy)), int(np.floor(sx))
                fy, fx = sy - y0, sx - x0
                for py, px, weight in (
                    (y0, x0, (1 - fy) * (1 - fx)),
                    (y0, x0 + 1, (1 - fy) * fx),
                    (y0 + 1, x0, fy * (1 - fx)),
                    (y0 + 1, x0 + 1, fy * fx),
                ):
                    if 0 <= py < h and 0 <= px < w:
                        out[i, :, y, x] += weight * images[i, :, py, px]
    return out


@pytest.fixture(scope="module")
def source() -> ArrayEpisodeSource:
    return ArrayEpisodeSource(make_splits({**OPTIONS, "image_size": 16}), name="synthetic")


@pytest.mark.parametrize(
    ("shape", "max_shift", "max_degrees"),
    [
        ((6, 1, 20, 20), 2.0, 10.0),  # Omniglot-like
        ((4, 3, 9, 13), 1.5, 30.0),  # channels, not square
        ((3, 1, 8, 8), 6.0, 180.0),  # far outside the image: the clipped path
        ((2, 2, 1, 5), 0.7, 20.0),
    ],
)
def test_warp_matches_per_image_reference(shape, max_shift, max_degrees):
    images = np.random.default_rng(1).random(shape).astype(np.float32)
    expected = reference_affine(images, np.random.default_rng(7), max_shift, max_degrees)
    rng = np.random.default_rng(7)
    got = random_affine(images, rng, max_shift, max_degrees)
    assert got.dtype == np.float32 and got.shape == shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-5)
    after = np.random.default_rng(7)
    after.random(3 * shape[0])
    assert rng.random() == after.random()  # it drew 3n uniforms, as before


def test_draws_are_those_of_generator_uniform():
    ours, theirs = np.random.default_rng(3), np.random.default_rng(3)
    angles, shifts = affine_draws(ours.random(3 * 11), 2.0, 10.0)
    assert np.array_equal(angles, np.deg2rad(theirs.uniform(-10.0, 10.0, 11)))
    assert np.array_equal(shifts, theirs.uniform(-2.0, 2.0, (11, 2)))
    batch = np.stack([np.random.default_rng(i).random(3 * 4) for i in range(5)])
    angles, shifts = affine_draws(batch, 2.0, 10.0)
    assert angles.shape == (5, 4) and shifts.shape == (5, 4, 2)
    assert np.array_equal(angles[3], affine_draws(batch[3], 2.0, 10.0)[0])


def test_integer_shift_moves_pixels_exactly():
    images = np.random.default_rng(0).random((3, 2, 7, 9)).astype(np.float32)
    shifts = np.array([[2.0, -1.0], [0.0, 0.0], [-3.0, 4.0]])
    got = warp_affine(images, np.zeros(3), shifts)
    for image, warped, (dy, dx) in zip(images, got, shifts.astype(int), strict=True):
        expected = np.zeros_like(image)
        # content moves by (dy, dx): output (y, x) shows input (y - dy, x - dx)
        expected[:, max(dy, 0) : 7 + min(dy, 0), max(dx, 0) : 9 + min(dx, 0)] = image[
            :, max(-dy, 0) : 7 + min(-dy, 0), max(-dx, 0) : 9 + min(-dx, 0)
        ]
        np.testing.assert_array_equal(warped, expected)


@pytest.mark.parametrize(("degrees", "turns"), [(90.0, -1), (-90.0, 1), (180.0, 2)])
def test_quarter_turns_are_rot90(degrees, turns):
    """Positive angles turn the content clockwise (with y down): ``np.rot90`` with negative ``k``."""
    images = np.random.default_rng(2).random((2, 1, 6, 6)).astype(np.float32)
    got = warp_affine(images, np.deg2rad(np.full(2, degrees)), np.zeros((2, 2)))
    np.testing.assert_allclose(got, np.rot90(images, k=turns, axes=(-2, -1)), rtol=0, atol=1e-5)


def test_uint8_scaled_like_unit_floats():
    from harness.sampling import _unit, _warp

    pixels = np.random.default_rng(4).integers(0, 256, (5, 1, 12, 12), dtype=np.uint8)
    angles, shifts = affine_draws(np.random.default_rng(5).random(15), 2.0, 10.0)
    np.testing.assert_array_equal(
        _warp(pixels, angles, shifts, scale=255.0), warp_affine(_unit(pixels), angles, shifts)
    )


def test_each_image_warps_as_it_would_alone(monkeypatch):
    import harness.sampling

    monkeypatch.setattr(harness.sampling, "_WARP_CHUNK_PIXELS", 3 * 20 * 20)  # several chunks
    images = np.random.default_rng(5).random((10, 1, 20, 20)).astype(np.float32)
    angles, shifts = affine_draws(np.random.default_rng(6).random(30), 2.0, 10.0)
    angles[4], shifts[4] = np.pi / 3, (5.0, -7.0)  # one image reaching far out widens every image's padding
    batch = warp_affine(images, angles, shifts)
    for i in range(10):
        np.testing.assert_array_equal(
            batch[i : i + 1], warp_affine(images[i : i + 1], angles[i : i + 1], shifts[i : i + 1])
        )


def test_empty_batch():
    assert warp_affine(np.zeros((0, 1, 5, 5), np.float32), np.zeros(0), np.zeros((0, 2))).shape == (0, 1, 5, 5)


@pytest.mark.parametrize("settings", [SEQ, FEW])
def test_augmented_episode_is_the_same_alone_or_in_a_batch(source, settings):
    batch = source.sample("train", settings, rngs(0, 6))
    again = source.sample("train", settings, rngs(0, 6)[1:4])
    for name in ("images",) if settings.kind is EpisodeKind.SEQUENCE else ("support_images", "query_images"):
        images = getattr(batch, name)
        assert images.dtype == np.float32 and images.flags.c_contiguous
        assert np.array_equal(images[1:4], getattr(again, name))
        for i in (0, 5):
            alone = source.sample("train", settings, [np.random.default_rng([0, i])])
            assert np.array_equal(images[i : i + 1], getattr(alone, name))


@pytest.mark.parametrize("settings", [SEQ, FEW])
def test_augmentation_only_on_the_train_split(source, settings):
    plain = dataclasses.replace(settings, augment=False)
    names = ("images",) if settings.kind is EpisodeKind.SEQUENCE else ("support_images", "query_images")
    for split in ("val", "test"):
        augmented, not_augmented = source.sample(split, settings, rngs(1, 3)), source.sample(split, plain, rngs(1, 3))
        for name in names:
            assert np.array_equal(getattr(augmented, name), getattr(not_augmented, name))
    augmented, not_augmented = source.sample("train", settings, rngs(1, 3)), source.sample("train", plain, rngs(1, 3))
    for name in names:
        a, b = getattr(augmented, name), getattr(not_augmented, name)
        assert a.shape == b.shape and a.dtype == b.dtype == np.float32
        assert not np.array_equal(a, b)
        assert a.min() >= 0 and a.max() <= 1 + 1e-6
        ratio = a.sum(axis=(-1, -2, -3)) / b.sum(axis=(-1, -2, -3))
        assert ((ratio > 0.5) & (ratio < 1.5)).all()  # the same images, moved a little: the ink stays
    for field in ("targets", "classes") if settings.kind is EpisodeKind.SEQUENCE else ("query_targets",):
        assert np.array_equal(getattr(augmented, field), getattr(not_augmented, field))
