"""``metanet`` on ``harness.torch``: the MetaNet of ``harness_metanet.model`` as a harness model."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from harness.errors import ConfigError
from harness.specs import ModelContext
from harness.torch import TorchModel
from harness_metanet import BACKBONES, VARIANTS
from harness_metanet.model import IMAGE_SIZES, MetaNet

CHOICES = {"rep_loss": ("auto", "ce", "contrastive"), "key_layer": ("output", "penultimate")}
COUNTS = {"filters": 0, "hidden": 0, "meta_hidden": 1, "m_layers": 1, "rep_samples": 1}
"""Integer params and their smallest value (0 for ``filters``/``hidden``: the backbone's own)."""
NUMBERS = ("rep_loss_weight", "margin", "grad_p")
FLAGS = ("second_order", "fast_scale")


def backbone_for(name: str, input_shape: tuple[int, int, int]) -> str:
    """The backbone to build: ``auto`` picks Omniglot's for 1-channel images, mini-ImageNet's otherwise."""
    if name not in BACKBONES:
        raise ConfigError(f"metanet parameter backbone must be one of {', '.join(BACKBONES)}, got {name!r}")
    if name != "auto":
        return name
    return "omniglot" if input_shape[0] == 1 else "miniimagenet"


def model_options(params: dict[str, Any]) -> dict[str, Any]:
    """MetaNet's size keywords from the run's params, or a one-line ``ConfigError``."""
    options: dict[str, Any] = {}
    for key, choices in CHOICES.items():
        if params[key] not in choices:
            raise ConfigError(f"metanet parameter {key} must be one of {', '.join(choices)}, got {params[key]!r}")
        options[key] = params[key]
    for key, least in COUNTS.items():
        value = params[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ConfigError(f"metanet parameter {key} must be an integer >= {least}, got {value!r}")
        options[key] = value or None  # 0: the backbone's default
    for key in NUMBERS:
        value, bound = params[key], "> 0" if key == "grad_p" else ">= 0"
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not 0 <= value < math.inf  # NaN too
            or (bound == "> 0" and not value)
        ):
            raise ConfigError(f"metanet parameter {key} must be a finite number {bound}, got {value!r}")
        options[key] = float(value)
    for key in FLAGS:
        if not isinstance(params[key], bool):
            raise ConfigError(f"metanet parameter {key} must be true or false, got {params[key]!r}")
        options[key] = params[key]
    return options


class MetaNetModel(TorchModel):
    """MetaNet: fast weights from the support set's loss gradients, read per query from a memory."""

    inference_mode = False  # its per-example gradients came back as zeros inside inference mode on torch 2.11

    def build(self, context: ModelContext) -> nn.Module:
        """MetaNet for the run's ways and shots, with the backbone that fits its images."""
        channels, height, width = context.input_shape
        variant = self.params["variant"]
        if variant not in VARIANTS:
            raise ConfigError(f"metanet parameter variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        backbone = backbone_for(str(self.params["backbone"]), context.input_shape)
        if height != width:
            raise ConfigError(f"metanet needs square images, got {height}x{width}")
        options = model_options(self.params)
        settings = context.settings
        try:
            return MetaNet(settings.ways, settings.shots, channels, height, variant, backbone, **options)
        except ValueError as exc:
            lo, hi = IMAGE_SIZES[backbone]
            fix = "" if lo <= height <= hi else " (set the dataset's image_size, or --param backbone=...)"
            raise ConfigError(f"metanet: {exc}{fix}") from None

    def logits(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits [B, Q, N] of every query."""
        logits, _ = self.net(inputs["support_images"], inputs["support_targets"], inputs["query_images"])
        return logits

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Cross-entropy on the queries plus the weighted representation loss (``rep_loss_weight``)."""
        logits, aux = self.net(batch["support_images"], batch["support_targets"], batch["query_images"])
        query = nn.functional.cross_entropy(logits.float().flatten(0, 1), batch["query_targets"].flatten())
        return query + aux.float()
