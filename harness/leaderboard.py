"""``harness leaderboard``: our runs beside the paper's numbers, as pandas tables and seaborn plots.

The long-format DataFrame has one row per (table row, setting, key, source), where
``source`` is ``paper`` or ``ours (<budget>)``. Ours are averaged over seeds: with one
seed the 95% CI is over test episodes, with several it is over the seeds' means.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import atomic
from harness.errors import ConfigError
from harness.paper_tables import load_paper_table, paper_file
from harness.runner import RECORD
from harness.tables import CELL, TableSpec

if TYPE_CHECKING:
    import pandas as pd

COLUMNS = [
    "table", "row", "setting", "key", "source", "value", "ci95", "seeds", "budget", "episodes_trained",
    "stopped_early", "paper_value", "diff", "commit", "citation", "checked", "text",
]  # fmt: skip


def our_results(table: TableSpec, results: Path) -> list[dict[str, Any]]:
    """Complete runs of ``table`` under ``results``, one dict per (row, setting, key, budget)."""
    groups: dict[tuple[str, str, str, str], list[tuple[dict, dict]]] = {}
    for cell_path in sorted((results / table.name).glob(f"**/{CELL}")):
        record_path = cell_path.parent / RECORD
        if not record_path.exists():
            continue
        cell, record = json.loads(cell_path.read_text()), json.loads(record_path.read_text())
        if record.get("status") != "complete" or cell.get("table") != table.name:
            continue
        for key in table.cell_keys(cell["setting"]):
            groups.setdefault((cell["row"], cell["setting"], key, cell["budget"]), []).append((cell, record))
    rows = []
    for (row, setting, key, budget), runs in groups.items():
        summaries = [table.summary(record["metrics"], key) for _, record in runs]
        means = [100 * s["mean"] for s in summaries]
        value = sum(means) / len(means)
        if len(means) == 1:
            ci = 100 * summaries[0]["ci95"]
        else:
            var = sum((m - value) ** 2 for m in means) / (len(means) - 1)
            ci = 1.96 * math.sqrt(var / len(means))
        commits = sorted({_commit(record["provenance"]["git"]) for _, record in runs})
        stops = [r["stopped_early"]["at_episode"] for _, r in runs if r.get("stopped_early")]
        rows.append(
            {
                "table": table.name, "row": row, "setting": setting, "key": key, "source": f"ours ({budget} budget)",
                "value": value, "ci95": ci, "seeds": len(runs), "budget": budget,
                "episodes_trained": min(record["episodes_trained"] for _, record in runs),
                "stopped_early": len(stops),
                "commit": ",".join(commits), "citation": "", "checked": "",
            }
        )  # fmt: skip
    return rows


def _commit(git: dict[str, Any]) -> str:
    """Short commit of a run, marked ``-dirty`` when the checkout had uncommitted changes."""
    commit = (git.get("commit") or "unknown")[:10]
    return commit + ("-dirty" if git.get("dirty") else "")


def build(table: TableSpec, results: Path, papers_dir: Path | None = None) -> pd.DataFrame:
    """Long-format DataFrame of our rows and the paper's rows, with differences from the paper."""
    import pandas as pd

    paper_rows = [
        {
            "table": table.name, "row": c.row, "setting": c.setting, "key": c.key, "source": "paper",
            "value": c.value, "ci95": c.ci95, "seeds": None, "budget": None, "episodes_trained": None,
            "stopped_early": None,
            "commit": "", "citation": f"{c.paper}, {c.table}", "checked": c.checked,
            "text": c.value_text + (f" ± {c.ci95_text}" if c.ci95_text else ""),
        }
        for c in load_paper_table(paper_file(table.name, papers_dir))
    ]  # fmt: skip
    paper_value = {(r["row"], r["setting"], r["key"]): r["value"] for r in paper_rows}
    ours = our_results(table, results)
    for row in ours:
        row["paper_value"] = paper_value.get((row["row"], row["setting"], row["key"]))
        row["diff"] = None if row["paper_value"] is None else row["value"] - row["paper_value"]
        row["text"] = f"{row['value']:.1f} ± {row['ci95']:.1f}"
    frame = pd.DataFrame(paper_rows + ours, columns=COLUMNS)
    frame = frame.astype({"seeds": "Int64", "episodes_trained": "Int64", "stopped_early": "Int64"})
    settings = [s.name for s in table.settings]
    frame["setting"] = pd.Categorical(frame["setting"], settings, ordered=True)
    return frame.sort_values("setting", kind="stable").reset_index(drop=True)


