"""Rebuild the model a checkpoint holds: the weights ``harness evaluate`` tests, ready to score or inspect."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.config import build_config, merge_options
from harness.errors import ConfigError, DataError
from harness.guard import guarded
from harness.plugins import PluginHost
from harness.prepare import Prepared, prepare


@dataclass(frozen=True)
class Restored:
    """A checkpoint's model rebuilt: the prepared run, the plugin's model with its kept weights, and which they are."""

    prepared: Prepared
    model: Any
    kept: str


def _kept_model_state(state: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The model state of a checkpoint that ``harness evaluate`` tests, and whether it is the best validation's:
    the best under ``keep = best`` (a finished run's checkpoint holds its kept model already), else the last."""
    best = state.get("best") or {}
    use_best = state["config"].get("keep") == "best" and best.get("model_state") is not None and not state.get("final")
    return (best["model_state"] if use_best else state["model_state"]), use_best


def restore(state: dict[str, Any], host: PluginHost, values: dict[str, Any], source: str, flags: str = "") -> Restored:
    """Rebuild the model of checkpoint ``state`` under config ``values`` (its own config, with changes
    such as the device or the test data) and load the weights it keeps; ``source`` names the checkpoint in errors,
    with ``flags``, the options given that changed its dataset options, where those are refused."""
    shape = state.get("input_shape")
    model = values.get("model")
    if isinstance(model, str) and model not in host.models:  # a checkpoint's model cannot be swapped for another
        blocked = f" (blocked plugins: {', '.join(host.models.blocked)})" if host.models.blocked else ""
        raise ConfigError(
            f"{source} holds a model {model!r} that no installed plugin registers{blocked}; install or unblock the "
            "plugin that provides it ('harness plugins' lists what is installed)"
        )
    config = build_config(values, source=source)  # a flag's bad value is named as the flag's (not the file's)
    try:  # no flag of evaluate sets a parameter: one the model lacks, or of another type, is the checkpoint's
        merge_options(host.models.get(config.model).defaults, config.params, f"model {config.model!r}", "parameter")
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    try:  # what a dataset refuses comes from the options the checkpoint saved or from the flags given: name both
        prepared = prepare(config, host, input_shape=None if shape is None else tuple(shape), evaluating=True)
    except ConfigError as exc:
        raise ConfigError(f"{source}{f' with {flags}' if flags else ''}: {exc}") from None
    try:
        model = prepared.build_model()
    except ConfigError as exc:  # a parameter the model refuses: the checkpoint's config gives its parameters
        raise ConfigError(f"{source}: {exc}") from None
    weights, use_best = _kept_model_state(state)
    try:
        guarded(model, prepared.config.model, prepared.model_plugin).load_state_dict(weights)
    except DataError as exc:  # weights refused unloaded (``harness.torch``): the file is named here
        raise DataError(f"{source}: {exc}") from None
    kept = state["kept"]["which"] if state.get("final") else "best" if use_best else "last"
    return Restored(prepared, model, kept)
