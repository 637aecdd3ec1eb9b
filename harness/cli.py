"""The ``harness`` command line.

Importing this module stays light (no NumPy, no torch): subcommands import what they
need when they run, so ``harness --help`` and ``harness plugins`` start fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import os
import signal
import stat
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import interrupts
from harness.arguments import DEFAULT_RESULTS, RESULTS_ENV, RUN_FLAGS, build_parser
from harness.errors import SHORTER_PATH, ConfigError, HarnessError, describe, printable, shortened, too_long
from harness.writable import check_writable

if TYPE_CHECKING:
    from harness.plugins import PluginHost


def _tables(host: Any, names: list[str]) -> list[Any]:
    if "all" in names:
        return list(host.tables)
    return [host.tables.get(name) for name in dict.fromkeys(names)]


def _results(given: Path | None) -> Path:
    return given or Path(os.environ.get(RESULTS_ENV, "").strip() or DEFAULT_RESULTS)  # set but empty: the default


def _results_to_read(given: Path | None) -> Path:
    """The results folder ``status`` and ``leaderboard`` read; a file in its place, or a ``--results`` folder that
    does not exist (a mistyped path would look like one where nothing ran yet), is refused in one line."""
    results = _results(given)
    if given is not None and not results.exists():
        raise ConfigError(f"--results {results} does not exist; check the path (the folder 'harness reproduce' wrote)")
    if results.exists() and not results.is_dir():
        raise ConfigError(f"results folder {results} is a file; pass --results DIR naming the folder of your runs")
    return results


def _write_leaderboard(table: Any, results: Path, out: Path | None, papers: list[Path], host: PluginHost) -> str:
    """Write ``table``'s leaderboard, its records checked against the cells the installed rows make; return a line
    naming the files."""
    from harness import leaderboard
    from harness.records import cell_files
    from harness.reproduce import fixed_configs

    fixed = fixed_configs(table, host)
    paths = leaderboard.write(table, results, out or results / "leaderboards", papers, fixed, host.metrics)
    line = f"{paths['md']} ({', '.join(paths[kind].name for kind in ('csv', 'png') if kind in paths)})"
    if not cell_files(results / table.name):
        line += f"; no runs of it under {results} yet, so only the paper's rows (harness reproduce {table.name})"
    return printable(line)


def cmd_reproduce(args: argparse.Namespace) -> int:
    """``harness reproduce``."""
    # The leaderboard's modules load now, not after hours of training: an edit of the checkout meanwhile
    # must not meet the run's already-loaded modules at its last step.
    from harness import leaderboard, plots  # noqa: F401
    from harness.paper_tables import paper_cells, search_path
    from harness.reproduce import check_executor, reproduce, select
    from harness.streams import log_line

    search_path(args.papers)
    check_executor(args.executor, args.address)
    host = _host(args)
    results = _results(args.results)
    locations = {dataset: host.datasets.get(dataset).data_dir(root) for dataset, root in args.locations}
    check_writable(results, "--results")
    check_writable(args.leaderboards or results / "leaderboards", "--leaderboards")
    tables = _tables(host, args.tables)
    selections = select(tables, host, args.budget, models=args.models, rows=args.rows, settings=args.settings)
    if "all" not in args.tables:  # a table named on the command line is not left out without a word
        for name in [t.name for t in tables if t.name not in {s.table.name for s in selections}]:
            print(f"harness: note: table {name!r} has no cell at the budget, models, rows and settings given; "
                  "left out", file=sys.stderr)  # fmt: skip
    for selection in selections:  # missing or malformed paper numbers fail before any training, not after
        paper_cells(selection.table, args.papers)
    failed: list[str] = []
    unwritten: list[str] = []
    total = 0
    for selection in selections:
        table = selection.table
        done = reproduce(
            table,
            host,
            results,
            budget=args.budget,
            seeds=args.seeds,
            models=selection.models,
            rows=selection.rows,
            settings=selection.settings,
            executor=args.executor,
            address=args.address,
            locations=locations,
            device=args.device,
            threads=args.threads,
            progress=not args.no_progress,
            log=log_line,
            tracebacks=args.traceback,
        )
        failed += done["failed"]
        total += sum(len(names) for names in done.values())
        ran = len(done["run"])
        summary = f"{table.name}: {ran} cell{'' if ran == 1 else 's'} run, {len(done['skipped'])} already done"
        if done["failed"]:
            summary += f", {len(done['failed'])} failed"
        if done["elsewhere"]:
            summary += (
                f", {len(done['elsewhere'])} running elsewhere (left to the processes that hold them; "
                "rerun this command once they finish to put them in the leaderboard)"
            )
        print(summary)
        try:  # a damaged record in one table must not stop the tables after it
            print(f"  leaderboard: {_write_leaderboard(table, results, args.leaderboards, args.papers, host)}")
        except HarnessError as exc:
            unwritten.append(table.name)
            print(f"  leaderboard: not written: {printable(str(exc))}", file=sys.stderr)
    if failed:
        where = "" if args.traceback else "; --traceback shows where"
        print(
            f"harness: error: {len(failed)} of {total} cells failed (see above): {', '.join(failed)}; "
            f"fix them and rerun the same command, which keeps the finished cells{where}",
            file=sys.stderr,
        )
    if unwritten:
        _not_written(unwritten, "rerun the same command, which keeps the finished cells")
    return 2 if failed or unwritten else 0


def cmd_status(args: argparse.Namespace) -> int:
    """``harness status``."""
    from harness.config import did_you_mean
    from harness.reproduce import fixed_configs, table_cells, table_rows
    from harness.status import render, table_status
    from harness.tables import check_budget

    host = _host(args)
    results = _results_to_read(args.results)
    tables = _tables(host, args.tables)
    budgeted = [table for table in tables if args.budget in table.budgets]
    if args.budget and len(tables) == 1:
        check_budget(tables[0], args.budget)
    elif args.budget and not budgeted:
        known = list(dict.fromkeys(budget for table in tables for budget in table.budgets))
        raise ConfigError(
            f"none of the tables {', '.join(t.name for t in tables)} has a budget {args.budget!r} (theirs: "
            f"{', '.join(known)}){did_you_mean(args.budget, known)}"
        )
    found = {}
    for table in tables:
        planned = []
        if table in budgeted and table_rows(table, host):
            planned = table_cells(table, host, args.budget)
        elif table in budgeted:
            print(f"harness: note: no installed model fills table {table.name!r}; only the cells in {results} are "
                  "shown", file=sys.stderr)  # fmt: skip
        found[table.name] = table_status(results, table.name, planned, table, fixed_configs(table, host), host.metrics)
    if args.json:
        print(json.dumps({name: [s.as_dict() for s in statuses] for name, statuses in found.items()}, indent=2))
    else:
        print("\n\n".join(render(name, results, statuses) for name, statuses in found.items()))
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    """``harness leaderboard``."""
    from harness.paper_tables import search_path

    search_path(args.papers)
    host = _host(args)
    results = _results_to_read(args.results)
    check_writable(args.out or results / "leaderboards", "--out")
    tables = _tables(host, args.tables)
    unwritten: list[str] = []
    for table in tables:
        try:
            print(f"{table.name}: {_write_leaderboard(table, results, args.out, args.papers, host)}")
        except HarnessError as exc:  # one table's missing numbers or damaged runs must not stop the others
            if len(tables) == 1:
                raise
            unwritten.append(table.name)
            print(f"{table.name}: not written: {printable(str(exc))}", file=sys.stderr)
    if unwritten:
        _not_written(unwritten, "rerun")
        return 2
    return 0


def _not_written(tables: list[str], rerun: str) -> None:
    """Say, last, which tables' leaderboards were not written (each said why in its own line) and the fix."""
    print(
        f"harness: error: the leaderboards of {', '.join(tables)} were not written (see above); fix what their lines "
        f"say and {rerun}",
        file=sys.stderr,
    )


