"""Run checkpoints: what a run saves while it trains, so that it can resume exactly.

A checkpoint holds the step reached, the loss and validation curves, the model's state
(weights, optimizer, RNG) and, with ``keep = best``, the state of the best validated model.
It is written atomically, reading one never runs code, and a damaged one is refused in one
line. Integers are little-endian. Format version 2, one file::

    offset  size  field
         0     8  magic: b"\\x89HARNESS"
         8     4  format version (uint32): 2
        12     8  payload length n (uint64)
        20    32  SHA-256 of bytes 0-19 followed by the payload
        52     n  payload: the state dict, pickled (protocol 5) and read back with
                  ``harness.safepickle``, which builds plain values and NumPy arrays only

Format version 3, for a payload over ``PART_BYTES`` (4 MiB): the payload is cut into parts of
at most ``PART_BYTES``, each a file beside the checkpoint named
``checkpoint.pkl.part<i>-<first 16 hex digits of its SHA-256>``, so that no file of a run is
too big to commit. The checkpoint file itself holds the list of parts::

    offset  size  field
         0     8  magic
         8     4  format version (uint32): 3
        12     8  manifest length m (uint64)
        20    32  SHA-256 of bytes 0-19 followed by the manifest
        52     m  manifest: JSON {"parts": [[file name, size, SHA-256 hex], ...], "progress": {...}}

``progress`` repeats the few values ``harness status`` shows (episodes trained, the run's
total, the last validation, wall time), so that ``progress()`` reads them without the parts.
A save writes the new parts first (new content, new names), then the checkpoint file, then
deletes the parts it no longer lists: a reader sees the old checkpoint or the new one whole.
Copy or commit a checkpoint with its parts; ``remove`` deletes both.

Version 1 files (a bare pickle of the state tagged ``harness-checkpoint/1``) are still
read, through the same restricted unpickler but with no checksum to check; ``upgrade``
rewrites them in the current format::

    python -m harness.checkpoints leaderboards/runs
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import struct
import sys
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness import atomic, files, interrupts, locks, safepickle
from harness.errors import SHORTER_PATH, HarnessError, describe, too_long
from harness.rundirs import LOCK

CHECKPOINT = "checkpoint.pkl"
FORMAT = "harness-checkpoint/2"
LEGACY_FORMAT = "harness-checkpoint/1"
MAGIC = b"\x89HARNESS"
VERSION = 2
PARTS_VERSION = 3
CURRENT = (VERSION, PARTS_VERSION)
"""The versions ``save`` writes: one file, or a file listing its parts."""
PART_BYTES = 4 * 2**20
"""The most bytes a checkpoint file, or one part of a bigger one, holds (below the 5 MiB a file may have
in this project's repository)."""
_MAX_PARTS = 4096
_START = struct.Struct("<8sIQ")
"""Magic, format version, payload length: the checksummed start of the header."""
HEADER_SIZE = _START.size + hashlib.sha256().digest_size
_LEGACY_START = b"\x80"
"""What a version 1 checkpoint starts with: pickle's PROTO opcode."""


FOREIGN = "move it away (another program's file?)"
"""The fix for a file in a checkpoint's place that no harness wrote."""


class _Damaged(HarnessError):
    """A checkpoint that cannot be used as it is: ``problem``, then ``fix`` (what mends the file)."""

    def __init__(self, problem: str, fix: str = "restore the file") -> None:
        super().__init__(f"{problem}; {fix}")
        self.problem, self.fix = problem, fix


class _MissingPart(_Damaged):
    """A part that a version 3 checkpoint lists is not beside it."""


@contextmanager
def _advising(start_over: str | None, given: str | None = None) -> Iterator[None]:
    """Add ``start_over`` (how the caller's command starts over without the file) to the fix of a damaged one; for
    a file no harness wrote, give the fix ``given`` instead of moving it away, where the user named the file."""
    try:
        yield
    except _Damaged as exc:
        if given is not None and exc.fix == FOREIGN:
            raise HarnessError(f"{exc.problem}; {given}") from None
        if start_over is None:
            raise
        raise HarnessError(f"{exc.problem}; {exc.fix}, or {start_over}") from None


def load(path: Path, start_over: str | None = None, *, given: str | None = None) -> dict[str, Any]:
    """Read a checkpoint (version 2 or 3, or a version 1 one); any problem is a one-line ``HarnessError``.

    ``start_over``: what starts the caller's work over without the file (``rerun with --restart to start the run
    over``), offered beside the fix of a damaged one; ``None`` where nothing can (``harness evaluate``).
    ``given``: the fix where the user named ``path`` and it is no harness checkpoint (``harness evaluate
    --checkpoint``: give a run's checkpoint), rather than moving the file away.
    """
    with _advising(start_over, given):
        data = _read(path)
        for _ in range(3):  # a save between reading the file and reading its parts removes the parts it listed
            try:
                return _load(path, data)
            except _MissingPart:
                again = _read(path)
                if again == data:
                    raise
                data = again
        return _load(path, data)


def _load(path: Path, data: bytes) -> dict[str, Any]:
    tags: tuple[str, ...]
    if data.startswith(MAGIC):
        state, tags = _unpickle(path, _payload(path, data)), (FORMAT,)
    elif data.startswith(_LEGACY_START):  # a bare pickle, as version 1 wrote (or atomic.write_pickle writes)
        state, tags = _unpickle(path, data), (LEGACY_FORMAT, FORMAT)
    elif not data:
        raise _Damaged(f"checkpoint {path} cannot be read: it is empty")
    else:
        raise _Damaged(f"checkpoint {path} cannot be read: not a harness checkpoint (it starts {data[:8]!r})", FOREIGN)
    if not isinstance(state, dict) or state.get("format") not in tags:
        raise _Damaged(f"{path} is not a harness checkpoint", FOREIGN)
    return state


def load_run(path: Path, start_over: str | None = None, *, given: str | None = None) -> dict[str, Any]:
    """``load`` a run's checkpoint, checked to hold what a run saves (a config naming the model, the model's
    state, the episodes trained and progress values of their types): a one-line ``HarnessError`` if not."""
    state = load(path, start_over, given=given)
    problem = _state_problem(state)
    if problem is not None:
        with _advising(start_over):
            raise _Damaged(f"checkpoint {path} is not one a run wrote ({problem})")
    return state


def is_count(value: Any) -> bool:
    """Whether ``value`` is a count (of episodes, or a seed): an int, not negative (not a bool), that fits in 64 bits
    (as NumPy and pandas hold it: a larger one is forged)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63


def is_finite(value: Any) -> bool:
    """Whether ``value`` is a finite int or float (not a bool)."""
    return _number(value, float) is not None


_STATE_CHECKS = {
    "step": is_count,
    "resumes": is_count,
    "stale": is_count,
    "wall_time_s": lambda v: is_finite(v) and v >= 0,
    "stopped_early": lambda v: v is None or is_count(v),
    "loss_history": lambda v: isinstance(v, list) and all(isinstance(e, list | tuple) and len(e) == 2 for e in v),
    "val_history": lambda v: isinstance(v, list) and all(isinstance(e, list | tuple) and len(e) == 2 for e in v),
    "val_detail": lambda v: isinstance(v, list),
    "sessions": lambda v: isinstance(v, list),
    "pending_losses": lambda v: isinstance(v, list),
    "best": lambda v: v is None or (isinstance(v, dict) and is_count(v.get("episode"))),
    "final": lambda v: isinstance(v, bool),
    "kept": lambda v: isinstance(v, dict) and v.get("which") in ("best", "last") and is_count(v.get("episode")),
    "run_id": lambda v: isinstance(v, str),
}
"""What the progress a checkpoint saves must be, where it is there (older checkpoints lack some)."""


def _state_problem(state: dict[str, Any]) -> str | None:
    """What a checkpoint's state lacks or holds of another type than a run saves, if anything."""
    config = state.get("config")
    if not isinstance(config, dict) or not isinstance(config.get("model"), str):
        return "no run config naming its model"
    if "model_state" not in state:
        return "no model state"
    episodes = state.get("episodes_trained")
    if not is_count(episodes) or (is_count(config.get("episodes")) and episodes > config["episodes"]):
        return "no count of the episodes trained within the run's episodes"
    if state.get("final") and "kept" not in state:
        return "a finished run's weights without saying which model they are (kept)"
    bad = [key for key, check in _STATE_CHECKS.items() if key in state and not check(state[key])]
    return f"{', '.join(bad)} of another type than a run saves" if bad else None


def save(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` (plus the format tag) atomically: one file, or parts beside it when it is over ``PART_BYTES``."""
    payload = _encode(path, state)
    if HEADER_SIZE + len(payload) <= PART_BYTES:
        start = _START.pack(MAGIC, VERSION, len(payload))
        atomic.write_bytes(path, start + _digest(start, payload) + payload)
        _remove_parts(path, keep=())
        return
    parts: list[tuple[str, int, str]] = []
    new_files: list[Path] = []
    head = b""
    try:
        for index, offset in enumerate(range(0, len(payload), PART_BYTES)):
            chunk = payload[offset : offset + PART_BYTES]
            digest = hashlib.sha256(chunk).hexdigest()
            name = f"{path.name}.part{index}-{digest[:16]}"
            if not (path.parent / name).exists():
                new_files.append(path.parent / name)
            atomic.write_bytes(path.parent / name, chunk)
            parts.append((name, len(chunk), digest))
        manifest = json.dumps({"parts": parts, "progress": _progress_of(state)}).encode()
        start = _START.pack(MAGIC, PARTS_VERSION, len(manifest))
        head = start + _digest(start, manifest) + manifest
        atomic.write_bytes(path, head)
    except BaseException:
        if not _holds(path, head):  # the old checkpoint stands: the new parts are litter on a full disk
            for file in new_files:
                file.unlink(missing_ok=True)
        raise
    _remove_parts(path, keep={name for name, _, _ in parts})


def _holds(path: Path, data: bytes) -> bool:
    """Whether the file at ``path`` holds ``data`` (False where it cannot be read)."""
    try:
        return files.read_regular(path, len(data) + 1) == data
    except OSError:
        return False


def progress(path: Path, start_over: str | None = None) -> dict[str, Any]:
    """The values ``harness status`` shows of the checkpoint at ``path`` (``episodes_trained``, ``config.episodes``,
    the last of ``val_history``, ``wall_time_s``, ``train_wall_time_s``): from a version 3 file's checksummed list of
    parts, without reading the parts; otherwise from the whole checkpoint, as ``load`` reads it (``start_over`` as
    there)."""
    with _advising(start_over):
        data = _read(path)
        if data.startswith(MAGIC):
            file_version, listing = _checked(path, data)
            if file_version == PARTS_VERSION:
                _manifest(path, listing)
                stored = _stored_progress(listing)
                if stored is not None:
                    return stored
    return _progress_of(load(path, start_over))


def run_id(path: Path) -> str | None:
    """The ``run_id`` the checkpoint at ``path`` was saved by (``progress``), or ``None`` where it has none, or is
    missing or cannot be read."""
    try:
        return progress(path).get("run_id") if path.exists() else None
    except (HarnessError, OSError):
        return None


def remove(path: Path) -> None:
    """Delete the checkpoint at ``path`` and its parts, if any."""
    path.unlink(missing_ok=True)
    _remove_parts(path, keep=())


def part_files(path: Path) -> list[Path]:
    """The part files beside ``path`` that a version 3 checkpoint of that name could list (listed or not)."""
    pattern = _part_pattern(path)
    try:
        return sorted(p for p in path.parent.iterdir() if pattern.fullmatch(p.name))
    except OSError:
        return []


def version(path: Path) -> int:
    """The format version of the checkpoint at ``path`` as its start says: 3 or 2, else 1 (``load`` checks the rest)."""
    start = _read(path, _START.size)
    if not start.startswith(MAGIC):
        return 1
    (number,) = struct.unpack_from("<I", start.ljust(_START.size, b"\0"), len(MAGIC))
    return PARTS_VERSION if number == PARTS_VERSION else VERSION


def upgrade(path: Path) -> bool:
    """Rewrite a version 1 checkpoint, or a one-file one over ``PART_BYTES``, as ``save`` writes it now,
    atomically and under its run directory's lock.

    Returns ``False``, writing nothing, when it already is as ``save`` writes it (it is checked all the same).
    """
    version(path)  # a missing file fails here, before a lock file is made beside it
    try:
        with locks.exclusive(path.parent / LOCK):
            state = load(path)
            current = version(path)
            if current == PARTS_VERSION or (current == VERSION and path.stat().st_size <= PART_BYTES):
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
        f"running code), and one-file checkpoints over {PART_BYTES // 2**20} MiB as a file listing parts of at most "
        "that size beside it. Each file is replaced atomically while its run directory is locked; the others are "
        "checked and left alone.",
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
            parts = len(part_files(path))
        except HarnessError as exc:
            print(f"harness: error: {exc}", file=sys.stderr)
            failed += 1
            continue
        print(f"{path}: {done} {FORMAT}" + (f" in {parts} parts" if parts else ""))
    return 2 if failed else 0


# -- internals ------------------------------------------------------------------------


PLAIN = (type(None), bool, int, float, complex, str, bytes)
"""Leaf types a checkpoint holds as they are (besides NumPy arrays and scalars of plain dtypes)."""


def _where_unsafe(value: Any, where: str = "state") -> str:
    """`` at state['model_state']['rng'] (a numpy.random...Generator: ...)``: the first value in ``value`` that a
    checkpoint cannot hold, for the error that refuses it (``""`` when none is found)."""
    import collections

    import numpy as np

    kind = type(value)
    if kind in (dict, collections.OrderedDict, list, tuple, set, frozenset):
        pairs = value.items() if isinstance(value, dict) else enumerate(value)
        items = ((f"{where}[{key!r}]", item) for key, item in pairs)
        return next((found for inner, item in items if (found := _where_unsafe(item, inner))), "")
    plain_numpy = (kind is np.ndarray or isinstance(value, np.generic)) and value.dtype != object
    if kind in PLAIN or plain_numpy:
        return ""
    hint = ": store rng.bit_generator.state" if isinstance(value, np.random.Generator) else ""
    return f" at {where} (a {kind.__module__}.{kind.__qualname__}{hint})"


def _encode(path: Path, state: dict[str, Any]) -> bytes:
    """The payload of a checkpoint of ``state``; refuses in one line a state it could not read back."""
    state = {"format": FORMAT, **{key: value for key, value in state.items() if key != "format"}}
    rule = "a model's state_dict may hold only plain values, bytes and NumPy arrays (see harness.specs.Model)"
    try:
        payload = safepickle.dumps(state)
    except Exception as exc:  # pickle raises many kinds of error for what it cannot store
        raise HarnessError(f"cannot save checkpoint {path}: {describe(exc)}{_where_unsafe(state)}; {rule}") from None
    try:
        safepickle.loads(payload)  # what could not be read back must not be written
    except safepickle.RefusedGlobal as exc:
        where = _where_unsafe(state)
        raise HarnessError(f"cannot save checkpoint {path}: the state holds a {exc.name}{where}; {rule}") from None
    except Exception as exc:  # an object whose pickle the allowed rebuilders reject
        raise HarnessError(f"cannot save checkpoint {path}: it would not read back ({describe(exc)}); {rule}") from None
    return payload


PART_SUFFIX = r"\.part(\d{1,4})-([0-9a-f]{16})"
"""What follows the checkpoint's own name in a part's name: ``.part<i>-<16 hex digits of its SHA-256>``."""


def _part_pattern(path: Path) -> re.Pattern[str]:
    return re.compile(re.escape(path.name) + PART_SUFFIX)


def _remove_parts(path: Path, keep: Collection[str]) -> None:
    for part in part_files(path):
        if part.name not in keep:
            part.unlink(missing_ok=True)


def _read(path: Path, limit: int = -1) -> bytes:
    """The bytes of the file at ``path`` (at most ``limit``); a FIFO, device or socket there is refused, not read
    (reading one could block for ever or never end)."""
    try:
        return files.read_regular(path, limit)
    except OSError as exc:
        raise _unreadable(path, exc) from None


def _unreadable(path: Path, exc: OSError) -> HarnessError:
    """The one-line error for a checkpoint path that cannot be opened, naming the fix."""
    if isinstance(exc, FileNotFoundError):
        return HarnessError(f"checkpoint {path} does not exist; check the path")
    if isinstance(exc, files.NotRegularFile):
        return HarnessError(f"checkpoint {path} is not a regular file (a FIFO, device or socket); give a {CHECKPOINT}")
    if isinstance(exc, IsADirectoryError):
        inside = path / CHECKPOINT
        fix = f"give {inside}" if inside.is_file() else f"give a run's {CHECKPOINT} (<out>/<run name>/{CHECKPOINT})"
        return HarnessError(f"checkpoint {path} is a folder, not a checkpoint file; {fix}")
    fix = SHORTER_PATH if too_long(exc) else "check its permissions"
    return HarnessError(f"checkpoint {path} cannot be read ({describe(exc)}); {fix}")


def _digest(start: bytes, payload: bytes | memoryview) -> bytes:
    digest = hashlib.sha256(start)
    digest.update(payload)
    return digest.digest()


def _payload(path: Path, data: bytes) -> memoryview:
    """The payload of a version 2 or 3 file, its header, checksum and parts checked."""
    file_version, payload = _checked(path, data)
    if file_version == PARTS_VERSION:
        beside = Path(os.path.realpath(path)) if path.is_symlink() else path  # a link to a checkpoint: its parts
        return memoryview(_joined(beside, _manifest(beside, payload)))
    return payload


def _checked(path: Path, data: bytes) -> tuple[int, memoryview]:
    """The format version of a version 2 or 3 file and what follows its header (the payload, or the list of parts),
    the header and checksum checked."""
    if len(data) < HEADER_SIZE:
        raise _Damaged(f"checkpoint {path} is truncated ({len(data)} bytes, less than a header)")
    _, file_version, length = _START.unpack_from(data)
    if file_version not in CURRENT:
        raise _Damaged(
            f"checkpoint {path} is in format version {file_version}, which this harness does not read (it reads "
            f"{VERSION} and {PARTS_VERSION})",
            "upgrade the harness, or restore the file",
        )
    payload = memoryview(data)[HEADER_SIZE:]
    if len(payload) < length:
        raise _Damaged(f"checkpoint {path} is truncated ({len(payload)} of {length} payload bytes)")
    if len(payload) > length:
        raise _Damaged(f"checkpoint {path} is corrupt ({len(payload) - length} bytes too many)")
    if _digest(data[: _START.size], payload) != data[_START.size : HEADER_SIZE]:
        raise _Damaged(f"checkpoint {path} is corrupt (checksum mismatch)")
    return file_version, payload


def _progress_of(state: dict[str, Any]) -> dict[str, Any]:
    """What ``progress`` gives of a checkpoint's state: the values ``harness status`` shows, as JSON values."""
    config, history = state.get("config"), state.get("val_history")
    last = history[-1] if isinstance(history, list) and history else None
    episode, accuracy = (None, None)
    if isinstance(last, list | tuple) and len(last) == 2:
        episode, accuracy = _number(last[0], int), _number(last[1], float)
    progress = {
        "episodes_trained": _number(state.get("episodes_trained"), int),
        "config": {"episodes": _number(config.get("episodes"), int) if isinstance(config, dict) else None},
        "val_history": [] if episode is None or accuracy is None else [[episode, accuracy]],
        "wall_time_s": _number(state.get("wall_time_s"), float),
        "train_wall_time_s": _number(state.get("train_wall_time_s"), float),
    }
    # a signal's stop, only where there was one (so the progress of older files reads back unchanged)
    stopped_by = state.get("stopped_by")
    if isinstance(stopped_by, str) and stopped_by in interrupts.NAMES:
        progress["stopped_by"] = stopped_by
    if state.get("unvalidated") is True:
        progress["unvalidated"] = True
    run_id = state.get("run_id")
    if isinstance(run_id, str) and run_id:  # which run saved it (``runner.Progress.run_id``), where it says
        progress["run_id"] = run_id
    stopped_early = _number(state.get("stopped_early"), int)
    if stopped_early is not None:  # patience stopped training there: nothing is left to train
        progress["stopped_early"] = stopped_early
    return progress


def _number(value: Any, kind: type) -> Any:
    """``value`` as an int or float (``kind``), or None where it is not a finite number."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value or abs(value) == float("inf"):
        return None
    return kind(value)


def _stored_progress(listing: memoryview) -> dict[str, Any] | None:
    """The ``progress`` a version 3 file's list of parts holds, or None when it holds none of the right form
    (a file from before it was written there: ``progress`` then reads the whole checkpoint)."""
    try:
        stored = json.loads(bytes(listing).decode()).get("progress")
    except (ValueError, AttributeError, RecursionError):
        return None
    if not isinstance(stored, dict):
        return None
    rebuilt = _progress_of(stored)
    return rebuilt if rebuilt == stored else None  # every value of the form _progress_of gives, and no other key


def _manifest(path: Path, data: memoryview) -> list[tuple[str, int, str]]:
    """The parts a version 3 file lists, each name, size and digest checked for form (a forged list names
    nothing outside the checkpoint's folder and asks for no more than ``PART_BYTES`` a part)."""
    bad = _Damaged(f"checkpoint {path} is corrupt (its list of parts is malformed)")
    try:
        parts = json.loads(bytes(data).decode())["parts"]
    except (ValueError, KeyError, TypeError, RecursionError):  # nested past the parser's depth: forged
        raise bad from None
    if not isinstance(parts, list) or not 0 < len(parts) <= _MAX_PARTS:
        raise bad
    pattern, checked = _part_pattern(path), []
    for index, entry in enumerate(parts):
        if not (isinstance(entry, list) and len(entry) == 3 and isinstance(entry[0], str)):
            raise bad
        name, size, digest = entry
        match = pattern.fullmatch(name)
        named = re.fullmatch(r"([\w.-]{1,255})" + PART_SUFFIX, name, re.ASCII)
        if match is None and named is not None and named[1] != path.name:
            raise _Damaged(
                f"checkpoint {path} was renamed: its parts are named after {named[1]!r}",
                f"give it that name again ({path.with_name(named[1])})",
            )
        if (
            match is None
            or int(match[1]) != index
            or type(size) is not int
            or not 0 < size <= PART_BYTES
            or not isinstance(digest, str)
            or not re.fullmatch(r"[0-9a-f]{64}", digest)
            or not digest.startswith(match[2])
        ):
            raise bad
        checked.append((name, size, digest))
    return checked


def _joined(path: Path, parts: list[tuple[str, int, str]]) -> bytes:
    """The payload of a version 3 checkpoint: its parts read, each checked against its size and digest."""
    chunks = []
    for name, size, digest in parts:
        part = path.parent / name
        try:
            chunk = files.read_regular(part, size + 1)
        except FileNotFoundError:
            raise _MissingPart(
                f"checkpoint {path} is missing its part {name}", "copy the checkpoint with the parts beside it"
            ) from None
        except (files.NotRegularFile, IsADirectoryError):
            raise _Damaged(f"checkpoint {path}: its part {name} is not a regular file") from None
        except OSError as exc:
            raise HarnessError(f"checkpoint {path}: its part {name} cannot be read ({describe(exc)})") from None
        if len(chunk) != size or hashlib.sha256(chunk).hexdigest() != digest:
            raise _Damaged(f"checkpoint {path} is corrupt (its part {name} does not match its checksum)")
        chunks.append(chunk)
    return b"".join(chunks)


def _unpickle(path: Path, data: bytes | memoryview) -> Any:
    try:
        return safepickle.loads(data)
    except safepickle.RefusedGlobal as exc:
        raise _Damaged(
            f"checkpoint {path} refused: it names {exc.name}, which a checkpoint may not (reading it could run code)",
            "delete the file",
        ) from None
    except Exception as exc:  # unpickling damaged bytes raises many kinds of error
        raise _Damaged(f"checkpoint {path} is corrupt ({describe(exc)})") from None


def _expand(paths: Sequence[Path]) -> Iterator[Path]:
    """Each path, a folder giving every checkpoint under it (or itself, when it holds none)."""
    for path in paths:
        found = sorted(path.rglob(CHECKPOINT)) if path.is_dir() else [path]
        yield from found or [path]


if __name__ == "__main__":
    raise SystemExit(main())
