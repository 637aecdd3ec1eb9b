"""Checks of what plugins' hooks return: specs of the right type with plain values and printable names, and
table rows that their model, table and datasets can run, each in one line naming the fix.

``harness.plugins.PluginHost`` calls them while it builds its registries: a spec that fails is reported with
its plugin and left out (fatal under ``HARNESS_STRICT_PLUGINS``).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from harness import table_checks
from harness.config import RunConfig, dataset_options, did_you_mean, merge_options
from harness.errors import ConfigError, printable
from harness.registry import Registry
from harness.specs import DatasetSpec, ModelSpec
from harness.tables import TableRow, TableSpec, slug

S = TypeVar("S")


def validated(result: object, spec_type: type[S], hook_name: str) -> list[S]:
    """A hook's result as a list of named ``spec_type``s with plain defaults and options; ``TypeError`` if not."""
    if result is None:
        return []
    if not isinstance(result, (list, tuple)):
        raise TypeError(f"{hook_name} must return a list of {spec_type.__name__}, got {type(result).__name__}")
    for item in result:
        if not isinstance(item, spec_type):
            raise TypeError(
                f"{hook_name} must return a list of {spec_type.__name__}, got an item of type {type(item).__name__}"
            )
        if not isinstance(getattr(item, "name", None), str) or not item.name:  # type: ignore[attr-defined]
            raise TypeError(f"{hook_name} returned a {spec_type.__name__} without a name")
        _check_plain_values(item)
    return list(result)


PLAIN_FIELDS: dict[type, str] = {ModelSpec: "defaults", DatasetSpec: "options"}
"""The spec field whose values go into run configs and records (JSON): they must be plain values."""


def _check_plain_values(spec: object) -> None:
    """Raise ``TypeError`` unless a model's defaults or a dataset's options are plain JSON values."""
    field_name = next((name for kind, name in PLAIN_FIELDS.items() if isinstance(spec, kind)), None)
    if field_name is None:
        return
    values = getattr(spec, field_name)
    where = f"{type(spec).__name__} {spec.name!r}"  # type: ignore[attr-defined]
    if not isinstance(values, Mapping):
        raise TypeError(f"{where}: {field_name} must be a dict, got {type(values).__name__}")
    problem = _not_plain(values, field_name)
    if problem is not None:
        raise TypeError(
            f"{where}: {problem}, not a plain JSON value (None, bool, int, finite float, str, or a list or "
            "dict of them); make it one (a list instead of an array)"
        )


def _not_plain(value: object, where: str) -> str | None:
    """Where in ``value`` (named ``where``) a value is not plain JSON, and its type; ``None`` if all are."""
    if value is None or isinstance(value, (bool, int, str)):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{where} is {value!r}"
    if isinstance(value, Mapping):
        keys = [key for key in value if not isinstance(key, str)]
        if keys:
            return f"{where} has the key {keys[0]!r} of type {type(keys[0]).__name__}"
        items = [(f"{where}[{key!r}]", item) for key, item in value.items()]
    elif isinstance(value, (list, tuple)):
        items = [(f"{where}[{i}]", item) for i, item in enumerate(value)]
    else:
        return f"{where} is of type {type(value).__name__}"
    return next((problem for name, item in items if (problem := _not_plain(item, name)) is not None), None)


def near_miss(name: str, names: list[str]) -> bool:
    """Whether ``name`` is not among ``names`` but differs from one of them as a typo does."""
    folded = {n.casefold() for n in names}
    return name not in names and (
        name.casefold() in folded or bool(difflib.get_close_matches(name, names, n=1, cutoff=0.8))
    )


def check_names(specs: list[Any], hook_name: str) -> None:
    """Raise ``TypeError`` for a spec whose name holds control or format characters (a newline, an ANSI escape),
    and ``TypeError`` or ``ValueError`` for a table or table row (its own or a model's) that is malformed
    (``harness.table_checks``)."""
    for spec in specs:
        if printable(spec.name) != spec.name:
            raise TypeError(f"{hook_name} returned the name {spec.name!r}, which holds control characters; rename it")
        if isinstance(spec, TableSpec):
            table_checks.check_table(spec)
        elif isinstance(spec, TableRow):
            table_checks.check_row(spec)
        elif isinstance(spec, ModelSpec):
            table_checks.check_declared(spec, f"model {spec.name!r}", only=("rows",))
            for row in spec.rows:
                table_checks.check_row(row)


def params_problem(row: TableRow, model: ModelSpec) -> str | None:
    """Why ``model`` cannot run ``row``: its ``params`` or ``budget_params`` name a parameter the model's defaults
    lack, or give one a value of another type; ``None`` if it can."""
    given = {"params": row.params, **{f"budget_params[{b!r}]": p for b, p in row.budget_params.items()}}
    for where, params in given.items():
        try:
            merge_options(model.defaults, params, f"model {model.name!r}", "parameter")
        except ConfigError as exc:
            return (
                f"lists row {row.row!r} of table {row.table!r} that its model cannot run: {exc}; fix the row's {where}"
            )
    return None


def table_problem(row: TableRow, table: TableSpec) -> str | None:
    """Why ``table`` has no cell for ``row``: its ``budget_params`` or ``settings`` name a budget or setting the table
    lacks; ``None`` if it has."""
    given = {
        "budget_params": ("budget", list(row.budget_params), list(table.budgets)),
        "settings": ("setting", list(row.settings), [setting.name for setting in table.settings]),
    }
    for where, (noun, names, known) in given.items():
        unknown = next((name for name in names if name not in known), None)
        if unknown is not None:
            return (
                f"lists row {row.row!r} of table {table.name!r} naming {noun} {unknown!r}, which the table lacks; fix "
                f"the row's {where} ({noun}s: {', '.join(known)}){did_you_mean(unknown, known)}"
            )
    return None


def data_problem(row: TableRow, table: TableSpec, datasets: Registry[DatasetSpec]) -> str | None:
    """Why a cell of ``row`` cannot open its data: its ``data`` names an option the dataset of one of its settings
    (under a budget, which may name the dataset) lacks, or gives one a value of another type, out of range, or a
    location that is no path; ``None`` if it can (or the dataset is not installed here)."""
    settings = [setting for setting in table.settings if not row.settings or setting.name in row.settings]
    for setting, budget in ((setting, budget) for setting in settings for budget in table.budgets.values()):
        config = {**budget, **setting.config}
        name = config.get("dataset", RunConfig.dataset)
        if not row.data or name not in datasets:
            continue
        try:
            dataset_options(datasets.get(name), {**config.get("data", {}), **row.data})
        except ConfigError as exc:
            return (
                f"lists row {row.row!r} of table {table.name!r} whose data setting {setting.name!r} cannot take: "
                f"{exc}; fix the row's data"
            )
    return None


def folder_problem(row: TableRow, kept: Sequence[tuple[str, TableRow]]) -> str | None:
    """Why the cells of ``row`` are those of a row in ``kept`` (``(plugin, row)``): the same table, a label that
    makes the same folder (``slug``: 'MANN' and 'MANN!') and a setting in common; ``None`` if none is."""
    for plugin, other in kept:
        shared = not row.settings or not other.settings or set(row.settings) & set(other.settings)
        if other.table == row.table and slug(other.row) == slug(row.row) and shared:
            same = "the row" if other.row == row.row else f"row {other.row!r}, whose label makes the same folder,"
            return (
                f"lists row {row.row!r} of table {row.table!r}, but plugin {plugin!r} lists {same} already; give it "
                "a label that differs in letters or digits"
            )
    return None