def _host(args: argparse.Namespace) -> Any:
    from harness.plugins import get_host

    host = get_host(strict=args.strict_plugins or None)
    for info in host.plugins():
        if info.error:
            problem = shortened(printable(f"plugin {info.name!r} {info.error}"))
            print(f"harness: warning: {problem}; skipped (--strict-plugins makes this fatal)", file=sys.stderr)
        for line in (*info.conflicts, *info.warnings):
            print(
                f"harness: warning: {shortened(printable(line))} (--strict-plugins makes this fatal)", file=sys.stderr
            )
    _warn_unknown_blocked(host)
    return host


def _warn_unknown_blocked(host: Any) -> None:
    """Warn about a name in HARNESS_BLOCK_PLUGINS that no plugin has (a typo blocks nothing)."""
    from harness.config import did_you_mean
    from harness.plugins import BLOCK_ENV

    infos = host.plugins()
    names = [info.name for info in infos] + [info.distribution for info in infos if info.distribution]
    for name in host.blocked:
        if name not in names:
            print(
                f"harness: warning: {BLOCK_ENV} names {name!r}, which is no plugin here{did_you_mean(name, names)} "
                "(see 'harness plugins')",
                file=sys.stderr,
            )


def cmd_plugins(args: argparse.Namespace) -> int:
    """``harness plugins``."""
    from harness.plugins import BLOCK_ENV, DISABLE_ENV, MODULES_ENV, spec_details

    host = _host(args)
    infos = host.plugins()
    if args.json:
        listing = [info.as_dict() for info in infos]
        if args.verbose:
            for entry, info in zip(listing, infos, strict=True):
                entry["specs"] = {
                    kind: [spec_details(host.registry(kind).get(name)) for name in names]
                    for kind, names in info.provides.items()
                }
        print(json.dumps(listing, indent=2))
        return 0
    if not host.autoload:
        print(
            f"entry-point plugins are left out ({DISABLE_ENV} is on): only the built-ins and {MODULES_ENV} are loaded"
        )
    for info in infos:
        version = info.version or "-"
        dist = f" ({info.distribution})" if info.distribution else ""
        _say(f"{info.name} {version}{dist} [{info.origin}] {info.location or ''}".rstrip())
        if info.blocked:
            _say(f"    BLOCKED: left out by {BLOCK_ENV}")
        if info.error:
            _say(f"    BROKEN: {info.error}")
        for conflict in info.conflicts:
            _say(f"    CONFLICT: {conflict}")
        for warning in info.warnings:
            _say(f"    WARNING: {warning}")
        for kind, names in info.provides.items():
            if names:
                _say(f"    {kind}: {', '.join(names)}")
            for name in names if args.verbose else ():
                details = spec_details(host.registry(kind).get(name))
                _say(f"      {name}: {details.pop('description', '')}".rstrip(" :"))
                for key, value in details.items():
                    if key != "name":
                        _say(f"        {key}: {_shown(value)}")
    return 0


