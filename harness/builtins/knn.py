"""Built-in ``knn`` model: nearest neighbour on raw pixels (a row of MANN's Table 2).

Nothing to train. In a label sequence, step t is labelled by its nearest earlier step,
whose label it reads from the label codes shown after it (the first step, with nothing
seen yet, gets label id 0); in a few-shot episode each
query takes the label of its nearest support example. ``k > 1`` votes among the k
nearest, ties going to the nearer.

``k`` may be at most what an episode offers to vote among: its support examples in a
few-shot episode (ways x shots), the steps before its last one in a sequence (ways x
instances - 1; an earlier step, with fewer steps before it, votes among all of them). A
larger ``k`` is refused in one line naming that maximum rather than clamped, so a run's
``k`` is always the number of neighbours that voted.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness import hookimpl
from harness.episodes import (
    EpisodeBatch,
    EpisodeInputs,
    EpisodeKind,
    EpisodeSettings,
    FewShotInputs,
    LabelEncoding,
    string_label_decode,
)
from harness.errors import ConfigError
from harness.specs import ModelContext, ModelSpec
from harness.tables import TableRow

TABLES = ("mann-table1", "mann-table2", "metanet-omniglot", "metanet-miniimagenet", "snail-table1", "snail-table2")
"""Tables the baseline fills: a paper row in MANN Table 2, a row of ours beside the others."""


def _sq_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared L2 distances between rows: a [B, n, D], b [B, m, D] -> [B, n, m]."""
    return (a**2).sum(-1)[:, :, None] + (b**2).sum(-1)[:, None, :] - 2 * np.einsum("bnd,bmd->bnm", a, b)


def _vote(neighbour_labels: np.ndarray) -> int:
    """Most common label, ties to the one met first (the nearest)."""
    values, first, counts = np.unique(neighbour_labels, return_index=True, return_counts=True)
    best = np.flatnonzero(counts == counts.max())
    return int(values[best[np.argmin(first[best])]])


def _most_neighbours(settings: EpisodeSettings) -> int:
    """The largest ``k`` an episode offers: its support examples, or the steps before a sequence's last."""
    if settings.kind is EpisodeKind.FEWSHOT:
        return settings.ways * settings.shots
    return settings.ways * settings.instances - 1


def _check_k(k: int, settings: EpisodeSettings) -> None:
    """Raise ``ConfigError`` when ``k`` exceeds what a ``settings`` episode offers to vote among."""
    most = _most_neighbours(settings)
    if k > most:
        offered = "support examples" if settings.kind is EpisodeKind.FEWSHOT else "steps before the last one"
        raise ConfigError(
            f"knn parameter k must be at most {most} for {settings.describe()} episodes "
            f"(their {offered}), got {k}; pass --param k={most} or less"
        )


class NearestNeighbour:
    """k-nearest-neighbour classifier over flattened pixels."""

    def __init__(self, context: ModelContext) -> None:
        self.k = int(context.params["k"])
        if self.k < 1:
            raise ConfigError(f"knn parameter k must be at least 1, got {self.k}")
        if self.k > 1:  # one neighbour there always is
            _check_k(self.k, context.settings)

    def train_step(self, batch: EpisodeBatch) -> float:
        """Nothing to learn; the runner does not call this (``trainable=False``)."""
        return 0.0

    def predict(self, batch: EpisodeInputs) -> np.ndarray:
        """Labels of the nearest earlier steps (sequence) or support examples (few-shot)."""
        if isinstance(batch, FewShotInputs):
            support = batch.support_images.reshape(len(batch), batch.support_images.shape[1], -1)
            query = batch.query_images.reshape(len(batch), batch.query_images.shape[1], -1)
            dist = _sq_distances(query.astype(np.float64), support.astype(np.float64))
            order = np.argsort(dist, axis=-1, kind="stable")[..., : self.k]
            labels = np.take_along_axis(batch.support_targets[:, None, :], order, axis=-1)
            return np.array([[_vote(row) for row in episode] for episode in labels], dtype=np.int64)
        steps = batch.images.reshape(len(batch), batch.images.shape[1], -1).astype(np.float64)
        t = steps.shape[1]
        # The label of step s is shown with step s + 1; the last step's label is never shown,
        # and is never needed: only steps before the one predicted count.
        shown = np.zeros((len(batch), t), dtype=np.int64)
        codes = batch.previous_codes[:, 1:]
        string = batch.settings.labels is LabelEncoding.STRING
        shown[:, :-1] = string_label_decode(codes) if string else codes.argmax(-1)
        dist = _sq_distances(steps, steps)
        dist[:, ~np.tri(t, k=-1, dtype=bool)] = np.inf  # only earlier steps count
        order = np.argsort(dist, axis=-1, kind="stable")
        if self.k == 1:
            predictions = np.take_along_axis(shown, order[:, :, 0], axis=1)
            predictions[:, 0] = 0
            return predictions
        predictions = np.zeros(shown.shape, dtype=np.int64)
        for b in range(len(batch)):
            for step in range(1, t):
                nearest = order[b, step, : min(self.k, step)]
                predictions[b, step] = _vote(shown[b, nearest])
        return predictions

    def state_dict(self) -> dict[str, Any]:
        """Only the hyperparameter: there are no weights."""
        return {"k": self.k}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``k``."""
        self.k = int(state["k"])


@hookimpl
def harness_models() -> list[ModelSpec]:
    """Register the nearest-neighbour baseline."""
    return [
        ModelSpec(
            name="knn",
            description="Nearest neighbour on raw pixels (MANN Table 2 baseline); nothing to train.",
            episode_kinds=(EpisodeKind.SEQUENCE, EpisodeKind.FEWSHOT),
            factory=NearestNeighbour,
            defaults={"k": 1},
            trainable=False,
            rows=tuple(TableRow(table, "kNN (raw pixels)") for table in TABLES),
        )
    ]
