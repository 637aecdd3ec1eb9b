"""harness-metanet: Meta Networks (Munkhdalai & Yu 2017) as a harness plugin.

Registers ``metanet`` on N-way K-shot episodes and the rows it fills in MetaNet's Omniglot
table (MetaNet, MetaNet\u2212, MetaNet+) and mini-ImageNet table (MetaNet). The model lives in
``harness_metanet.model`` (plain torch); torch is imported only when a run builds a model.
"""

from __future__ import annotations

from harness import hookimpl
from harness.episodes import EpisodeKind
from harness.specs import Model, ModelContext, ModelSpec
from harness.tables import TableRow
from harness.training import TRAINING_DEFAULTS

__version__ = "0.1.0"

OMNIGLOT_TABLE, MINIIMAGENET_TABLE = "metanet-omniglot", "metanet-miniimagenet"
VARIANTS = ("full", "minus", "plus")
BACKBONES = ("auto", "omniglot", "miniimagenet")
METANET_DEFAULTS = {
    **TRAINING_DEFAULTS,
    "clip_norm": 10.0,
    "variant": "full",
    "backbone": "auto",
    "rep_loss_weight": 1.0,
    "filters": 0,
    "hidden": 0,
    "meta_hidden": 20,
    "m_layers": 2,
    "rep_samples": 5,
    "rep_loss": "auto",
    "margin": 1.0,
    "grad_p": 7.0,
    "second_order": False,
    "key_layer": "output",
    "fast_scale": True,
}
"""Adam 1e-3 and clipping at 10 (secondary sources on the authors' code); the backbone follows the images;
query loss plus the representation loss; ``filters``/``hidden`` 0 mean the backbone's (see README.md)."""


def _make(context: ModelContext) -> Model:
    """Build a ``MetaNetModel``; imports torch only now."""
    from harness_metanet.harness_model import MetaNetModel

    return MetaNetModel(context)


@hookimpl
def harness_models() -> list[ModelSpec]:
    """Register ``metanet``."""
    return [
        ModelSpec(
            name="metanet",
            description="MetaNet (Munkhdalai & Yu 2017): fast weights from loss gradients, read from a memory.",
            episode_kinds=(EpisodeKind.FEWSHOT,),
            factory=_make,
            defaults=METANET_DEFAULTS,
            rows=(
                TableRow(OMNIGLOT_TABLE, "MetaNet", {"variant": "full"}),
                TableRow(OMNIGLOT_TABLE, "MetaNet\u2212", {"variant": "minus"}),  # U+2212, as the paper prints it
                TableRow(OMNIGLOT_TABLE, "MetaNet+", {"variant": "plus"}),
                TableRow(MINIIMAGENET_TABLE, "MetaNet", {"variant": "full"}),
            ),
        )
    ]
