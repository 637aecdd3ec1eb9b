"""A plugin module registering a model named ``knn`` (the built-in's name) beside one of its own."""

from __future__ import annotations

from harness import hookimpl
from harness.builtins.knn import NearestNeighbour
from harness.episodes import EpisodeKind
from harness.specs import ModelSpec


@hookimpl
def harness_models() -> list[ModelSpec]:
    """``knn`` (taken by the built-in) and ``knn-copy``."""
    kinds = (EpisodeKind.FEWSHOT,)
    return [
        ModelSpec("knn", "Another knn (test).", kinds, NearestNeighbour, {"k": 1}, False),
        ModelSpec("knn-copy", "A knn under its own name (test).", kinds, NearestNeighbour, {"k": 1}, False),
    ]
