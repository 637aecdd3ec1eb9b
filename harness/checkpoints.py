"""Run checkpoints: what a run saves while it trains, so that it can resume exactly.

A checkpoint is one atomically written file holding the step reached, the loss and
validation curves, the model's state (weights, optimizer, RNG) and, with ``keep =
best``, the state of the best validated model. Reading one never runs code, and a
damaged one is refused in one line. The file (format version 2), integers little-endian::

    offset  size  field
         0     8  magic: b"\\x89HARNESS"
         8     4  format version (uint32): 2
        12     8  payload length n (uint64)
        20    32  SHA-256 of bytes 0-19 followed by the payload
        52     n  payload: the state dict, pickled (protocol 5) and read back with
                  ``harness.safepickle``, which builds plain values and NumPy arrays only

Version 1 files (a bare pickle of the state tagged ``harness-checkpoint/1``) are still
read, through the same restricted unpickler but with no checksum to check; ``upgrade``
rewrites them in version 2::

    python -m harness.checkpoints leaderboards/runs
"""

from __future__ import annotations

import argparse
import hashlib
import struct
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from harness import atomic, locks, safepickle
from harness.errors import HarnessError, describe
from harness.rundirs import LOCK

CHECKPOINT = "checkpoint.pkl"
FORMAT = "harness-checkpoint/2"
LEGACY_FORMAT = "harness-checkpoint/1"
MAGIC = b"\x89HARNESS"
VERSION = 2
_START = struct.Struct("<8sIQ")
"""Magic, format version, payload length: the checksummed start of the header."""
HEADER_SIZE = _START.size + hashlib.sha256().digest_size
_LEGACY_START = b"\x80"
"""What a version 1 checkpoint starts with: pickle's PROTO opcode."""
_FIX = "restore the file, or rerun with --restart to start the run over"


def load(path: Path) -> dict[str, Any]:
    """Read a checkpoint (version 2, or a version 1 one); any problem is a one-line ``HarnessError``."""
    data = _read(path)
    tags: tuple[str, ...]
    if data.startswith(MAGIC):
        state, tags = _unpickle(path, _payload(path, data)), (FORMAT,)
    elif data.startswith(_LEGACY_START):  # a bare pickle, as version 1 wrote (or atomic.write_pickle writes)
        state, tags = _unpickle(path, data), (LEGACY_FORMAT, FORMAT)
    elif not data:
        raise HarnessError(f"checkpoint {path} cannot be read: it is empty; {_FIX}")
    else:
        raise HarnessError(f"checkpoint {path} cannot be read: not a harness checkpoint (it starts {data[:8]!r})")
    if not isinstance(state, dict) or state.get("format") not in tags:
        raise HarnessError(f"{path} is not a harness checkpoint")
    return state


