"""Calls into model plugins: whatever they raise (``SystemExit`` included) becomes a one-line ``ModelError``.

The message names the model, its plugin and the call that failed; the original exception
stays the ``__cause__``, so ``harness --traceback`` can show it whole.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

from harness.errors import HarnessError, PluginError, describe


class ModelError(PluginError):
    """A model plugin raised while the harness built, trained, evaluated or saved it."""


@contextlib.contextmanager
def model_call(model: str, plugin: str, what: str) -> Iterator[None]:
    """Turn an exception raised in the block into a ``ModelError`` naming ``model``, ``plugin`` and ``what``."""
    try:
        yield
    except HarnessError:  # already one line that says what to change
        raise
    except (Exception, SystemExit) as exc:
        raise ModelError(f"model {model!r} (plugin {plugin!r}) failed in {what}: {describe(exc)}") from exc


@contextlib.contextmanager
def model_state(model: str, plugin: str) -> Iterator[None]:
    """Name ``model`` and ``plugin`` in the ``HarnessError`` of a checkpoint that cannot hold its state."""
    try:
        yield
    except ModelError:
        raise
    except HarnessError as exc:
        raise ModelError(f"model {model!r} (plugin {plugin!r}): {exc}") from None


class GuardedModel:
    """A model whose method calls report what they raise as ``ModelError``; other attributes pass through."""

    def __init__(self, model: Any, name: str, plugin: str) -> None:
        self.__dict__.update(_model=model, _name=name, _plugin=plugin)

    def __getattr__(self, attribute: str) -> Any:
        value = getattr(self.__dict__["_model"], attribute)
        if not callable(value):
            return value

        @functools.wraps(value)
        def call(*args: Any, **kwargs: Any) -> Any:
            with model_call(self._name, self._plugin, attribute):
                return value(*args, **kwargs)

        return call


def guarded(model: Any, name: str, plugin: str) -> Any:
    """``model`` wrapped so that its calls fail with one-line ``ModelError``s naming ``name`` and ``plugin``."""
    return GuardedModel(model, name, plugin)
