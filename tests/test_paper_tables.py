"""The papers' published numbers under leaderboards/papers/: they load, and they are exactly tables.md's.

tables.md (``../shared/papers/tables.md`` next to the repository) is parsed here on its own, so a
number filled in, left out or mistyped in a CSV file fails a test. The installed package ships
these files (``harness.papers``), found through the tables that name them.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.errors import DataError
from harness.paper_tables import COLUMNS, load_paper_table, paper_cells, paper_file
from harness.plugins import PluginHost

PAPERS_DIR = Path(__file__).resolve().parents[1] / "leaderboards" / "papers"
"""The repository's paper tables (the installed package may live elsewhere)."""

TABLES_MD = Path(__file__).resolve().parents[1].parent / "shared" / "papers" / "tables.md"
FILES = (
    "mann-table1",
    "mann-table2",
    "metanet-omniglot",
    "metanet-miniimagenet",
    "snail-table1",
    "snail-table2",
)
NO_NUMBER = {"\u2013", "\u2014", "-", "--", ""}
"""Cells of tables.md that hold no number (en dash, em dash, hyphen, empty)."""


@dataclass(frozen=True)
class Expected:
    """One result cell of a table in tables.md."""

    file: str
    row: str
    setting: str
    key: str
    value_text: str
    ci95_text: str
    source: str
    table: str


@dataclass
class MdTable:
    section: str
    label: str
    """``Table 1`` etc. from the line that introduces the table; empty if none."""
    caption: str
    header: list[str]
    rows: list[list[str]]


