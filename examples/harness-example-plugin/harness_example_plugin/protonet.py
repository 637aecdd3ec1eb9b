"""``example-protonet``: a prototypical network (Snell et al. 2017) on ``harness.torch.TorchModel``.

Images are embedded by two blocks of [3x3 conv, ReLU, 2x2 max-pool], with dropout on
the embeddings; each class's prototype is the mean embedding of its support examples,
and a query's logits are its negative squared distances to the prototypes. The base
class does the rest: device, optimizer (Adam by default), seeding, checkpoints and eval mode.
"""

from __future__ import annotations

import torch
from torch import nn

from harness.errors import ConfigError
from harness.specs import ModelContext
from harness.torch import TorchModel


class ProtoNet(TorchModel):
    """The ``Model`` the harness trains, evaluates and checkpoints."""

    def build(self, context: ModelContext) -> nn.Module:
        """Two conv blocks and dropout, flattened: [n, C, H, W] -> [n, channels * H//4 * W//4]."""
        dropout, channels = float(self.params["dropout"]), int(self.params["channels"])
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"example-protonet parameter dropout must be in [0, 1), got {dropout}")
        layers: list[nn.Module] = []
        for block_in in (context.input_shape[0], channels):
            layers += [nn.Conv2d(block_in, channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        return nn.Sequential(*layers, nn.Flatten(), nn.Dropout(dropout))

    def logits(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits [B, N*Q, N]: negative squared distances from each query to each prototype."""
        support, labels, query = inputs["support_images"], inputs["support_targets"], inputs["query_images"]
        (b, s), q = labels.shape, query.shape[1]
        features = self.net(torch.cat([support.flatten(0, 1), query.flatten(0, 1)]))
        support_features, query_features = features[: b * s].view(b, s, -1), features[b * s :].view(b, q, -1)
        onehot = nn.functional.one_hot(labels, self.context.settings.ways).to(features.dtype)  # [B, S, N]
        prototypes = onehot.transpose(1, 2) @ support_features / onehot.sum(1).unsqueeze(-1)  # [B, N, D]
        return -(torch.cdist(query_features, prototypes) ** 2)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Cross-entropy of the query logits."""
        return nn.functional.cross_entropy(self.logits(batch).flatten(0, 1), batch["query_targets"].flatten())
