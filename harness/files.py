"""Reading files that a results folder or a repository may hold: a FIFO, device or socket in a file's place
is refused before it is read (reading one could block for ever or never end)."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
"""How a PNG file begins."""


class NotRegularFile(OSError):
    """A FIFO, device or socket where a file was expected."""


class TooLarge(OSError):
    """A file larger than its reader accepts (read whole, it could take all memory)."""

    def __init__(self, path: Path, size: int, max_size: int) -> None:
        super().__init__(errno.EFBIG, f"{size:,} bytes, more than the {max_size:,} accepted", str(path))
        self.size, self.max_size = size, max_size


def read_regular(path: Path, limit: int = -1, max_size: int | None = None) -> bytes:
    """The bytes of the regular file at ``path`` (at most ``limit``, all with -1).

    Raises ``IsADirectoryError`` for a folder, ``NotRegularFile`` for anything else that is not a
    regular file (opened without blocking, never read), ``TooLarge`` for a file of more than
    ``max_size`` bytes (never read), and ``OSError`` as ``open`` does.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        found = os.fstat(fd)  # before fdopen, whose own refusal of a folder names the descriptor, not the path
        if stat.S_ISDIR(found.st_mode):
            raise IsADirectoryError(errno.EISDIR, "Is a directory", str(path))
        if not stat.S_ISREG(found.st_mode):
            raise NotRegularFile(errno.EINVAL, "not a regular file (a FIFO, device or socket)", str(path))
        if max_size is not None and found.st_size > max_size:
            raise TooLarge(path, found.st_size, max_size)
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as handle:
        return handle.read(limit)


def starts_with(path: Path, prefix: bytes) -> bool:
    """Whether ``path`` is a regular file that begins with ``prefix`` (what a file the harness wrote begins with)."""
    try:
        return read_regular(path, len(prefix)) == prefix
    except OSError:
        return False
