"""``harness reproduce``: run every cell of a paper table that is not done yet.

A cell (model row x setting x seed) is an independent run under
``<results>/<table>/<budget>/<row>/<setting>/seed<N>/``. Finished cells are skipped and
interrupted ones resume from their checkpoints. Cells go through an executor: in this
process by default, or on Ray (``harness.executors``: a local Ray, or a cluster by address). A cell
runs only under its directory's lock (``harness.rundirs``), so two commands on one results
folder share the cells: each leaves a cell another process holds to that process. A cell
that fails (a model that raises, say) is reported and left without a record, so a rerun
tries it again; the other cells still run.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from harness import atomic, devices, locks, record_values, records, rundirs
from harness.config import MAXIMA, did_you_mean
from harness.errors import (
    ConfigError,
    DataError,
    EpisodeCountError,
    HarnessError,
    UnknownNameError,
    describe,
    printable,
    shortened,
)
from harness.hints import REPRODUCE, for_dataset
from harness.plugins import PluginHost
from harness.prepare import Prepared, prepare
from harness.records import CELL, RECORD
from harness.registry import Registry
from harness.runner import Run
from harness.specs import EpisodeSource, MetricSpec
from harness.tables import Cell, TableRow, TableSetting, TableSpec, make_cell

EXECUTORS = ("inprocess", "ray")
RAN, DONE, ELSEWHERE, FAILED = "run", "skipped", "elsewhere", "failed"
"""What became of a cell: run here, found done, left to another process that holds its directory, or failed."""


def table_rows(table: TableSpec, host: PluginHost) -> list[tuple[str, TableRow]]:
    """``(model, row)`` of every row of ``table`` an installed model fills: from the models' ``ModelSpec.rows``, then
    ``harness_table_rows``. A row of a model not installed is left out (the host warns of a misspelt one)."""
    listed = [(row.model or spec.name, row) for spec in host.models for row in spec.rows if row.table == table.name]
    for row in host.rows:
        if row.table != table.name:
            continue
        if not row.model:
            raise ConfigError(
                f"row {row.row!r} of table {table.name!r} (plugin {host.rows.plugin_of(row.name)!r}) names no model; "
                "set TableRow(model=...) to the model that fills it"
            )
        listed.append((row.model, row))
    return [(model, row) for model, row in listed if model in host.models]


def _filled(
    listed: Sequence[tuple[str, TableRow]], table: TableSpec, models: Sequence[str] | None,
    rows: Sequence[str] | None, settings: Sequence[str] | None,
) -> list[tuple[str, TableRow, TableSetting]]:  # fmt: skip
    """``(model, row, setting)`` of each cell of ``table`` that the rows ``listed`` give at the filters (empty or
    None: all)."""
    return [
        (model, row, setting)
        for model, row in listed
        for setting in table.settings
        if (not row.settings or setting.name in row.settings)
        and (not models or model in models)
        and (not rows or row.row in rows)
        and (not settings or setting.name in settings)
    ]


def _names(kept: Sequence[tuple[str, TableRow, TableSetting]]) -> tuple[list[str], list[str], list[str]]:
    """The models, row labels and settings of ``kept`` (``_filled``), each once, in order."""
    return (
        list(dict.fromkeys(model for model, _, _ in kept)),
        list(dict.fromkeys(row.row for _, row, _ in kept)),
        list(dict.fromkeys(setting.name for _, _, setting in kept)),
    )


@dataclasses.dataclass(frozen=True)
class Selection:
    """One table of a command, with the rows, settings and models of the command's filters that it has (None:
    all)."""

    table: TableSpec
    rows: list[str] | None
    settings: list[str] | None
    models: list[str] | None = None


def select(
    tables: Sequence[TableSpec], host: PluginHost, budget: str, *, models: Sequence[str] | None = None,
    rows: Sequence[str] | None = None, settings: Sequence[str] | None = None,
) -> list[Selection]:  # fmt: skip
    """The tables a command works on, given its budget, models, rows and settings: over several tables (``all``,
    say) a table no installed model fills is left out with a note on stderr, one without the budget, or without any
    of the models, rows or settings asked for, is left out, and a budget, model, row or setting that none of them has,
    or that the other filters leave without a cell, is a one-line ``ConfigError``. A single table is kept as it is, for
    ``table_cells`` to refuse what it lacks."""
    rows, settings, models = rows or (), settings or (), models or ()
    if len(tables) <= 1:
        return [Selection(t, list(rows) or None, list(settings) or None, list(models) or None) for t in tables]
    for name in models:
        host.models.get(name)  # an unknown model: its own one-line error
    have = {}
    for t in tables:
        listed = table_rows(t, host)
        if not listed:
            print(
                f"harness: note: no installed model fills table {t.name!r}; left out (install a model plugin that "
                "lists rows for it)",
                file=sys.stderr,
            )
            continue
        have[t.name] = {
            "budget": list(t.budgets),
            "model": list(dict.fromkeys(model for model, _ in listed)),
            "row": list(dict.fromkeys(row.row for _, row in listed)),
            "setting": [s.name for s in t.settings],
        }
    if not have:
        raise ConfigError(
            f"no installed model fills any of the tables {', '.join(t.name for t in tables)}; install a model plugin "
            "that lists rows for them (ModelSpec.rows or harness_table_rows, see docs/writing-a-plugin.md)"
        )
    asked = {"budget": [budget], "model": list(models), "row": list(rows), "setting": list(settings)}
    for kind, wanted in asked.items():
        known = list(dict.fromkeys(name for names in have.values() for name in names[kind]))
        for name in wanted:
            if name not in known:
                raise ConfigError(
                    f"none of the tables {', '.join(have)} has a {kind} {name!r} (theirs: {', '.join(known)})"
                    f"{did_you_mean(name, known)}"
                )
    chosen = []
    for t in (t for t in tables if t.name in have and budget in t.budgets):
        kept = _filled(table_rows(t, host), t, models, rows, settings)
        if kept:
            mine, labels, names = _names(kept)
            chosen.append(Selection(t, labels if rows else None, names if settings else None, mine if models else None))
    if not chosen:
        raise ConfigError(
            f"none of the tables {', '.join(have)} has budget {budget!r} together with the models, rows and settings "
            "asked for; name one table, or drop a --model, --row or --setting"
        )
    filters = {"model": (models, "models"), "row": (rows, "rows"), "setting": (settings, "settings")}
    for kind, (flagged, field) in filters.items():
        idle = [name for name in flagged if not any(name in (getattr(s, field) or ()) for s in chosen)]
        if not idle:
            continue
        many = len(idle) > 1
        quoted = " and ".join(map(repr, idle))
        what = f"{quoted} fill{'' if many else 's'} no row of" if kind == "model" else (
            f"{kind}{'s' if many else ''} {quoted} {'have' if many else 'has'} no cell in"
        )  # fmt: skip
        raise ConfigError(
            f"{what} {', '.join(s.table.name for s in chosen)} at the budget, models, rows and settings given; drop "
            f"{'those' if many else 'that'} --{kind}"
        )
    return chosen


def table_cells(
    table: TableSpec, host: PluginHost, budget: str, *, seeds: Sequence[int] | None = None,
    models: Sequence[str] | None = None, rows: Sequence[str] | None = None, settings: Sequence[str] | None = None,
) -> list[Cell]:  # fmt: skip
    """Every cell the installed models can fill in ``table``, optionally for some models, row labels or settings
    (column groups, e.g. ``5-way 1-shot``) only."""
    for name in models or ():
        host.models.get(name)
    listed = table_rows(table, host)
    labels = [row.row for _, row in listed]
    for label in rows or ():
        if label not in labels:
            raise ConfigError(
                f"table {table.name!r} has no row {label!r} (its rows: {', '.join(dict.fromkeys(labels))})"
                f"{did_you_mean(label, labels)}"
            )
    names = [setting.name for setting in table.settings]
    for name in settings or ():
        if name not in names:
            raise ConfigError(
                f"table {table.name!r} has no setting {name!r} (its settings: {', '.join(names)})"
                f"{did_you_mean(name, names)}"
            )
    kept = _filled(listed, table, models, rows, settings)
    cells = [_with_row_params(make_cell(table, model, row, setting, seed, budget), listed, host)
             for model, row, setting in kept for seed in seeds or table.seeds]  # fmt: skip
    if listed:  # every model, row and setting asked for has a cell, so there are cells
        _refuse_idle(table, listed, kept, models, rows, settings)
    if not cells:
        raise ConfigError(
            f"no installed model fills table {table.name!r}; install a model plugin that lists rows for it "
            "(ModelSpec.rows or harness_table_rows, see docs/writing-a-plugin.md)"
        )
    return cells


def _with_row_params(cell: Cell, listed: Sequence[tuple[str, TableRow]], host: PluginHost) -> Cell:
    """``cell`` with what tells it apart from the table's other rows (``Cell.fixed_config``): the hyperparameters any
    row of its model gives (at the cell's budget), at this cell's values or the model's defaults, and the dataset
    options any row gives."""
    model, params = cell.config.model, cell.config.params
    keys = {
        key for name, row in listed if name == model for key in (*row.params, *row.budget_params.get(cell.budget, {}))
    }
    defaults = host.models.get(model).defaults
    row_params = {
        key: params[key] if key in params else defaults[key] for key in sorted(keys) if key in params or key in defaults
    }
    param_defaults = {key: defaults[key] for key in row_params if key in defaults}
    dataset, data = cell.config.dataset, cell.config.data
    options = dict(host.datasets.get(dataset).options) if dataset in host.datasets else {}
    row_keys = sorted({key for _, row in listed for key in row.data})
    row_data = {key: data[key] if key in data else options[key] for key in row_keys if key in data or key in options}
    fixed_keys = {*cell.setting_config.get("data", {}), *row_data}
    data_defaults = {key: options[key] for key in sorted(fixed_keys) if key in options}
    return dataclasses.replace(
        cell, row_params=row_params, param_defaults=param_defaults, row_data=row_data, data_defaults=data_defaults
    )


def fixed_configs(table: TableSpec, host: PluginHost) -> dict[tuple[str, str, str], dict[str, Any]]:
    """``Cell.fixed_config`` of every cell the installed models fill in ``table``, by ``(budget, row, setting)``
    (seeds alike), for ``harness status`` and the leaderboard to check records as ``harness reproduce`` does; a
    budget whose cells cannot be made (a broken row, refused where it runs) is left out."""
    fixed = {}
    for budget in table.budgets:
        try:
            cells = table_cells(table, host, budget, seeds=[0])
        except HarnessError:
            continue
        fixed.update({(cell.budget, cell.row, cell.setting): cell.fixed_config for cell in cells})
    return fixed


def _at_flags(rows: Sequence[str] | None, settings: Sequence[str] | None) -> str:
    """`` at the --row and --setting given``, naming only the flags given; empty if none is."""
    given = " and ".join(flag for flag, values in (("--row", rows), ("--setting", settings)) if values)
    return f" at the {given} given" if given else ""


def _refuse_idle(
    table: TableSpec, listed: Sequence[tuple[str, TableRow]], kept: Sequence[tuple[str, TableRow, TableSetting]],
    models: Sequence[str] | None, rows: Sequence[str] | None, settings: Sequence[str] | None,
) -> None:  # fmt: skip
    """Refuse in one line a model, row or setting asked for that has no cell in ``kept`` (``_filled`` at the filters
    from the rows ``listed``), which would be dropped without a word."""
    filled, every = _filled(listed, table, None, rows, settings), _filled(listed, table, None, None, None)
    flags = _at_flags(rows, settings)
    fillers = _names(filled)[0]
    idle = [model for model in models or () if model not in _names(kept)[0]]
    if idle and fillers:
        raise ConfigError(
            f"{' and '.join(map(repr, idle))} fill{'s' if len(idle) == 1 else ''} no "
            f"{'given ' if rows else ''}row of table {table.name!r}{flags}; {'those' if rows else 'its'} rows are "
            f"filled by {', '.join(fillers)}"
        )
    covered = _names(every)[2]
    uncovered = [name for name in settings or () if name not in covered]
    if uncovered:
        raise ConfigError(
            f"no row of table {table.name!r} covers setting{'s' if len(uncovered) > 1 else ''} "
            f"{' and '.join(map(repr, uncovered))} (its rows cover {', '.join(covered)}); drop "
            f"{'that' if len(uncovered) == 1 else 'those'} --setting"
        )
    flags_given = {"model": models, "row": rows, "setting": settings}
    for (kind, asked), have in zip({"row": rows, "setting": settings}.items(), _names(kept)[1:], strict=True):
        idle = [name for name in asked or () if name not in have]
        if idle:
            others = " and ".join(f"--{flag}" for flag, given in flags_given.items() if given and flag != kind)
            raise ConfigError(
                f"{kind}{'s' if len(idle) > 1 else ''} {' and '.join(map(repr, idle))} of table {table.name!r} "
                f"{'have' if len(idle) > 1 else 'has'} no cell at the {others} given; drop "
                f"{'that' if len(idle) == 1 else 'those'} --{kind}"
            )


def _complete(
    directory: Path, cell: dict[str, Any], setting: Mapping[str, Any], metrics: Registry[MetricSpec] | None = None
) -> bool:
    """Whether the cell in ``directory`` (``cell``: what its ``cell.json`` says; ``setting``: what its setting fixes
    of the config) has a complete record with its per-episode values; a damaged record, another cell's, or (with
    the installed ``metrics``) one whose numbers are not what its per-episode values give, is refused in one line."""
    path = directory / RECORD
    if not path.exists():
        return False
    fix = records.record_fix(path, "rerun")
    record = records.read_record(path, fix)
    records.check_own(path, cell, record, setting, fix)
    record_values.check(path, record, metrics, fix)
    return records.per_episode_problem(record, directory) is None  # read_record refused any other status


def _cell_folder(out: Path, name: str) -> Path:
    """The folder of the cell ``name`` under ``out``; a symbolic link or a file on its way (the table's folder or
    one below it) is a one-line ``DataError`` before any cell runs (``records.real_folder``)."""
    directory = out / name
    _real_folders(directory)
    folders = reversed((directory, *directory.parents[:4]))  # the table's folder first
    blocking = next((path for path in folders if path.exists() and not path.is_dir()), None)
    if blocking is not None:
        raise DataError(f"{blocking} is a file, where a folder of the cells of table {name.split('/')[0]!r} belongs; "
                        "move it away")  # fmt: skip
    return rundirs.resolve(out, name)


def _real_folders(directory: Path) -> None:
    """Refuse a symbolic link for the cell folder ``directory`` or its table's folders above it (a one-line
    ``DataError``, ``records.real_folder``), so that nothing is written through one into another folder."""
    for path in (directory, *directory.parents[:4]):
        records.real_folder(path)


def _done(directory: Path, cell: Cell, metrics: Registry[MetricSpec]) -> bool:
    """Whether ``cell`` is done, to plan the run: a damaged record makes it one to run, which then fails alone."""
    try:
        return records.is_cell(directory) and _complete(directory, cell.describe(), cell.fixed_config, metrics)
    except DataError:
        return False


def _check_adoptable(directory: Path, prepared: Prepared) -> None:
    """Refuse to take a run that ``harness reproduce`` did not start (a folder without ``cell.json``) as this cell's
    unless it was started with this cell's config: another run at a cell's path must not land in the table."""
    changed = Run(prepared, directory, cell=True).saved_config_changes()
    if changed:
        raise ConfigError(
            f"{directory} holds a run of another config than this cell's ({changed}) and no {CELL}: it is no run of "
            f"this table; move it out of {directory.parents[3]}"
        )


def _rewrite_cell_file(directory: Path, cell: dict[str, Any]) -> None:
    """Write a finished cell's ``cell.json`` again where it is missing or says something else (``status`` and
    ``leaderboard`` find cells by it)."""
    try:
        if records.read_json(directory / CELL, "") == cell:
            return
    except (DataError, OSError):
        pass
    atomic.write_json(directory / CELL, cell)


def claim_and_run(
    directory: Path,
    cell: dict[str, Any],
    setting: Mapping[str, Any],
    prepared: Prepared | Callable[[], Prepared],
    tracebacks: bool = False,
) -> tuple[str, str]:
    """Run a cell under its directory's lock unless it is done by then; return ``(outcome, detail)``.

    ``cell`` is what its ``cell.json`` says, ``setting`` what the table's setting fixes of its
    config (``Cell.setting_config``), ``prepared`` the cell's prepared config, or a function
    making it once the cell is claimed. The outcome is ``RAN``, ``DONE`` (another process finished it meanwhile),
    ``ELSEWHERE`` (another process holds the directory; ``detail`` says which) or ``FAILED``
    (``detail`` is the error in one line, then with ``tracebacks`` the full traceback).
    """
    try:
        _real_folders(directory)
        with rundirs.claim(directory):
            _real_folders(directory)  # again, once the lock is held: a link made since the cells were planned
            reproduced = records.is_cell(directory)  # else a run reproduce did not start, or a lost cell.json
            metrics = prepared.host.metrics if isinstance(prepared, Prepared) else None
            if reproduced and _complete(directory, cell, setting, metrics):
                return DONE, ""
            cell_prepared = prepared if isinstance(prepared, Prepared) else prepared()
            if not reproduced:
                _check_adoptable(directory, cell_prepared)
            atomic.write_json(directory / CELL, cell)
            if _complete(directory, cell, setting, metrics):  # a finished cell whose cell.json was lost
                return DONE, ""
            Run(cell_prepared, directory).execute(log=lambda _: None)
            return RAN, ""
    except locks.LockHeldError as exc:
        return ELSEWHERE, exc.holder
    except Exception as exc:  # one cell's failure must not stop the others
        detail = shortened(printable(str(exc) if isinstance(exc, HarnessError) else describe(exc)))
        return FAILED, detail + ("\n" + "".join(traceback.format_exception(exc)).rstrip() if tracebacks else "")


Job = tuple[Cell, Prepared, Path, dict[str, Any]]
"""A cell to run: the cell, its prepared config, its directory and where its dataset lives."""


def check_executor(executor: str, address: str | None) -> None:
    """Raise ``ConfigError`` for an unknown executor, a Ray address without the Ray executor, or an address
    where no cluster answers (within seconds, before any cell is prepared)."""
    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r}; use one of {', '.join(EXECUTORS)}")
    if address is not None and executor != "ray":
        raise ConfigError("--address is the address of a Ray cluster; add --executor ray, or drop --address")
    if address is not None:
        from harness.executors import check_address

        check_address(address)


def reproduce(
    table: TableSpec,
    host: PluginHost,
    out: Path,
    *,
    budget: str = "quick",
    seeds: Sequence[int] | None = None,
    models: Sequence[str] | None = None,
    rows: Sequence[str] | None = None,
    settings: Sequence[str] | None = None,
    executor: str = "inprocess",
    address: str | None = None,
    locations: Mapping[str, Mapping[str, Any]] | None = None,
    device: str | None = None,
    threads: int | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    tracebacks: bool = False,
) -> dict[str, list[str]]:
    """Run the missing cells of ``table`` into ``out``; return the cell names run, skipped, running elsewhere
    and failed.

    ``locations`` maps a dataset name to options saying where its data lives (e.g. ``root``);
    an unknown dataset name is an error, and relative folders are taken from the current
    directory (on Ray too), as is ``out``. ``device`` is where torch models run (default
    ``auto``); ``threads`` replaces the cells' torch CPU threads (``RunConfig.threads``).
    ``address`` (a Ray cluster) needs ``executor = "ray"``. Cells with the same dataset
    options share one opened dataset. A cell whose
    directory another process holds is left to it (``elsewhere``), with a line to ``log``
    naming the holder; a cell that fails is reported to ``log`` in one line (then its
    traceback with ``tracebacks``) and the rest still run.
    """
    from tqdm import tqdm

    check_executor(executor, address)
    if threads is not None and not 1 <= threads <= MAXIMA["threads"]:
        raise ConfigError(f"--threads must be from 1 to {MAXIMA['threads']:,}, got {threads:,}")
    if device is not None:
        devices.check_flag(device, here=address is None)
    setup = host.setup() if executor == "ray" else None  # refuses plugins a worker cannot import, before any work
    out = Path(os.path.abspath(out))
    locations = locations or {}
    for dataset in locations:
        if dataset not in host.datasets:
            raise UnknownNameError(f"data directory given for {host.datasets.unknown_message(dataset)}")
    locations = {dataset: _absolute(host, dataset, options) for dataset, options in locations.items()}
    cells = table_cells(table, host, budget, seeds=seeds, models=models, rows=rows, settings=settings)
    directories = {cell.name: _cell_folder(out, cell.name) for cell in cells}
    # a finished run without cell.json is only taken as the cell's once its config is checked (claim_and_run)
    todo = [c for c in cells if not _done(directories[c.name], c, host.metrics)]
    for cell in cells:
        if cell not in todo:
            _rewrite_cell_file(directories[cell.name], cell.describe())
    outcomes: dict[str, list[str]] = {
        RAN: [],
        DONE: [c.name for c in cells if c not in todo],
        ELSEWHERE: [],
        FAILED: [],
    }
    # Prepare every cell first, so a bad one fails before any work starts.
    jobs: list[Job] = []
    sources: dict[str, EpisodeSource] = {}
    for cell in todo:
        where = dict(locations.get(cell.config.dataset, {}))
        config = dataclasses.replace(
            cell.config,
            data={**cell.config.data, **where},
            device=device or "auto",
            threads=cell.config.threads if threads is None else threads,
        )
        try:
            jobs.append((cell, prepare(config, host, sources), directories[cell.name], where))
        except DataError as exc:  # its hint names harness run's option
            raise DataError(for_dataset(str(exc), host.datasets.get(config.dataset), REPRODUCE)) from None
        except EpisodeCountError as exc:  # the table sets the counts, not a flag of reproduce
            raise EpisodeCountError(
                f"table {table.name!r}, cell {cell.name}: {str(exc).split(';')[0]}; the table needs them all: "
                f"check that the folder given with --data-dir {exc.dataset}=DIR is complete",
                dataset=exc.dataset,
                count=exc.count,
            ) from None
    initial = len(outcomes[DONE])
    with tqdm(total=len(cells), initial=initial, unit="cell", desc=table.name, disable=not progress) as bar:

        def on_done(cell: Cell, outcome: str, detail: str) -> None:
            outcomes[outcome].append(cell.name)
            if outcome == ELSEWHERE and log is not None:
                log(f"{directories[cell.name]}: running elsewhere ({detail})")
            if outcome == FAILED and log is not None:
                log(f"{cell.name}: failed: {for_dataset(detail, host.datasets.get(cell.config.dataset), REPRODUCE)}")
            bar.set_postfix_str(f"{cell.row} {cell.setting}")
            bar.update(1)

        if setup is not None:
            from harness.executors import execute_ray

            execute_ray(jobs, on_done, address=address, setup=setup, tracebacks=tracebacks)
        else:
            for cell, prepared, directory, _ in jobs:
                on_done(cell, *claim_and_run(directory, cell.describe(), cell.fixed_config, prepared, tracebacks))
    return outcomes


def _absolute(host: PluginHost, dataset: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` with the folders among the dataset's location options made absolute."""
    folders = host.datasets.get(dataset).location_options
    return {
        key: os.path.abspath(os.path.expanduser(value)) if key in folders and isinstance(value, str) else value
        for key, value in options.items()
    }
