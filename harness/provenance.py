"""Where a run came from: git commit, versions and machine, for run records."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import harness


def git_state(start: Path | None = None) -> dict[str, Any]:
    """Commit and dirty flag of the git checkout holding the harness (or the working directory)."""
    for where in (Path(harness.__file__).resolve().parent, start or Path.cwd()):
        try:
            commit = subprocess.run(
                ["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
            status = subprocess.run(
                ["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        return {"commit": commit, "dirty": bool(status.strip())}
    return {"commit": None, "dirty": None}


def machine() -> dict[str, Any]:
    """The machine a run happened on."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        memory = None
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "memory_bytes": memory,
        "python": platform.python_version(),
    }


def library_versions() -> dict[str, str]:
    """Versions of the numerical libraries a run used (torch only if it was imported)."""
    versions = {"numpy": __import__("numpy").__version__}
    torch = sys.modules.get("torch")
    if torch is not None:
        versions["torch"] = torch.__version__
        versions["torch_threads"] = str(torch.get_num_threads())
    return versions
