"""Run directories under a results folder: names that stay inside it, one process at a time, no leftovers.

A process works in a run directory only while it holds the directory's lock (``.lock``,
see ``harness.locks``): ``harness run`` for the whole run, ``harness reproduce`` for each
cell it runs. Once it holds the lock, the temporary files of atomic writes (see
``harness.atomic``) that an earlier, killed process left behind are removed.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

from harness import locks
from harness.errors import ConfigError

LOCK = ".lock"
RUN_FILES = (LOCK, "checkpoint.pkl", "record.json", "cell.json", "episodes.npz")
"""The names of a run's own files in its folder (``checkpoints.CHECKPOINT``, ``records.RECORD``, ``records.CELL``,
``per_episode.FILE``: those modules need this one), which no run name may take."""
TEMP_FILE = re.compile(
    r"\.(record\.json|cell\.json|episodes\.npz|checkpoint\.pkl(\.part\d+-[0-9a-f]+)?)\.[a-z0-9_]{8}\.tmp"
)
"""What ``harness.atomic.write_bytes`` names a run's own file (record, cell file, episodes, checkpoint and its
parts) before moving it into place: ``.<name>.<8 random characters>.tmp``. Anything else is never removed."""


def resolve(out: Path, name: str) -> Path:
    """``out/name``, or a one-line ``ConfigError`` when the name would lead outside ``out`` or to ``out`` itself."""
    path = PurePosixPath(name)
    hint = f"give a folder name inside {out}, like 'my-run' or 'group/my-run'"
    if "\0" in name or not path.parts:
        raise ConfigError(f"run name {name!r} names no folder; {hint}")
    if any(not character.isprintable() for character in name):
        raise ConfigError(f"run name {name!r} holds a character that does not print (a newline, a tab, ...); {hint}")
    if path.is_absolute():
        raise ConfigError(f"run name {name!r} leads outside the results folder {out}; {hint}")
    if ".." in path.parts:
        raise ConfigError(f"run name {name!r} holds '..', which could lead outside the results folder {out}; {hint}")
    own = next((part for part in path.parts if part in RUN_FILES), None)
    if own is not None:
        raise ConfigError(f"run name {name!r} holds {own!r}, the name of a run's own file; {hint}")
    directory = out / path
    inside = next((p for p in directory.parents[: len(path.parts) - 1] if _holds_run(p)), None)
    if inside is not None:
        raise ConfigError(f"run name {name!r} leads into the run folder {inside}, whose files are its own; {hint}")
    if out.resolve() not in directory.resolve().parents:
        raise ConfigError(f"run name {name!r} leads outside the results folder {out} through a symlink; {hint}")
    blocking = next((p for p in (directory, *directory.parents[: len(path.parts) - 1]) if p.is_file()), None)
    if blocking is not None:
        raise ConfigError(f"run name {name!r} leads into the file {blocking}, not a folder; {hint}")
    return directory


def _holds_run(folder: Path) -> bool:
    """Whether ``folder`` is a run's folder: it holds a checkpoint, a record or a cell file."""
    return any((folder / name).exists() for name in RUN_FILES[1:4])


def remove_temp_files(directory: Path) -> list[Path]:
    """Delete the temporary files of interrupted atomic writes in ``directory``; return them."""
    removed = []
    for path in sorted(directory.iterdir()):
        if TEMP_FILE.fullmatch(path.name) and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


@contextlib.contextmanager
def claim(directory: Path, log: Callable[[str], None] | None = None) -> Iterator[list[Path]]:
    """Lock ``directory`` (creating it) for this process, then remove leftover temporary files; yield those.

    Raises ``locks.LockHeldError`` at once, naming the holder, when another process holds it.
    Within a claim already held by this thread it only yields ``[]``. A directory this claim
    created is removed again when the work inside fails and leaves it empty.
    """
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    try:
        with _claimed(directory, log) as removed:
            yield removed
    except BaseException:
        if created:  # a run that failed before writing anything leaves no folder behind
            with contextlib.suppress(OSError):
                directory.rmdir()
        raise


@contextlib.contextmanager
def _claimed(directory: Path, log: Callable[[str], None] | None) -> Iterator[list[Path]]:
    """Hold the lock of ``directory`` and clear leftover temporary files; yield those removed."""
    with contextlib.ExitStack() as stack:
        try:
            fresh = stack.enter_context(locks.exclusive(directory / LOCK))
        except locks.LockHeldError as exc:
            raise locks.LockHeldError(
                f"run directory {directory} is in use by {exc.holder}; wait for it to finish, or pass another --name",
                exc.holder,
            ) from None
        removed = remove_temp_files(directory) if fresh else []
        if removed and log is not None:
            log(f"removed {len(removed)} temporary files of interrupted writes from {directory}")
        yield removed
