"""``harness leaderboard``: our runs beside the paper's numbers, as pandas tables (plots: ``harness.plots``).

The long-format DataFrame has one row per (table row, setting, key, source), where
``source`` is ``paper``, ``secondary`` (the paper's number as another source quotes it) or
``ours (<budget> budget)``. Ours are averaged over seeds and rounded to two decimals: with
one seed the 95% CI is over test episodes, with several it is Student's t over the seeds' means (over test
episodes again where every seed gives the same value: a model the seed does not change, such as ``knn``).
The ``text`` shown (one decimal) is rounded from the numbers before that, so it is never rounded twice.
"""

from __future__ import annotations

import math
import os
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import atomic, files, record_values, records
from harness.errors import ConfigError, DataError
from harness.paper_tables import paper_cells
from harness.records import RECORD, Fixed
from harness.registry import Registry
from harness.specs import MetricSpec
from harness.tables import TableSpec

if TYPE_CHECKING:
    import pandas as pd

COLUMNS = [
    "table", "row", "setting", "key", "source", "value", "ci95", "seeds", "budget", "episodes_trained",
    "stopped_early", "paper_value", "diff", "commit", "citation", "checked", "note", "text",
]  # fmt: skip
TEXT_COLUMNS = ("table", "row", "setting", "key", "source", "budget", "commit", "citation", "checked", "note", "text")
"""Columns of text, which ``csv_safe`` keeps a spreadsheet from running as formulas."""
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
DECIMALS = 2
"""Our values, intervals and differences are rounded to this many decimals (the papers print at most two)."""
PUBLISHED = ("paper", "secondary")
"""Sources of published numbers: the paper itself, or a source quoting it."""

T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
    2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
"""Student's t 97.5% quantiles for 1 to 30 degrees of freedom, as printed in statistics tables."""


def t975(df: int) -> float:
    """Student's t 97.5% quantile for ``df`` degrees of freedom: a 95% interval is the mean ± this x the SE."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be at least 1, got {df}")
    if df <= len(T975):
        return T975[df - 1]
    z = 1.959963984540054  # the normal quantile, then Cornish-Fisher terms in 1/df: within 1e-5 beyond 30
    terms = ((z**3 + z) / 4, (5 * z**5 + 16 * z**3 + 3 * z) / 96, (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384)
    return z + sum(term / df**power for power, term in enumerate(terms, start=1))


def our_results(
    table: TableSpec, results: Path, fixed: Fixed | None = None, metrics: Registry[MetricSpec] | None = None
) -> list[dict[str, Any]]:
    """Complete runs of ``table`` under ``results``, one dict per (row, setting, key, budget); ``fixed``: what the
    installed rows' cells fix of their records (``reproduce.fixed_configs``), checked as ``harness reproduce`` does;
    ``metrics``: the installed metrics, which check each record's numbers against its per-episode values.

    A damaged ``cell.json`` or ``record.json`` is refused in one line naming the cell and its fix, and saying how
    many other cells are damaged (``harness status`` lists each with its fix).
    """
    groups: dict[tuple[str, str, str, str], list[tuple[dict[str, Any], float, float]]] = {}
    orphans = set(records.orphan_cells(results / table.name))
    problems = [records.orphan_problem(orphan) for orphan in sorted(orphans)]
    for cell_path in records.cell_files(results / table.name):
        if cell_path.parent in orphans:  # a cell.json that is no file: one problem, said once
            continue
        try:
            run = _read_run(table, cell_path, fixed or {}, metrics)
            if run is None:
                continue
            cell, record = run
            summaries = [
                (key, *records.mean_ci(table, record, key, cell_path.parent / RECORD, _retest(cell_path.parent)))
                for key in table.cell_keys(cell["setting"])
            ]
        except DataError as exc:
            problems.append(str(exc))
            continue
        for key, mean, ci in summaries:
            groups.setdefault((cell["row"], cell["setting"], key, cell["budget"]), []).append((record, mean, ci))
    if problems:
        others = len(problems) - 1
        more = (
            f" (and {others:,} more damaged cell{'s' if others > 1 else ''}: 'harness status {table.name} --results "
            f"{shlex.quote(str(results))}' lists each with its fix)"
        )
        raise DataError(problems[0] + (more if others else ""))
    rows = []
    for (row, setting, key, budget), runs in groups.items():
        means = [100 * mean for _, mean, _ in runs]
        value = sum(means) / len(means)
        if all(math.isclose(m, means[0], rel_tol=1e-9) for m in means):  # one seed, or seeds that agree (knn)
            known = [ci for _, _, ci in runs if not math.isnan(ci)]  # a record may give no interval (null)
            ci = 100 * max(known) if known else math.nan
        else:
            var = sum((m - value) ** 2 for m in means) / (len(means) - 1)
            ci = t975(len(means) - 1) * math.sqrt(var / len(means))
        commits = sorted({_commit(record.get("provenance")) for record, _, _ in runs})
        stops = [record for record, _, _ in runs if records.stopped_at(record.get("stopped_early"))]
        rows.append(
            {
                "table": table.name, "row": row, "setting": setting, "key": key, "source": f"ours ({budget} budget)",
                "value": round(value, DECIMALS), "ci95": round(ci, DECIMALS), "text": _text(value, ci),
                "seeds": len(runs), "budget": budget,
                "episodes_trained": min(record["episodes_trained"] for record, _, _ in runs),
                "stopped_early": len(stops),
                "commit": ",".join(commits), "citation": "", "checked": "", "note": "",
            }
        )  # fmt: skip
    return rows


def _retest(directory: Path) -> str:
    """How to replace a damaged record: test the cell's checkpoint again where it has one (``records.record_fix``)."""
    return records.record_fix(directory / RECORD, records.rerun_cell(directory))


