"""What each cell of a results folder is doing: done, running, interrupted or not started (``harness status``).

Nothing here takes a lock or writes a file: a cell is *running* when its lock file names a
process that is alive on this machine (on another machine the lock file is taken at its word).
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import checkpoints, files, locks, record_values, records
from harness.checkpoints import CHECKPOINT
from harness.errors import DataError, HarnessError, printable
from harness.records import CELL, RECORD, Fixed
from harness.registry import Registry
from harness.rundirs import LOCK
from harness.specs import MetricSpec
from harness.tables import Cell, TableSpec

STATES = ("done", "running", "interrupted", "not started", "damaged")


@dataclass(frozen=True)
class CellStatus:
    """One cell's state and how far its training got."""

    budget: str
    row: str
    setting: str
    seed: int
    state: str
    """One of ``STATES``."""
    directory: Path
    episodes: int | None = None
    """Episodes trained so far (done: in all)."""
    total: int | None = None
    """Episodes the run trains for."""
    validation: tuple[int, float] | None = None
    """The last validation: (episode, accuracy)."""
    wall_time_s: float | None = None
    """Training time so far, over every session."""
    note: str = ""
    """Who runs it, why it is damaged, or when patience stopped it."""

    @property
    def left_s(self) -> float | None:
        """Training time still to go at the pace so far (a running or interrupted cell; less if validation stops it)."""
        if self.state not in ("running", "interrupted") or not self.episodes or not self.wall_time_s:
            return None
        if self.total is None or self.total <= self.episodes:
            return None
        left = (self.total - self.episodes) * self.wall_time_s / self.episodes
        return left if math.isfinite(left) else None  # a forged time or count: no estimate, and JSON stays strict

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON values."""
        validation = (
            None if self.validation is None else {"episode": self.validation[0], "accuracy": self.validation[1]}
        )
        return {
            "budget": self.budget, "row": self.row, "setting": self.setting, "seed": self.seed, "state": self.state,
            "directory": str(self.directory), "episodes": self.episodes, "total": self.total,
            "validation": validation, "wall_time_s": self.wall_time_s, "left_s": self.left_s, "note": self.note,
        }  # fmt: skip


def table_status(
    results: Path,
    table: str,
    planned: Iterable[Cell] = (),
    spec: TableSpec | None = None,
    fixed: Fixed | None = None,
    metrics: Registry[MetricSpec] | None = None,
) -> list[CellStatus]:
    """Every cell of ``table`` with a folder under ``results``, and the ``planned`` cells that have none yet.
    With the table's ``spec``, a finished cell's record is also checked against its setting, and against what its
    row's cells fix (``fixed``: ``reproduce.fixed_configs``) as ``harness reproduce`` checks it; with the installed
    ``metrics``, its numbers against its per-episode values, as the leaderboard checks them."""
    found = {}
    for cell_file in records.cell_files(results / table):
        directory = cell_file.parent
        found[directory] = _status(directory, table, spec, fixed or {}, metrics)
    for directory in records.orphan_cells(results / table):
        found[directory] = _damaged(directory, records.orphan_problem(directory))
    for cell in planned:
        directory = results / cell.name
        if directory not in found:
            found[directory] = CellStatus(cell.budget, cell.row, cell.setting, cell.seed, "not started", directory)
    return sorted(found.values(), key=lambda s: (s.budget, s.row, s.setting, s.seed))


def _damaged(directory: Path, note: str) -> CellStatus:
    """A cell whose ``cell.json`` is missing or does not name it: shown by its folder's names."""
    names = directory.relative_to(directory.parents[3]).parts
    return CellStatus(names[0], names[1], names[2], -1, "damaged", directory, note=note)


def _status(
    directory: Path, table: str, spec: TableSpec | None, fixed: Fixed, metrics: Registry[MetricSpec] | None
) -> CellStatus:
    try:
        cell = records.read_cell(directory, table)
        if spec is not None:
            records.check_setting(directory / CELL, cell, spec)
    except HarnessError as exc:
        return _damaged(directory, str(exc))
    base: dict[str, Any] = {field: cell[field] for field in ("budget", "row", "setting", "seed")}
    base["directory"] = directory
    lock_problem = locks.problem(directory / LOCK)  # no run can take it; a finished cell's numbers still stand
    holder = "" if lock_problem else _holder(directory / LOCK)
    try:
        path = directory / RECORD
        if path.exists() or path.is_symlink():  # a link to nothing too: damaged, not missing
            fix = records.record_fix(path, records.rerun_cell(directory))
            record = records.read_record(path, fix)
            records.check_own(path, cell, record, None if spec is None else records.fixed_for(cell, spec, fixed), fix)
            record_values.check(path, record, metrics, fix)
            progress = _progress(record, path, fix)
            if spec is not None:  # the numbers the leaderboard reads
                for key in spec.cell_keys(cell["setting"]):
                    records.mean_ci(spec, record, key, path, fix)
            records.check_per_episode(path, record)
            note = _stopped(record) if record.get("per_episode") else UNCHECKED
            return CellStatus(**base, state="done", note=_both(note, lock_problem), **progress)
        if lock_problem is not None:
            return CellStatus(**base, state="damaged", note=lock_problem)
        if (directory / CHECKPOINT).exists():
            fix = records.start_cell_over(directory, records.rerun_cell(directory))
            state = checkpoints.progress(directory / CHECKPOINT, fix)
            return CellStatus(
                **base,
                state="running" if holder else "interrupted",
                note=holder or _interrupted(state),
                **_progress(state, directory / CHECKPOINT, fix),
            )
    except HarnessError as exc:
        return CellStatus(**base, state="damaged", note=_both(str(exc), lock_problem))
    return CellStatus(**base, state="running" if holder else "not started", note=holder or "")


