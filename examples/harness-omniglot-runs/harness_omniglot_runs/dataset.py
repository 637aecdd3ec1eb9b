"""The ``omniglot-runs`` episode source: run ``j`` of the official task is test episode ``j``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.episodes import EpisodeKind, EpisodeSettings, FewShotBatch
from harness.errors import ConfigError, DataError
from harness_omniglot_runs.runs import Run, RunFiles

SPLIT = "test"
OPTIONS: dict[str, Any] = {"runs_dir": "", "image_size": 105}
"""``runs_dir``: the folder holding ``all_runs.zip`` or ``run01``..``run20``; ``image_size``:
side in pixels (105 is the drawings' own size; smaller sizes are box-averaged)."""


class OmniglotRuns:
    """Serves the runs by index: support = the training drawings, queries = the test drawings."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        if not options["runs_dir"]:
            raise DataError(
                "omniglot-runs needs the runs: pass --data runs_dir=DIR, DIR holding all_runs.zip from "
                "github.com/brendenlake/omniglot (python/one-shot-classification)"
            )
        self.size = int(options["image_size"])
        if not 8 <= self.size <= 105:
            raise ConfigError(f"omniglot-runs option image_size must be 8..105, got {self.size}")
        self.files = RunFiles(Path(options["runs_dir"]).expanduser())
        self._runs: dict[int, Run] = {}

    def run(self, index: int) -> Run:
        """Run ``index`` (0 is ``run01``), read once and checked to have the shape of ``run01``."""
        if index not in self._runs:
            run = self.files.load(index, self.size)
            first = run if index == 0 else self.run(0)
            if run.training.shape != first.training.shape or run.test.shape != first.test.shape:
                raise DataError(
                    f"omniglot-runs: {run.name} in {self.files.location} is {len(run.training)}-way with "
                    f"{len(run.test)} test drawings, but {first.name} is {len(first.training)}-way with "
                    f"{len(first.test)}; every run must have the same shape (check {run.name}/class_labels.txt)"
                )
            self._runs[index] = run
        return self._runs[index]

    def check(self, split: str, settings: EpisodeSettings) -> None:
        """Only the test split, and only the runs' own shape: N-way 1-shot, one query per class."""
        if split != SPLIT:
            raise ConfigError(f"omniglot-runs has only a {SPLIT} split, not {split!r}")
        ways = len(self.run(0).training)
        if (settings.kind, settings.ways, settings.shots, settings.queries) != (EpisodeKind.FEWSHOT, ways, 1, 1):
            raise ConfigError(
                f"the runs in {self.files.location} are {ways}-way 1-shot with 1 query per class; "
                f"pass --kind fewshot --ways {ways} --shots 1 --queries 1"
            )

    def input_shape(self) -> tuple[int, int, int]:
        """One channel, ``image_size`` a side."""
        return (1, self.size, self.size)

    def episode_count(self, split: str) -> int | None:
        """One episode per run."""
        return len(self.files.runs)

    def sample(
        self, split: str, settings: EpisodeSettings, rngs: Sequence[np.random.Generator], indices: Sequence[int]
    ) -> FewShotBatch:
        """Runs ``indices``; the generators are not needed, the runs being fixed."""
        runs = [self.run(index) for index in indices]
        support = np.stack([r.training[:, None] for r in runs])
        query = np.stack([r.test[:, None] for r in runs])
        support_targets = np.tile(np.arange(support.shape[1], dtype=np.int64), (len(runs), 1))
        query_targets = np.stack([r.answers for r in runs])
        return FewShotBatch(settings, support, support_targets, query, query_targets)
