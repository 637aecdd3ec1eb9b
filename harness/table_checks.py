"""Checks of what a plugin registers for paper tables, so that a malformed ``TableSpec`` or ``TableRow`` breaks its
plugin at registration instead of a command later: each field of the type ``harness.tables`` declares, names that
can be folders, no setting or seed twice, seeds a run takes, and budget and setting configs that make a run config.
Each raises ``TypeError`` or ``ValueError`` naming the table or row and field.
"""

from __future__ import annotations

import re
import reprlib
import types
import typing
from collections.abc import Mapping
from typing import Any

from harness.config import FIELDS, build_config, did_you_mean
from harness.errors import ConfigError, printable
from harness.params import SEED_MAX
from harness.tables import BUDGET, TableRow, TableSpec, slug

PLOTS = ("curves", "bars")
"""What ``TableSpec.plot`` may be."""
NAME_MAX = 100
"""The longest table name: a folder name, with room left for the leaderboard's files named after it."""
RESERVED = ("all", "leaderboards")
"""Table names taken: ``all`` names every table on the command line, ``leaderboards`` is the leaderboards' folder
inside the results folder (refused in any case, for file systems that ignore it)."""
CELL_KEYS = ("model", "seed", "budget", "metrics", "params", "device")
"""Run-config keys each cell sets itself (``harness.tables.make_cell``; ``device`` from ``harness reproduce
--device``), which a budget or setting would set in vain."""


def check_table(table: TableSpec) -> None:
    """Refuse a table with a field of another type than declared, no settings, budgets, seeds or keys, a setting
    listed twice or two sharing a folder, an unknown plot, a name or budget name that cannot name a folder of its
    own, a reserved or overlong name, a seed listed twice or outside 0..SEED_MAX, or a budget and setting that do
    not make a run config together."""
    where = f"table {table.name!r}"
    check_declared(table, where)
    check_file_name(table.name, "table name")
    if len(table.name) > NAME_MAX:
        raise ValueError(f"table name {table.name[:20]!r}... is {len(table.name)} characters; shorten it to {NAME_MAX}")
    if table.name.casefold() in RESERVED:
        raise ValueError(
            f"table name {table.name!r} is reserved ('all' names every table, 'leaderboards' is the leaderboards' "
            "folder); rename it"
        )
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
        if not setting.name or printable(setting.name) != setting.name:
            raise ValueError(f"{where}: setting name {setting.name!r} is empty or holds control characters; rename it")
        if setting.name in names:
            raise ValueError(f"setting {setting.name!r} is listed twice in {where}; list it once")
        names.add(setting.name)
    _check_seeds(table.seeds, where)
    _check_setting_folders(table, where)
    _check_configs(table, where)
    for name in table.budgets:
        _check_carried_on(table, name, where)


def _check_seeds(seeds: tuple[int, ...], where: str) -> None:
    """Refuse a seed listed twice or outside 0..SEED_MAX."""
    seen: set[int] = set()
    for seed in seeds:
        if not 0 <= seed <= SEED_MAX:
            raise ValueError(f"{where}: seed {seed} is outside 0..{SEED_MAX}; give seeds in that range")
        if seed in seen:
            raise ValueError(f"{where}: seed {seed} is listed twice in seeds; list it once")
        seen.add(seed)


def _check_setting_folders(table: TableSpec, where: str) -> None:
    """Refuse two settings whose names make one folder (``slug``: '5 way' and '5-way')."""
    folders: dict[str, str] = {}
    for setting in table.settings:
        other = folders.setdefault(slug(setting.name), setting.name)
        if other != setting.name:
            raise ValueError(
                f"{where}: settings {other!r} and {setting.name!r} share the folder {slug(other)!r}; give one of "
                "them a name that differs in letters or digits"
            )


def _check_configs(table: TableSpec, where: str) -> None:
    """Refuse a budget or setting config with a key no run config has or one each cell sets itself, and a budget
    that does not make a run config with each setting (a value of the wrong type, or out of range), as
    ``make_cell`` would find for every cell."""
    owned = [(f"budget {name!r}", config) for name, config in table.budgets.items()]
    owned += [(f"setting {setting.name!r}", setting.config) for setting in table.settings]
    for owner, config in owned:
        for key in config:
            if key not in FIELDS:
                hint = did_you_mean(key, list(FIELDS)) or "; use a field of RunConfig (harness/config.py)"
                raise ValueError(f"{where}, {owner}: unknown run-config key {printable(repr(key))}{hint}")
            if key in CELL_KEYS:
                raise ValueError(
                    f"{where}, {owner}: sets {key!r}, which each cell sets itself (from the table's seeds, budget "
                    "and metric, the row's model and params, and reproduce's --device); drop it"
                )
    for budget, values in table.budgets.items():
        for setting in table.settings:
            try:
                build_config(
                    {**values, **setting.config, "model": "-"}, f"budget {budget!r} with setting {setting.name!r}"
                )
            except ConfigError as exc:
                raise ValueError(f"{where}: {exc}") from None


def _check_carried_on(table: TableSpec, name: str, where: str) -> None:
    """Refuse a budget that carries on (``init_from = "budget:NAME"``) from a budget the table lacks, from itself or
    round a loop back to itself: its cells could never start."""
    seen = [name]
    given = table.budgets[name].get("init_from")
    while isinstance(given, str) and given.startswith(BUDGET):
        target = given.removeprefix(BUDGET)
        if target not in table.budgets or target in seen:
            problem = (
                "which the table lacks"
                if target not in table.budgets
                else "round a loop: " + " -> ".join([*seen, target])
            )
            others = ", ".join(b for b in table.budgets if b != name)
            target_text, given_text = printable(repr(target)), printable(repr(given))
            raise ValueError(
                f"{where}: budget {name!r} carries on from budget {target_text} ({given_text}), {problem}; name "
                f"another of its budgets ({others})"
            )
        seen.append(target)
        given = table.budgets[target].get("init_from")


def check_row(row: TableRow) -> None:
    """Refuse a row with a field of another type than declared, or without a label."""
    check_declared(row, f"row {row.row!r} of table {row.table!r}")
    if not row.row:
        raise ValueError(f"the row of table {row.table!r} for model {row.model!r} has an empty label; give its label")
    if printable(row.row) != row.row:
        raise ValueError(f"row label {row.row!r} of table {row.table!r} holds control characters; rename it")


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
            plain = isinstance(hint, type) and typing.get_origin(hint) is None  # 3.10 takes tuple[int, ...] for a type
            shown = re.sub(r"\b(?:\w+\.)+(\w+)", r"\1", hint.__name__ if plain else str(hint))
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
