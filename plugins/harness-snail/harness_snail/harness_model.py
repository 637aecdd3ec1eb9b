"""``snail`` on ``harness.torch``: the SNAIL network of ``harness_snail.model`` as a harness model."""

from __future__ import annotations

import torch
from torch import nn

from harness.errors import ConfigError
from harness.specs import ModelContext
from harness.torch import TorchModel
from harness_snail import EMBEDDINGS
from harness_snail.model import SNAIL


def embedding_for(name: str, input_shape: tuple[int, int, int]) -> str:
    """The embedding to build: ``auto`` picks Omniglot's for 1-channel images, mini-ImageNet's otherwise."""
    if name not in EMBEDDINGS:
        raise ConfigError(f"snail parameter embedding must be one of {', '.join(EMBEDDINGS)}, got {name!r}")
    if name != "auto":
        return name
    return "omniglot" if input_shape[0] == 1 else "miniimagenet"


class SNAILModel(TorchModel):
    """SNAIL: every query of an episode scored in one pass over the shared support prefix."""

    def build(self, context: ModelContext) -> nn.Module:
        """SNAIL for the run's ways and shots, with the embedding that fits its images."""
        channels, height, width = context.input_shape
        embedding = embedding_for(str(self.params["embedding"]), context.input_shape)
        if height != width:
            raise ConfigError(f"snail needs square images, got {height}x{width}")
        settings = context.settings
        try:
            return SNAIL(settings.ways, settings.shots, channels, height, embedding)
        except ValueError as exc:
            raise ConfigError(f"snail: {exc} (set the dataset's image_size, or --param embedding=...)") from None

    def logits(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits [B, Q, N] of every query."""
        return self.net(inputs["support_images"], inputs["support_targets"], inputs["query_images"])

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Cross-entropy on the queries (the paper's loss)."""
        logits = self.logits(batch).float()
        return nn.functional.cross_entropy(logits.flatten(0, 1), batch["query_targets"].flatten())
