"""Broken plugins, one per way a plugin can fail, for tests that the harness survives them."""

from __future__ import annotations

import numpy as np

from harness import hookimpl
from harness.builtins.knn import NearestNeighbour
from harness.builtins.synthetic import OPTIONS, open_synthetic
from harness.episodes import EpisodeKind
from harness.specs import DatasetSpec, ModelSpec


class RaisingHook:
    """Its model hook raises; its metric hook works but must be left out too."""

    @hookimpl
    def harness_models(self) -> list[ModelSpec]:
        raise RuntimeError("model table is corrupt")

    @hookimpl
    def harness_metrics(self) -> list:
        return []


class WrongReturnType:
    """Returns a dict instead of a list of ModelSpec."""

    @hookimpl
    def harness_models(self) -> dict:
        return {"name": "oops"}


class WrongItemType:
    """Returns a list holding something that is not a ModelSpec."""

    @hookimpl
    def harness_models(self) -> list:
        return ["knn2"]


class DuplicateKnn:
    """Registers a model named ``knn``, which the built-in already took."""

    @hookimpl
    def harness_models(self) -> list[ModelSpec]:
        return [ModelSpec("knn", "another knn", (EpisodeKind.FEWSHOT,), NearestNeighbour, {"k": 1}, False)]


class ArrayDefaults:
    """A model whose defaults hold a NumPy array, which no run config or record (JSON) can hold."""

    @hookimpl
    def harness_models(self) -> list[ModelSpec]:
        defaults = {"k": 1, "weights": np.arange(3)}
        return [ModelSpec("arrays", "knn with an array", (EpisodeKind.FEWSHOT,), NearestNeighbour, defaults, False)]


class KindAsString:
    """A model whose episode kinds are one string, not a tuple of ``EpisodeKind``."""

    @hookimpl
    def harness_models(self) -> list[ModelSpec]:
        return [ModelSpec("str-kind", "knn, kinds as a string", "fewshot", NearestNeighbour, {}, False)]  # type: ignore[arg-type]


class NanOption:
    """A dataset whose options hold a NaN, which strict JSON cannot hold."""

    @hookimpl
    def harness_datasets(self) -> list[DatasetSpec]:
        options = {**OPTIONS, "noise": float("nan")}
        kinds = (EpisodeKind.FEWSHOT,)
        return [DatasetSpec("nan-data", "synthetic with NaN", ("test",), kinds, open_synthetic, options)]
