"""``example-protonet``: a prototypical network (Snell et al. 2017) in PyTorch.

Images are embedded by two blocks of [3x3 conv, ReLU, 2x2 max-pool]; each class's
prototype is the mean embedding of its support examples, and a query's logits are its
negative squared distances to the prototypes. Training is Adam on the query
cross-entropy, with dropout on the embeddings drawn from the model's own generator.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import nn

from harness.episodes import EpisodeBatch, FewShotBatch
from harness.errors import ConfigError
from harness.specs import ModelContext


def embedding(in_channels: int, channels: int) -> nn.Module:
    """Two conv blocks, flattened: [n, C, H, W] -> [n, channels * H//4 * W//4]."""
    layers: list[nn.Module] = []
    for block_in in (in_channels, channels):
        layers += [nn.Conv2d(block_in, channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
    return nn.Sequential(*layers, nn.Flatten())


class ProtoNet:
    """The ``Model`` the harness trains, evaluates and checkpoints."""

    def __init__(self, context: ModelContext) -> None:
        self.dropout = float(context.params["dropout"])
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"example-protonet parameter dropout must be in [0, 1), got {self.dropout}")
        # All randomness comes from the run's seed, none from torch's global generator:
        # the initial weights from a forked global RNG, dropout from our own generator.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(context.seed)
            self.net = embedding(context.input_shape[0], int(context.params["channels"]))
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=float(context.params["lr"]))
        self.generator = torch.Generator().manual_seed(context.seed)

    def _logits(self, batch: EpisodeBatch, train: bool) -> torch.Tensor:
        """Logits [B, N*Q, N]: negative squared distances from each query to each prototype."""
        if not isinstance(batch, FewShotBatch):  # the spec says FEWSHOT only, so the harness never does this
            raise TypeError(f"example-protonet takes few-shot episodes, got {type(batch).__name__}")
        data = batch.to_torch()
        (b, s), q = data["support_targets"].shape, data["query_targets"].shape[1]
        images = torch.cat([data["support_images"].flatten(0, 1), data["query_images"].flatten(0, 1)])
        features = self.net(images)
        if train and self.dropout:
            keep = torch.rand(features.shape, generator=self.generator) >= self.dropout
            features = features * keep / (1.0 - self.dropout)
        support, query = features[: b * s].view(b, s, -1), features[b * s :].view(b, q, -1)
        onehot = nn.functional.one_hot(data["support_targets"], batch.settings.ways).float()  # [B, S, N]
        prototypes = onehot.transpose(1, 2) @ support / onehot.sum(1).unsqueeze(-1)  # [B, N, D]
        return -(torch.cdist(query, prototypes) ** 2)

    def train_step(self, batch: EpisodeBatch) -> float:
        """One Adam step on the query cross-entropy; returns the loss."""
        self.net.train()
        logits = self._logits(batch, train=True)
        targets = torch.from_numpy(batch.targets)
        loss = nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return float(loss.item())

    def predict(self, batch: EpisodeBatch) -> np.ndarray:
        """The nearest prototype's label for every query: int64 [B, N*Q]."""
        self.net.eval()
        with torch.no_grad():
            return self._logits(batch, train=False).argmax(-1).numpy().astype(np.int64)

    def state_dict(self) -> dict[str, Any]:
        """Weights, optimizer state and generator state: everything a resumed run needs.

        Deep-copied, so training on afterwards does not change what was returned.
        """
        return copy.deepcopy(
            {
                "net": self.net.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "generator": self.generator.get_state(),
            }
        )

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
        state = copy.deepcopy(state)
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
