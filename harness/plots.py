"""Leaderboard plots: our rows beside the published numbers, one panel per setting, readable at README width.

Bars (N-way K-shot tables): one row of the table per line, ours as a bar with its 95% CI,
published numbers as diamonds (hollow when a secondary source quotes them). Curves
(accuracy per instance): ours solid with a 95% CI band, published dashed.
"""

from __future__ import annotations

import io
import math
import textwrap
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.typing import LineStyleType, RcKeyType

    from harness.tables import TableSpec

WIDTH = 8.0
"""Widest figure, in inches: 960 pixels at ``DPI``, so a README column shrinks the text little."""
DPI = 120
PANELS_PER_LINE = 4
STYLE: dict[RcKeyType, Any] = {
    "font.size": 11, "axes.titlesize": 11, "axes.labelsize": 11, "xtick.labelsize": 10, "ytick.labelsize": 10,
    "legend.fontsize": 10, "figure.titlesize": 12, "axes.spines.top": False, "axes.spines.right": False,
    "axes.grid": True, "grid.color": "#dddddd", "axes.axisbelow": True,
}  # fmt: skip
"""Matplotlib settings of every leaderboard plot (applied while it is drawn, not globally)."""
OURS_COLORS = ("#3a6ea5", "#9cc3e6", "#5b8c5a", "#b7d7a8")
PAPER_COLOR = "#e8a33d"
OURS_MARKERS = ("o", "s", "^", "v")
PAPER_LINES: dict[str, LineStyleType] = {"paper": "--", "secondary": ":"}
"""Line style of the published curves, by source."""
PAPER_FILLS = {"paper": PAPER_COLOR, "secondary": "white"}
"""Fill of the published diamonds, by source: hollow when a secondary source quotes the paper."""
PUBLISHED_LABEL = {"paper": "paper", "secondary": "paper, quoted by a secondary source"}


def png(table: TableSpec, frame: pd.DataFrame) -> bytes:
    """``frame`` (``harness.leaderboard.build``) drawn as ``table`` says (``plot``), as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    with plt.rc_context(STYLE):
        fig = figure(table, frame)
        try:
            fig.savefig(buffer, dpi=DPI, format="png")
        finally:
            plt.close(fig)
    return buffer.getvalue()


def figure(table: TableSpec, frame: pd.DataFrame) -> Figure:
    """The leaderboard figure of ``table``: curves per instance or bars per setting."""
    import matplotlib.pyplot as plt

    with plt.rc_context(STYLE):
        data = frame.assign(setting=frame["setting"].astype(str))
        settings = [s.name for s in table.settings if s.name in set(data["setting"])]
        return _curves(table, data, settings) if table.plot == "curves" else _bars(table, data, settings)


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(text, width, break_long_words=False))


def _grid(settings: list[str], panel_height: float, xlabel: str) -> tuple[Figure, list[Axes]]:
    """Panels for ``settings``, at most ``PANELS_PER_LINE`` a line, sharing both axes; spare panels hidden."""
    import matplotlib.pyplot as plt

    lines = math.ceil(len(settings) / PANELS_PER_LINE)
    columns = math.ceil(len(settings) / lines)
    fig, grid = plt.subplots(
        lines, columns, sharex=True, sharey=True, squeeze=False, layout="constrained",
        figsize=(min(WIDTH, 3.0 + 2.5 * columns), lines * panel_height + 1.8),
    )  # fmt: skip
    axes = list(grid.flat)
    for ax in axes[len(settings) :]:
        ax.set_visible(False)
    for i, (ax, setting) in enumerate(zip(axes, settings, strict=False)):
        ax.set_title(_wrap(setting, 22))
        if i + columns >= len(settings):  # the lowest panel of its column, maybe over a hidden one
            ax.xaxis.set_tick_params(labelbottom=True)
            ax.set_xlabel(xlabel)
    return fig, axes[: len(settings)]


def _finish(fig: Figure, table: TableSpec, handles: list[Any], labels: list[str]) -> Figure:
    """The table's title on top, the legend underneath, in as many columns as the width takes (at most three)."""
    width = fig.get_figwidth()
    fig.suptitle(_wrap(table.title, int(11 * width)))
    for columns in range(min(len(handles), 3 if width >= 7 else 1), 0, -1):
        legend = fig.legend(handles, labels, loc="outside lower center", ncol=columns, frameon=False)
        if columns == 1 or legend.get_window_extent().width <= 0.95 * fig.bbox.width:
            break
        legend.remove()  # too wide for the figure: one column fewer
    return fig


