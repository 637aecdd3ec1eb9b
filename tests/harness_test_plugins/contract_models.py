"""NumPy test models for the model contract: cheaters, and a model whose quality is scripted by step.

- ``copy-support``: answers each query with the label of the support example at its index.
- ``previous-label``: answers each step of a label sequence with the label shown with it
  (the previous step's).
- ``lookahead``: answers step t with the label shown at step t + 1 (reads a later step).
- ``scripted``: few-shot nearest neighbour after exactly ``good_step`` training steps,
  label 0 everywhere otherwise: validation accuracy peaks at that step.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness import hookimpl
from harness.builtins.knn import NearestNeighbour
from harness.episodes import EpisodeBatch, EpisodeKind, FewShotInputs, SequenceInputs
from harness.specs import ModelContext, ModelSpec

__version__ = "0.0.1"


class _Untrained:
    def __init__(self, context: ModelContext) -> None:
        self.context = context

    def train_step(self, batch: EpisodeBatch) -> float:
        return 0.0

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class CopySupport(_Untrained):
    def predict(self, inputs: FewShotInputs) -> np.ndarray:
        queries = inputs.query_images.shape[1]
        return np.resize(inputs.support_targets, (len(inputs), queries))


class PreviousLabel(_Untrained):
    def predict(self, inputs: SequenceInputs) -> np.ndarray:
        return inputs.previous_codes.argmax(-1)


class Lookahead(_Untrained):
    def predict(self, inputs: SequenceInputs) -> np.ndarray:
        shown = inputs.previous_codes.argmax(-1)
        return np.concatenate([shown[:, 1:], np.zeros_like(shown[:, :1])], axis=1)


class Scripted:
    def __init__(self, context: ModelContext) -> None:
        self.good_step = int(context.params["good_step"])
        self.steps = 0
        self.knn = NearestNeighbour(ModelContext(context.settings, context.input_shape, {"k": 1}, 0))

    def train_step(self, batch: EpisodeBatch) -> float:
        self.steps += 1
        return 1.0 / self.steps

    def predict(self, inputs: FewShotInputs) -> np.ndarray:
        if self.steps == self.good_step:
            return self.knn.predict(inputs)
        return np.zeros(inputs.query_images.shape[:2], dtype=np.int64)

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = state["steps"]


@hookimpl
def harness_models() -> list[ModelSpec]:
    """Register the contract test models."""
    few, seq = (EpisodeKind.FEWSHOT,), (EpisodeKind.SEQUENCE,)
    return [
        ModelSpec("copy-support", "Copies support labels (test).", few, CopySupport, trainable=False),
        ModelSpec("previous-label", "Repeats the label shown with each step (test).", seq, PreviousLabel,
                  trainable=False),
        ModelSpec("lookahead", "Reads the next step's label (test).", seq, Lookahead, trainable=False),
        ModelSpec("scripted", "Good only at one training step (test).", few, Scripted, defaults={"good_step": 3}),
    ]  # fmt: skip