def save(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` (plus the format tag) atomically in the current format."""
    atomic.write_bytes(path, _encode(path, state))


def version(path: Path) -> int:
    """The format version of the checkpoint at ``path`` as its start says: 2, else 1 (``load`` checks the rest)."""
    try:
        with open(path, "rb") as handle:
            start = handle.read(len(MAGIC))
    except OSError as exc:
        raise _unreadable(path, exc) from None
    return VERSION if start == MAGIC else 1


def upgrade(path: Path) -> bool:
    """Rewrite a version 1 checkpoint in the current format, atomically and under its run directory's lock.

    Returns ``False``, writing nothing, when it already is in the current format (it is checked all the same).
    """
    version(path)  # a missing file fails here, before a lock file is made beside it
    try:
        with locks.exclusive(path.parent / LOCK):
            state = load(path)
            if version(path) == VERSION:
                return False
            save(path, state)
    except locks.LockHeldError as exc:
        raise HarnessError(f"{path.parent} is in use by {exc.holder}; upgrade it once that run has stopped") from None
    except OSError as exc:
        raise HarnessError(f"cannot upgrade checkpoint {path} ({describe(exc)})") from None
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m harness.checkpoints PATH...``: upgrade checkpoints, one line per file; 2 if any failed."""
    parser = argparse.ArgumentParser(
        prog="python -m harness.checkpoints",
        description=f"Rewrite version 1 run checkpoints (a bare pickle) as {FORMAT} (checksummed, read without "
        "running code). Each file is replaced atomically while its run directory is locked; files already in "
        f"{FORMAT} are checked and left alone.",
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help=f"a checkpoint, or a folder: every "
                        f"{CHECKPOINT} under it")  # fmt: skip
    args = parser.parse_args(argv)
    failed = 0
    for path in _expand(args.paths):
        try:
            if path.is_dir():
                raise HarnessError(f"{path} holds no {CHECKPOINT}; give checkpoint files or folders holding them")
            done = "upgraded to" if upgrade(path) else "already"
        except HarnessError as exc:
            print(f"harness: error: {exc}", file=sys.stderr)
            failed += 1
            continue
        print(f"{path}: {done} {FORMAT}")
    return 2 if failed else 0


# -- internals ------------------------------------------------------------------------


def _encode(path: Path, state: dict[str, Any]) -> bytes:
    """The bytes of a version 2 checkpoint of ``state``; refuses in one line a state it could not read back."""
    state = {"format": FORMAT, **{key: value for key, value in state.items() if key != "format"}}
    rule = "a model's state_dict may hold only plain values, bytes and NumPy arrays (see harness.specs.Model)"
    try:
        payload = safepickle.dumps(state)
    except Exception as exc:  # pickle raises many kinds of error for what it cannot store
        raise HarnessError(f"cannot save checkpoint {path}: {describe(exc)}; {rule}") from None
    try:
        safepickle.loads(payload)  # what could not be read back must not be written
    except safepickle.RefusedGlobal as exc:
        raise HarnessError(f"cannot save checkpoint {path}: the state holds a {exc.name}; {rule}") from None
    except Exception as exc:  # an object whose pickle the allowed rebuilders reject
        raise HarnessError(f"cannot save checkpoint {path}: it would not read back ({describe(exc)}); {rule}") from None
    start = _START.pack(MAGIC, VERSION, len(payload))
    return start + _digest(start, payload) + payload


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise _unreadable(path, exc) from None


def _unreadable(path: Path, exc: OSError) -> HarnessError:
    """The one-line error for a checkpoint path that cannot be opened, naming the fix."""
    if isinstance(exc, FileNotFoundError):
        return HarnessError(f"checkpoint {path} does not exist; check the path")
    if isinstance(exc, IsADirectoryError):
        inside = path / CHECKPOINT
        fix = f"give {inside}" if inside.is_file() else f"give a run's {CHECKPOINT} (<out>/<run name>/{CHECKPOINT})"
        return HarnessError(f"checkpoint {path} is a folder, not a checkpoint file; {fix}")
    return HarnessError(f"checkpoint {path} cannot be read ({describe(exc)}); check its permissions")


def _digest(start: bytes, payload: bytes | memoryview) -> bytes:
    digest = hashlib.sha256(start)
    digest.update(payload)
    return digest.digest()


def _payload(path: Path, data: bytes) -> memoryview:
    """The payload of a version 2 file, its header and checksum checked."""
    if len(data) < HEADER_SIZE:
        raise HarnessError(f"checkpoint {path} is truncated ({len(data)} bytes, less than a header); {_FIX}")
    _, file_version, length = _START.unpack_from(data)
    if file_version != VERSION:
        raise HarnessError(
            f"checkpoint {path} is in format version {file_version}, which this harness does not read (it reads "
            f"{VERSION}); upgrade the harness, or {_FIX}"
        )
    payload = memoryview(data)[HEADER_SIZE:]
    if len(payload) < length:
        raise HarnessError(f"checkpoint {path} is truncated ({len(payload)} of {length} payload bytes); {_FIX}")
    if len(payload) > length:
        raise HarnessError(f"checkpoint {path} is corrupt ({len(payload) - length} bytes too many); {_FIX}")
    if _digest(data[: _START.size], payload) != data[_START.size : HEADER_SIZE]:
        raise HarnessError(f"checkpoint {path} is corrupt (checksum mismatch); {_FIX}")
    return payload


def _unpickle(path: Path, data: bytes | memoryview) -> Any:
    try:
        return safepickle.loads(data)
    except safepickle.RefusedGlobal as exc:
        raise HarnessError(
            f"checkpoint {path} refused: it names {exc.name}, which a checkpoint may not (reading it could run "
            "code); delete the file, or rerun with --restart to start the run over"
        ) from None
    except Exception as exc:  # unpickling damaged bytes raises many kinds of error
        raise HarnessError(f"checkpoint {path} is corrupt ({describe(exc)}); {_FIX}") from None


def _expand(paths: Sequence[Path]) -> Iterator[Path]:
    """Each path, a folder giving every checkpoint under it (or itself, when it holds none)."""
    for path in paths:
        found = sorted(path.rglob(CHECKPOINT)) if path.is_dir() else [path]
        yield from found or [path]


if __name__ == "__main__":
    raise SystemExit(main())
