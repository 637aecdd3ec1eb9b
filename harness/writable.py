"""Checking, before any work starts, that a command can write where its results go."""

from __future__ import annotations

import tempfile
from pathlib import Path

from harness.errors import ConfigError


def check_writable(folder: Path, option: str, what: str = "DIR naming a folder") -> None:
    """Raise a one-line ``ConfigError`` (``pass OPTION WHAT you can write to``) unless files can be made in ``folder``.

    A folder that does not exist yet is judged by its nearest existing parent, and nothing
    is created: the probe is an unnamed temporary file.
    """
    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        problem = f"{existing} is a file, not a folder"
    else:
        try:
            with tempfile.TemporaryFile(dir=existing):
                return
        except OSError as exc:
            problem = f"{existing} does not take new files ({type(exc).__name__}: {exc.strerror})"
    raise ConfigError(f"cannot write in {folder}: {problem}; pass {option} {what} you can write to")
