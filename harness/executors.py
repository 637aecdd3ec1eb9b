"""Running ``harness reproduce``'s cells on Ray: a local Ray, or an existing cluster by address.

The driver resolves everything a cell needs before it leaves: directories are absolute,
``HARNESS_*`` variables travel to the workers (those naming a folder, ``*_DIR``, made
absolute), and so do the driver's plugins (``PluginHost.setup``), those registered at run
time included. A worker builds the same host and runs the cell as this process would
(``claim_and_run``); a worker that dies (after Ray's retries) fails its cell alone, in one
line. What Ray prints while it runs goes to stderr, so stdout keeps the results.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import interrupts
from harness.config import build_config
from harness.errors import ConfigError, describe
from harness.plugins import HostSetup, PluginHost
from harness.prepare import Prepared, prepare
from harness.reproduce import FAILED, Job, claim_and_run
from harness.streams import stdout_to_stderr
from harness.tables import Cell

PROBE_TIMEOUT_S = 3.0
"""How long ``check_address`` waits for a cluster to answer."""
RESUMES = "rerun the same command to resume it from its last checkpoint"
POLL_S = 1.0
"""How often the driver, waiting for its cells, looks for a Ctrl-C or SIGTERM."""
STOP_WAIT_S = 120.0
"""How long an interrupted driver waits for its cells to save their checkpoints."""


def run_cell(
    config: dict[str, Any], directory: str, data: dict[str, Any], cell: dict[str, Any], setting: dict[str, Any],
    setup: HostSetup, tracebacks: bool = False,
) -> tuple[str, str]:  # fmt: skip
    """Run one cell in a Ray worker with the driver's plugins (``setup``); see ``claim_and_run``."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # Ray stops a cell with SIGINT (the cell saves its checkpoint): a worker of a driver started in the
        # background (``nohup harness reproduce ... &``) inherits it ignored, so take it again
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def prepared() -> Prepared:
        cell_config = build_config({**config, "data": {**config["data"], **data}}, directory)
        return prepare(cell_config, _host(setup))

    return claim_and_run(Path(directory), cell, setting, prepared, tracebacks)


@functools.lru_cache(maxsize=4)
def _host(setup: HostSetup) -> PluginHost:
    """The worker's plugin host, built once per worker process."""
    return setup.build()


def worker_env() -> dict[str, str]:
    """Environment variables the cells need on a worker: ``HARNESS_*`` (``*_DIR`` made absolute),
    ``OMP_WAIT_POLICY`` and a ``PYTHONPATH`` of this process's absolute ``sys.path``."""
    env = {key: value for key, value in os.environ.items() if key.startswith("HARNESS_")}
    for key, value in env.items():
        if key.endswith("_DIR") and value.strip():
            env[key] = os.path.abspath(os.path.expanduser(value.strip()))
    if "OMP_WAIT_POLICY" in os.environ:
        env["OMP_WAIT_POLICY"] = os.environ["OMP_WAIT_POLICY"]
    env["PYTHONPATH"] = os.pathsep.join(os.path.abspath(p) for p in sys.path if p)
    return env


def check_address(address: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Raise ``ConfigError`` within ``timeout`` unless something listens at ``address`` (``host:port`` or
    ``ray://host:port``; ``auto`` and ``local`` are left to Ray)."""
    if address in ("auto", "local"):
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"--address {address!r} is not HOST:PORT (or auto, or ray://HOST:PORT); fix --address")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ConfigError(
            f"no Ray cluster answers at {address} ({exc.strerror or describe(exc)}); "
            "start one there with 'ray start --head', or fix --address"
        ) from None


def execute_ray(
    jobs: list[Job], on_done: Callable[[Cell, str, str], None], *, address: str | None, setup: HostSetup,
    tracebacks: bool = False,
) -> None:  # fmt: skip
    """Run ``jobs`` as Ray tasks of ``threads`` CPUs each, calling ``on_done`` as each ends."""
    if not jobs:  # nothing to start Ray for
        return
    try:
        import ray
    except ImportError:
        raise ConfigError("--executor ray needs Ray: pip install 'harness[ray]'") from None
    with stdout_to_stderr():
        started_here = not ray.is_initialized()
        if started_here:
            _init(ray, address)
        try:
            _check_cpus(ray, max(p.config.threads for _, p, _, _ in jobs))
            task = ray.remote(run_cell)
            # a Ray the caller started itself lacks our variables (HARNESS_*, PYTHONPATH): each task brings them
            env = {} if started_here else {"runtime_env": {"env_vars": worker_env()}}
            cells = {
                task.options(num_cpus=p.config.threads, **env).remote(
                    p.config.to_dict(),
                    str(directory),
                    where,
                    cell.describe(),
                    dict(cell.fixed_config),
                    setup,
                    tracebacks,
                ): cell
                for cell, p, directory, where in jobs
            }
            pending = list(cells)
            with interrupts.deferred() as stop:  # Ctrl-C or SIGTERM: the cells save their checkpoints, then stop
                while pending:
                    done, pending = ray.wait(pending, num_returns=1, timeout=POLL_S)
                    for ref in done:
                        try:
                            outcome, detail = ray.get(ref)
                        except ray.exceptions.RayError as exc:
                            outcome, detail = FAILED, _worker_failure(exc, tracebacks)
                        on_done(cells[ref], outcome, detail)
                    if stop.signum is not None:
                        _stop_cells(ray, pending)
                        raise interrupts.Stopped(
                            f"stopped by {stop.name}; the cells that were running saved their checkpoints; "
                            "rerun the same command to resume them",
                            stop.signum,
                        )
        finally:
            if started_here:
                ray.shutdown()


def _stop_cells(ray: Any, pending: list[Any]) -> None:
    """Stop the cells still going as Ctrl-C stops a local one: Ray's cancel sends each running task SIGINT,
    on which its training saves the checkpoint at the step under way; wait for that, up to ``STOP_WAIT_S``."""
    if not pending:
        return
    for ref in pending:
        ray.cancel(ref)
    cells = f"{len(pending)} cell" + ("s" if len(pending) > 1 else "")
    print(f"harness: stopping {cells}, each at a checkpoint it saves (Ctrl-C again: at once)", file=sys.stderr)
    ray.wait(pending, num_returns=len(pending), timeout=STOP_WAIT_S)


def _init(ray: Any, address: str | None) -> None:
    """Start a local Ray, or join the cluster at ``address``, with one line if that fails."""
    try:
        ray.init(
            address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
            runtime_env={"env_vars": worker_env()},
        )  # fmt: skip
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"join the Ray cluster at {address}" if address else "start a local Ray"
        raise ConfigError(
            f"could not {where} ({describe(exc)}); check that it runs Ray {ray.__version__} as this machine does, "
            "and if it uses token authentication, set RAY_AUTH_MODE=token here with its token"
        ) from None


def _check_cpus(ray: Any, threads: int) -> None:
    """Refuse cells no node can schedule (Ray would wait for them forever)."""
    largest = max((n["Resources"].get("CPU", 0.0) for n in ray.nodes() if n["Alive"]), default=0.0)
    if largest < threads:
        raise ConfigError(
            f"a cell with threads = {threads} needs {threads} CPUs on one Ray node, and the largest node has "
            f"{largest:g}; lower --threads or add a larger node"
        )


def _worker_failure(exc: BaseException, tracebacks: bool) -> str:
    """One line for a cell whose worker failed outside the cell's code (it died, or Ray gave up on it)."""
    cause = getattr(exc, "cause", None) or exc
    line = f"its Ray worker failed ({describe(cause)}); {RESUMES}"
    return line + (f"\n{exc}" if tracebacks else "")
