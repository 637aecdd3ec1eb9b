"""Table definitions: which cells a paper table has and how each one is run.

A ``TableSpec`` (registered through the ``harness_tables`` hook) lists the table's
settings, the metric and keys that fill its columns, run-config values per budget and
where its paper's numbers ship. A model fills rows by declaring ``TableRow`` entries in
its ``ModelSpec.rows``, and any plugin may list rows for a model it does not provide
(``harness_table_rows``), so a third-party model or table needs no change to the core.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.config import RunConfig, build_config, did_you_mean
from harness.errors import ConfigError

BUDGETS = ("quick", "paper")
"""``quick``: minutes on a laptop CPU; ``paper``: the papers' training length."""


@dataclass(frozen=True)
class TableSetting:
    """One column group of a table, e.g. ``5-way 1-shot``, and the run-config values that make it."""

    name: str
    config: Mapping[str, Any]


BUDGET = "budget:"
"""A budget's ``init_from = "budget:NAME"``: each cell starts from the same cell at budget NAME
(``harness.init_from``)."""


@dataclass(frozen=True)
class TableSpec:
    """A paper table the harness can reproduce."""

    name: str
    """Identifier used on the command line and for files, e.g. ``snail-table1``."""
    title: str
    paper: str
    """Citation of the paper the table comes from."""
    metric: str
    """Metric whose values fill the cells: any registered metric, e.g. ``nway_kshot_accuracy``."""
    keys: tuple[str, ...] | None
    """Metric keys shown as columns; ``None`` means the key is the setting name."""
    settings: tuple[TableSetting, ...]
    budgets: Mapping[str, Mapping[str, Any]]
    """Run-config values per budget (``episodes``, ``eval_episodes``, ``batch_size`` ...)."""
    seeds: tuple[int, ...] = (0,)
    plot: str = "bars"
    """``curves`` (accuracy per instance) or ``bars`` (N-way K-shot accuracy)."""
    numbers: str = ""
    """The paper's numbers shipped as package data: ``"<package>:<path>"``, e.g. ``"my_plugin:papers/my-table.csv"``
    (see ``harness.paper_tables``); empty: only the folders of ``--papers`` and ``$HARNESS_PAPERS_DIR`` are searched."""
    notes: tuple[str, ...] = ()
    """Sentences the leaderboard prints under the table, e.g. why a number is below chance."""
    quantity: str = "accuracy"
    """What the cells measure, in percent (``accuracy``, ``error``): the plots' axis and the tables' legend say it."""

    def setting(self, name: str) -> TableSetting:
        """The setting called ``name``."""
        for setting in self.settings:
            if setting.name == name:
                return setting
        names = [s.name for s in self.settings]
        raise ConfigError(
            f"table {self.name!r} has no setting {name!r} (settings: {', '.join(names)}){did_you_mean(name, names)}"
        )

    def setting_config(self, name: str) -> Mapping[str, Any] | None:
        """The run-config values the setting called ``name`` fixes; ``None`` for a setting the table lacks."""
        return next((setting.config for setting in self.settings if setting.name == name), None)

    def cell_keys(self, setting: str) -> tuple[str, ...]:
        """Column keys reported for ``setting``."""
        return self.keys if self.keys is not None else (setting,)

    def summary(self, metrics: Mapping[str, Mapping[str, Any]], key: str) -> Mapping[str, Any]:
        """Summary behind column ``key`` in run-record metrics (the only value when keyed by setting)."""
        values = metrics[self.metric]
        if self.keys is None:
            (only,) = values.values()
            return only
        return values[key]


@dataclass(frozen=True)
class TableRow:
    """A row of a table: the row label, hyperparameters, which settings (all if empty), dataset options, model."""

    table: str
    row: str
    params: Mapping[str, Any] = field(default_factory=dict)
    settings: tuple[str, ...] = ()
    data: Mapping[str, Any] = field(default_factory=dict)
    """Dataset options over the setting's, e.g. ``{"image_size": 105}`` for a model that needs raw Omniglot images."""
    model: str = ""
    """The model filling the row: required in ``harness_table_rows``; in ``ModelSpec.rows`` empty means that model."""
    budget_params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Hyperparameters over ``params`` for one budget, by budget name, e.g. ``{"paper": {"lr": 3e-3}}``: a learning
    rate chosen for that budget's training length."""

    @property
    def name(self) -> str:
        """``<table>/<row>``: the row's name among those of ``harness_table_rows`` (two plugins listing one clash)."""
        return f"{self.table}/{self.row}"