def _split_row(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def parse_markdown_tables(text: str) -> list[MdTable]:
    """Every pipe table in ``text`` with its ``## `` section and the ``Table N:`` line before it."""
    tables: list[MdTable] = []
    section = label = caption = ""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("## "):
            section, label, caption = line[3:].strip(), "", ""
        elif match := re.match(r"(Table \d+):\s*(.*)", line):
            label, caption = match.group(1), match.group(2)
        elif line.lstrip().startswith("|"):
            block = []
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                block.append(_split_row(lines[i]))
                i += 1
            assert len(block) >= 2 and all(re.fullmatch(r":?-+:?", c) for c in block[1]), f"not a table: {block[:2]}"
            tables.append(MdTable(section, label, caption, block[0], block[2:]))
            label = caption = ""
            continue
        i += 1
    return tables


def _number(cell: str) -> tuple[str, str]:
    value, _, ci = (part.strip() for part in cell.partition("±"))
    assert re.fullmatch(r"\d+(\.\d+)?", value), f"unexpected cell {cell!r} in tables.md"
    assert not ci or re.fullmatch(r"\d+(\.\d+)?", ci), f"unexpected cell {cell!r} in tables.md"
    return value, ci


def expected_cells(text: str) -> tuple[list[Expected], int]:
    """Every number of tables.md's tables as the CSV row it must be, and how many "no number" cells there were."""
    cells: list[Expected] = []
    blanks = 0
    for table in parse_markdown_tables(text):
        source = "secondary" if "secondary" in table.section.lower() else "paper"
        first = table.section.split(",")[0].split()[0]  # Santoro / Munkhdalai / Mishra
        header = table.header
        for row in table.rows:
            assert len(row) == len(header), f"ragged row {row} in tables.md"
            if first == "Santoro":
                file = {"Table 1": "mann-table1", "Table 2": "mann-table2"}[table.label]
                if "classes" in header:
                    setting, columns = f"{row[header.index('classes')]}-way", header[2:]
                    values = row[2:]
                else:
                    assert "5 classes" in table.caption
                    setting, columns, values = "5-way", header[1:], row[1:]
                for key, cell in zip(columns, values, strict=True):
                    if cell in NO_NUMBER:
                        blanks += 1
                        continue
                    value, ci = _number(cell)
                    cells.append(Expected(file, row[0], setting, key, value, ci, source, table.label))
            elif first == "Munkhdalai":
                assert header[1] == "MetaNet" and len(header) == 2, header
                name = row[0]
                match = re.search(r"(\d+-way \d+-shot)", name)
                assert match, name
                setting = match.group(1) + (" (standard split)" if "standard split" in name else "")
                file = "metanet-omniglot" if name.startswith("Omniglot") else "metanet-miniimagenet"
                assert name.startswith(("Omniglot", "Mini-ImageNet")), name
                if row[1] in NO_NUMBER:
                    blanks += 1
                    continue
                value, ci = _number(row[1])
                cells.append(Expected(file, "MetaNet", setting, setting, value, ci, source, table.label))
            elif first == "Mishra":
                file = {"Table 1": "snail-table1", "Table 2": "snail-table2"}[table.label]
                prefix = ""
                if not all("-way" in column for column in header[1:]):
                    ways = re.search(r"(\d+-way)", table.caption)
                    assert ways, table.caption
                    prefix = ways.group(1) + " "
                for column, cell in zip(header[1:], row[1:], strict=True):
                    if cell in NO_NUMBER:
                        blanks += 1
                        continue
                    value, ci = _number(cell)
                    setting = prefix + column
                    cells.append(Expected(file, row[0], setting, setting, value, ci, source, table.label))
            else:
                raise AssertionError(f"tables.md has a table in a section this test does not know: {table.section}")
    return cells, blanks


@pytest.fixture(scope="module")
def tables_md() -> str:
    if not TABLES_MD.is_file():
        pytest.skip(f"{TABLES_MD} not found (the shared papers folder sits next to the repository)")
    return TABLES_MD.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def loaded() -> dict[str, list]:
    """Each built-in table's numbers as the installed package ships them, checked against the table."""
    host = PluginHost(autoload=False, modules=[], strict=False)
    return {name: paper_cells(host.tables.get(name)) for name in FILES}


def test_every_csv_loads_and_the_package_ships_the_repositorys_files(loaded):
    assert sorted(p.stem for p in PAPERS_DIR.glob("*.csv")) == sorted(FILES)
    host = PluginHost(autoload=False, modules=[], strict=False)
    for name in FILES:
        assert paper_file(host.tables.get(name)).read_text() == (PAPERS_DIR / f"{name}.csv").read_text()
        cells = loaded[name]
        assert cells, name
        metric = "accuracy_per_instance" if name.startswith("mann") else "nway_kshot_accuracy"
        assert {c.metric for c in cells} == {metric}
        assert all(float(c.value_text) == c.value for c in cells)
        assert all((c.ci95 is None) == (c.ci95_text == "") for c in cells)
        if metric == "nway_kshot_accuracy":
            assert all(c.key == c.setting for c in cells)


def test_the_wheel_installs_every_package_and_the_papers_numbers():
    from harness.config import tomllib

    repo = PAPERS_DIR.parents[1]
    setuptools = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = {".".join(p.parent.relative_to(repo).parts) for p in (repo / "harness").rglob("__init__.py")}
    assert set(setuptools["packages"]) == packages | {"harness.papers"}, "list a new package in pyproject.toml"
    assert setuptools["package-dir"]["harness.papers"] == "leaderboards/papers"
    assert setuptools["package-data"]["harness.papers"] == ["*.csv"]


def test_tables_md_parses_as_expected(tables_md):
    cells, blanks = expected_cells(tables_md)
    counts = {name: sum(c.file == name for c in cells) for name in FILES}
    assert counts == {
        "mann-table1": 4 * 6,
        "mann-table2": 13 * 6,
        "metanet-omniglot": 5,
        "metanet-miniimagenet": 1,
        "snail-table1": 7 * 4 - 4,
        "snail-table2": 6 * 2 - 1,
    }
    assert blanks == 5


def test_every_cell_matches_tables_md(tables_md, loaded):
    expected, _ = expected_cells(tables_md)
    by_cell = {(e.file, e.row, e.setting, e.key): e for e in expected}
    assert len(by_cell) == len(expected), "tables.md has the same cell twice"
    actual = {(name, c.row, c.setting, c.key): c for name, cells in loaded.items() for c in cells}
    # nothing filled in: every CSV row is a number of tables.md ...
    extra = sorted(set(actual) - set(by_cell))
    assert not extra, f"CSV rows with no number in tables.md: {extra}"
    # ... and nothing left out: every number of tables.md is exactly one CSV row.
    missing = sorted(set(by_cell) - set(actual))
    assert not missing, f"numbers of tables.md missing from the CSV files: {missing}"
    assert sum(len(cells) for cells in loaded.values()) == len(expected)
    for ident, e in by_cell.items():
        cell = actual[ident]
        assert (cell.value_text, cell.ci95_text) == (e.value_text, e.ci95_text), ident
        assert cell.table == e.table, ident


def test_sources_follow_tables_md(tables_md, loaded):
    expected, _ = expected_cells(tables_md)
    actual = {(name, c.row, c.setting, c.key): c for name, cells in loaded.items() for c in cells}
    secondary = [e for e in expected if e.source == "secondary"]
    assert secondary, "tables.md marks the MetaNet section secondary"
    for e in expected:
        cell = actual.get((e.file, e.row, e.setting, e.key))
        assert cell is not None and cell.source == e.source, e


def test_citation_and_checked_columns(loaded):
    papers = {
        "mann": "Santoro et al. 2016, Meta-Learning with Memory-Augmented Neural Networks, ICML",
        "metanet": "Munkhdalai & Yu 2017, Meta Networks, ICML",
        "snail": "Mishra et al. 2018, A Simple Neural Attentive Meta-Learner, ICLR",
    }
    for name, cells in loaded.items():
        for cell in cells:
            assert cell.paper == papers[name.split("-")[0]]
            if cell.source == "paper":  # checked in words, naming the table it was checked against
                assert cell.checked == f"our transcription of the paper's {cell.table}", cell
            else:
                assert cell.checked == "the secondary sources that quote it, not the paper itself", cell
            assert "tables.md" not in cell.checked + cell.note and ".csv" not in cell.note, cell


# --- loader errors: one line naming the file, the line and the fix ---------------------------------

HEADER = ",".join(COLUMNS)
CHECKED = "our transcription of the paper's Table 1"
GOOD = f'SNAIL,5-way 1-shot,nway_kshot_accuracy,5-way 1-shot,99.07,0.16,"Mishra et al. 2018",Table 1,paper,{CHECKED},'


def _error(tmp_path: Path, *lines: str) -> str:
    path = tmp_path / "t.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        load_paper_table(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def test_good_row_loads(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(f"{HEADER}\n{GOOD}\n", encoding="utf-8")
    (cell,) = load_paper_table(path)
    assert (cell.value, cell.ci95, cell.value_text, cell.ci95_text) == (99.07, 0.16, "99.07", "0.16")
    assert cell.paper == "Mishra et al. 2018" and cell.note == ""


def test_missing_file(tmp_path):
    with pytest.raises(DataError) as info:
        load_paper_table(tmp_path / "nope.csv")
    message = str(info.value)
    assert "\n" not in message and "nope.csv does not exist;" in message


def test_non_numeric_value(tmp_path):
    message = _error(tmp_path, HEADER, GOOD.replace("SNAIL", "A"), GOOD.replace("99.07", "n/a"))
    assert ":3:" in message and "'n/a' is not a number" in message and "e.g. 99.07" in message


@pytest.mark.parametrize("value", ["100.5", "-1", "nan", "inf"])
def test_value_outside_range(tmp_path, value):
    message = _error(tmp_path, HEADER, GOOD.replace("99.07", value))
    assert ":2:" in message and ("outside [0, 100]" in message or "not a number" in message)


def test_values_written_as_fractions_are_refused_naming_percent(tmp_path):
    fraction = GOOD.replace("99.07", "0.9907").replace("0.16,", "0.0016,")
    message = _error(tmp_path, HEADER, fraction, fraction.replace("SNAIL", "A").replace("0.9907", "0.95"))
    assert message.endswith("every value is between 0 and 1, as fractions are; write them in percent as the paper "
                            "prints them (97.5, not 0.975)")  # fmt: skip


def test_duplicate_cell(tmp_path):
    message = _error(tmp_path, HEADER, GOOD, GOOD.replace("99.07", "98.00"))
    assert ":3:" in message and "duplicate" in message and "line 2" in message and "one row per cell" in message


def test_unknown_column(tmp_path):
    message = _error(tmp_path, HEADER + ",extra", GOOD + ",x")
    assert ":1:" in message and "unknown column(s) 'extra'" in message and "header must name" in message


def test_missing_column(tmp_path):
    message = _error(tmp_path, HEADER.replace(",note", ""), GOOD[:-1])
    assert ":1:" in message and "missing column(s) note" in message


def test_any_metric_loads_and_a_table_checks_metric_setting_and_key(tmp_path):
    top5 = GOOD.replace("nway_kshot_accuracy", "top5_accuracy")
    path = tmp_path / "t.csv"
    path.write_text(f"{HEADER}\n{top5}\n", encoding="utf-8")
    (cell,) = load_paper_table(path)
    assert cell.metric == "top5_accuracy"
    snail = PluginHost(autoload=False, modules=[], strict=False).tables.get("snail-table1")
    snail_top5 = dataclasses.replace(snail, metric="top5_accuracy")
    assert load_paper_table(path, snail_top5) == [cell]  # a table may name any metric
    cases = [
        (snail, top5, "metric 'top5_accuracy' is not table 'snail-table1''s; use 'nway_kshot_accuracy'"),
        (
            snail_top5, top5.replace("5-way 1-shot,top5", "5-way 2-shot,top5"),
            "table 'snail-table1' has no setting '5-way 2-shot'; use one of 5-way 1-shot, 5-way 5-shot, 20-way 1-shot",
        ),
        (
            snail_top5, top5.replace("top5_accuracy,5-way 1-shot", "top5_accuracy,5-way 5-shot"),
            "key '5-way 5-shot' is not a column of '5-way 1-shot'; use one of 5-way 1-shot",
        ),
    ]  # fmt: skip
    for table, row, expected in cases:
        path.write_text(f"{HEADER}\n{row}\n", encoding="utf-8")
        with pytest.raises(DataError) as err:
            load_paper_table(path, table)
        assert str(err.value).startswith(f"{path}:2: {expected}"), str(err.value)


def test_bad_source(tmp_path):
    message = _error(tmp_path, HEADER, GOOD.replace(",paper,", ",blog,"))
    assert ":2:" in message and "bad source 'blog'" in message and "'secondary'" in message


def test_control_characters_in_a_field_are_refused(tmp_path):
    message = _error(tmp_path, HEADER, GOOD.replace("SNAIL", "SNAIL\x1b[31m", 1))
    assert message.endswith(":2: row 'SNAIL\\x1b[31m' holds control characters; remove them"), message


def test_wrong_field_count(tmp_path):
    message = _error(tmp_path, HEADER, GOOD.replace('"Mishra et al. 2018"', "Mishra et al., 2018"))
    assert ":2:" in message and "12 fields" in message and "quote" in message


def test_empty_required_field(tmp_path):
    message = _error(tmp_path, HEADER, GOOD.replace(CHECKED, ""))
    assert ":2:" in message and "checked is empty" in message


def test_checked_naming_a_file_is_refused(tmp_path):
    message = _error(tmp_path, HEADER, GOOD.replace(CHECKED, "tables.md"))
    assert ":2: checked 'tables.md' is a file name; say in words what the number was checked against" in message
