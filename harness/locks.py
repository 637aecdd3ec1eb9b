"""Exclusive locks that last as long as the process holding them (``fcntl.flock`` on a lock file).

The kernel drops a flock when the process holding it dies, however it dies (SIGKILL too),
so a lock is never stale. The lock file says who holds it (pid, host, since when), for the
message a second process gets; the holder deletes the file when it lets go. Locks are
re-entrant within one thread of one process. Without ``fcntl`` (Windows) nothing is locked.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import stat
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from harness.errors import HarnessError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

_held: set[tuple[str, int, int]] = set()
"""Locks this process holds, as (lock file, pid, thread) of the ``exclusive`` block that took each."""


class LockHeldError(HarnessError):
    """Another process (or thread) holds the lock."""

    def __init__(self, message: str, holder: str) -> None:
        super().__init__(message)
        self.holder = holder
        """Who holds it, e.g. ``pid 123 on host-a since 2026-01-02T03:04:05+00:00``."""


def holder_of(fd: int) -> str:
    """Who holds the lock on the open lock file ``fd``, as its holder wrote it."""
    holder = parse_holder(os.pread(fd, HOLDER_BYTES, 0))
    return "another process" if holder is None else describe_holder(*holder)  # None: not written yet


HOLDER_BYTES = 4096
"""The most of a lock file that is read for its holder."""


def parse_holder(data: bytes) -> tuple[int, str, str] | None:
    """(pid, host, since) as a lock file's holder wrote them; ``None`` where they are missing or malformed."""
    try:
        info = json.loads(data)
        return int(info["pid"]), str(info["host"]), str(info["since"])
    except (ValueError, TypeError, KeyError, OverflowError, RecursionError):
        return None


PROC_LOCKS = Path("/proc/locks")
"""Linux's list of the locks held on this machine: ``flock`` ones as ``FLOCK``, each with its holder's pid."""


def holds_a_flock(pid: int) -> bool | None:
    """Whether process ``pid`` holds any ``flock`` now, as ``/proc/locks`` says (a run holds its directory's for as
    long as it runs); ``None`` where that cannot be known: no such list, or one without any ``flock`` (a sandbox's
    kernel may keep none). Matched by pid, not by the lock file's device and inode, which some filesystems
    (overlays) report otherwise than the kernel's list does."""
    try:
        listing = PROC_LOCKS.read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    holders = [fields[4] for fields in map(str.split, listing.splitlines()) if fields[1:2] == ["FLOCK"] and fields[4:]]
    return str(pid) in holders if holders else None


def holds_flock_on(pid: int, path: Path) -> bool | None:
    """Whether process ``pid`` holds a ``flock`` on the file ``path`` now: a descriptor of it that
    ``/proc/<pid>/fd`` links to ``path`` and whose ``/proc/<pid>/fdinfo`` lists a ``FLOCK`` (a run holds its lock
    file so for as long as it runs); ``None`` where that cannot be known (no such folder, or one this user may not
    read). Ask only where ``holds_a_flock`` is true: a kernel that lists no flocks lists none here either."""
    try:
        target = os.path.realpath(path)
        descriptors = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    for descriptor in descriptors:
        try:
            if os.readlink(f"/proc/{pid}/fd/{descriptor}") != target:
                continue
            info = Path(f"/proc/{pid}/fdinfo/{descriptor}").read_text(encoding="ascii", errors="replace")
        except OSError:  # closed since it was listed
            continue
        if any(line.startswith("lock:") and "FLOCK" in line.split() for line in info.splitlines()):
            return True
    return False


def describe_holder(pid: int, host: str, since: str) -> str:
    """How messages name a lock's holder: ``pid 123 on host-a since 2026-01-02T03:04:05+00:00``."""
    return f"pid {pid} on {host} since {since}"


@contextlib.contextmanager
def exclusive(lock_file: Path) -> Iterator[bool]:
    """Hold an exclusive lock on ``lock_file`` (created if missing) or raise ``LockHeldError`` at once.

    Yields whether this call took the lock (``False``: this thread already held it).
    """
    key = (str(lock_file.resolve()), os.getpid(), threading.get_ident())
    if fcntl is None:
        yield True
        return
    if key in _held:
        yield False
        return
    fd = _acquire(lock_file)
    _held.add(key)
    try:
        yield True
    finally:
        _held.discard(key)
        lock_file.unlink(missing_ok=True)  # while still locked, so nobody takes a lock on a file about to go
        os.close(fd)


def _not_a_lock(lock_file: Path) -> str:
    """The one-line problem of a ``lock_file`` that is no regular file of its own."""
    return (
        f"{lock_file} is not a regular file of its own (a symlink, hard link, folder or FIFO), as a lock must be; "
        "move it away (or delete it) and run again"
    )


def problem(lock_file: Path) -> str | None:
    """Why ``lock_file`` cannot be a lock (``_not_a_lock``), never following it; ``None`` if it can or is missing."""
    try:
        info = os.lstat(lock_file)
    except FileNotFoundError:
        return None
    return None if stat.S_ISREG(info.st_mode) and info.st_nlink == 1 else _not_a_lock(lock_file)


def _open(lock_file: Path) -> int:
    """Open ``lock_file``, created if missing, refusing anything but a regular file with no other name: a symlink is
    never followed, and a hard link to a file elsewhere never written."""
    try:
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    except OSError as exc:  # a folder, a symlink (ELOOP; EMLINK on BSDs), a FIFO or socket without a reader
        if exc.errno in (errno.EISDIR, errno.ELOOP, errno.EMLINK, errno.ENXIO):
            raise HarnessError(_not_a_lock(lock_file)) from None
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(fd)
        raise HarnessError(_not_a_lock(lock_file))
    return fd


def _acquire(lock_file: Path) -> int:
    """Open, lock and sign ``lock_file``; return its descriptor."""
    while True:
        fd = _open(lock_file)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = holder_of(fd)
            os.close(fd)
            raise LockHeldError(f"{lock_file} is held by {holder}", holder) from None
        try:
            on_disk, locked = os.stat(lock_file), os.fstat(fd)
            same = (on_disk.st_dev, on_disk.st_ino) == (locked.st_dev, locked.st_ino)
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder deleted this file as it let go: lock the one now there
    since = datetime.now(timezone.utc).isoformat(timespec="seconds")
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": since}).encode(), 0)
    return fd
