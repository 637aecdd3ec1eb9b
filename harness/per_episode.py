"""Per-episode metric values of a run: ``episodes.npz`` beside ``record.json``, which holds its SHA-256.

The file holds ``episodes``, the indices 0..n-1 of the test episodes in their seeded stream,
and one float64 array per metric key named ``metric/key`` (NaN where the key does not apply).
Runs tested on the same stream (dataset, data options, setting and ``eval_seed``) pair up
episode by episode, e.g. for the mean difference of two models and its confidence interval.
"""

from __future__ import annotations

import hashlib
import io
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness import atomic, files, records
from harness.errors import DataError

FILE = "episodes.npz"
EPISODES = "episodes"
"""Name of the array of episode indices."""


@dataclass(frozen=True)
class PerEpisode:
    """Each test episode's value of every metric key, with the episodes' indices in the test stream."""

    episodes: np.ndarray
    values: dict[str, dict[str, np.ndarray]]
    """``{metric: {key: float64 array shaped like episodes}}``."""

    def encode(self) -> bytes:
        """The ``.npz`` bytes: no pickles, and a fixed timestamp, so the same values give the same bytes."""
        arrays = {EPISODES: self.episodes} | {
            f"{metric}/{key}": column for metric, keys in self.values.items() for key, column in keys.items()
        }
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for name, array in arrays.items():
                info = zipfile.ZipInfo(f"{name}.npy")
                info.compress_type = zipfile.ZIP_DEFLATED
                with archive.open(info, "w") as member:
                    np.lib.format.write_array(member, np.asarray(array), allow_pickle=False)
        return buffer.getvalue()


def is_file(path: Path) -> bool:
    """Whether ``path`` looks like a per-episode file: a regular file (a FIFO is never opened), a zip holding the
    ``episodes`` array."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            return False
        with zipfile.ZipFile(path) as archive:
            return f"{EPISODES}.npy" in archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def write(directory: Path, values: PerEpisode) -> dict[str, str]:
    """Atomically write ``FILE`` into ``directory``; return the record's reference to it (file name, SHA-256)."""
    return write_file(directory / FILE, values, name=FILE)


def write_file(path: Path, values: PerEpisode, name: str | None = None) -> dict[str, str]:
    """Atomically write the values to ``path``; return ``file`` (``name``, default the path) and its SHA-256."""
    data = values.encode()
    atomic.write_bytes(path, data)
    return {"file": name or str(path), "sha256": hashlib.sha256(data).hexdigest()}


def load(run_dir: str | Path) -> PerEpisode:
    """The per-episode values of a complete run; refused in one line unless they match its record's SHA-256
    (the fix: test the run again, which writes both anew)."""
    record_path = Path(run_dir) / records.RECORD
    if not record_path.exists():
        raise DataError(f"{record_path} does not exist; finish the run first (rerun its command)")
    fix = records.record_fix(record_path, "rerun its command")
    record = records.read_record(record_path, fix)
    if record.get("per_episode") is None:
        raise DataError(f"{record_path} keeps no per-episode values (an older harness wrote it); {fix}")
    path = record_path.parent / record["per_episode"]["file"]
    try:
        data = files.read_regular(path)
    except FileNotFoundError:
        raise DataError(f"{path} is missing but {record_path} refers to it; {fix}") from None
    except IsADirectoryError:
        raise DataError(f"{path} is a folder, not the file {record_path} refers to; {fix}") from None
    except files.NotRegularFile:
        raise DataError(f"{path} is not a regular file (a FIFO, device or socket); {fix}") from None
    if hashlib.sha256(data).hexdigest() != record["per_episode"]["sha256"]:
        raise DataError(f"{path} does not match the SHA-256 in {record_path}: it was changed or damaged; {fix}")
    return _decode(data, record["metrics"], path, fix)


def _decode(data: bytes, metrics: dict[str, dict[str, object]], path: Path, fix: str) -> PerEpisode:
    """The arrays of ``metrics``' keys (the record's metrics) in the ``.npz`` bytes ``data``."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path} is not a valid .npz file ({type(exc).__name__}); {fix}") from None
    episodes = arrays.get(EPISODES)
    values: dict[str, dict[str, np.ndarray]] = {}
    for metric, keys in metrics.items():
        for key in keys:
            column = arrays.get(f"{metric}/{key}")
            if episodes is None or column is None or column.shape != episodes.shape:
                raise DataError(f"{path} lacks the values of {metric} {key} its record reports; {fix}")
            values.setdefault(metric, {})[key] = column
    if episodes is None:
        raise DataError(f"{path} lacks the episode indices; {fix}")
    return PerEpisode(episodes, values)
