"""The modified Hausdorff distance classifier: nothing to train.

Each drawing becomes the coordinates of its inked pixels (ink above one half), centred on
their mean. The modified Hausdorff distance (Dubuisson & Jain 1994) between point sets A
and B is the larger of two averages: over A, the distance to the nearest point of B, and
over B, the distance to the nearest point of A. A query takes the label of the support
drawing at the smallest distance.
"""

from __future__ import annotations

import numpy as np

from harness.episodes import EpisodeBatch, EpisodeInputs, FewShotInputs
from harness.errors import ConfigError
from harness.specs import ModelContext


def ink_points(image: np.ndarray) -> np.ndarray:
    """[n, 2] (row, column) of the pixels of ``image`` [H, W] with ink above 0.5, centred on their mean."""
    points = np.argwhere(image > 0.5).astype(np.float64)
    return points - points.mean(axis=0) if len(points) else points


def modified_hausdorff(a: np.ndarray, b: np.ndarray) -> float:
    """Modified Hausdorff distance between point sets ``a`` [n, 2] and ``b`` [m, 2] (inf if one is empty)."""
    if len(a) == 0 or len(b) == 0:
        return float("inf")
    squared = (a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2.0 * a @ b.T
    distances = np.sqrt(np.maximum(squared, 0.0))
    return float(max(distances.min(axis=1).mean(), distances.min(axis=0).mean()))


class ModifiedHausdorff:
    """Labels each query with its nearest support drawing under the modified Hausdorff distance."""

    def __init__(self, context: ModelContext) -> None:
        if context.input_shape[0] != 1:
            raise ConfigError(f"mhd reads one-channel drawings, got {context.input_shape[0]} channels")

    def train_step(self, batch: EpisodeBatch) -> float:
        """Nothing to learn; the runner does not call this (``trainable=False``)."""
        return 0.0

    def predict(self, inputs: EpisodeInputs) -> np.ndarray:
        """Label ids [B, queries]: the support label at the smallest distance."""
        if not isinstance(inputs, FewShotInputs):
            raise ConfigError("mhd classifies few-shot episodes only (--kind fewshot)")
        labels = np.zeros(inputs.query_images.shape[:2], dtype=np.int64)
        for b in range(len(inputs)):
            support = [ink_points(image[0]) for image in inputs.support_images[b]]
            for q, image in enumerate(inputs.query_images[b]):
                query = ink_points(image[0])
                costs = [modified_hausdorff(query, s) for s in support]
                labels[b, q] = inputs.support_targets[b, int(np.argmin(costs))]
        return labels

    def state_dict(self) -> dict:
        """Nothing to save."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Nothing to restore."""
