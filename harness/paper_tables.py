"""The papers' published numbers: one CSV file per table, shipped with the table's plugin.

A table names its file as package data (``TableSpec.numbers``, ``"<package>:<path>"``); the
built-in tables' files are the repository's ``leaderboards/papers/``, installed as the
package ``harness.papers``. Folders given with ``--papers DIR`` or in ``$HARNESS_PAPERS_DIR``
are searched first for ``<table>.csv``, so a table's numbers can be added or corrected
without touching its plugin. Each row of a file is one cell of a paper's table::

    row,setting,metric,key,value,ci95,paper,table,source,checked,note

``value`` and ``ci95`` are percentages as printed (``ci95`` empty where the paper prints no ±);
``source`` is ``paper`` or ``secondary`` (the number comes from a source quoting the paper);
``checked`` says in words what the number was checked against (e.g. ``a transcription of the
paper's Table 1``). A cell nobody could confirm has no row. Only the standard library is
used, so loading a table is cheap.
"""

from __future__ import annotations

import csv
import importlib
import io
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import DataError, describe, printable
from harness.tables import TableSpec

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable  # Python 3.11+; only a type here

PAPERS_ENV = "HARNESS_PAPERS_DIR"
"""Folders (separated by ``os.pathsep``) searched for ``<table>.csv`` before the table's own file."""

COLUMNS = ("row", "setting", "metric", "key", "value", "ci95", "paper", "table", "source", "checked", "note")
SOURCES = ("paper", "secondary")
REQUIRED = ("row", "setting", "metric", "key", "value", "paper", "source", "checked")
"""Columns that may not be empty (``ci95``, ``table`` and ``note`` may)."""

_PACKAGE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
"""A package name that ``TableSpec.numbers`` may give (dotted identifiers)."""
_LINE_BREAKS = re.compile(r"[\r\n\t]")
PROSE = ("paper", "table", "checked", "note")
"""Columns of words that may run over lines (the Markdown joins them); the others hold no control characters."""
_FILE_NAME = re.compile(r"[\w./-]+\.(md|csv|txt|pdf|tex)")
"""A ``checked`` that is only a file name: a reader cannot follow it."""


@dataclass(frozen=True)
class PaperCell:
    """One published number: ``row`` x ``setting`` x ``key`` of a paper's table."""

    row: str
    setting: str
    metric: str
    key: str
    value: float
    ci95: float | None
    paper: str
    table: str
    source: str
    checked: str
    note: str
    value_text: str
    """``value`` as printed, e.g. ``97.00`` (the float loses the trailing zero)."""
    ci95_text: str
    """``ci95`` as printed; empty where the paper prints no ±."""


def _percent(text: str, column: str, where: str) -> float:
    try:
        number = float(text)
    except ValueError:
        raise DataError(
            f"{where}: {column} {text!r} is not a number; write the percentage as printed, e.g. 99.07"
        ) from None
    if not math.isfinite(number) or not 0.0 <= number <= 100.0:
        raise DataError(f"{where}: {column} {text} is outside [0, 100]; write the percentage as printed, e.g. 99.07")
    return number


def _check_header(header: list[str], path: Path | Traversable) -> None:
    missing = [c for c in COLUMNS if c not in header]
    unknown = [c for c in header if c not in COLUMNS]
    duplicated = sorted({c for c in header if header.count(c) > 1})
    problems = []
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)}")
    if unknown:
        problems.append(f"unknown column(s) {', '.join(repr(c) for c in unknown)}")
    if duplicated:
        problems.append(f"repeated column(s) {', '.join(duplicated)}")
    if problems:
        raise DataError(f"{path}:1: {'; '.join(problems)}; the header must name the columns {','.join(COLUMNS)}")