UNCHECKED = "its record keeps no per-episode values (an older harness wrote it), so its numbers are not checked"
"""The note of a finished cell whose record names no per-episode file: the leaderboard shows its numbers as they are."""


def _both(note: str, lock_problem: str | None) -> str:
    """A cell's note, and its lock's problem too where it has one (each fix is needed)."""
    return "; and ".join(part for part in (note, lock_problem) if part)


def _progress(saved: dict[str, Any], path: Path, fix: str) -> dict[str, Any]:
    """Episodes, total, last validation and training time from a record or a checkpoint (``path``); values of
    other types are a one-line ``DataError`` naming ``path`` and ``fix``."""
    problem = records.progress_problem(saved)
    if problem is not None:
        raise DataError(f"{path} holds {problem}; {fix}")
    history = saved.get("val_history") or []
    wall = saved.get("train_wall_time_s")
    if wall is None:  # a checkpoint: training time is all its time so far
        wall = saved.get("wall_time_s")
    config = saved.get("config")
    total = config.get("episodes") if isinstance(config, dict) else None
    stopped = saved.get("stopped_early")
    return {
        "episodes": saved.get("episodes_trained"),
        "total": stopped if isinstance(stopped, int) else total,  # a checkpoint's: patience ended training there
        "validation": (history[-1][0], float(history[-1][1])) if history else None,
        "wall_time_s": wall,
    }


def _interrupted(saved: dict[str, Any]) -> str:
    """How an interrupted cell's checkpoint says it stopped, and what to do."""
    if saved.get("stopped_early") is not None:
        return f"validation stopped its training at episode {saved['stopped_early']:,}; rerun its command to test it"
    how = f"stopped by {saved['stopped_by']}" if saved.get("stopped_by") else ""
    if saved.get("unvalidated"):
        how += (", " if how else "") + "its validation there left for the rerun"
    return (f"{how}; " if how else "") + "rerun its command to resume it"


def _stopped(record: dict[str, Any]) -> str:
    episode = records.stopped_at(record.get("stopped_early"))
    return f"validation stopped it at episode {episode:,}" if episode else ""


def _holder(lock_file: Path) -> str:
    """Who holds the cell's lock, as its lock file says, if that process is alive; empty if nobody does."""
    try:
        holder = locks.parse_holder(files.read_regular(lock_file, locks.HOLDER_BYTES))
    except OSError:
        return ""
    if holder is None:
        return ""
    pid, host, _ = holder
    if host == socket.gethostname():  # a killed run's lock file: the kernel dropped its lock (its pid may be reused)
        if not _alive(pid):
            return ""
        flock = locks.holds_a_flock(pid)  # None: this kernel lists no flocks, so only the pid can be checked
        if flock is False or (flock and locks.holds_flock_on(pid, lock_file) is False):
            return ""
    return locks.describe_holder(*holder)


def _alive(pid: int) -> bool:
    if pid <= 0:  # no process of ours has such a pid (os.kill would probe a process group)
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def render(table: str, results: Path, statuses: list[CellStatus]) -> str:
    """A text table of ``statuses``, one line per cell."""
    if not statuses:
        return printable(f"{table}: no cells under {results / table} yet (harness reproduce {table} starts them)")
    head = ("budget", "row", "setting", "seed", "state", "episodes", "last validation", "training time", "")
    lines: list[tuple[str, ...]] = [head]
    for s in statuses:
        if s.state == "done" and s.episodes == 0:
            episodes = "none (nothing to train)"
        elif s.episodes is None:
            episodes = ""
        else:
            episodes = f"{s.episodes:,}" + ("" if s.total is None else f"/{s.total:,}")
        validation = "" if s.validation is None else f"{100 * s.validation[1]:.1f}% at {s.validation[0]:,}"
        wall = "" if s.wall_time_s is None or not s.episodes else _duration(s.wall_time_s)
        if s.left_s is not None:
            wall += f", ~{_duration(s.left_s)} left"
        seed = "?" if s.seed < 0 else str(s.seed)
        fields = (s.budget, s.row, s.setting, seed, s.state, episodes, validation, wall, s.note)
        lines.append(tuple(printable(field) for field in fields))  # a cell file's text reaches no terminal raw
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    text = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in lines]
    counts = ", ".join(f"{n} {state}" for state in STATES if (n := sum(s.state == state for s in statuses)))
    return "\n".join([printable(f"{table} ({results / table}): {counts}"), *text])


def _duration(seconds: float) -> str:
    """``50 s`` below a minute and a half, ``12 min`` below two hours, ``2.5 h`` above."""
    if seconds < 90:
        return f"{round(seconds)} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes / 60:.1f} h"
