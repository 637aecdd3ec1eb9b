"""Whether a record's numbers are what its metrics make of its per-episode values: a record edited after its run
wrote it is not, and ``harness reproduce``, ``harness status`` and the leaderboard refuse it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harness import per_episode, records
from harness.config_changes import plain
from harness.errors import DataError
from harness.evaluation import summary
from harness.registry import Registry
from harness.specs import MetricSpec

FIELDS = ("mean", "ci95", "n")
"""What a summary in a record holds (``Summary.as_dict``)."""


def summary_problem(record: dict[str, Any], directory: Path, metrics: Registry[MetricSpec]) -> str | None:
    """How ``record``'s summaries differ from what the installed ``metrics`` aggregate of its per-episode file, if
    they do; ``None`` where they agree or cannot be compared: no per-episode file, or not the one the record names
    (``records.per_episode_problem`` says so), or a metric that is not installed."""
    data, _ = records.per_episode_bytes(record, directory)
    if data is None:
        return None
    name = record["per_episode"]["file"]
    try:
        values = per_episode.decode(data, record["metrics"], directory / name, "")
    except DataError:
        return f"its {name} does not hold the values of the metrics it reports"
    tested = record["config"].get("eval_episodes")
    if records.is_count(tested) and not np.array_equal(values.episodes, np.arange(tested)):
        return f"its {name} does not hold its {tested:,} test episodes, each once, in order (eval_episodes)"
    for metric, keys in record["metrics"].items():
        if metric not in metrics:
            continue
        for key, saved in keys.items():
            given = plain(summary(metrics.get(metric), metrics.plugin_of(metric), key, values.values[metric][key]))
            for field in FIELDS:
                if field not in saved:
                    return f"its {metric} {key!r} lacks its {field}, which its {name} gives ({given.get(field)!r})"
                if saved[field] != given.get(field):
                    return (
                        f"its {metric} {key!r} {field} is {saved[field]!r}, where its {name} gives {given.get(field)!r}"
                    )
    return None


def check(path: Path, record: dict[str, Any], metrics: Registry[MetricSpec] | None, fix: str) -> None:
    """Refuse, in one line naming ``fix``, the record at ``path`` whose numbers are not what its per-episode values
    give (``summary_problem``); ``metrics`` ``None``: not checked."""
    problem = None if metrics is None else summary_problem(record, path.parent, metrics)
    if problem is not None:
        raise DataError(f"{path}: {problem}: changed after its run wrote it; {fix}")
