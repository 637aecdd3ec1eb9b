"""Hints in error messages rewritten to name the options of the command that shows them.

A dataset says where its data goes as ``harness run`` takes it for the dataset trained on:
``--data OPTION=DIR``, ``OPTION`` one of its ``location_options`` (e.g. ``--data root=DIR``).
The harness rewrites that for the command and the dataset's role in it (``FORMS``): the test
dataset of ``harness run`` takes ``--test-data OPTION=DIR``; ``harness evaluate`` takes
``--data-dir DIR`` for the data directory (the first location option) and ``--data OPTION=DIR``
for the others; ``harness reproduce`` takes ``--data-dir DATASET=DIR`` for the data directory.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from harness.errors import DataError

if TYPE_CHECKING:
    from harness.specs import DatasetSpec

RUN, TEST, EVALUATE, REPRODUCE = "run", "test", "evaluate", "reproduce"
FORMS = (RUN, TEST, EVALUATE, REPRODUCE)
"""Where a dataset's hint is shown: ``harness run`` (trained on), its test dataset, ``evaluate``, ``reproduce``."""
_HINT = re.compile(r"--data ([A-Za-z_][\w-]*)=DIR\b")


def for_dataset(message: str, spec: DatasetSpec, form: str) -> str:
    """``message`` of dataset ``spec`` with its ``--data OPTION=DIR`` hints written as ``form`` takes them."""
    return _HINT.sub(lambda match: _option(match.group(1), spec, form) or match.group(0), message)


def _option(option: str, spec: DatasetSpec, form: str) -> str | None:
    """The option that gives ``spec``'s location option ``option`` in ``form``; ``None``: leave the hint as it is."""
    if option not in spec.location_options:
        return None
    first = option == spec.location_options[0]
    if form == REPRODUCE and first:
        return f"--data-dir {spec.name}=DIR"
    if form == EVALUATE and first:
        return "--data-dir DIR"
    return f"--test-data {option}=DIR" if form == TEST else None


@contextlib.contextmanager
def dataset_hints(spec: DatasetSpec, form: str) -> Iterator[None]:
    """Rewrite the hints of a ``DataError`` raised in the block by dataset ``spec`` for ``form``."""
    try:
        yield
    except DataError as exc:
        rewritten = for_dataset(str(exc), spec, form)
        if rewritten == str(exc):
            raise
        raise DataError(rewritten) from exc.__cause__
