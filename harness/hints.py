"""Hints in error messages rewritten to name the options of the command that shows them.

Datasets say where their data goes as ``harness run`` takes it (``--data root=DIR``);
``harness reproduce`` takes ``--data-dir DATASET=DIR`` and ``harness evaluate`` ``--data-dir DIR``.
"""

from __future__ import annotations

RUN_DATA_HINT = "--data root=DIR"
"""How a dataset's hint names its ``root`` option: right for ``harness run`` only."""


def for_command(message: str, command: str | None, dataset: str | None = None) -> str:
    """``message`` with ``--data root=DIR`` replaced by the option ``command`` has (``dataset`` names the dataset)."""
    if command == "reproduce":
        return message.replace(RUN_DATA_HINT, f"--data-dir {dataset or 'DATASET'}=DIR")
    if command == "evaluate":
        return message.replace(RUN_DATA_HINT, "--data-dir DIR")
    return message
