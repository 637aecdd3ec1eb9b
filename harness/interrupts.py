"""Stop training at a step boundary on Ctrl-C (SIGINT) or SIGTERM, so the run saves its checkpoint first.

The first signal is noted and the previous handlers are put back, so a second one acts at once
(Ctrl-C twice: ``KeyboardInterrupt`` mid-step, losing only the steps since the last checkpoint).
Only the main thread can take signals; elsewhere (a worker thread) nothing is deferred. A signal
the process ignores stays ignored (a shell starts background jobs with SIGINT ignored, so that
Ctrl-C for the job in the foreground leaves them running).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)
NAMES = tuple(signal.Signals(s).name for s in SIGNALS)
"""``SIGINT``, ``SIGTERM``: what a checkpoint may say stopped it."""


class Stopped(KeyboardInterrupt):
    """A run stopped by a signal, with the message saying how to carry on (training: once its checkpoint is
    saved); ``code`` is the exit status (128 + signal)."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.message = message
        self.code = 128 + signum


class Terminated(KeyboardInterrupt):
    """SIGTERM outside training, which then ends the command as Ctrl-C does (``terminate_like_ctrl_c``)."""

    signum = signal.SIGTERM


@contextlib.contextmanager
def terminate_like_ctrl_c() -> Iterator[None]:
    """Within the block, SIGTERM raises ``Terminated`` (unless the process ignores it or handles it already), so
    a command killed while testing says so and cleans up as on Ctrl-C instead of dying silently."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return

    def terminate(signum: int, frame: Any) -> None:
        raise Terminated

    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@dataclass
class Deferred:
    """The signal received while deferred, if any."""

    signum: int | None = None

    def came(self) -> bool:
        """Whether a signal came."""
        return self.signum is not None

    @property
    def name(self) -> str:
        """The signal's name (``SIGTERM``); empty before one came."""
        return "" if self.signum is None else signal.Signals(self.signum).name


@contextlib.contextmanager
def deferred(notice: str = "") -> Iterator[Deferred]:
    """Note SIGINT and SIGTERM instead of acting on them, until the block ends; print ``notice`` on the first."""
    state = Deferred()
    if threading.current_thread() is not threading.main_thread():
        yield state
        return
    handlers = {s: signal.getsignal(s) for s in SIGNALS}
    previous = {s: handler for s, handler in handlers.items() if handler is not signal.SIG_IGN}

    def restore() -> None:
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)

    def note(signum: int, frame: Any) -> None:
        state.signum = signum
        restore()
        if notice:
            print(f"harness: {signal.Signals(signum).name}: {notice}", file=sys.stderr, flush=True)

    for s in previous:
        signal.signal(s, note)
    try:
        yield state
    finally:
        restore()
