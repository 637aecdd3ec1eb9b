"""``harness reproduce``: run every cell of a paper table that is not done yet.

A cell (model row x setting x seed) is an independent run under
``<results>/<table>/<budget>/<row>/<setting>/seed<N>/``. Finished cells are skipped and
interrupted ones resume from their checkpoints. Cells go through an executor: in this
process by default, or on Ray (a local Ray, or an existing cluster by address). A cell
runs only under its directory's lock (``harness.rundirs``), so two commands on one results
folder share the cells: each leaves a cell another process holds to that process. A cell
that fails (a model that raises, say) is reported and left without a record, so a rerun
tries it again; the other cells still run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from harness import atomic, locks, rundirs
from harness.config import build_config, did_you_mean
from harness.errors import ConfigError, DataError, HarnessError, UnknownNameError, describe
from harness.hints import for_command
from harness.plugins import DISABLE_ENV, MODULES_ENV, STRICT_ENV, PluginHost, get_host
from harness.runner import RECORD, Prepared, Run, prepare
from harness.specs import EpisodeSource
from harness.tables import CELL, Cell, TableSpec, make_cell

EXECUTORS = ("inprocess", "ray")
RAN, DONE, ELSEWHERE, FAILED = "run", "skipped", "elsewhere", "failed"
"""What became of a cell: run here, found done, left to another process that holds its directory, or failed."""


def table_cells(
    table: TableSpec, host: PluginHost, budget: str, *, seeds: Sequence[int] | None = None,
    models: Sequence[str] | None = None, rows: Sequence[str] | None = None,
) -> list[Cell]:  # fmt: skip
    """Every cell the installed models can fill in ``table``, optionally for some models or row labels only."""
    for name in models or ():
        host.models.get(name)
    labels = [row.row for spec in host.models for row in spec.rows if row.table == table.name]
    for label in rows or ():
        if label not in labels:
            raise ConfigError(
                f"table {table.name!r} has no row {label!r} (its rows: {', '.join(dict.fromkeys(labels))})"
                f"{did_you_mean(label, labels)}"
            )
    cells: list[Cell] = []
    for spec in host.models:
        if models and spec.name not in models:
            continue
        for row in spec.rows:
            if row.table != table.name or (rows and row.row not in rows):
                continue
            for setting in table.settings:
                if row.settings and setting.name not in row.settings:
                    continue
                cells.extend(make_cell(table, spec.name, row, setting, seed, budget) for seed in seeds or table.seeds)
    folders: dict[str, str] = {}
    for cell in cells:
        other = folders.setdefault(cell.name, cell.row)
        if other != cell.row:
            raise ConfigError(
                f"rows {other!r} and {cell.row!r} of table {table.name!r} share the folder {cell.name}; "
                "give one of them a label that differs in letters or digits"
            )
    if not cells:
        raise ConfigError(
            f"no installed model fills table {table.name!r}; install a model plugin that lists rows for it "
            "(ModelSpec.rows, see docs/writing-a-plugin.md)"
        )
    return cells


def is_done(out: Path, cell: Cell) -> bool:
    """Whether ``cell`` already has a complete run record under ``out``."""
    return _complete(out / cell.name)


def _complete(directory: Path) -> bool:
    path = directory / RECORD
    return path.exists() and json.loads(path.read_text()).get("status") == "complete"


def claim_and_run(
    directory: Path, cell: dict[str, Any], prepared: Prepared | Callable[[], Prepared], tracebacks: bool = False
) -> tuple[str, str]:
    """Run a cell under its directory's lock unless it is done by then; return ``(outcome, detail)``.

    ``prepared`` is the cell's prepared config, or a function making it once the cell is
    claimed. The outcome is ``RAN``, ``DONE`` (another process finished it meanwhile),
    ``ELSEWHERE`` (another process holds the directory; ``detail`` says which) or ``FAILED``
    (``detail`` is the error in one line, then with ``tracebacks`` the full traceback).
    """
    try:
        with rundirs.claim(directory):
            if _complete(directory):
                return DONE, ""
            atomic.write_json(directory / CELL, cell)
            Run(prepared if isinstance(prepared, Prepared) else prepared(), directory).execute(log=lambda _: None)
            return RAN, ""
    except locks.LockHeldError as exc:
        return ELSEWHERE, exc.holder
    except Exception as exc:  # one cell's failure must not stop the others
        detail = str(exc) if isinstance(exc, HarnessError) else describe(exc)
        return FAILED, detail + ("\n" + "".join(traceback.format_exception(exc)).rstrip() if tracebacks else "")


def run_cell(
    config: dict[str, Any], directory: str, data: dict[str, Any], cell: dict[str, Any], tracebacks: bool = False
) -> tuple[str, str]:
    """Run one cell in a fresh process (the body of a Ray task); see ``claim_and_run``."""

    def prepared() -> Prepared:
        cell_config = build_config({**config, "data": {**config["data"], **data}}, directory)
        return prepare(cell_config, get_host())

    return claim_and_run(Path(directory), cell, prepared, tracebacks)


Job = tuple[Cell, Prepared, Path, dict[str, Any]]
"""A cell to run: the cell, its prepared config, its directory and where its dataset lives."""


def _execute_ray(
    jobs: list[Job], on_done: Callable[[Cell, str, str], None], address: str | None, tracebacks: bool
) -> None:
    try:
        import ray
    except ImportError:
        raise ConfigError("--executor ray needs Ray: pip install 'harness[ray]'") from None
    env = {k: os.environ[k] for k in (MODULES_ENV, DISABLE_ENV, STRICT_ENV, "OMP_WAIT_POLICY") if k in os.environ}
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env})
    try:
        task = ray.remote(run_cell)
        cells = {
            task.remote(p.config.to_dict(), str(directory), where, cell.describe(), tracebacks): cell
            for cell, p, directory, where in jobs
        }
        pending = list(cells)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            on_done(cells[done[0]], *ray.get(done[0]))
    finally:
        if started_here:
            ray.shutdown()


def reproduce(
    table: TableSpec,
    host: PluginHost,
    out: Path,
    *,
    budget: str = "quick",
    seeds: Sequence[int] | None = None,
    models: Sequence[str] | None = None,
    rows: Sequence[str] | None = None,
    executor: str = "inprocess",
    address: str | None = None,
    locations: Mapping[str, Mapping[str, Any]] | None = None,
    device: str | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    tracebacks: bool = False,
) -> dict[str, list[str]]:
    """Run the missing cells of ``table`` into ``out``; return the cell names run, skipped, running elsewhere
    and failed.

    ``locations`` maps a dataset name to options saying where its data lives (e.g. ``root``);
    an unknown dataset name is an error. ``device`` is where torch models run (default
    ``auto``). Cells with the same dataset options share one opened dataset. A cell whose
    directory another process holds is left to it (``elsewhere``), with a line to ``log``
    naming the holder; a cell that fails is reported to ``log`` in one line (then its
    traceback with ``tracebacks``) and the rest still run.
    """
    from tqdm import tqdm

    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r}; use one of {', '.join(EXECUTORS)}")
    locations = locations or {}
    for dataset in locations:
        if dataset not in host.datasets:
            raise UnknownNameError(f"data directory given for {host.datasets.unknown_message(dataset)}")
    cells = table_cells(table, host, budget, seeds=seeds, models=models, rows=rows)
    directories = {cell.name: rundirs.resolve(out, cell.name) for cell in cells}
    todo = [c for c in cells if not _complete(directories[c.name])]
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
        config = dataclasses.replace(cell.config, data={**cell.config.data, **where}, device=device or "auto")
        try:
            jobs.append((cell, prepare(config, host, sources), directories[cell.name], where))
        except DataError as exc:  # its hint names harness run's option
            raise DataError(for_command(str(exc), "reproduce", config.dataset)) from None
    initial = len(outcomes[DONE])
    with tqdm(total=len(cells), initial=initial, unit="cell", desc=table.name, disable=not progress) as bar:

        def on_done(cell: Cell, outcome: str, detail: str) -> None:
            outcomes[outcome].append(cell.name)
            if outcome == ELSEWHERE and log is not None:
                log(f"{directories[cell.name]}: running elsewhere ({detail})")
            if outcome == FAILED and log is not None:
                log(f"{cell.name}: failed: {for_command(detail, 'reproduce', cell.config.dataset)}")
            bar.set_postfix_str(f"{cell.row} {cell.setting}")
            bar.update(1)

        if executor == "ray":
            _execute_ray(jobs, on_done, address, tracebacks)
        else:
            for cell, prepared, directory, _ in jobs:
                on_done(cell, *claim_and_run(directory, cell.describe(), prepared, tracebacks))
    return outcomes
