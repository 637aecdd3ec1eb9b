"""Fixtures: small runs in the official layout, written for each test (see make_runs.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from make_runs import write_runs


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    """Three 5-way runs, unpacked."""
    return write_runs(tmp_path / "runs", ways=5, runs=3)


@pytest.fixture(scope="session")
def official_shape_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twenty 20-way runs in all_runs.zip: the shape of the official task (other drawings)."""
    return write_runs(tmp_path_factory.mktemp("official") / "runs", ways=20, runs=20, as_zip=True)
