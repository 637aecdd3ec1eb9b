"""A third-party-style dataset of fixed, published one-shot test episodes (test split only)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from harness import hookimpl
from harness.builtins.synthetic import OPTIONS as SYNTHETIC_OPTIONS
from harness.builtins.synthetic import make_splits
from harness.episodes import EpisodeKind, EpisodeSettings, FewShotBatch
from harness.errors import ConfigError, DataError
from harness.specs import DatasetSpec

WAYS = 5
OPTIONS: dict[str, Any] = {"episodes": 40, "image_size": 28}


class PublishedEpisodes:
    """``episodes`` fixed 5-way 1-shot episodes with one query per class, served by index."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        size = int(options["image_size"])
        glyphs = make_splits({**SYNTHETIC_OPTIONS, "test_classes": 20, "examples": 4, "image_size": size})["test"]
        self.images = glyphs.astype(np.float32) / 255
        self.count = int(options["episodes"])
        table = np.random.default_rng(2024)  # how the "authors" drew their episodes, once
        self.classes = np.stack([table.permutation(len(glyphs))[:WAYS] for _ in range(self.count)])
        self.examples = np.stack([table.permutation(glyphs.shape[1])[:2] for _ in range(self.count)])

    def check(self, split: str, settings: EpisodeSettings) -> None:
        """Only 5-way 1-shot episodes with one query per class are published."""
        if (settings.kind, settings.ways, settings.shots, settings.queries) != (EpisodeKind.FEWSHOT, WAYS, 1, 1):
            raise ConfigError("published episodes are 5-way 1-shot with 1 query; pass --ways 5 --shots 1 --queries 1")

    def input_shape(self) -> tuple[int, int, int]:
        """(1, size, size)."""
        return (1, *self.images.shape[-2:])

    def episode_count(self, split: str) -> int | None:
        """How many episodes were published."""
        return self.count

    def episode(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Support and query images ``[5, 1, H, W]`` of published episode ``index``."""
        if not 0 <= index < self.count:
            raise DataError(f"there are only {self.count} published episodes, not {index + 1}; pass --eval-episodes")
        support, query = self.examples[index]
        return self.images[self.classes[index], support], self.images[self.classes[index], query]

    def sample(
        self, split: str, settings: EpisodeSettings, rngs: Sequence[np.random.Generator], indices: Sequence[int]
    ) -> FewShotBatch:
        """The published episodes ``indices``; the generators are not needed."""
        support, query = zip(*(self.episode(index) for index in indices), strict=True)
        targets = np.tile(np.arange(WAYS), (len(indices), 1))
        return FewShotBatch(settings, np.stack(support), targets, np.stack(query), targets.copy())


@hookimpl
def harness_datasets() -> list[DatasetSpec]:
    """Register ``published-oneshot``."""
    return [
        DatasetSpec(
            name="published-oneshot",
            description="Fixed published 5-way 1-shot test episodes (test).",
            splits=("test",),
            episode_kinds=(EpisodeKind.FEWSHOT,),
            factory=PublishedEpisodes,
            options=OPTIONS,
            val_split=None,
        )
    ]
