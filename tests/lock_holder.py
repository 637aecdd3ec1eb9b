"""A helper for the lock tests: another process that holds a run directory's lock."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

HOLD = """
import sys
from pathlib import Path
from harness import rundirs
with rundirs.claim(Path(sys.argv[1])):
    print("held", flush=True)
    sys.stdin.read()
"""


@contextlib.contextmanager
def held_elsewhere(directory: Path) -> Iterator[subprocess.Popen]:
    """A subprocess holding ``directory``'s lock until the block ends (it is then SIGKILLed, never let go)."""
    with subprocess.Popen(
        [sys.executable, "-c", HOLD, str(directory)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None and proc.stdout.readline() == "held\n", "the helper took no lock"
            yield proc
        finally:
            proc.kill()
