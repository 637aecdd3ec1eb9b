"""``faulty``: the synthetic dataset with a fault its option ``mode`` names (``ok``: none).

``factory`` and ``check`` raise there; ``factory_exit`` and ``sample_exit`` call ``sys.exit``;
``count_raise`` raises in ``episode_count``, ``count_str``, ``count_negative``, ``count_float``
and ``count_zero`` make it return ``"12"``, -3, 2.5 and 0; ``fewer`` and ``more`` make
``sample`` return one episode fewer or more than asked for; ``shape`` gives a 2-d image shape;
``fingerprint_raise`` raises in ``fingerprint``, ``fingerprint_int`` and ``fingerprint_long``
make it return 7 and 300 characters (otherwise it gives none).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from harness import hookimpl
from harness.builtins.synthetic import OPTIONS as SYNTHETIC_OPTIONS
from harness.builtins.synthetic import open_synthetic
from harness.episodes import EpisodeBatch, EpisodeKind, EpisodeSettings
from harness.specs import DatasetSpec

OPTIONS: dict[str, Any] = {"mode": "ok"}
COUNTS: dict[str, Any] = {"count_str": "12", "count_negative": -3, "count_float": 2.5, "count_zero": 0}
"""What ``episode_count`` returns in each of these modes."""
PRINTS: dict[str, Any] = {"fingerprint_int": 7, "fingerprint_long": "x" * 300}
"""What ``fingerprint`` returns in each of these modes."""


class Faulty:
    """A small synthetic dataset that breaks where ``mode`` says."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.mode = options["mode"]
        if self.mode == "factory":
            raise ValueError("cannot open the archive")
        if self.mode == "factory_exit":
            sys.exit(3)
        sizes = {"train_classes": 10, "val_classes": 5, "test_classes": 10, "examples": 4}
        self.inner = open_synthetic({**SYNTHETIC_OPTIONS, **sizes})

    def check(self, split: str, settings: EpisodeSettings) -> None:
        """The synthetic check, or a ``KeyError``."""
        if self.mode == "check":
            raise KeyError(split)
        self.inner.check(split, settings)

    def input_shape(self) -> tuple[int, int, int]:
        """(1, 28, 28), or two sizes only."""
        return (28, 28) if self.mode == "shape" else self.inner.input_shape()  # type: ignore[return-value]

    def episode_count(self, split: str) -> Any:
        """Unlimited (``None``), or what ``COUNTS`` says, or a ``RuntimeError``."""
        if self.mode == "count_raise":
            raise RuntimeError("index file missing")
        return COUNTS.get(self.mode)

    def fingerprint(self) -> Any:
        """None (it gives none), or what ``PRINTS`` says, or a ``RuntimeError``."""
        if self.mode == "fingerprint_raise":
            raise RuntimeError("digest unavailable")
        return PRINTS.get(self.mode)

    def sample(
        self, split: str, settings: EpisodeSettings, rngs: Sequence[np.random.Generator], indices: Sequence[int]
    ) -> EpisodeBatch:
        """The synthetic batch, or one episode fewer or more, or ``sys.exit``."""
        if self.mode == "sample_exit":
            sys.exit(0)
        rngs, indices = list(rngs), list(indices)
        if self.mode == "fewer":
            rngs, indices = rngs[:-1], indices[:-1]
        if self.mode == "more":
            rngs, indices = [*rngs, rngs[0]], [*indices, indices[0]]
        return self.inner.sample(split, settings, rngs, indices)


@hookimpl
def harness_datasets() -> list[DatasetSpec]:
    """Register ``faulty``."""
    return [
        DatasetSpec(
            "faulty", "Breaks on purpose (test).", ("train", "val", "test"), (EpisodeKind.FEWSHOT,), Faulty, OPTIONS
        )
    ]
