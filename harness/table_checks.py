"""Checks of what a plugin registers for paper tables, so that a malformed ``TableSpec`` or ``TableRow`` breaks its
plugin at registration instead of a command later: each field of the type ``harness.tables`` declares, names that
can be folders, and no setting twice. Each raises ``TypeError`` or ``ValueError`` naming the table or row and field.
"""

from __future__ import annotations

import re
import reprlib
import types
import typing
from collections.abc import Mapping
from typing import Any

from harness.errors import printable
from harness.tables import TableRow, TableSpec

PLOTS = ("curves", "bars")
"""What ``TableSpec.plot`` may be."""


def check_table(table: TableSpec) -> None:
    """Refuse a table with a field of another type than declared, no settings, budgets, seeds or keys, a setting
    listed twice, an unknown plot, or a name or budget name that cannot name a folder of its own."""
    where = f"table {table.name!r}"
    check_declared(table, where)
    check_file_name(table.name, "table name")
    for name in ("settings", "budgets", "seeds", "keys"):
        if getattr(table, name) is not None and not getattr(table, name):
            raise ValueError(f"{where}: {name} is empty; give at least one")
    for budget in table.budgets:
        check_file_name(budget, f"{where}: budget name")
    if table.plot not in PLOTS:
        raise ValueError(f"{where}: plot must be one of {', '.join(PLOTS)}, got {printable(repr(table.plot))}")
    names: set[str] = set()
    for setting in table.settings:
        check_declared(setting, f"{where}, setting {setting.name!r}")
        if setting.name in names:
            raise ValueError(f"setting {setting.name!r} is listed twice in {where}; list it once")
        names.add(setting.name)


def check_row(row: TableRow) -> None:
    """Refuse a row with a field of another type than declared, or without a label."""
    check_declared(row, f"row {row.row!r} of table {row.table!r}")
    if not row.row:
        raise ValueError(f"the row of table {row.table!r} for model {row.model!r} has an empty label; give its label")


def check_file_name(name: str, what: str) -> None:
    """Refuse a ``name`` that is not a file or folder name of its own, inside the folder it goes in."""
    if not name or name[0] in ".-" or ".." in name or any(c in "/\\" or not c.isprintable() for c in name):
        raise ValueError(
            f"{what} {printable(repr(name))} cannot name a folder: it must be non-empty, without '/', '\\', '..' or "
            "control characters, and not start with '.' or '-'; rename it"
        )


def check_declared(spec: object, where: str, only: tuple[str, ...] = ()) -> None:
    """Refuse a field of the dataclass ``spec`` (of ``only``, else any) whose value is not of its declared type;
    a list is taken for a tuple."""
    for name, hint in typing.get_type_hints(type(spec)).items():
        value = getattr(spec, name)
        if (name in only or not only) and not _fits(value, hint):
            shown = re.sub(r"\b(?:\w+\.)+(\w+)", r"\1", hint.__name__ if isinstance(hint, type) else str(hint))
            got = f"{type(value).__name__} {printable(reprlib.repr(value))}"
            raise TypeError(f"{where}: {name} must be {shown}, got {got}")


def _fits(value: object, hint: Any) -> bool:
    """Whether ``value`` is of type ``hint``: ``Any``, a class, a union, ``tuple[X, ...]`` or ``Mapping[K, V]``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (types.UnionType, typing.Union):
        return any(_fits(value, arg) for arg in args)
    if origin is tuple:
        return isinstance(value, (tuple, list)) and all(_fits(item, args[0]) for item in value)
    if origin is Mapping:
        return isinstance(value, Mapping) and all(_fits(k, args[0]) and _fits(v, args[1]) for k, v in value.items())
    return isinstance(value, hint) and not (isinstance(value, bool) and hint is int)
