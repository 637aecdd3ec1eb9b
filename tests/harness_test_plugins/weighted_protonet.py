"""``weighted-protonet``: a trainable NumPy few-shot model for tests of the runner.

Queries are classified by the nearest class prototype under a learned per-pixel
weighting; training is SGD with momentum on the cross-entropy, with random feature
dropout drawn from the model's own generator, so resuming exactly needs the weights,
the optimizer state and the RNG state. ``delay`` (or the environment variable HARNESS_TEST_DELAY,
which leaves the run config unchanged) slows each step (kill tests);
``nan_after`` makes the loss NaN after that many steps (divergence tests).
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from harness import hookimpl
from harness.episodes import EpisodeKind, FewShotBatch, FewShotInputs
from harness.specs import ModelContext, ModelSpec

__version__ = "0.0.1"


class WeightedProtoNet:
    """Prototype classifier with learned pixel weights."""

    def __init__(self, context: ModelContext) -> None:
        self.params = dict(context.params)
        size = int(np.prod(context.input_shape))
        self.rng = np.random.default_rng(context.seed)
        self.weights = 1.0 + 0.01 * self.rng.standard_normal(size)
        self.velocity = np.zeros(size)
        self.steps = 0

    def _logits(self, batch: FewShotBatch | FewShotInputs, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = batch.settings.ways
        support = batch.support_images.reshape(len(batch), batch.support_images.shape[1], -1)
        query = batch.query_images.reshape(len(batch), batch.query_images.shape[1], -1)
        onehot = np.eye(n)[batch.support_targets]  # [B, S, N]
        protos = onehot.transpose(0, 2, 1) @ support / onehot.sum(1)[:, :, None]  # [B, N, D]
        diff2 = (query[:, :, None, :] - protos[:, None, :, :]) ** 2  # [B, Q, N, D]
        return -(diff2 * weights).sum(-1), diff2

    def train_step(self, batch: FewShotBatch) -> float:  # type: ignore[override]
        """One SGD-with-momentum step on the query cross-entropy."""
        delay = float(self.params["delay"]) or float(os.environ.get("HARNESS_TEST_DELAY", "0"))
        if delay:
            time.sleep(delay)
        keep = (self.rng.random(self.weights.shape) > 0.1) / 0.9
        logits, diff2 = self._logits(batch, self.weights * keep)
        logits -= logits.max(-1, keepdims=True)
        probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
        targets = np.eye(batch.settings.ways)[batch.query_targets]
        loss = float(-(targets * np.log(probs + 1e-12)).sum(-1).mean())
        grad = -((probs - targets)[..., None] * diff2).sum((0, 1, 2)) * keep / targets[..., 0].size
        self.velocity = 0.9 * self.velocity - float(self.params["lr"]) * grad
        self.weights = self.weights + self.velocity
        self.steps += 1
        if self.params["nan_after"] and self.steps > int(self.params["nan_after"]):
            return float("nan")
        return loss

    def predict(self, batch: FewShotInputs) -> np.ndarray:  # type: ignore[override]
        """Nearest prototype under the learned weights."""
        return self._logits(batch, self.weights)[0].argmax(-1)

    def state_dict(self) -> dict[str, Any]:
        """Weights, momentum, step count and generator state."""
        return {
            "weights": self.weights.copy(),
            "velocity": self.velocity.copy(),
            "steps": self.steps,
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
        self.weights = state["weights"].copy()
        self.velocity = state["velocity"].copy()
        self.steps = state["steps"]
        self.rng.bit_generator.state = state["rng"]


@hookimpl
def harness_models() -> list[ModelSpec]:
    """Register ``weighted-protonet``."""
    return [
        ModelSpec(
            name="weighted-protonet",
            description="Prototype classifier with learned pixel weights (NumPy; for tests).",
            episode_kinds=(EpisodeKind.FEWSHOT,),
            factory=WeightedProtoNet,
            defaults={"lr": 0.05, "delay": 0.0, "nan_after": 0},
        )
    ]
