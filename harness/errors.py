"""Exceptions the harness raises; each message is one line that names the fix."""

import errno
import unicodedata


class HarnessError(Exception):
    """Base class: the CLI prints the message on one line and exits with status 2."""


class ConfigError(HarnessError):
    """A run configuration (file, flag or value) is invalid."""


class UnknownNameError(ConfigError):
    """A model, dataset, metric or table name is not registered."""


class EpisodeCountError(ConfigError):
    """A run asks a split for more episodes than its dataset holds."""

    def __init__(self, message: str, *, dataset: str, count: int) -> None:
        super().__init__(message)
        self.dataset = dataset
        self.count = count


class PluginError(HarnessError):
    """A plugin could not be loaded or returned something unusable."""


class DuplicateNameError(PluginError):
    """Two plugins register the same name."""


class DataError(HarnessError):
    """Input data is missing, truncated or corrupt."""


class NonFiniteLossError(HarnessError):
    """Training produced a NaN or infinite loss."""


def describe(exc: BaseException) -> str:
    """``Type: first line of the message``: an exception folded into one line for an error message."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def printable(text: str) -> str:
    """``text`` with control and format characters escaped (``\\n``, ``\\x1b``), so printing it cannot move the
    cursor, recolour the terminal or reorder the line."""
    return "".join(ascii(c)[1:-1] if unicodedata.category(c) in ("Cc", "Cf") else c for c in text)


def shortened(text: str, limit: int = 2000) -> str:
    """``text``, its middle left out if it is longer than ``limit`` characters (a long value echoed by an error),
    keeping its start and its end, where the fix is named."""
    if len(text) <= limit:
        return text
    keep = limit // 2
    return f"{text[:keep]} ... ({len(text) - 2 * keep:,} characters left out) ... {text[-keep:]}"


def too_long(exc: OSError) -> bool:
    """Whether ``exc`` says a path, or a name in it, is longer than the file system takes."""
    return exc.errno == errno.ENAMETOOLONG


SHORTER_PATH = "give a shorter path (a folder or file name holds at most 255 bytes, a whole path 4,096)"
"""The fix for a path ``too_long``."""
