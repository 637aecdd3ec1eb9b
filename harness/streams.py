"""Terminal lines that other threads cannot split: stdout sent to stderr while Ray runs, and log lines.

``print`` writes a message and its newline in two calls, so a line written by another thread
in between lands inside it. Ray's driver prints its workers' errors (``(raylet) A worker
died ...``) from a thread of its own, to ``sys.stdout``, while ``harness reproduce`` logs a
failed cell to stderr: measured under load, one run in five glued the two,
``... RPC error: Socket closed<cell>: failed: ...``. So while Ray runs, ``sys.stdout`` is a
``WholeLines`` over stderr (each thread's text held until its newline, then one write), and
``log_line`` writes a message with its newline in one call.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any, TextIO

from tqdm import tqdm


class WholeLines:
    """A text stream over ``target`` that writes each thread's lines whole, in one call each."""

    def __init__(self, target: TextIO) -> None:
        self.target = target
        self._lock = threading.Lock()
        self._pending: dict[int, str] = {}

    def write(self, text: str) -> int:
        """Hold ``text`` until this thread's newline, then write its finished lines at once."""
        me = threading.get_ident()
        with self._lock:
            done, newline, rest = (self._pending.pop(me, "") + text).rpartition("\n")
            if rest:
                self._pending[me] = rest
            if newline:
                self.target.write(done + newline)
                self.target.flush()
        return len(text)

    def flush(self) -> None:
        """Flush the target; text still waiting for its newline stays held (``close`` writes it)."""
        with self._lock:
            self.target.flush()

    def close(self) -> None:
        """Write what every thread still holds, each on a line of its own."""
        with self._lock:
            for text in self._pending.values():
                self.target.write(text + "\n")
            self._pending.clear()
            self.target.flush()

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding, ...: the target's
        return getattr(self.target, name)


def log_line(message: str) -> None:
    """Write ``message`` and its newline to stderr in one call, clear of any progress bar."""
    tqdm.write(message + "\n", file=sys.stderr, end="")


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send what is written to stdout, by other threads and child processes too, to stderr
    meanwhile, Python's writes as whole lines (``WholeLines``)."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    lines = WholeLines(sys.stderr)
    try:
        with contextlib.redirect_stdout(lines):
            yield
    finally:
        lines.close()
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
