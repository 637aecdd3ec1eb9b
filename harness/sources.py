"""Opening a dataset plugin's episode source: its ``sample`` signature and how many episodes a split holds.

The harness calls ``sample(split, settings, rngs, indices)``. A source written for the
older three-argument ``sample(split, settings, rngs)`` keeps working: it is wrapped so
that the indices are left out. Any other signature is refused in one line.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from harness.episodes import EpisodeBatch, EpisodeSettings
from harness.errors import ConfigError, EpisodeCountError
from harness.specs import DatasetSpec, EpisodeSource

SIGNATURE = "sample(split, settings, rngs, indices)"
"""The signature the harness calls."""


def open_source(spec: DatasetSpec, options: Mapping[str, Any]) -> EpisodeSource:
    """``spec.factory(options)``, wrapped when its ``sample`` takes no ``indices``."""
    source = spec.factory(options)
    return source if _takes_indices(source, spec.name) else ThreeArgumentSource(source)


def episode_count(source: EpisodeSource, split: str) -> int | None:
    """Episodes ``split`` holds, from the source's optional ``episode_count(split)``; ``None``: unlimited."""
    count = getattr(source, "episode_count", None)
    return None if count is None else count(split)


def check_episode_count(source: EpisodeSource, spec: DatasetSpec, split: str, wanted: int, flag: str) -> None:
    """Raise ``EpisodeCountError`` when ``split`` holds fewer than ``wanted`` episodes, naming ``flag``."""
    count = episode_count(source, split)
    if count is not None and wanted > count:
        raise EpisodeCountError(
            f"dataset {spec.name!r} has {count} {split} episodes, fewer than the {wanted} asked for; "
            f"pass {flag} {count} (or fewer)",
            dataset=spec.name,
            count=count,
        )


class ThreeArgumentSource:
    """A source whose ``sample`` takes no ``indices``, called without them."""

    def __init__(self, source: Any) -> None:
        self.source = source

    def check(self, split: str, settings: EpisodeSettings) -> None:
        """The wrapped source's ``check``."""
        self.source.check(split, settings)

    def input_shape(self) -> tuple[int, int, int]:
        """The wrapped source's ``input_shape``."""
        return self.source.input_shape()

    def episode_count(self, split: str) -> int | None:
        """The wrapped source's episode count, if it gives one."""
        return episode_count(self.source, split)

    def sample(
        self, split: str, settings: EpisodeSettings, rngs: Sequence[np.random.Generator], indices: Sequence[int]
    ) -> EpisodeBatch:
        """The wrapped source's batch, drawn from ``rngs`` alone."""
        return self.source.sample(split, settings, rngs)


def _takes_indices(source: Any, name: str) -> bool:
    """Whether ``source.sample`` takes the indices; ``False`` for the older three-argument form."""
    try:
        signature = inspect.signature(source.sample)
    except AttributeError:
        raise ConfigError(f"dataset {name!r}: its source has no sample method; give it {SIGNATURE}") from None
    except (TypeError, ValueError):  # no signature to read (a builtin): assume the current form
        return True
    for arguments, current in ((4, True), (3, False)):
        try:
            signature.bind(*range(arguments))
        except TypeError:
            continue
        return current
    raise ConfigError(f"dataset {name!r}: its source's sample takes {signature}; give it {SIGNATURE}")