@dataclass(frozen=True)
class Cell:
    """One run of a table: model row x setting x seed."""

    table: str
    row: str
    setting: str
    seed: int
    budget: str
    config: RunConfig
    setting_config: Mapping[str, Any] = field(default_factory=dict)
    """What the table's setting fixes of the run config (``ways``, ``shots`` ...): a record differing is another's."""
    budget_config: Mapping[str, Any] = field(default_factory=dict)
    """What the table's budget gives of the run config (``episodes``, ``eval_episodes`` ...)."""
    row_params: Mapping[str, Any] | None = None
    """The hyperparameters that tell the table's rows of this model apart, at their values in this cell (the model's
    default where this row gives none); ``None``: those this row gives."""
    param_defaults: Mapping[str, Any] = field(default_factory=dict)
    """The model's defaults of ``row_params``: what a record that lacks one was trained with."""
    row_data: Mapping[str, Any] = field(default_factory=dict)
    """The dataset options any of the table's rows gives (``TableRow.data``), which tell rows apart as hyperparameters
    do, at their values in this cell (the dataset's default where neither its setting nor its row gives one)."""
    data_defaults: Mapping[str, Any] = field(default_factory=dict)
    """The dataset's defaults of the options the cell fixes: what a record that lacks one was trained with."""

    @property
    def name(self) -> str:
        """Run directory, relative to the results directory."""
        return cell_name(self.table, self.budget, self.row, self.setting, self.seed)

    @property
    def fixed_config(self) -> dict[str, Any]:
        """What the cell fixes of a run config that its record must show (``records.check_own``: a record differing is
        another cell's): the values of the keys its budget and setting give and of ``eval_seed`` (``UNFIXED_KEYS``
        aside; of ``data``, the options the setting or a row gives, and their ``data_defaults``), the row's model,
        ``row_params`` and their ``param_defaults``."""
        values = self.config.to_dict()
        keys = dict.fromkeys((*self.budget_config, *self.setting_config, "eval_seed"))  # eval_seed: its test episodes
        fixed = {key: values[key] for key in keys if key in values and key not in (*UNFIXED_KEYS, "data")}
        data = values["data"]  # at the cell's values: a row's own options win over its setting's
        options = {key: data[key] for key in self.setting_config.get("data", {}) if key in data} | dict(self.row_data)
        if options:
            fixed["data"] = options
        params = self.config.params if self.row_params is None else self.row_params
        fixed.update(model=self.config.model, params=dict(params), param_defaults=dict(self.param_defaults))
        fixed["data_defaults"] = dict(self.data_defaults)
        return fixed

    def describe(self) -> dict[str, Any]:
        """What ``cell.json`` holds: which table, row, setting, seed and budget the run is."""
        return {"table": self.table, "row": self.row, "setting": self.setting, "seed": self.seed, "budget": self.budget}


UNFIXED_KEYS = ("checkpoint_every",)
"""Keys of a budget that do not change what a cell computes (a run resumes bit for bit whatever the interval of its
checkpoints): a record that differs in one is still the cell's."""


SIGNS = {"+": "-plus-", "\u2212": "-minus-"}
"""Signs that tell rows apart (``MetaNet+``, ``MetaNet\u2212``), spelt out so that their folders differ."""


def slug(text: str) -> str:
    """Folder-safe form of a label: ``MANN (LSTM)`` -> ``mann-lstm``, ``MetaNet+`` -> ``metanet-plus``; a label
    without ASCII letters or digits (``日本``) gets a stable hash of itself, ``label-1a2b3c4d``, never an empty name."""
    spelt = text
    for sign, word in SIGNS.items():
        spelt = spelt.replace(sign, word)
    folder = re.sub(r"[^a-z0-9]+", "-", spelt.lower()).strip("-")
    return folder or f"label-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def cell_name(table: str, budget: str, row: str, setting: str, seed: int) -> str:
    """The run directory of a cell, relative to the results directory: ``<table>/<budget>/<row>/<setting>/seed<N>``."""
    return f"{table}/{budget}/{slug(row)}/{slug(setting)}/seed{seed}"


def check_budget(table: TableSpec, budget: str) -> None:
    """Refuse in one line a budget ``table`` lacks."""
    if budget not in table.budgets:
        raise ConfigError(
            f"table {table.name!r} has no budget {budget!r} (budgets: {', '.join(table.budgets)})"
            f"{did_you_mean(budget, list(table.budgets))}"
        )


def make_cell(table: TableSpec, model: str, row: TableRow, setting: TableSetting, seed: int, budget: str) -> Cell:
    """The run config of one cell: budget, then setting (which may override a budget key), then the row's model,
    hyperparameters (those it gives for this budget over the others) and dataset options (over the setting's)."""
    check_budget(table, budget)
    values: dict[str, Any] = {**table.budgets[budget], **setting.config}
    params = {**row.params, **row.budget_params.get(budget, {})}
    values.update(model=model, seed=seed, budget=budget, metrics=[table.metric], params=params)
    if row.data:
        values["data"] = {**values.get("data", {}), **row.data}
    config = build_config(values, f"table {table.name}")
    return Cell(table.name, row.row, setting.name, seed, budget, config, dict(setting.config), table.budgets[budget])