def _say(line: str) -> None:
    """Print a line of plugin-given text with its control characters escaped, its middle left out if it is long."""
    print(shortened(printable(line)))


def _shown(value: Any) -> str:
    """A spec field on one line: ``k=v, k=v`` for a table, comma-separated items for a list."""
    if isinstance(value, dict):
        shown = {k: f"({_shown(v)})" if isinstance(v, (dict, list)) else _shown(v) for k, v in value.items()}
        return ", ".join(f"{k}={v}" for k, v in shown.items() if v not in ("", "(-)", "None")) or "-"
    if isinstance(value, list):
        return ", ".join(f"({_shown(v)})" if isinstance(v, dict) else _shown(v) for v in value) or "-"
    return str(value)


def _run_values(args: argparse.Namespace) -> tuple[dict[str, Any], str, set[str]]:
    """The run's values (the config file's, flags over them), the file's name, and the keys flags gave."""
    from harness.config import load_toml

    values: dict[str, Any] = load_toml(args.config) if args.config else {}
    source = str(args.config) if args.config else "flags"
    flags = {key for key in (*RUN_FLAGS, "augment", "compile", "metrics") if getattr(args, key) is not None}
    values.update({key: getattr(args, key) for key in flags})
    if args.param:
        values["params"] = {**values.get("params", {}), **dict(args.param)}
    if args.data:
        values["data"] = {**values.get("data", {}), **dict(args.data)}
    if args.test_data:
        values["test_data"] = {**values.get("test_data", {}), **dict(args.test_data)}
    return values, source, flags


def cmd_run(args: argparse.Namespace) -> int:
    """``harness run``."""
    from harness.config import build_config, check_one_place
    from harness.runner import run

    values, source, flags = _run_values(args)
    config = build_config(values, source, flags)
    host = _host(args)
    if args.data_dir is not None:
        located = host.datasets.get(config.dataset).data_dir(args.data_dir)
        check_one_place(args.data_dir, located, dict(args.data), config.dataset)
        config = dataclasses.replace(config, data={**config.data, **located})
    out = _results(args.out)
    check_writable(out, "--out")
    log = (lambda _msg: None) if args.json else (lambda msg: print(printable(msg), file=sys.stderr))
    _note_untrained(host, config.model, values, flags, source)
    record = run(config, host, out, name=args.name, restart=args.restart, progress=not args.no_progress, log=log)
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        print(
            f"{record['model']} on {_datasets(record)} ({record['setting']}), "
            f"{record['episodes_trained']} episodes trained, {record['wall_time_s']:.1f} s"
        )
        _print_metrics(record["metrics"])
        print(printable(f"record: {out / (record['name'] if args.name is None else args.name) / 'record.json'}"))
    return 0


def _note_untrained(host: Any, model: str, values: dict[str, Any], flags: set[str], source: str) -> None:
    """Say on stderr which training settings a model with nothing to train (kNN) ignores."""
    from harness.config import TRAINING_KEYS

    if host.models.get(model).trainable:
        return
    asked = [key for key in TRAINING_KEYS if values.get(key, 0) not in (0, "last", False)]  # these ask for nothing
    given = [f"--{key.replace('_', '-')}" if key in flags else f"{key} in {printable(source)}" for key in asked]
    if given:
        print(f"note: model {model!r} has nothing to train; {', '.join(given)} ignored", file=sys.stderr)


