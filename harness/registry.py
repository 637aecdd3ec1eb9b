"""Name -> spec registries that answer an unknown name with "did you mean ..."."""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Generic, TypeVar

from harness.errors import DuplicateNameError, UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Specs of one kind (``model``, ``dataset`` or ``metric``) keyed by name, each with its plugin."""

    def __init__(self, kind: str, blocked: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.blocked = blocked
        """Plugins left out by ``HARNESS_BLOCK_PLUGINS``: an unknown name may be one of theirs."""
        self._entries: dict[str, tuple[T, str]] = {}

    def add(self, name: str, spec: T, plugin: str) -> None:
        """Add ``spec`` from ``plugin``; a name already taken by another plugin is an error naming both."""
        if name in self._entries:
            other = self._entries[name][1]
            if other == plugin:
                raise DuplicateNameError(f"plugin {plugin!r} registers {self.kind} {name!r} twice; keep one")
            raise DuplicateNameError(
                f"{self.kind} {name!r} is registered by both plugin {other!r} and plugin {plugin!r}; "
                f"uninstall or disable one of them"
            )
        self._entries[name] = (spec, plugin)

    def replace(self, name: str, spec: T) -> None:
        """Put ``spec`` in place of the registered ``name``, keeping its plugin."""
        self._entries[name] = (spec, self.plugin_of(name))

    def remove(self, name: str) -> None:
        """Leave out the registered ``name``."""
        self.get(name)
        del self._entries[name]

    def get(self, name: str) -> T:
        """The spec called ``name``, or ``UnknownNameError`` with close matches."""
        try:
            return self._entries[name][0]
        except KeyError:
            raise UnknownNameError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        """One line: the unknown name, the closest matches and what is available."""
        close = difflib.get_close_matches(name, list(self._entries), n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        available = ", ".join(sorted(self._entries)) or "none"
        left_out = f"; left out by HARNESS_BLOCK_PLUGINS: {', '.join(self.blocked)}" if self.blocked else ""
        return f"unknown {self.kind} {name!r}{hint} (available: {available}; see 'harness plugins'){left_out}"

    def plugin_of(self, name: str) -> str:
        """Name of the plugin that registered ``name``."""
        self.get(name)
        return self._entries[name][1]

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[T]:
        return (self._entries[n][0] for n in self.names())

    def __len__(self) -> int:
        return len(self._entries)