def _cell(fields: dict[str, str], where: str) -> PaperCell:
    for column in REQUIRED:
        if not fields[column].strip():
            raise DataError(f"{where}: {column} is empty; fill it in or drop the row")
    for column, text in fields.items():
        shown = _LINE_BREAKS.sub(" ", text) if column in PROSE else text
        if printable(shown) != shown:
            raise DataError(f"{where}: {column} {printable(repr(text))} holds control characters; remove them")
    source, checked = fields["source"], fields["checked"]
    if source not in SOURCES:
        raise DataError(f"{where}: bad source {source!r}; use 'paper', or 'secondary' for a source quoting the paper")
    if _FILE_NAME.fullmatch(checked):
        raise DataError(
            f"{where}: checked {checked!r} is a file name; say in words what the number was checked against, "
            "e.g. 'a transcription of the paper's Table 1'"
        )
    value_text, ci95_text = fields["value"].strip(), fields["ci95"].strip()
    return PaperCell(
        row=fields["row"],
        setting=fields["setting"],
        metric=fields["metric"],
        key=fields["key"],
        value=_percent(value_text, "value", where),
        ci95=_percent(ci95_text, "ci95", where) if ci95_text else None,
        paper=fields["paper"],
        table=fields["table"],
        source=source,
        checked=checked,
        note=fields["note"],
        value_text=value_text,
        ci95_text=ci95_text,
    )


def _fits(cell: PaperCell, table: TableSpec, where: str) -> None:
    """``DataError`` unless ``cell`` is a cell of ``table``: its metric, one of its settings and that setting's keys."""
    if cell.metric != table.metric:
        raise DataError(f"{where}: metric {cell.metric!r} is not table {table.name!r}'s; use {table.metric!r}")
    settings = [s.name for s in table.settings]
    if cell.setting not in settings:
        raise DataError(
            f"{where}: table {table.name!r} has no setting {cell.setting!r}; use one of {', '.join(settings)}"
        )
    keys = table.cell_keys(cell.setting)
    if cell.key not in keys:
        raise DataError(f"{where}: key {cell.key!r} is not a column of {cell.setting!r}; use one of {', '.join(keys)}")


def load_paper_table(path: Path | Traversable, table: TableSpec | None = None) -> list[PaperCell]:
    """The cells of a paper-table CSV in file order, checked against ``table`` if given; one-line ``DataError``."""
    if not path.is_file():
        raise DataError(
            f"{path} does not exist; write the paper's numbers there as CSV with the header {','.join(COLUMNS)}"
        )
    try:
        reader = csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"), newline=""), strict=True)
        header = next(reader, None)
        if header is None:
            raise DataError(f"{path}:1: the file is empty; the first line must be the header {','.join(COLUMNS)}")
        _check_header(header, path)
        cells: list[PaperCell] = []
        seen: dict[tuple[str, str, str], int] = {}
        for values in reader:
            line = reader.line_num
            if not any(v.strip() for v in values):
                continue
            where = f"{path}:{line}"
            if len(values) != len(header):
                raise DataError(
                    f"{where}: {len(values)} fields, the header has {len(header)}; quote fields that contain commas"
                )
            cell = _cell(dict(zip(header, values, strict=True)), where)
            if table is not None:
                _fits(cell, table, where)
            ident = (cell.row, cell.setting, cell.key)
            if ident in seen:
                raise DataError(
                    f"{where}: duplicate (row, setting, key) {ident} (first on line {seen[ident]}); "
                    "keep one row per cell"
                )
            seen[ident] = line
            cells.append(cell)
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 ({error.reason} at byte {error.start}); save the file as UTF-8") from None
    except csv.Error as error:
        raise DataError(f"{path}:{reader.line_num}: malformed CSV ({error}); check the quoting") from None
    numbers = [cell.value for cell in cells]
    if len(numbers) > 1 and min(numbers) >= 0 and 0 < max(numbers) <= 1:
        raise DataError(
            f"{path}: every value is between 0 and 1, as fractions are; write them in percent as the paper prints "
            "them (97.5, not 0.975)"
        )
    return cells


