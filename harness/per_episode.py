"""Per-episode metric values of a run: ``episodes.npz`` beside ``record.json``, which holds its SHA-256.

The file holds ``episodes``, the indices 0..n-1 of the test episodes in their seeded stream,
and one float64 array per metric key named ``metric/key`` (NaN where the key does not apply).
Runs tested on the same stream (dataset, data options, setting and ``eval_seed``) pair up
episode by episode, e.g. for the mean difference of two models and its confidence interval.
"""

from __future__ import annotations

import hashlib
import io
import math
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
MEMBER_MAX_BYTES = 2**28
"""The largest array read from a per-episode file (256 MiB): a run's hold a float64 per test episode (8 MB at a
million episodes)."""


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
    return decode(data, record["metrics"], path, fix)


def decode(data: bytes, metrics: dict[str, dict[str, object]], path: Path, fix: str) -> PerEpisode:
    """The arrays of ``metrics``' keys (the record's metrics) in the ``.npz`` bytes ``data``: only those members are
    read, each of at most ``MEMBER_MAX_BYTES``; anything else about the file is a one-line ``DataError``."""
    names = [EPISODES, *(f"{metric}/{key}" for metric, keys in metrics.items() for key in keys)]
    arrays: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = {info.filename: info for info in archive.infolist()}
            for name in names:
                info = members.get(f"{name}.npy")
                if info is None:
                    continue
                if info.file_size > MEMBER_MAX_BYTES:
                    raise DataError(
                        f"{path} holds {info.file_size:,} bytes of {name}, far more than a run writes; {fix}"
                    )
                with archive.open(info) as member:
                    arrays[name] = _array(member.read(), path, fix)
    except DataError:
        raise
    except Exception as exc:  # a file from elsewhere: any way it fails to read is its damage
        raise DataError(f"{path} is not a valid .npz file ({type(exc).__name__}); {fix}") from None
    episodes = arrays.get(EPISODES)
    if episodes is None:
        raise DataError(f"{path} lacks the episode indices; {fix}")
    values: dict[str, dict[str, np.ndarray]] = {}
    for metric, keys in metrics.items():
        for key in keys:
            column = arrays.get(f"{metric}/{key}")
            if column is None or column.shape != episodes.shape or column.dtype.kind != "f":
                raise DataError(f"{path} lacks the values of {metric} {key} its record reports; {fix}")
            values.setdefault(metric, {})[key] = column
    return PerEpisode(episodes, values)


def _array(data: bytes, path: Path, fix: str) -> np.ndarray:
    """The ``.npy`` bytes ``data`` as an array, refused unread where its header claims more values than it holds."""
    buffer = io.BytesIO(data)
    version = np.lib.format.read_magic(buffer)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, _, dtype = read_header(buffer)
    if math.prod(shape) * dtype.itemsize > len(data):
        raise DataError(f"{path} holds an array whose header claims more values than it has; {fix}")
    buffer.seek(0)
    return np.lib.format.read_array(buffer, allow_pickle=False)
