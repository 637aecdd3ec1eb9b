"""``--data-dir`` sets a dataset's own data directory option (the first of its ``location_options``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from harness_test_plugins import folder_dataset

from harness import plugins
from harness.cli import main
from harness.errors import ConfigError

FOLDER = ["--model", "knn", "--kind", "fewshot", "--dataset", "folder-glyphs", "--eval-episodes", "8", "--no-progress"]


@pytest.fixture(autouse=True)
def folder_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's host has the ``folder_dataset`` test plugin."""
    monkeypatch.setenv(plugins.MODULES_ENV, "harness_test_plugins.folder_dataset")
    monkeypatch.setattr(plugins, "_HOST", None)


def test_run_and_evaluate_pass_the_folder_option(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = tmp_path / "data"
    data.mkdir()
    assert main(["run", *FOLDER, "--data-dir", str(data), "--out", str(tmp_path / "out"), "--name", "r"]) == 0
    record = json.loads((tmp_path / "out" / "r" / "record.json").read_text())
    assert "folder" not in record["config"]["data"], "a location option stays out of the record"
    checkpoint = str(tmp_path / "out" / "r" / "checkpoint.pkl")
    assert main(["evaluate", "--checkpoint", checkpoint, "--data-dir", str(data), "--json", "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", checkpoint, "--no-progress"]) == 2
    assert "folder-glyphs needs an existing folder, got None" in capsys.readouterr().err


def test_reproduce_passes_the_folder_option(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "papers").mkdir()
    (tmp_path / "papers" / "folder-table.csv").write_text(folder_dataset.PAPER_CSV)
    monkeypatch.setenv("HARNESS_PAPERS_DIR", str(tmp_path / "papers"))
    args = ["reproduce", "folder-table", "--results", str(tmp_path / "out"), "--no-progress"]
    assert main([*args, "--data-dir", f"folder-glyphs={tmp_path}"]) == 0
    assert "folder-table: 1 cell run" in capsys.readouterr().out


def test_a_dataset_without_a_directory_option(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["run", "--model", "knn", "--kind", "fewshot", "--data-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err == "harness: error: dataset 'synthetic' reads no data directory; drop --data-dir\n"
    with pytest.raises(ConfigError, match="reads no data directory"):
        plugins.get_host().datasets.get("synthetic").data_dir(tmp_path)
