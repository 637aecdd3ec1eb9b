"""``harness reproduce``: run every cell of a paper table that is not done yet.

A cell (model row x setting x seed) is an independent run under
``<results>/<table>/<budget>/<row>/<setting>/seed<N>/``. Finished cells are skipped and
interrupted ones resume from their checkpoints. Cells go through an executor: in this
process by default, or on Ray (a local Ray, or an existing cluster by address).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from harness import atomic
from harness.config import build_config, did_you_mean
from harness.errors import ConfigError
from harness.plugins import DISABLE_ENV, MODULES_ENV, STRICT_ENV, PluginHost, get_host
from harness.runner import RECORD, Prepared, Run, prepare
from harness.specs import EpisodeSource
from harness.tables import CELL, Cell, TableSpec, make_cell

EXECUTORS = ("inprocess", "ray")


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
    if not cells:
        raise ConfigError(
            f"no installed model fills table {table.name!r}; install a model plugin that lists rows for it "
            "(ModelSpec.rows, see docs/writing-a-plugin.md)"
        )
    return cells


def is_done(out: Path, cell: Cell) -> bool:
    """Whether ``cell`` already has a complete run record under ``out``."""
    path = out / cell.name / RECORD
    return path.exists() and json.loads(path.read_text()).get("status") == "complete"


def run_cell(config: dict[str, Any], directory: str, data: dict[str, Any]) -> dict[str, Any]:
    """Run one cell to completion in a fresh process (the body of a Ray task)."""
    cell_config = build_config({**config, "data": {**config["data"], **data}}, directory)
    return Run(prepare(cell_config, get_host()), Path(directory)).execute(log=lambda _: None)


def _execute_ray(
    jobs: list[tuple[Prepared, Path, dict[str, Any]]], on_done: Callable[[dict], None], address: str | None
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
        pending = [task.remote(p.config.to_dict(), str(directory), where) for p, directory, where in jobs]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            on_done(ray.get(done[0]))
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
) -> dict[str, list[str]]:
    """Run the missing cells of ``table`` into ``out``; return the cell names run and skipped.

    ``locations`` maps a dataset name to options saying where its data lives (e.g. ``root``);
    ``device`` is where torch models run (default ``auto``). Cells with the same dataset
    options share one opened dataset.
    """
    from tqdm import tqdm

    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r}; use one of {', '.join(EXECUTORS)}")
    cells = table_cells(table, host, budget, seeds=seeds, models=models, rows=rows)
    todo = [c for c in cells if not is_done(out, c)]
    skipped = [c.name for c in cells if c not in todo]
    locations = locations or {}
    # Prepare every cell first, so a bad one fails before any work starts.
    jobs = []
    sources: dict[str, EpisodeSource] = {}
    for cell in todo:
        where = dict(locations.get(cell.config.dataset, {}))
        config = dataclasses.replace(cell.config, data={**cell.config.data, **where}, device=device or "auto")
        jobs.append((prepare(config, host, sources), out / cell.name, where))
    with tqdm(total=len(cells), initial=len(skipped), unit="cell", desc=table.name, disable=not progress) as bar:

        def on_done(record: dict) -> None:
            bar.set_postfix_str(f"{record['model']} {record['setting']}")
            bar.update(1)

        for cell in todo:
            atomic.write_json(out / cell.name / CELL, cell.describe())
        if executor == "ray":
            _execute_ray(jobs, on_done, address)
        else:
            for prepared, directory, _ in jobs:
                on_done(Run(prepared, directory).execute(log=lambda _: None))
    return {"run": [c.name for c in todo], "skipped": skipped}
