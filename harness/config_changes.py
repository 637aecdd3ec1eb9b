"""What differs between a run's saved config and the one asked for: the comparison behind resuming, retesting and
refusing a run of another config."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any

from harness.config import MACHINE_KEYS, RunConfig
from harness.tables import BUDGET


def plain(obj: Any) -> Any:
    """JSON round trip, so configs compare equal whether read from TOML, flags or a checkpoint."""
    return json.loads(json.dumps(obj))


def comparable(config: dict[str, Any]) -> dict[str, Any]:
    """A saved or wanted config with every key filled in and the machine keys (``device``) left out; ``init_from``
    as the absolute path it names (``r/base`` and ``/home/me/r/base/`` are one source)."""
    full = {**plain(RunConfig(model=config["model"]).to_dict()), **plain(config)}
    full["init_from"] = _absolute(full["init_from"])
    return {k: v for k, v in full.items() if k not in MACHINE_KEYS}


def _absolute(init_from: Any) -> Any:
    """A run directory ``init_from`` names, as an absolute path; anything else (``budget:NAME``) as it is."""
    if not isinstance(init_from, str) or init_from.startswith(BUDGET):
        return init_from
    try:
        return os.path.normpath(os.path.abspath(os.path.expanduser(init_from)))
    except (RuntimeError, ValueError):  # ~user of no such user, a NUL: refused when the run starts
        return init_from


def differences(saved: dict[str, Any], wanted: dict[str, Any], keys: Iterable[str]) -> str:
    """``key: saved -> wanted`` for each of ``keys`` whose values differ, comma-separated; empty if none do.

    Two tables (``params``, ``data``) are compared key by key: ``params.lr: 0.001 -> 0.003``."""
    return ", ".join(_changes(saved, wanted, keys, ""))


def _changes(saved: dict[str, Any], wanted: dict[str, Any], keys: Iterable[str], prefix: str) -> list[str]:
    changed = []
    for key in keys:
        old, new = saved.get(key), wanted.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            changed += _changes(old, new, sorted({*old, *new}), f"{prefix}{key}.")
        elif old != new and not (old != old and new != new):  # NaN against NaN is no change
            changed.append(f"{prefix}{key}: {old!r} -> {new!r}")
    return changed
