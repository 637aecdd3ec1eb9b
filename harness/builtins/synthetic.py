"""Built-in ``synthetic`` dataset: procedurally drawn "characters", no download, for tests and demos."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np

from harness import hookimpl
from harness.episodes import EpisodeKind
from harness.errors import ConfigError
from harness.sampling import ArrayEpisodeSource, random_affine
from harness.specs import DatasetSpec

OPTIONS: dict[str, Any] = {
    "train_classes": 64,
    "val_classes": 16,
    "test_classes": 32,
    "examples": 20,
    "image_size": 28,
    "noise": 0.05,
    "seed": 0,
}

MAX_PIXELS = 2**28
"""Most pixels over the three splits (a GiB as the float32 images they are drawn as)."""


def make_splits(options: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Generate the three splits as uint8 ``[classes, examples, 1, size, size]`` arrays.

    Each class is a random blocky glyph; its examples are the glyph shifted and rotated
    a little, with a fraction ``noise`` of pixels flipped. Fully determined by ``seed``.
    """
    size, examples, noise = int(options["image_size"]), int(options["examples"]), float(options["noise"])
    for key in ("train_classes", "val_classes", "test_classes", "examples", "image_size"):
        if int(options[key]) < 1:
            raise ConfigError(f"synthetic dataset option {key} must be at least 1, got {options[key]}")
    pixels = sum(int(options[f"{split}_classes"]) for split in ("train", "val", "test")) * examples * size * size
    if pixels > MAX_PIXELS:
        raise ConfigError(
            f"synthetic dataset options make {pixels:,} pixels, over the {MAX_PIXELS:,} it generates in memory; "
            "lower train_classes, val_classes, test_classes, examples or image_size"
        )
    if not 0.0 <= noise < 0.5:
        raise ConfigError(f"synthetic dataset option noise must be in [0, 0.5), got {noise}")
    rng = np.random.default_rng(int(options["seed"]))
    splits = {}
    for split in ("train", "val", "test"):
        classes = int(options[f"{split}_classes"])
        grid = (rng.random((classes, 7, 7)) < 0.35).astype(np.float32)
        cell = -(-size // 7)
        glyphs = np.kron(grid, np.ones((cell, cell), dtype=np.float32))[:, :size, :size]
        images = np.repeat(glyphs[:, None], examples, axis=1).reshape(-1, 1, size, size)
        images = random_affine(images, rng, max_shift=1.5, max_degrees=8.0)
        binary = images > 0.5
        binary ^= rng.random(binary.shape) < noise
        splits[split] = (binary * 255).astype(np.uint8).reshape(classes, examples, 1, size, size)
    return splits


@functools.lru_cache(maxsize=4)
def _cached_splits(options: tuple[tuple[str, Any], ...]) -> dict[str, np.ndarray]:
    return make_splits(dict(options))


def open_synthetic(options: Mapping[str, Any]) -> ArrayEpisodeSource:
    """Build the synthetic episode source from its options (the last few are kept in memory)."""
    return ArrayEpisodeSource(_cached_splits(tuple(sorted(options.items()))), name="synthetic")


@hookimpl
def harness_datasets() -> list[DatasetSpec]:
    """Register the synthetic dataset."""
    return [
        DatasetSpec(
            name="synthetic",
            description="Procedurally drawn glyphs (no download): for tests, demos and plugin authors.",
            splits=("train", "val", "test"),
            episode_kinds=(EpisodeKind.SEQUENCE, EpisodeKind.FEWSHOT),
            factory=open_synthetic,
            options=OPTIONS,
        )
    ]
