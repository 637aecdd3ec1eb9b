"""Loaders that turn dataset files on disk into uint8 split arrays for the episode samplers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

CACHE_ENV = "HARNESS_CACHE_DIR"
"""Where decoded datasets are cached, unless a run's ``cache_dir`` option says otherwise."""


def cache_dir(option: Any) -> Path:
    """The cache folder: the ``cache_dir`` option, else ``$HARNESS_CACHE_DIR``, else ``~/.cache/harness``."""
    value = option if option not in (None, "") else os.environ.get(CACHE_ENV, "").strip()
    return Path(str(value)).expanduser() if value else Path.home() / ".cache" / "harness"