def _bars(table: TableSpec, data: pd.DataFrame, settings: list[str]) -> Figure:
    import pandas as pd
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    rows = list(dict.fromkeys(data["row"]))
    ours = sorted(s for s in set(data["source"]) if s.startswith("ours"))
    published = [s for s in PAPER_LINES if s in set(data["source"])]
    fig, axes = _grid(settings, 0.32 * len(rows) + 1.0, f"{table.quantity} (%)")
    height = 0.7 / max(1, len(ours))
    for ax, setting in zip(axes, settings, strict=True):
        here = data[data["setting"] == setting]
        for y, row in enumerate(rows):
            mine = here[here["row"] == row]
            for k, source in enumerate(ours):
                cell = mine[mine["source"] == source]
                if not cell.empty:
                    ax.barh(
                        y - 0.35 + height * (k + 0.5), cell["value"].iloc[0], height, color=OURS_COLORS[k % 4],
                        xerr=cell["ci95"].iloc[0], error_kw={"ecolor": "black", "capsize": 3, "elinewidth": 1.2},
                    )  # fmt: skip
            for source in published:
                cell = mine[mine["source"] == source]
                if not cell.empty:
                    ci = cell["ci95"].iloc[0]
                    ax.errorbar(
                        cell["value"].iloc[0], y, xerr=None if pd.isna(ci) else ci, fmt="D", markersize=7,
                        markerfacecolor=PAPER_FILLS[source], markeredgecolor="black", ecolor="black", capsize=3,
                        zorder=3,
                    )  # fmt: skip
        ax.set_xlim(0, 104)  # room for a marker at 100
        ax.set_xticks([0, 50, 100])
        ax.grid(axis="y", visible=False)
    axes[0].set_yticks(range(len(rows)), [_wrap(row, 24) for row in rows])
    axes[0].set_ylim(len(rows) - 0.5, -0.5)
    handles: list[Artist] = [Patch(color=OURS_COLORS[k % 4]) for k in range(len(ours))]
    handles += [
        Line2D([], [], marker="D", linestyle="", markerfacecolor=PAPER_FILLS[source], markeredgecolor="black")
        for source in published
    ]
    printed = {s: data[data["source"] == s]["ci95"].notna().any() for s in published}
    labels = [f"{source}: bar ± 95% CI" for source in ours]
    labels += [PUBLISHED_LABEL[s] + (" (± as printed)" if printed[s] else "") for s in published]
    return _finish(fig, table, handles, labels)


def _curves(table: TableSpec, data: pd.DataFrame, settings: list[str]) -> Figure:
    import seaborn as sns
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    data = data.assign(instance=[int("".join(ch for ch in key if ch.isdigit())) for key in data["key"]])
    rows = list(dict.fromkeys(data["row"]))
    colors = dict(zip(rows, sns.color_palette("tab10" if len(rows) <= 10 else "tab20", len(rows)), strict=True))
    ours = sorted(s for s in set(data["source"]) if s.startswith("ours"))
    published = [s for s in PAPER_LINES if s in set(data["source"])]
    fig, axes = _grid(settings, 3.6, "presentation of the class (instance)")
    for ax, setting in zip(axes, settings, strict=True):
        here = data[data["setting"] == setting]
        for row in rows:
            for k, source in enumerate(ours):
                line = here[(here["row"] == row) & (here["source"] == source)].sort_values("instance")
                if line.empty:
                    continue
                x, y, ci = line["instance"], line["value"], line["ci95"].astype(float)
                ax.plot(x, y, "-", marker=OURS_MARKERS[k % 4], color=colors[row], markersize=5)
                ax.fill_between(x, y - ci, y + ci, color=colors[row], alpha=0.25, linewidth=0)
            for source in published:
                line = here[(here["row"] == row) & (here["source"] == source)].sort_values("instance")
                if not line.empty:
                    ax.plot(line["instance"], line["value"], PAPER_LINES[source], marker="x", color=colors[row])
        ax.set_xticks(sorted(data["instance"].unique()))
        ax.set_ylim(-2, 102)
    axes[0].set_ylabel(f"{table.quantity} (%)")
    handles: list[Any] = [Line2D([], [], color=colors[row], linewidth=3) for row in rows]
    handles += [
        (Patch(color="gray", alpha=0.25, linewidth=0), Line2D([], [], color="gray", marker=OURS_MARKERS[k % 4]))
        for k in range(len(ours))
    ]
    handles += [Line2D([], [], color="gray", linestyle=PAPER_LINES[s], marker="x") for s in published]
    labels = rows + [f"{source} ± 95% CI" for source in ours] + [PUBLISHED_LABEL[s] for s in published]
    return _finish(fig, table, handles, labels)