def cmd_evaluate(args: argparse.Namespace) -> int:
    """``harness evaluate``."""
    from harness.checkpoint_eval import evaluate_checkpoint

    result = evaluate_checkpoint(
        args.checkpoint,
        _host(args),
        eval_episodes=args.eval_episodes,
        dataset=args.dataset,
        data=dict(args.data),
        data_dir=args.data_dir,
        device=args.device,
        progress=not args.no_progress,
        episodes_out=args.episodes_out,
        split=args.split,
    )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['model']} on {_datasets(result)} ({result['setting']}), {result['split']} split, ", end="")
        best = f", tested as kept at its best validation, episode {result['kept_episode']:,}"
        print(f"{result['episodes_trained']:,} episodes trained" + (best if result["kept"] == "best" else ""))
        _print_metrics(result["metrics"])
        if "per_episode" in result:
            print(
                printable(
                    f"per-episode values: {result['per_episode']['file']} (sha256 {result['per_episode']['sha256']})"
                )
            )
    return 0


def _datasets(result: dict[str, Any]) -> str:
    """``omniglot``, or ``omniglot, tested on NAME`` for a run or evaluation tested on another dataset."""
    tested = result.get("test_dataset", result["dataset"])
    return result["dataset"] if tested == result["dataset"] else f"{result['dataset']}, tested on {tested}"


def _print_metrics(metrics: dict[str, dict[str, dict[str, Any]]]) -> None:
    for name, values in metrics.items():
        for key, summary in values.items():
            label = name if key == name else f"{name} {key}"
            mean, ci95 = summary["mean"], summary["ci95"]
            shown = "n/a" if mean is None else f"{100 * mean:.2f}%"
            interval = "" if ci95 is None else f" ± {100 * ci95:.2f}"
            print(f"  {label}: {shown}{interval} (n={summary['n']})")


def cmd_curves(args: argparse.Namespace) -> int:
    """``harness curves``."""
    from harness.curves import plot_curves

    check_writable(args.out.parent, "--out", "PNG in a folder")
    print(printable(str(plot_curves(args.runs, args.out))))
    return 0


COMMANDS = {
    "curves": cmd_curves,
    "plugins": cmd_plugins,
    "run": cmd_run,
    "evaluate": cmd_evaluate,
    "reproduce": cmd_reproduce,
    "leaderboard": cmd_leaderboard,
    "status": cmd_status,
}


def _stdout_is_a_pipe() -> bool:
    try:
        return stat.S_ISFIFO(os.fstat(sys.stdout.fileno()).st_mode)
    except (OSError, ValueError):
        return False


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``harness`` and ``python -m harness``."""
    # Before torch is imported: idle OpenMP threads sleep instead of spinning, so a step of a
    # small model is not held up on a CPU shared with other work (set it yourself to override).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        with interrupts.terminate_like_ctrl_c():
            status = COMMANDS[args.command](args)
        sys.stdout.flush()  # here, so that a reader gone early is handled below, not at the interpreter's exit
        return status
    except HarnessError as exc:
        if args.traceback:
            traceback.print_exc()
        message = shortened(printable(str(exc)))
        if exc.__cause__ is not None and not args.traceback:  # the error of a plugin's code, folded into one line
            message += " (--traceback shows where)"
        print(f"harness: error: {message}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file or folder the command needed: a permission, the disk, a path gone
        if isinstance(exc, BrokenPipeError) and _stdout_is_a_pipe():  # ``harness status ... | head`` closed it early
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush does not fail again
            return 141
        if args.traceback:
            traceback.print_exc()
        where = "" if args.traceback else " (--traceback shows where)"
        fix = "make that path readable and writable (or free disk space), then rerun the same command"
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            fix = "free disk space there, then rerun the same command"
        elif too_long(exc):
            fix = f"rerun: {SHORTER_PATH}"
        message = shortened(printable(describe(exc)))
        print(f"harness: error: {message}; {fix}, which keeps finished runs and checkpoints{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        if isinstance(exc, interrupts.Stopped):  # training saved its checkpoint at the step the signal came in
            print(f"harness: {exc.message}", file=sys.stderr)
            return exc.code
        signum = exc.signum if isinstance(exc, interrupts.Terminated) else signal.SIGINT
        print(
            f"harness: interrupted by {signal.Signals(signum).name}; rerun the same command to carry on (it keeps "
            "finished runs and saved checkpoints)",
            file=sys.stderr,
        )
        return 128 + signum