def pivot(frame: pd.DataFrame) -> pd.DataFrame:
    """Display form: one line per (row, source), one column per setting and key, ``value ± ci``.

    Paper rows show the numbers as printed; ours are rounded to one decimal.
    """
    shown = frame.copy()
    shown["column"] = [
        s if s == k else f"{s} {k}" for s, k in zip(shown["setting"].astype(str), shown["key"], strict=True)
    ]
    columns = list(dict.fromkeys(shown["column"]))
    table = shown.pivot_table(index=["row", "source"], columns="column", values="text", aggfunc="first", sort=False)
    return table.reindex(columns=columns).fillna("")


def to_markdown(table: TableSpec, frame: pd.DataFrame) -> str:
    """The pivoted table as Markdown, with the paper citation and what "ours" means."""
    shown = pivot(frame).reset_index()
    header = "| " + " | ".join(str(c) for c in shown.columns) + " |"
    lines = [f"# {table.title}", "", f"Paper: {table.paper}.", "", header, "|" + "---|" * len(shown.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in shown.itertuples(index=False)]
    ours = frame[frame["source"] != "paper"]
    lines += [
        "",
        "Values are percent accuracy ± 95% CI. Rows marked *ours* are runs of this harness "
        "(budget in brackets; details in the CSV: episodes trained, seeds, commit); *paper* rows are the "
        "published numbers with their citation.",
    ]
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
            lines.append(f"- {row}, {setting}, {source}: {episodes}{note}")
    return "\n".join(lines) + "\n"


def plot(table: TableSpec, frame: pd.DataFrame, path: Path) -> None:
    """Accuracy-per-instance curves (ours solid, paper dashed) or grouped bars with CI and paper markers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    data = frame.copy()
    data["origin"] = ["paper" if s == "paper" else "ours" for s in data["source"]]
    data["setting"] = data["setting"].astype(str)
    if table.plot == "curves":
        data["instance"] = [int("".join(ch for ch in k if ch.isdigit())) for k in data["key"]]
        grid = sns.relplot(
            data=data, x="instance", y="value", hue="row", style="origin", style_order=["ours", "paper"],
            dashes={"ours": "", "paper": (4, 2)}, markers=True, col="setting", kind="line", height=4, aspect=1.1,
        )  # fmt: skip
        grid.set(xticks=sorted(data["instance"].unique()), ylim=(-2, 102), xlabel="instance", ylabel="accuracy (%)")
        grid.figure.suptitle(table.title, y=1.03, fontsize=10)
        grid.figure.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(grid.figure)
        return
    settings = list(dict.fromkeys(data["setting"]))
    rows = list(dict.fromkeys(data["row"]))
    palette = dict(zip(rows, sns.color_palette("tab10", len(rows)), strict=True))
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(settings) * max(1, len(rows)) / 3), 4.5))
    width = 0.8 / len(rows)
    for i, setting in enumerate(settings):
        for j, row in enumerate(rows):
            x = i - 0.4 + width * (j + 0.5)
            here = data[(data["setting"] == setting) & (data["row"] == row)]
            ours, paper = here[here["origin"] == "ours"], here[here["origin"] == "paper"]
            if not ours.empty:
                ax.bar(x, ours["value"].iloc[0], width, color=palette[row])
                ax.errorbar(x, ours["value"].iloc[0], yerr=ours["ci95"].iloc[0], color="black", capsize=3)
            if not paper.empty:
                ax.plot(x, paper["value"].iloc[0], marker="D", color=palette[row], markeredgecolor="black")
    from matplotlib.artist import Artist
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles: list[Artist] = [Patch(color=palette[row], label=row) for row in rows]
    handles += [
        Line2D([], [], color="black", marker="|", linestyle="", markersize=10, label="ours: bar ± 95% CI"),
        Line2D([], [], color="gray", marker="D", markeredgecolor="black", linestyle="", label="paper"),
    ]
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_xticks(range(len(settings)), settings)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 102)
    ax.set_title(table.title, fontsize=10)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def write(table: TableSpec, results: Path, out: Path, papers_dir: Path | None = None) -> dict[str, Path]:
    """Build the leaderboard of ``table`` from ``results``; write ``<table>.csv``, ``.md`` and ``.png`` in ``out``."""
    if not results.is_dir():
        raise ConfigError(f"results directory {results} does not exist; run 'harness reproduce {table.name}' first")
    frame = build(table, results, papers_dir)
    paths = {"csv": out / f"{table.name}.csv", "md": out / f"{table.name}.md", "png": out / f"{table.name}.png"}
    atomic.write_bytes(paths["csv"], frame.to_csv(index=False).encode())
    atomic.write_bytes(paths["md"], to_markdown(table, frame).encode())
    tmp = out / f".{table.name}.tmp.png"
    plot(table, frame, tmp)
    tmp.replace(paths["png"])
    return paths