def _read_run(
    table: TableSpec, cell_path: Path, fixed: Fixed, metrics: Registry[MetricSpec] | None
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """``(cell, record)`` of a complete run of ``table``, else ``None``; a damaged one is a one-line ``DataError``."""
    record_path = cell_path.parent / RECORD
    if not record_path.exists() and not record_path.is_symlink():  # a link to nothing: damaged, not missing
        return None
    cell = records.read_cell(cell_path.parent, table.name)
    record = records.read_record(record_path, _retest(cell_path.parent))
    records.check_setting(cell_path, cell, table)
    records.check_own(record_path, cell, record, records.fixed_for(cell, table, fixed), _retest(cell_path.parent))
    records.check_per_episode(record_path, record)
    record_values.check(record_path, record, metrics, _retest(cell_path.parent))
    return cell, record


def _text(value: float, ci: float) -> str:
    """``46.7 ± 0.3``, or ``46.7`` alone where there is no interval (one seed tested on one episode)."""
    return f"{value:.1f} ± {ci:.1f}" if math.isfinite(ci) else f"{value:.1f}"


def _get(value: Any, key: str) -> Any:
    """``value[key]`` when ``value`` is a dict, else ``None``."""
    return value.get(key) if isinstance(value, dict) else None


def _commit(provenance: Any) -> str:
    """Short commit of a run, marked ``-dirty`` when the checkout had uncommitted changes; ``unknown`` if unrecorded."""
    git = _get(provenance, "git")
    commit = _get(git, "commit")
    return (commit[:10] if isinstance(commit, str) and commit else "unknown") + ("-dirty" if _get(git, "dirty") else "")


def build(
    table: TableSpec,
    results: Path,
    papers: Sequence[Path] = (),
    fixed: Fixed | None = None,
    metrics: Registry[MetricSpec] | None = None,
) -> pd.DataFrame:
    """Long-format DataFrame of our rows and the published rows, with our differences from the paper.

    ``papers`` are folders searched for ``<table>.csv`` before the table's own numbers (``harness.paper_tables``).
    """
    import pandas as pd

    published = [
        {
            "table": table.name, "row": c.row, "setting": c.setting, "key": c.key, "source": c.source,
            "value": c.value, "ci95": c.ci95, "seeds": None, "budget": None, "episodes_trained": None,
            "stopped_early": None, "commit": "", "citation": ", ".join(part for part in (c.paper, c.table) if part),
            "checked": c.checked, "note": c.note, "text": c.value_text + (f" ± {c.ci95_text}" if c.ci95_text else ""),
        }
        for c in paper_cells(table, papers)
    ]  # fmt: skip
    paper_value = {(r["row"], r["setting"], r["key"]): r["value"] for r in published}
    ours = our_results(table, results, fixed, metrics)
    for row in ours:
        row["paper_value"] = paper_value.get((row["row"], row["setting"], row["key"]))
        row["diff"] = None if row["paper_value"] is None else round(row["value"] - row["paper_value"], DECIMALS)
    frame = pd.DataFrame(published + ours, columns=COLUMNS)
    frame = frame.astype({"seeds": "Int64", "episodes_trained": "Int64", "stopped_early": "Int64"})
    settings = [s.name for s in table.settings]
    frame["setting"] = pd.Categorical(frame["setting"], settings, ordered=True)
    return frame.sort_values("setting", kind="stable").reset_index(drop=True)


def pivot(frame: pd.DataFrame) -> pd.DataFrame:
    """Display form: one line per (row, source), one column per setting and key, ``value ± ci``.

    Published rows show the numbers as printed; ours are rounded to one decimal.
    """
    shown = frame.copy()
    shown["column"] = [
        s if s == k else f"{s} {k}" for s, k in zip(shown["setting"].astype(str), shown["key"], strict=True)
    ]
    columns = list(dict.fromkeys(shown["column"]))
    table = shown.pivot_table(index=["row", "source"], columns="column", values="text", aggfunc="first", sort=False)
    return table.reindex(columns=columns).fillna("")


def _published_lines(frame: pd.DataFrame) -> list[str]:
    """One line per (source, citation, what it was checked against), naming its rows; then the rows' notes."""
    published = frame[frame["source"].isin(PUBLISHED)]
    lines = []
    for (source, citation, checked), group in published.groupby(["source", "citation", "checked"], sort=False):
        quoted = ", as quoted by secondary sources" if source == "secondary" else ""
        rows = ", ".join(dict.fromkeys(group["row"]))
        lines.append(_md_text(f"- {rows}: {citation}{quoted}; checked against {checked}."))
    for (row, note), group in published[published["note"] != ""].groupby(["row", "note"], sort=False):
        settings = ", ".join(dict.fromkeys(group["setting"].astype(str)))
        lines.append(_md_text(f"- {row}, {settings}: {note}."))
    return lines


def to_markdown(table: TableSpec, frame: pd.DataFrame) -> str:
    """The pivoted table as Markdown: citation, where each published number comes from, notes, our training."""
    shown = pivot(frame).reset_index()
    header = "| " + " | ".join(_md_cell(c) for c in shown.columns) + " |"
    lines = [_md_text(f"# {table.title}"), "", _md_text(f"Paper: {table.paper}."), "", header]
    lines.append("|" + "---|" * len(shown.columns))
    lines += ["| " + " | ".join(_md_cell(v) for v in row) + " |" for row in shown.itertuples(index=False)]
    secondary = (
        "; *secondary* rows are the paper's numbers as quoted by others"
        if (frame["source"] == "secondary").any()
        else ""
    )
    lines += [
        "",
        f"Values are percent {table.quantity}, ours ± 95% CI, the papers' ± as printed. Rows marked *ours* are runs "
        "of "
        "this harness (budget in brackets; details in the CSV: episodes trained, seeds, commit); *paper* rows are "
        f"the published numbers{secondary}.",
    ]
    published = _published_lines(frame)
    if published:
        lines += ["", "Published numbers:", "", *published]
    if table.notes:
        lines += ["", "Notes:", "", *(_md_text(f"- {note}") for note in table.notes)]
    ours = frame[frame["source"].str.startswith("ours")]
    if ours.empty:
        lines += ["", "No run of ours is recorded for this table yet."]
    else:
        lines += ["", "Training of our rows (episodes trained, fewest over seeds):", ""]
        for (row, setting, source), group in ours.groupby(["row", "setting", "source"], observed=True, sort=False):
            first = group.iloc[0]
            stopped = int(first["stopped_early"])
            note = f"; validation stopped {stopped} of {int(first['seeds'])} seed(s) early" if stopped else ""
            trained = int(first["episodes_trained"])
            episodes = f"{trained:,} episodes" if trained else "nothing trained (a model without training)"
            lines.append(_md_text(f"- {row}, {setting}, {source}: {episodes}{note}"))
    return "\n".join(lines) + "\n"


def _md_text(text: str) -> str:
    """``text`` (which may hold a papers file's words) as one line of Markdown that starts no HTML: line breaks as
    spaces, so a note cannot open a heading or a list of its own, and ``<`` as ``&lt;``."""
    return " ".join(text.splitlines()).replace("<", "&lt;")


def _md_cell(value: Any) -> str:
    """``value`` as one Markdown table cell: ``|`` escaped, one line, no HTML (``_md_text``)."""
    return _md_text(str(value).replace("|", "\\|"))


def csv_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with each text cell that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``, tab or
    carriage return first) prefixed with ``'``, as OWASP advises against CSV injection; numbers stay numbers."""
    safe = frame.copy()
    for column in TEXT_COLUMNS:
        safe[column] = [f"'{v}" if isinstance(v, str) and v.startswith(FORMULA_STARTS) else v for v in safe[column]]
    return safe


