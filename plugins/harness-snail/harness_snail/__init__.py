"""harness-snail: SNAIL (Mishra et al. 2018) as a harness plugin.

Registers ``snail`` on N-way K-shot episodes and the rows it fills in SNAIL's Tables 1
(Omniglot) and 2 (mini-ImageNet). The model lives in ``harness_snail.model`` (plain torch);
torch is imported only when a run builds a model.
"""

from __future__ import annotations

from harness import hookimpl
from harness.episodes import EpisodeKind
from harness.specs import Model, ModelContext, ModelSpec
from harness.tables import TableRow
from harness.training import TRAINING_DEFAULTS

__version__ = "0.1.0"

EMBEDDINGS = ("auto", "omniglot", "miniimagenet")
SNAIL_DEFAULTS = {**TRAINING_DEFAULTS, "embedding": "auto"}
"""Adam at 1e-3 (the paper's optimizer; its rate is our choice, see README.md); the embedding follows the images."""
LR_DROP = {"paper-lr-drop": {"lr": 1e-4}, "long-lr-drop": {"lr": 1e-4}, "long-lr-drop2": {"lr": 1e-5}}
"""A tenth of the rate where a budget carries on from a finished cell, a hundredth where it carries on from such a
cell again (README.md, "A learning-rate drop")."""


def _make(context: ModelContext) -> Model:
    """Build a ``SNAILModel``; imports torch only now."""
    from harness_snail.harness_model import SNAILModel

    return SNAILModel(context)


@hookimpl
def harness_models() -> list[ModelSpec]:
    """Register ``snail``."""
    return [
        ModelSpec(
            name="snail",
            description="SNAIL (Mishra et al. 2018): embedding, TC and causal attention blocks over the episode.",
            episode_kinds=(EpisodeKind.FEWSHOT,),
            factory=_make,
            defaults=SNAIL_DEFAULTS,
            rows=(
                TableRow("snail-table1", "SNAIL", budget_params=LR_DROP),
                TableRow("snail-table2", "SNAIL", budget_params=LR_DROP),
            ),
        )
    ]
