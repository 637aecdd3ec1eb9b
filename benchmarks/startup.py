"""Start-up time of the ``harness`` command line, and whether it imports heavy libraries.

Times, each in a fresh subprocess, ``--runs`` times (default 10):

* ``python -c "import harness"``: the floor (interpreter start plus the package);
* ``harness --help``;
* ``harness plugins`` with every installed plugin, and with ``HARNESS_DISABLE_PLUGINS=1``
  (built-ins only), so a slow third-party plugin shows as the difference;

and reports the median and the minimum wall-clock time of each. Then it runs ``--help``
and ``plugins`` once more in a subprocess that calls ``harness.cli.main`` and lists the
heavy modules it imported: torch, TensorFlow and friends must not be among them (a plugin
must import them only when a model or dataset is built). It reports; it does not fail.

    python benchmarks/startup.py [--runs N] [--json PATH]

The console script next to this Python is used when there is one, else ``python -m harness``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HEAVY = ("torch", "tensorflow", "tensorflow_datasets", "jax", "numpy", "pandas", "matplotlib", "seaborn", "ray")
"""Modules worth knowing about when they are imported at start-up (numpy is cheap but listed)."""

PROBE = """
import contextlib, io, json, sys
from harness.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        status = main(sys.argv[1:])
    except SystemExit as exc:  # argparse exits after --help
        status = exc.code
heavy = [m for m in {heavy!r} if m in sys.modules]
print(json.dumps({{"status": status, "imported": heavy}}))
"""


def harness_command() -> list[str]:
    """The ``harness`` console script installed beside this Python, else ``python -m harness``."""
    script = shutil.which("harness", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "harness"]


def time_runs(argv: list[str], runs: int, env: dict[str, str]) -> list[float]:
    """Wall-clock seconds of ``runs`` runs of ``argv`` (after one untimed warm-up run)."""
    subprocess.run(argv, check=True, capture_output=True, env=env)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, env=env)
        times.append(time.perf_counter() - start)
    return times


def probe(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run ``harness.cli.main(args)`` in a fresh interpreter; which heavy modules did it import?"""
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *args], check=True, capture_output=True, text=True, env=env
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="timed runs per command (default 10)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)

    env = dict(os.environ)
    env.pop("HARNESS_DISABLE_PLUGINS", None)
    no_plugins = {**env, "HARNESS_DISABLE_PLUGINS": "1"}
    harness = harness_command()
    commands = [
        ("import harness", [sys.executable, "-c", "import harness"], env),
        ("harness --help", [*harness, "--help"], env),
        ("harness plugins", [*harness, "plugins"], env),
        ("harness plugins (entry points off)", [*harness, "plugins"], no_plugins),
    ]

    print(f"python {sys.version.split()[0]}, harness command: {' '.join(harness)}, {args.runs} runs each")
    results: dict[str, Any] = {"runs": args.runs, "command": harness, "timings": {}, "imports": {}}
    width = max(len(name) for name, _, _ in commands)
    for name, command, command_env in commands:
        times = time_runs(command, args.runs, command_env)
        median, best = statistics.median(times), min(times)
        results["timings"][name] = {"median_s": median, "min_s": best, "all_s": times}
        print(f"  {name:<{width}}  median {1000 * median:7.1f} ms   min {1000 * best:7.1f} ms")

    print("heavy modules imported (by harness.cli.main in a fresh interpreter):")
    for name, cli_args in (("harness --help", ["--help"]), ("harness plugins", ["plugins"])):
        found = probe(cli_args, env)
        results["imports"][name] = found
        torch = (
            "torch IMPORTED (a plugin or the core imports it at start-up)"
            if "torch" in found["imported"]
            else "no torch"
        )
        heavy = ", ".join(found["imported"]) or "none of " + ", ".join(HEAVY)
        print(f"  {name:<{width}}  {torch}; imported: {heavy}")

    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