MAX_MARKDOWN = 1 << 20
"""The most of a Markdown file read to tell whether it is a leaderboard."""
CSV_START = b"table,row,setting,key,source,"
"""How a leaderboard's CSV begins (its first columns)."""
MD_LEGEND = b"\nValues are percent "
"""The start of the legend line of a leaderboard's Markdown, under its table, whatever the table's title."""


def _ours(kind: str, path: Path) -> bool:
    """Whether the ``csv``, ``md`` or ``png`` file at ``path`` is a leaderboard the harness wrote."""
    if kind == "md":
        try:
            return MD_LEGEND in files.read_regular(path, MAX_MARKDOWN)
        except OSError:
            return False
    return files.starts_with(path, CSV_START if kind == "csv" else files.PNG_SIGNATURE)


def write(
    table: TableSpec,
    results: Path,
    out: Path,
    papers: Sequence[Path] = (),
    fixed: Fixed | None = None,
    metrics: Registry[MetricSpec] | None = None,
) -> dict[str, Path]:
    """Build the leaderboard of ``table`` from ``results``; write ``<table>.csv``, ``.md`` and ``.png`` (none where
    the table has no number yet) in ``out``."""
    from harness import plots

    if not results.is_dir():
        raise ConfigError(f"results directory {results} does not exist; run 'harness reproduce {table.name}' first")
    frame = build(table, results, papers, fixed, metrics)
    paths = {"csv": out / f"{table.name}.csv", "md": out / f"{table.name}.md", "png": out / f"{table.name}.png"}
    for kind, path in paths.items():  # a papers file, or notes of the user's, of the same name
        if os.path.lexists(path) and not _ours(kind, path):
            raise ConfigError(
                f"{path} is not a leaderboard the harness wrote, and writing the leaderboards there would replace it; "
                "write them to another folder (--out of leaderboard, --leaderboards of reproduce)"
            )
    atomic.write_bytes(paths["csv"], csv_safe(frame).to_csv(index=False).encode())
    atomic.write_bytes(paths["md"], to_markdown(table, frame).encode())
    if frame.empty:  # no run and no paper number: nothing to draw, and an older plot would show what is gone
        paths["png"].unlink(missing_ok=True)
        del paths["png"]
        return paths
    atomic.write_bytes(paths["png"], plots.png(table, frame))  # through a temporary file of its own
    return paths
