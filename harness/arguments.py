"""The ``harness`` command line's arguments: the parser of every subcommand and the types of its flags.

Light to import, as ``harness.cli`` is: no NumPy, no torch.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from harness import __version__
from harness.errors import printable, shortened

RESULTS_ENV = "HARNESS_RESULTS_DIR"
DEFAULT_RESULTS = "results"

ASCII_INTEGER = re.compile(r"\s*[+-]?[0-9]+\s*", re.ASCII)
"""An integer as flags take it: ASCII digits (``int`` alone also takes other scripts' digits and ``1_000``)."""


def integer(text: str) -> int:
    """An integer flag's value (``ASCII_INTEGER``); argparse reports a ``ValueError`` as an invalid integer."""
    if not ASCII_INTEGER.fullmatch(text):
        raise ValueError(text)
    return int(text)


RUN_FLAGS: dict[str, tuple[Callable[[str], Any], str]] = {
    "model": (str, "model name (see 'harness plugins')"),
    "dataset": (str, "episode dataset name (default: synthetic)"),
    "test_dataset": (str, "dataset to test on, when not --dataset (e.g. published test episodes)"),
    "kind": (str, "episode kind: sequence (MANN) or fewshot (SNAIL, MetaNet)"),
    "ways": (integer, "classes per episode (N)"),
    "shots": (integer, "fewshot: support examples per class (K)"),
    "queries": (integer, "fewshot: query examples per class"),
    "instances": (integer, "sequence: presentations of each class per episode"),
    "labels": (str, "sequence: label encoding, onehot or string"),
    "episodes": (integer, "training episodes"),
    "eval_episodes": (integer, "fixed test episodes to evaluate on"),
    "batch_size": (integer, "episodes per batch"),
    "seed": (integer, "training seed"),
    "eval_seed": (integer, "seed of the fixed test episodes (keep 0 to compare with others)"),
    "checkpoint_every": (integer, "episodes between checkpoints"),
    "val_every": (integer, "episodes between validations on the dataset's validation split (0: none)"),
    "val_episodes": (integer, "fixed validation episodes per validation"),
    "keep": (str, "model to test at the end: last, or best (best validation accuracy; needs --val-every)"),
    "patience": (integer, "stop after this many validations without improvement (0: never)"),
    "device": (str, "torch models: auto (CUDA if present), cpu, cuda, cuda:N or mps"),
    "precision": (str, "torch models: fp32 or bf16 (autocast)"),
    "threads": (integer, "torch models: CPU threads (default 1; part of the run, as it changes the numbers)"),
    "budget": (str, "label for the training budget recorded with the run (quick, paper, custom)"),
    "init_from": (str, "start from the tested weights of the finished run in this directory (a fresh optimizer)"),
}

EPILOG_RUN = """\
examples:
  harness run --model knn --kind fewshot --ways 5 --shots 1
  harness run --config configs/demo.toml --seed 1
  harness run --model knn --dataset omniglot --data-dir ../shared/data/omniglot --kind sequence
  harness run --model snail --dataset omniglot --test-dataset NAME --test-data k=v --eval-episodes 40

A run writes <out>/<name>/checkpoint.pkl while it trains and record.json when done.
Rerunning the same command resumes from the checkpoint after an interruption. The
name must stay inside --out ('a/b' is fine, '../x' is not); a run holds its directory's
lock (<out>/<name>/.lock) until it ends, so a second run there stops at once.
"""


EPILOG_REPRODUCE = """\
examples:
  harness reproduce mann-table2 --data-dir omniglot=../shared/data/omniglot
  harness reproduce all --budget quick --results my-results
  harness reproduce snail-table1 --budget paper --seeds 0,1,2 --executor ray

Cells live in <results>/<table>/<budget>/<row>/<setting>/seed<N>/; rerunning the same
command skips finished cells and resumes interrupted ones. Two commands on one results
folder share the work: each leaves the cells the other is running to it.
"""

PAPERS_HELP = (
    "also look for the papers' numbers (<table>.csv) in DIR, before $HARNESS_PAPERS_DIR and the numbers each table "
    "ships with (repeatable)"
)
TRACEBACK_HELP = "on an error, print the full traceback as well as the one-line message"
RESULTS_HELP = f"results directory (default: ${RESULTS_ENV} or ./{DEFAULT_RESULTS})"


def _key_value(text: str) -> tuple[str, Any]:
    """Parse ``key=value``; the value is read as TOML (numbers, booleans, quoted strings) or kept as text."""
    from harness.config import tomllib

    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    except ValueError:  # an integer past Python's 4,300 digits
        raise argparse.ArgumentTypeError(f"{key.strip()}: a number too long to read ({len(raw):,} digits)") from None
    return key.strip(), value


class _KeyValues(argparse.Action):
    """``action="append"`` for ``KEY=VALUE`` flags, refusing a key given twice (which value would win is a guess)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option: Any = None):
        key, value = values
        given = list(getattr(namespace, self.dest) or [])
        earlier = [v for k, v in given if k == key]
        if earlier:
            parser.error(f"{option} {key} is given twice ({earlier[0]!r} and {value!r}); give each key once")
        setattr(namespace, self.dest, [*given, values])


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, without argparse's usage block before them."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {shortened(printable(message))}\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = _Parser(
        prog="harness",
        description="Benchmark memory- and attention-based meta-learners (MANN, MetaNet, SNAIL) and your own.",
        epilog="Run 'harness COMMAND --help' for a command's options. Plugins: see docs/writing-a-plugin.md.",
    )
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    parser.add_argument(
        "--strict-plugins",
        action="store_true",
        help="fail when a plugin is broken or two register one name, instead of skipping it",
    )
    parser.add_argument("--traceback", action="store_true", help=TRACEBACK_HELP)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    plugins = commands.add_parser(
        "plugins", help="list installed plugins and what they provide", description="List installed plugins."
    )
    plugins.add_argument("--json", action="store_true", help="print JSON instead of a table")
    plugins.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also show each model, dataset, metric and table: description, defaults, options, scope",
    )

    run = commands.add_parser(
        "run",
        help="train and evaluate a model on episodes",
        description="Train a model plugin on a dataset plugin's episodes, then evaluate it on fixed test episodes.",
        epilog=EPILOG_RUN,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("--config", type=_file, metavar="FILE", help="TOML file with run settings; flags override it")
    for key, (kind, text) in RUN_FLAGS.items():
        run.add_argument(f"--{key.replace('_', '-')}", dest=key, type=kind, help=text)
    run.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None, help="augment training episodes")
    run.add_argument(
        "--compile", action=argparse.BooleanOptionalAction, default=None, help="torch models: use torch.compile"
    )
    run.add_argument("--metric", dest="metrics", action="append", metavar="NAME", help="metric to report (repeatable)")
    run.add_argument(
        "--param",
        action=_KeyValues,
        type=_key_value,
        default=[],
        metavar="KEY=VALUE",
        help="model hyperparameter (repeatable)",
    )
    run.add_argument(
        "--data",
        action=_KeyValues,
        type=_key_value,
        default=[],
        metavar="KEY=VALUE",
        help="dataset option (repeatable)",
    )
    run.add_argument(
        "--data-dir", type=_path, metavar="DIR", help="the dataset's data directory (--data root=DIR for omniglot)"
    )
    run.add_argument(
        "--test-data",
        action=_KeyValues,
        type=_key_value,
        default=[],
        metavar="KEY=VALUE",
        help="option of --test-dataset (repeatable)",
    )
    run.add_argument("--out", type=_path, metavar="DIR", help=RESULTS_HELP)
    run.add_argument("--name", help="run directory name under --out (default: derived from the config)")
    run.add_argument(
        "--restart",
        action="store_true",
        help=(
            "discard the run already in the directory and start over (it stays until the new run saves a checkpoint)"
        ),
    )
    run.add_argument("--no-progress", action="store_true", help="hide progress bars")
    run.add_argument("--json", action="store_true", help="print the run record as JSON")

    evaluate = commands.add_parser(
        "evaluate",
        help="evaluate a checkpoint on the fixed test episodes",
        description="Rebuild the model in a checkpoint and evaluate it on the run's fixed test episodes, "
        "or on another dataset's (--dataset NAME --data k=v).",
    )
    evaluate.add_argument("--checkpoint", type=_file, required=True, metavar="PATH", help="a run's checkpoint.pkl")
    evaluate.add_argument(
        "--eval-episodes", type=integer, metavar="N", help="number of test episodes (default: the run's)"
    )
    evaluate.add_argument("--dataset", metavar="NAME", help="dataset to test on (default: the run's test dataset)")
    evaluate.add_argument(
        "--data",
        action=_KeyValues,
        type=_key_value,
        default=[],
        metavar="KEY=VALUE",
        help="option of the dataset tested on (repeatable)",
    )
    evaluate.add_argument("--data-dir", type=_path, metavar="DIR", help="where the dataset lives on this machine")
    evaluate.add_argument(
        "--split",
        metavar="NAME",
        help="split of the dataset tested on to draw the fixed episodes from (default: its test split); the run's "
        "validation split gives its validation episodes, its training split new episodes of the training classes",
    )
    evaluate.add_argument("--device", default="auto", help="torch models: auto, cpu, cuda, cuda:N or mps")
    evaluate.add_argument(
        "--episodes-out",
        type=_file,
        metavar="FILE",
        help="also write every test episode's values to FILE (.npz, the format of a run's episodes.npz)",
    )
    evaluate.add_argument("--no-progress", action="store_true", help="hide progress bars")
    evaluate.add_argument("--json", action="store_true", help="print JSON")
    reproduce = commands.add_parser(
        "reproduce",
        help="run every missing cell of a paper table, then build its leaderboard",
        description="Run every cell (model row x setting x seed) of a paper table that is not done yet: "
        "finished cells are skipped, interrupted ones resume. Then build the leaderboard.",
        epilog=EPILOG_REPRODUCE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    reproduce.add_argument("tables", nargs="+", metavar="TABLE", help="table names, or 'all' (see 'harness plugins')")
    reproduce.add_argument(
        "--budget",
        default="quick",
        help="quick (minutes on a CPU), paper (papers' length) or another budget of the table's, e.g. MANN's "
        "long (4x the paper's episodes)",
    )
    reproduce.add_argument("--results", type=_path, metavar="DIR", help=RESULTS_HELP)
    reproduce.add_argument(
        "--leaderboards",
        type=_path,
        metavar="DIR",
        help="where to write tables and plots (default: <results>/leaderboards)",
    )
    reproduce.add_argument("--seeds", type=_seeds, metavar="N,N,...", help="seeds (default: the table's)")
    reproduce.add_argument(
        "--model", dest="models", action="append", metavar="NAME", help="only this model's rows (repeatable)"
    )
    reproduce.add_argument(
        "--row",
        dest="rows",
        action="append",
        metavar="LABEL",
        help="only the row with this paper label, e.g. 'MANN (LSTM)' (repeatable)",
    )
    reproduce.add_argument(
        "--setting",
        dest="settings",
        action="append",
        metavar="NAME",
        help="only this setting (a table's column group), e.g. '5-way 1-shot' (repeatable)",
    )
    reproduce.add_argument(
        "--data-dir",
        dest="locations",
        action=_KeyValues,
        type=_key_value_text,
        default=[],
        metavar="DATASET=DIR",
        help="where a dataset lives, e.g. omniglot=../shared/data/omniglot",
    )
    reproduce.add_argument(
        "--executor",
        default="inprocess",
        choices=("inprocess", "ray"),
        help="run cells in this process (default) or on Ray",
    )
    reproduce.add_argument(
        "--address", metavar="HOST:PORT", help="with --executor ray: a running Ray cluster (default: start a local one)"
    )
    reproduce.add_argument("--device", help="torch models: auto (default), cpu, cuda, cuda:N or mps")
    reproduce.add_argument(
        "--threads", type=integer, metavar="N", help="torch models: CPU threads per cell (default 1; part of each cell)"
    )
    reproduce.add_argument("--papers", type=_path, action="append", default=[], metavar="DIR", help=PAPERS_HELP)
    reproduce.add_argument("--no-progress", action="store_true", help="hide progress bars")

    leaderboard = commands.add_parser(
        "leaderboard",
        help="build a table's leaderboard (CSV, Markdown, PNG) from a results directory",
        description="Put the runs of a results directory beside the paper's numbers: writes <table>.csv "
        "(long format), <table>.md and <table>.png.",
    )
    leaderboard.add_argument("tables", nargs="+", metavar="TABLE", help="table names, or 'all'")
    leaderboard.add_argument("--results", type=_path, metavar="DIR", help=RESULTS_HELP)
    leaderboard.add_argument(
        "--out",
        "--leaderboards",
        type=_path,
        metavar="DIR",
        help="output directory (default: <results>/leaderboards); --leaderboards, as reproduce spells it, works too",
    )
    leaderboard.add_argument("--papers", type=_path, action="append", default=[], metavar="DIR", help=PAPERS_HELP)

    status = commands.add_parser(
        "status",
        help="show which cells of paper tables are done, running, interrupted or not started",
        description="List the cells of tables in a results directory: state, episodes trained of the run's "
        "total, last validation and training time. Reads only: safe beside running reproductions.",
        epilog="examples:\n  harness status mann-table1 --results leaderboards/runs\n"
        "  harness status all --budget paper --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    status.add_argument("tables", nargs="+", metavar="TABLE", help="table names, or 'all'")
    status.add_argument("--results", type=_path, metavar="DIR", help=RESULTS_HELP)
    status.add_argument(
        "--budget", help="also list this budget's cells that have not started (default: only cells with a folder)"
    )
    status.add_argument("--json", action="store_true", help="print JSON")

    curves = commands.add_parser(
        "curves",
        help="plot training loss and validation accuracy of runs against episodes trained",
        description="Draw the loss and validation curves of one or more runs (finished or still training) "
        "on one figure, to see whether a model is still learning.",
    )
    curves.add_argument("runs", nargs="+", type=_path, metavar="RUN_DIR", help="run directories")
    curves.add_argument("--out", type=_file, default=Path("curves.png"), metavar="PNG", help="output file (curves.png)")
    for command in commands.choices.values():  # also after the command; left unset there unless given
        command.add_argument("--traceback", action="store_true", default=argparse.SUPPRESS, help=TRACEBACK_HELP)
    return parser


def _path(text: str) -> Path:
    """A folder flag's value; an empty one (which would mean the current folder) is refused."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a path, got an empty one (write . for the current folder)")
    return Path(text)


def _file(text: str) -> Path:
    """A file flag's value; an empty one is refused."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a file name, got an empty one")
    return Path(text)


def _seeds(text: str) -> list[int]:
    """``--seeds``: distinct seeds from 0 to ``SEED_MAX``, comma-separated."""
    from harness.params import SEED_MAX

    parts = text.split(",")
    if any(part.strip() for part in parts) and not all(ASCII_INTEGER.fullmatch(part) for part in parts):
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
    try:
        seeds = [int(part) for part in parts if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    bad = [seed for seed in seeds if not 0 <= seed <= SEED_MAX]
    if not seeds or bad:
        what = f"{bad[0]} is not" if bad else "no seed given; give"
        raise argparse.ArgumentTypeError(f"{what} a seed from 0 to {SEED_MAX:,}, got {text!r}")
    twice = sorted({seed for seed in seeds if seeds.count(seed) > 1})
    if twice:
        raise argparse.ArgumentTypeError(f"seed {twice[0]} is listed twice in {text!r}; list each seed once")
    return seeds


def _key_value_text(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value:
        raise argparse.ArgumentTypeError(f"expected DATASET=DIR, got {text!r}")
    return key.strip(), value
