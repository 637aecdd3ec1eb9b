"""``harness curves``: training loss and validation accuracy of runs against episodes trained.

A run directory holds ``record.json`` once the run is done, and only ``checkpoint.pkl``
while it trains; both keep ``loss_history`` (``[episodes, mean training loss]`` at each
checkpoint) and ``val_history`` (``[episodes, validation accuracy]`` at each validation,
missing or empty in records from before validation existed).
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness import atomic, checkpoints, files, records
from harness.checkpoints import CHECKPOINT
from harness.errors import ConfigError, HarnessError
from harness.records import RECORD


def load_curves(run_dir: Path) -> dict[str, Any]:
    """``{"name", "loss": [[episodes, loss], ...], "val": [[episodes, accuracy], ...], "complete"}`` of one run.

    Reads ``record.json`` if the run is done, else its checkpoint. Accuracies are fractions.
    """
    run_dir = Path(run_dir)
    if run_dir.is_file():
        raise HarnessError(f"{run_dir} is a file, not a run directory; pass the folder holding it ({run_dir.parent})")
    if not run_dir.is_dir():
        raise HarnessError(f"run directory {run_dir} does not exist; check the path")
    record_path, checkpoint_path = run_dir / RECORD, run_dir / CHECKPOINT
    if not record_path.is_file() and not checkpoint_path.is_file():
        raise HarnessError(f"{run_dir} holds neither {RECORD} nor {CHECKPOINT}; is it a run directory?")
    record = None
    if record_path.is_file():
        fix = records.record_fix(record_path, "rerun its command")
        record = records.read_record(record_path, fix)  # one the leaderboard would refuse is not drawn either
    if record is None or (checkpoint_path.is_file() and _replaced(record, checkpoint_path)):
        state, source, complete = checkpoints.load_run(checkpoint_path), checkpoint_path, False
        fix = "restore the file"
    else:
        state, source, complete = record, record_path, True
    return {
        "name": run_dir.name,
        "loss": _points(state.get("loss_history"), "loss_history", source, fix),
        "val": _points(state.get("val_history"), "val_history", source, fix),
        "complete": complete,
    }


def _replaced(record: dict[str, Any], checkpoint_path: Path) -> bool:
    """Whether the checkpoint beside ``record`` is another run's (``records.of_another_run``): one a ``--restart``
    began, still training."""
    try:
        saved = checkpoints.progress(checkpoint_path)
    except (HarnessError, OSError):
        return False  # a damaged checkpoint: the record's curves still stand
    return records.of_another_run(record, saved)


def _points(history: Any, key: str, source: Path, fix: str) -> list[list[float]]:
    """``history`` as ``[[episodes, value], ...]`` sorted by episodes; ``[]`` if absent."""
    if history is None:
        return []
    try:
        points = [[int(episodes), math.nan if value is None else float(value)] for episodes, value in history]
        if not all(checkpoints.is_count(episodes) for episodes, _ in points):  # a 400-digit count cannot be drawn
            raise ValueError(key)
    except (TypeError, ValueError, OverflowError):  # an infinite count of episodes too
        raise HarnessError(f"{key} in {source} is not a list of [episodes, value] pairs; {fix}") from None
    return sorted(points, key=lambda point: point[0])


def run_labels(run_dirs: Sequence[Path]) -> list[str]:
    """Each run's directory name; if two names clash, every run's path from the runs' common folder."""
    names = [Path(d).name for d in run_dirs]
    if len(set(names)) == len(names):
        return names
    resolved = [Path(d).resolve() for d in run_dirs]
    common = os.path.commonpath([str(p.parent) for p in resolved])
    labels = [os.path.relpath(p, common) for p in resolved]
    seen: dict[str, int] = {}
    for i, label in enumerate(labels):  # the same directory given twice
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > 1:
            labels[i] = f"{label} #{seen[label]}"
    return labels


def plot_curves(run_dirs: Sequence[Path], out: Path) -> Path:
    """One PNG: training loss (left) and validation accuracy (right) against episodes trained, a line per run.

    Runs still training are marked "(training)" in the legend. Returns ``out``.
    """
    if not run_dirs:
        raise HarnessError("no run directories given; pass one or more")
    if Path(out).is_dir():
        raise ConfigError(f"--out {out} is a folder; pass the PNG file to write, e.g. --out {Path(out) / 'curves.png'}")
    if Path(out).exists() and not files.starts_with(Path(out), files.PNG_SIGNATURE):
        raise ConfigError(f"--out {out} would replace a file that is not a PNG; give a new file name")
    if Path(out).suffix.lower() != ".png":
        raise ConfigError(f"--out {out}: curves writes a PNG; give a file name ending in .png")
    curves = [load_curves(Path(d)) for d in run_dirs]
    labels = [
        label if curve["complete"] else f"{label} (training)"
        for label, curve in zip(run_labels(run_dirs), curves, strict=True)
    ]

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter

    sns.set_theme(style="whitegrid", context="notebook")
    palette = dict(zip(labels, sns.color_palette(_palette_name(len(labels)), len(labels)), strict=True))
    loss = pd.DataFrame(
        [
            {"run": label, "episodes": e, "loss": v}
            for label, c in zip(labels, curves, strict=True)
            for e, v in c["loss"]
        ],
        columns=["run", "episodes", "loss"],
    )
    val = pd.DataFrame(
        [
            {"run": label, "episodes": e, "accuracy": 100 * v}
            for label, c in zip(labels, curves, strict=True)
            for e, v in c["val"]
        ],
        columns=["run", "episodes", "accuracy"],
    )
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, data, y, ylabel, empty in (
        (ax_loss, loss, "loss", "training loss", "no training loss recorded"),
        (ax_val, val, "accuracy", "validation accuracy (%)", "no validation"),
    ):
        if data.empty:
            ax.text(0.5, 0.5, empty, ha="center", va="center", transform=ax.transAxes, color="gray", fontsize=12)
            ax.set_xticks([])
            ax.set_yticks([])
        else:
            marker = "o" if data.groupby("run").size().max() <= 30 else None
            sns.lineplot(
                data=data, x="episodes", y=y, hue="run", hue_order=labels, palette=palette, ax=ax,
                estimator=None, errorbar=None, sort=True, marker=marker, markersize=4, legend=False,
            )  # fmt: skip
            ax.xaxis.set_major_formatter(FuncFormatter(_episodes_tick))
        ax.set_xlabel("episodes trained")
        ax.set_ylabel(ylabel)
    handles = [Line2D([], [], color=palette[label], label=label) for label in labels]
    fig.legend(
        handles=handles, title="run", fontsize=8, title_fontsize=9, frameon=False,
        loc="upper left", bbox_to_anchor=(1.0, 0.95), ncol=1 if len(labels) <= 18 else 2,
    )  # fmt: skip
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, dpi=120, bbox_inches="tight", format="png")
    finally:
        plt.close(fig)
    atomic.write_bytes(out, buffer.getvalue())  # through a temporary file of its own: concurrent runs never meet
    return out


def _episodes_tick(value: float, _position: Any) -> str:
    """Tick labels like ``500``, ``20k``, ``1.5M``."""
    for size, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:g}{suffix}"
    return f"{value:g}"


def _palette_name(runs: int) -> str:
    """Distinct colours for up to 20 runs, evenly spread hues beyond."""
    return "tab10" if runs <= 10 else "tab20" if runs <= 20 else "husl"
