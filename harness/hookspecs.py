"""Hook specifications: what a harness plugin may implement.

Every hook takes no arguments and returns a list of specs. Models fill table rows by
listing ``TableRow`` entries in ``ModelSpec.rows``; ``harness_table_rows`` lists rows
for models a plugin does not provide. Implement one with
``@harness.hookimpl`` in a module registered under the ``harness`` entry-point group.
"""

from __future__ import annotations

from collections.abc import Sequence

import pluggy

from harness.specs import DatasetSpec, MetricSpec, ModelSpec
from harness.tables import TableRow, TableSpec

hookspec = pluggy.HookspecMarker("harness")


@hookspec
def harness_models() -> Sequence[ModelSpec]:  # type: ignore[empty-body]
    """Return the models this plugin provides, as ``ModelSpec`` objects."""


@hookspec
def harness_datasets() -> Sequence[DatasetSpec]:  # type: ignore[empty-body]
    """Return the episode datasets this plugin provides, as ``DatasetSpec`` objects."""


@hookspec
def harness_metrics() -> Sequence[MetricSpec]:  # type: ignore[empty-body]
    """Return the metrics this plugin provides, as ``MetricSpec`` objects."""


@hookspec
def harness_tables() -> Sequence[TableSpec]:  # type: ignore[empty-body]
    """Return the paper tables this plugin defines, as ``TableSpec`` objects."""


@hookspec
def harness_table_rows() -> Sequence[TableRow]:  # type: ignore[empty-body]
    """Return table rows for models the plugin may not provide (e.g. ``knn``), as ``TableRow`` with ``model`` set."""
