"""A plugin whose hook is misspelt (``harness_model`` for ``harness_models``): pluggy alone would say nothing."""

from __future__ import annotations

from harness import hookimpl
from harness.specs import ModelSpec
from harness_test_plugins.weighted_protonet import harness_models as protonet_models


@hookimpl
def harness_model() -> list[ModelSpec]:
    """Meant to register ``weighted-protonet``."""
    return protonet_models()
