"""An example third-party harness plugin: registers the model ``example-protonet``.

The harness finds this module through the ``harness`` entry point in pyproject.toml and
calls its hooks. Keep this module light: ``harness plugins`` imports it, so torch is only
imported by the model's factory, when a run actually builds the model.
"""

from __future__ import annotations

from harness import hookimpl
from harness.episodes import EpisodeKind
from harness.specs import Model, ModelContext, ModelSpec
from harness.training import TRAINING_DEFAULTS

__version__ = "0.2.0"


def build_protonet(context: ModelContext) -> Model:
    """Model factory: the harness calls it with the run's settings, params and seed."""
    from harness_example_plugin.protonet import ProtoNet  # imports torch

    return ProtoNet(context)


@hookimpl
def harness_models() -> list[ModelSpec]:
    """Register ``example-protonet``."""
    return [
        ModelSpec(
            name="example-protonet",
            description="Prototypical network with a small conv embedding (example third-party plugin).",
            episode_kinds=(EpisodeKind.FEWSHOT,),
            factory=build_protonet,
            # The torch layer's options (optimizer, lr, clipping, schedule) and the model's own.
            defaults={**TRAINING_DEFAULTS, "channels": 16, "dropout": 0.1},
        )
    ]
