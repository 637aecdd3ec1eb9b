"""The test command: tox skips a missing Python on a developer's machine, CI (.ci/run) requires them all."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys

import pytest
from conftest import REPO

SKIP_SETTING = "{env:HARNESS_TOX_SKIP_MISSING:true}"


def test_tox_skips_missing_pythons_unless_ci_says_otherwise():
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(REPO / "tox.ini")
    assert tox["tox"]["skip_missing_interpreters"] == SKIP_SETTING
    ci = (REPO / ".ci" / "run").read_text()
    assert ci.index("export HARNESS_TOX_SKIP_MISSING=false") < ci.index('bash -c "$TEST_COMMAND"')


def test_tox_reads_the_setting_from_the_environment(tmp_path):
    pytest.importorskip("tox")
    shutil.copy(REPO / "tox.ini", tmp_path / "tox.ini")
    env = {k: v for k, v in os.environ.items() if k != "HARNESS_TOX_SKIP_MISSING"}

    def setting(**extra: str) -> str:
        args = [sys.executable, "-m", "tox", "config", "-e", "py310", "-k", "skip_missing_interpreters"]
        result = subprocess.run(args, cwd=tmp_path, env={**env, **extra}, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    assert "skip_missing_interpreters = True" in setting()
    assert "skip_missing_interpreters = False" in setting(HARNESS_TOX_SKIP_MISSING="false")
