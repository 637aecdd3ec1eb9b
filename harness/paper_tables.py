"""The papers' published numbers, one CSV file per table under ``leaderboards/papers/``.

Each row of a file is one cell of a paper's table::

    row,setting,metric,key,value,ci95,paper,table,source,checked,note

``value`` and ``ci95`` are percentages as printed (``ci95`` empty where the paper prints no ±);
``source`` is ``paper`` or ``secondary`` (the number comes from a source quoting the paper);
``checked`` is ``tables.md`` (checked against our transcription, ``../shared/papers/tables.md``)
or ``paper (<where>)`` (checked against the paper's own text). A cell nobody could confirm has
no row. Only the standard library is used, so loading a table is cheap.
"""

from __future__ import annotations

import csv
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from harness.errors import DataError

PAPERS_DIR = Path(__file__).resolve().parents[1] / "leaderboards" / "papers"
"""Folder of the paper tables in a source checkout (the repository's ``leaderboards/papers``)."""
PAPERS_ENV = "HARNESS_PAPERS_DIR"
"""Overrides where the paper tables are read from."""

COLUMNS = ("row", "setting", "metric", "key", "value", "ci95", "paper", "table", "source", "checked", "note")
METRICS = ("accuracy_per_instance", "nway_kshot_accuracy")
SOURCES = ("paper", "secondary")
REQUIRED = ("row", "setting", "metric", "key", "value", "paper", "source", "checked")
"""Columns that may not be empty (``ci95``, ``table`` and ``note`` may)."""

_ORDINAL = re.compile(r"[1-9][0-9]*(st|nd|rd|th)")
_NWAY_KSHOT = re.compile(r"[1-9][0-9]*-way [1-9][0-9]*-shot( \(.+\))?")
_CHECKED = re.compile(r"tables\.md|paper \(.+\)")


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


def _check_header(header: list[str], path: Path) -> None:
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
    metric, key, source, checked = fields["metric"], fields["key"], fields["source"], fields["checked"]
    if metric not in METRICS:
        raise DataError(f"{where}: unknown metric {metric!r}; use one of {', '.join(METRICS)}")
    if metric == "accuracy_per_instance" and not _ORDINAL.fullmatch(key):
        raise DataError(f"{where}: key {key!r} is not an instance number; use 1st, 2nd, 3rd, ..., 10th")
    if metric == "nway_kshot_accuracy" and not _NWAY_KSHOT.fullmatch(key):
        raise DataError(f"{where}: key {key!r} is not an N-way K-shot setting; use e.g. '5-way 1-shot'")
    if source not in SOURCES:
        raise DataError(f"{where}: bad source {source!r}; use 'paper' or 'secondary' (as tables.md says)")
    if not _CHECKED.fullmatch(checked):
        raise DataError(f"{where}: bad checked {checked!r}; use 'tables.md' or 'paper (<arXiv id, table>)'")
    value_text, ci95_text = fields["value"].strip(), fields["ci95"].strip()
    return PaperCell(
        row=fields["row"],
        setting=fields["setting"],
        metric=metric,
        key=key,
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


def load_paper_table(path: Path) -> list[PaperCell]:
    """The cells of one paper-table CSV, in file order; ``DataError`` (one line: file, line, fix) if malformed."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist; paper tables live in {PAPERS_DIR} as <table>.csv")
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle, strict=True)
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
    return cells


def papers_dir(directory: Path | None = None) -> Path:
    """``directory``, else ``$HARNESS_PAPERS_DIR``, else the checkout's folder, else ``./leaderboards/papers``."""
    if directory is not None:
        return Path(directory)
    if os.environ.get(PAPERS_ENV):
        return Path(os.environ[PAPERS_ENV])
    return PAPERS_DIR if PAPERS_DIR.is_dir() else Path.cwd() / "leaderboards" / "papers"


def paper_file(table: str, directory: Path | None = None) -> Path:
    """The CSV holding the paper's numbers of ``table``."""
    return papers_dir(directory) / f"{table}.csv"


def load_paper_tables(directory: Path | None = None) -> dict[str, list[PaperCell]]:
    """Every ``*.csv`` in the papers folder (see ``papers_dir``), keyed by table name (the file stem)."""
    folder = papers_dir(directory)
    if not folder.is_dir():
        raise DataError(f"{folder} does not exist; pass the folder holding the paper-table CSVs")
    return {path.stem: load_paper_table(path) for path in sorted(folder.glob("*.csv"))}
