"""Opening a dataset plugin's episode source: its ``sample`` signature and how many episodes a split holds.

The harness calls ``sample(split, settings, rngs, indices)``. A source written for the
older three-argument ``sample(split, settings, rngs)`` keeps working: it is wrapped so
that the indices are left out. Any other signature is refused in one line.

The harness calls a source through ``GuardedSource``: what the dataset plugin raises
(``SystemExit`` included) becomes a one-line ``DatasetError`` naming the dataset and its
plugin, and so does an answer it cannot use (an episode count that is not an int >= 0 or
``None``, a fingerprint that is not a short string or ``None``, an image shape that is not
three sizes, a batch of another number of episodes than asked for).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from harness.episodes import EpisodeBatch, EpisodeSettings
from harness.errors import ConfigError, EpisodeCountError
from harness.guard import DatasetError, culprit, dataset_call
from harness.specs import DatasetSpec, EpisodeSource

SIGNATURE = "sample(split, settings, rngs, indices)"
"""The signature the harness calls."""

FINGERPRINT_MAX = 200
"""The longest ``fingerprint()`` a record takes."""


def open_source(spec: DatasetSpec, options: Mapping[str, Any], plugin: str) -> GuardedSource:
    """``spec.factory(options)`` (``spec`` from ``plugin``), guarded; wrapped when its ``sample`` takes no indices."""
    with dataset_call(spec.name, plugin, "its factory"):
        source = spec.factory(options)
    opened = source if _takes_indices(source, spec.name) else ThreeArgumentSource(source)
    return GuardedSource(opened, spec.name, plugin)


def episode_count(source: EpisodeSource, split: str) -> int | None:
    """Episodes ``split`` holds, from the source's optional ``episode_count(split)``; ``None``: unlimited."""
    count = getattr(source, "episode_count", None)
    return None if count is None else count(split)


def fingerprint(source: EpisodeSource) -> str | None:
    """The source's optional ``fingerprint()``: a digest of the data its episodes come from; ``None`` without one."""
    method = getattr(source, "fingerprint", None)
    return None if method is None else method()


def check_episode_count(source: EpisodeSource, spec: DatasetSpec, split: str, wanted: int, flag: str) -> None:
    """Raise ``EpisodeCountError`` when ``split`` holds fewer than ``wanted`` episodes, naming ``flag``."""
    count = episode_count(source, split)
    if count == 0 and wanted > 0:
        raise EpisodeCountError(
            f"dataset {spec.name!r} holds no {split} episodes: its {split} split is empty; "
            "give that split episodes or use another dataset",
            dataset=spec.name,
            count=0,
        )
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

    def fingerprint(self) -> str | None:
        """The wrapped source's fingerprint, if it gives one."""
        return fingerprint(self.source)

    def sample(
        self,
        split: str,
        settings: EpisodeSettings,
        rngs: Sequence[np.random.Generator],
        indices: Sequence[int] | None = None,
    ) -> EpisodeBatch:
        """The wrapped source's batch, drawn from ``rngs`` alone."""
        return self.source.sample(split, settings, rngs)


class GuardedSource:
    """A dataset's source whose calls and answers fail in one line naming the dataset and its plugin.

    Other attributes (an ``ArrayEpisodeSource``'s ``splits`` ...) are the wrapped source's.
    """

    def __init__(self, source: EpisodeSource, name: str, plugin: str) -> None:
        self.source, self.name, self.plugin = source, name, plugin

    def __getattr__(self, attribute: str) -> Any:
        """The wrapped source's other attributes, as they are."""
        if "source" not in vars(self):  # half-built (copy, pickle): no wrapped source to ask
            raise AttributeError(attribute)
        return getattr(self.source, attribute)

    def check(self, split: str, settings: EpisodeSettings) -> None:
        """The source's ``check``: a ``HarnessError`` it raises passes; anything else is a ``DatasetError``."""
        with dataset_call(self.name, self.plugin, "check"):
            self.source.check(split, settings)

    def input_shape(self) -> tuple[int, int, int]:
        """The source's (channels, height, width), refused unless three positive ints."""
        with dataset_call(self.name, self.plugin, "input_shape"):
            shape = self.source.input_shape()
        sizes = tuple(shape) if isinstance(shape, (tuple, list)) else ()
        if len(sizes) != 3 or not all(_is_int(size) and size > 0 for size in sizes):
            raise self._unusable(f"input_shape() returned {shape!r}, not (channels, height, width) as positive ints")
        return (int(sizes[0]), int(sizes[1]), int(sizes[2]))

    def episode_count(self, split: str) -> int | None:
        """Episodes ``split`` holds (``None``: unlimited), refused unless an int >= 0 or ``None``."""
        with dataset_call(self.name, self.plugin, "episode_count"):
            count = episode_count(self.source, split)
        if count is not None and not (_is_int(count) and count >= 0):
            raise self._unusable(f"episode_count({split!r}) returned {count!r}, not an int >= 0 or None")
        return None if count is None else int(count)

    def fingerprint(self) -> str | None:
        """The source's digest of its data (``None``: it gives none), refused unless a string of 1-200 characters."""
        with dataset_call(self.name, self.plugin, "fingerprint"):
            digest = fingerprint(self.source)
        if digest is not None and not (isinstance(digest, str) and 0 < len(digest) <= FINGERPRINT_MAX):
            shown = repr(digest)[:80]
            wanted = f"a string of 1-{FINGERPRINT_MAX} characters or None"
            raise self._unusable(f"fingerprint() returned {shown}, not {wanted}")
        return digest

    def sample(
        self,
        split: str,
        settings: EpisodeSettings,
        rngs: Sequence[np.random.Generator],
        indices: Sequence[int] | None = None,
    ) -> EpisodeBatch:
        """The source's batch, refused unless it holds one episode per index (per generator without indices)."""
        arguments = (split, settings, rngs) if indices is None else (split, settings, rngs, indices)
        with dataset_call(self.name, self.plugin, "sample"):
            batch = self.source.sample(*arguments)
            size = len(batch)
        asked = len(rngs) if indices is None else len(indices)
        if size != asked:
            raise self._unusable(
                f"sample returned a batch of {size} {split} episodes for the {asked} asked for; "
                "it must return one episode per index, in the order given"
            )
        return batch

    def _unusable(self, problem: str) -> DatasetError:
        """A ``DatasetError``: the plugin answered something the harness cannot use."""
        return DatasetError(f"{culprit('dataset', self.name, self.plugin)}: {problem}; fix the dataset plugin")


def _is_int(value: Any) -> bool:
    """Whether ``value`` is an integer (a NumPy one included), not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


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