def search_path(papers: Sequence[Path] = ()) -> list[Path]:
    """Folders searched for ``<table>.csv``: ``papers`` (``--papers``), then ``$HARNESS_PAPERS_DIR``'s (must exist)."""
    from_env = [Path(p) for p in os.environ.get(PAPERS_ENV, "").split(os.pathsep) if p]
    for folder in papers:
        _check_folder(folder, f"pass --papers {folder.parent}, its folder", "pass a folder holding <table>.csv files")
    for folder in from_env:
        _check_folder(
            folder,
            f"set ${PAPERS_ENV} to its folder, {folder.parent}",
            f"fix or unset ${PAPERS_ENV}, which names it",
        )
    return [*papers, *from_env]


def _check_folder(folder: Path, if_file: str, if_missing: str) -> None:
    """``DataError`` unless ``folder`` is a folder: ``if_file`` is the fix when it is a file, else ``if_missing``."""
    if folder.is_file():
        raise DataError(f"papers folder {folder} is a file; {if_file}")
    if folder.exists() and not folder.is_dir():
        raise DataError(f"papers folder {folder} is not a folder (a device, FIFO or socket); {if_missing}")
    if not folder.is_dir():
        raise DataError(f"papers folder {folder} does not exist; {if_missing}")


def shipped(table: TableSpec) -> Traversable | None:
    """The file of numbers ``table``'s plugin ships (``TableSpec.numbers``), or ``None`` if it names none."""
    if not table.numbers:
        return None
    package, _, path = table.numbers.partition(":")
    where = f"table {table.name!r}: numbers {table.numbers!r}"
    parts = path.split("/")
    if not _PACKAGE.fullmatch(package) or any(part in ("", ".", "..") for part in parts):
        raise DataError(
            f"{where} is not '<package>:<path>'; write e.g. 'my_plugin:papers/{table.name}.csv' "
            "(a relative path inside the package)"
        )
    if not path.endswith(".csv"):
        raise DataError(f"{where} names no .csv file; ship the numbers as CSV, e.g. 'papers/{table.name}.csv'")
    return _package_files(package, table.name).joinpath(*parts)


def _package_files(package: str, table: str) -> Traversable:
    """The files of the installed package ``package`` (of ``table``'s numbers); one-line ``DataError`` if none."""
    where = f"table {table!r}: package {package!r} of its numbers"
    try:
        module = importlib.import_module(package)
    except ModuleNotFoundError as exc:
        if exc.name is None or package == exc.name or package.startswith(f"{exc.name}."):
            raise DataError(f"{where} is not installed; reinstall the plugin") from None
        raise DataError(f"{where} failed to import ({describe(exc)}); fix or reinstall its plugin") from None
    except (Exception, SystemExit) as exc:  # its __init__ raised
        raise DataError(f"{where} failed to import ({describe(exc)}); fix or reinstall its plugin") from None
    if not hasattr(module, "__path__"):  # Python 3.12+ would read files beside a plain module too
        raise DataError(f"{where} is a module, not a package; name the package holding the file")
    return resources.files(module)


def paper_file(table: TableSpec, papers: Sequence[Path] = ()) -> Path | Traversable:
    """The file of ``table``'s paper numbers: the first ``<table>.csv`` on the search path, else the table's own."""
    folders = search_path(papers)
    for folder in folders:
        if (folder / f"{table.name}.csv").is_file():
            return folder / f"{table.name}.csv"
    own = shipped(table)
    if own is not None and own.is_file():
        return own
    looked = [str(f) for f in folders] + (
        [f"{table.numbers} (missing from the installed package)"] if own is not None else []
    )
    raise DataError(
        f"no paper numbers for table {table.name!r} (looked in: {', '.join(looked) or 'nothing'}); "
        f"pass --papers DIR holding {table.name}.csv, or ship it with the table (TableSpec.numbers)"
    )


def paper_cells(table: TableSpec, papers: Sequence[Path] = ()) -> list[PaperCell]:
    """The published cells of ``table`` (see ``paper_file``), checked against the table."""
    return load_paper_table(paper_file(table, papers), table)
