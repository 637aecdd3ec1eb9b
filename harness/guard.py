"""Calls into model, dataset and metric plugins: whatever they raise (``SystemExit`` included) becomes one line.

A model's failure is a ``ModelError``, a dataset's a ``DatasetError``, a metric's a
``MetricError``. The message names the model, dataset or metric, its plugin and the call
that failed; the original exception stays the ``__cause__``, so ``harness --traceback``
can show it whole. A ``HarnessError`` raised in a plugin (a dataset's ``check`` refusing
settings) is already one line and passes unchanged.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

from harness.errors import HarnessError, PluginError, describe


class ModelError(PluginError):
    """A model plugin raised while the harness built, trained, evaluated or saved it."""


class DatasetError(PluginError):
    """A dataset plugin raised, or returned what the harness cannot use, while opened or sampled."""


class MetricError(PluginError):
    """A metric plugin raised, or returned what the harness cannot use, while scoring."""


def culprit(noun: str, name: str, plugin: str) -> str:
    """``dataset 'x' (plugin 'p')``: how a message names the plugin at fault."""
    return f"{noun} {name!r} (plugin {plugin!r})"


@contextlib.contextmanager
def plugin_call(error: type[PluginError], noun: str, name: str, plugin: str, what: str) -> Iterator[None]:
    """Turn an exception raised in the block into ``error`` naming the ``noun`` ``name``, ``plugin`` and ``what``."""
    try:
        yield
    except HarnessError:  # already one line that says what to change
        raise
    except (Exception, SystemExit) as exc:
        raise error(f"{culprit(noun, name, plugin)} failed in {what}: {describe(exc)}") from exc


def model_call(model: str, plugin: str, what: str) -> contextlib.AbstractContextManager[None]:
    """Turn an exception raised in the block into a ``ModelError`` naming ``model``, ``plugin`` and ``what``."""
    return plugin_call(ModelError, "model", model, plugin, what)


def dataset_call(dataset: str, plugin: str, what: str) -> contextlib.AbstractContextManager[None]:
    """Turn an exception raised in the block into a ``DatasetError`` naming ``dataset``, ``plugin`` and ``what``."""
    return plugin_call(DatasetError, "dataset", dataset, plugin, what)


def metric_call(metric: str, plugin: str, what: str) -> contextlib.AbstractContextManager[None]:
    """Turn an exception raised in the block into a ``MetricError`` naming ``metric``, ``plugin`` and ``what``."""
    return plugin_call(MetricError, "metric", metric, plugin, what)


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
