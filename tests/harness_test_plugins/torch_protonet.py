"""``torch-protonet``: a small ``harness.torch`` model with ``nn.Dropout``, for tests of the torch layer."""

from __future__ import annotations

from harness import hookimpl
from harness.episodes import EpisodeKind
from harness.specs import Model, ModelContext, ModelSpec
from harness.training import TRAINING_DEFAULTS

__version__ = "0.0.1"


def build(context: ModelContext) -> Model:
    """Imports torch only when a run builds the model."""
    import torch
    from torch import nn

    from harness.torch import TorchModel

    class TorchProtoNet(TorchModel):
        def build(self, context: ModelContext) -> nn.Module:
            channels = context.input_shape[0]
            return nn.Sequential(
                nn.Conv2d(channels, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(0.3)
            )

        def logits(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
            support, labels, query = inputs["support_images"], inputs["support_targets"], inputs["query_images"]
            b, s = labels.shape
            features = self.net(torch.cat([support.flatten(0, 1), query.flatten(0, 1)]))
            support_f, query_f = features[: b * s].view(b, s, -1), features[b * s :].view(b, query.shape[1], -1)
            onehot = nn.functional.one_hot(labels, context.settings.ways).to(features.dtype)
            prototypes = onehot.transpose(1, 2) @ support_f / onehot.sum(1).unsqueeze(-1)
            return -(torch.cdist(query_f, prototypes) ** 2)

        def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
            return nn.functional.cross_entropy(self.logits(batch).flatten(0, 1), batch["query_targets"].flatten())

    return TorchProtoNet(context)


@hookimpl
def harness_models() -> list[ModelSpec]:
    """Register ``torch-protonet``."""
    return [
        ModelSpec(
            "torch-protonet", "Small conv ProtoNet with dropout on harness.torch (test).", (EpisodeKind.FEWSHOT,),
            build, defaults={**TRAINING_DEFAULTS, "lr": 0.01},
        )
    ]  # fmt: skip
