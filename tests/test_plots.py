"""Leaderboard plots are readable: no text on other text, everything inside the figure, a CI on every row of ours."""

from __future__ import annotations

import itertools

import matplotlib
import pytest
from conftest import REPO

from harness import leaderboard, plots

matplotlib.use("Agg")

RUNS = REPO / "leaderboards" / "runs"
TABLES = ["mann-table1", "mann-table2", "metanet-omniglot", "snail-table1"]
"""The tables the README shows, built from the committed runs."""


@pytest.fixture(params=TABLES)
def drawn(request, host):
    import matplotlib.pyplot as plt

    table = host.tables.get(request.param)
    frame = leaderboard.build(table, RUNS)
    with plt.rc_context(plots.STYLE):
        fig = plots.figure(table, frame)
        fig.canvas.draw()
        yield table, frame, fig
    plt.close(fig)


def tick_labels(ax):
    """The tick labels drawn on ``ax``: those of ticks inside its view limits."""
    labels = []
    for axis in (ax.xaxis, ax.yaxis):
        low, high = sorted(axis.get_view_interval())
        labels += [tick.label1 for tick in axis.get_major_ticks() if low <= tick.get_loc() <= high]
    return labels


def texts(fig):
    """Every visible, non-empty text of ``fig`` with its window extent: ticks, titles, labels, legend."""
    found = [fig._suptitle, *(t for legend in fig.legends for t in legend.get_texts())]
    for ax in fig.axes:
        if ax.get_visible():
            found += [ax.title, ax.xaxis.label, ax.yaxis.label, *tick_labels(ax)]
    renderer = fig.canvas.get_renderer()
    return [(t.get_text(), t.get_window_extent(renderer)) for t in found if t and t.get_visible() and t.get_text()]


def test_no_text_overlaps_another_and_all_of_it_is_inside_the_figure(drawn):
    _, _, fig = drawn
    shown = texts(fig)
    for (a, box_a), (b, box_b) in itertools.combinations(shown, 2):
        assert not box_a.overlaps(box_b), f"{a!r} overlaps {b!r}"
    bounds = fig.bbox
    for text, box in shown:
        assert bounds.x0 <= box.x0 and box.x1 <= bounds.x1 and bounds.y0 <= box.y0 and box.y1 <= bounds.y1, text


def test_panels_are_titled_with_the_setting_and_text_is_large_enough(drawn):
    table, _, fig = drawn
    titles = [ax.get_title().replace("\n", " ") for ax in fig.axes if ax.get_visible()]
    assert titles == [s.name for s in table.settings if s.name in titles]
    assert titles and not any("=" in title for title in titles)
    for legend in fig.legends:
        assert all(t.get_fontsize() >= 9 for t in legend.get_texts())
    ticks = [t for ax in fig.axes for t in tick_labels(ax)]
    assert all(t.get_fontsize() >= 9 for t in ticks)


def test_every_row_of_ours_shows_its_95_percent_interval(drawn):
    table, frame, fig = drawn
    ours = frame[frame["source"].str.startswith("ours")]
    panels = {ax.get_title().replace("\n", " "): ax for ax in fig.axes if ax.get_visible()}
    for setting, group in ours.groupby("setting", observed=True):
        ax = panels[str(setting)]
        lines = group.groupby(["row", "source"]).ngroups
        if table.plot == "curves":  # a band around each curve of ours
            assert len(ax.collections) == lines, setting
        else:  # an error bar on each bar of ours (published diamonds may have their own)
            assert len(ax.patches) == lines and len(ax.containers) >= lines, setting
