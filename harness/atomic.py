"""Atomic file writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import errno
import json
import math
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a synced temporary file and ``os.replace``; a folder at ``path`` is an
    ``IsADirectoryError`` naming it, before anything is written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir() and not path.is_symlink():
        raise IsADirectoryError(errno.EISDIR, "a folder is where this file goes; move the folder away", str(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes files private; results and caches are for sharing
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename is None:  # a full disk's write error names no file
            exc.filename = str(path)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_json(path: Path, obj: Any) -> None:
    """Atomically write ``obj`` as indented, strict JSON: a NaN or infinite float is written as ``null``."""
    write_bytes(path, (json.dumps(strict(obj), indent=2, sort_keys=False, allow_nan=False) + "\n").encode())


def strict(obj: Any) -> Any:
    """``obj`` with every NaN or infinite float in its dicts, lists and tuples replaced by ``None``."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: strict(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict(value) for value in obj]
    return obj


def write_array(path: Path, array: Any) -> None:
    """Atomically save a NumPy array as ``.npy`` (no pickles)."""
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    write_bytes(path, buffer.getvalue())


def write_pickle(path: Path, obj: Any) -> None:
    """Atomically pickle ``obj``."""
    write_bytes(path, pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))
