"""The plugin through the harness: registration, one-line errors, runs, checkpoints, learning on Omniglot."""

from __future__ import annotations

import json
import os
from pathlib import Path

import harness_snail
import pytest

from harness.checkpoint_eval import evaluate_checkpoint
from harness.config import build_config
from harness.errors import ConfigError
from harness.plugins import PluginHost
from harness.runner import run
from harness.testing import write_miniimagenet

QUIET = {"log": lambda _: None}
REPO = Path(__file__).resolve().parents[3]
OMNIGLOT = Path(os.environ.get("HARNESS_OMNIGLOT_DIR") or REPO.parent / "shared" / "data" / "omniglot")


@pytest.fixture
def host() -> PluginHost:
    host = PluginHost(autoload=False, modules=[], strict=True)
    host.register(harness_snail, "snail")
    return host


def config(**values):
    base = {"model": "snail", "kind": "fewshot", "ways": 3, "shots": 2, "queries": 2, "episodes": 8,
            "batch_size": 4, "eval_episodes": 8, "checkpoint_every": 4, "device": "cpu",
            "data": {"train_classes": 12, "val_classes": 3, "test_classes": 6}}  # fmt: skip
    return build_config({**base, **values}, "test")


def test_rows_use_the_papers_label(host):
    rows = {(r.table, r.row) for r in host.models.get("snail").rows}
    assert rows == {("snail-table1", "SNAIL"), ("snail-table2", "SNAIL")}


def test_the_lr_drop_budgets_carry_on_from_their_start_at_a_tenth_of_the_rate_and_the_others_at_the_default(host):
    from harness.reproduce import table_cells

    tables = PluginHost(autoload=False, strict=True).tables
    seen = {}
    for table in ("snail-table1", "snail-table2"):
        spec = tables.get(table)
        for budget in spec.budgets:
            for cell in table_cells(spec, host, budget):
                if cell.config.model == "snail":
                    seen.setdefault(budget, set()).add((cell.config.params.get("lr"), cell.config.init_from))
    assert seen["paper-lr-drop"] == {(1e-4, "budget:paper")} and seen["long-lr-drop"] == {(1e-4, "budget:long")}
    assert seen["long-lr-drop2"] == {(1e-5, "budget:long-lr-drop")}
    assert all(values == {(None, None)} for budget, values in seen.items() if budget in ("quick", "paper", "long"))
    assert harness_snail.SNAIL_DEFAULTS["lr"] == 1e-3


def test_importing_the_plugin_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, harness_snail; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"kind": "sequence"}, r"model 'snail' with dataset 'synthetic' accepts only fewshot episodes, not sequence"),
        ({"data": {"image_size": 20}}, r"snail: the omniglot embedding needs 28x28 images, got image_size=20 \("),
        ({"params": {"embedding": "resnet"}}, r"snail parameter embedding must be one of auto, omniglot, miniimagenet"),
    ],
)
def test_settings_snail_cannot_take_stop_with_one_line(host, tmp_path, values, message):
    with pytest.raises(ConfigError, match=message) as err:
        run(config(**values), host, tmp_path, **QUIET)
    assert "\n" not in str(err.value)
    assert not any(tmp_path.iterdir()), "a refused run must leave nothing behind"


def test_runs_end_to_end_and_the_checkpoint_gives_the_record(host, tmp_path):
    record = run(config(), host, tmp_path, name="r", **QUIET)
    assert record["episodes_trained"] == 8 and record["runtime"]["device"] == "cpu"
    assert evaluate_checkpoint(tmp_path / "r" / "checkpoint.pkl", host)["metrics"] == record["metrics"]


def test_the_miniimagenet_model_runs_end_to_end_on_generated_84x84_colour_images(host, tmp_path):
    """mini-ImageNet is not on this machine: the residual embedding runs on small generated colour images."""
    root = write_miniimagenet(tmp_path / "mini")
    values = {"dataset": "miniimagenet", "ways": 2, "shots": 1, "queries": 1, "episodes": 2, "batch_size": 2,
              "eval_episodes": 2, "checkpoint_every": 2,
              "data": {"root": str(root), "cache_dir": str(tmp_path / "cache")}}  # fmt: skip
    record = run(config(**values), host, tmp_path / "runs", name="mini", **QUIET)
    assert record["episodes_trained"] == 2
    assert record["config"]["params"]["embedding"] == "auto"


@pytest.mark.skipif(not (OMNIGLOT / "images_background.zip").exists(), reason="Omniglot archives not found")
def test_a_short_run_on_omniglot_beats_chance(host, tmp_path):
    """150 steps of 3-way 1-shot on real Omniglot: well above the 33% of guessing (52% measured)."""
    values = {"dataset": "omniglot", "ways": 3, "shots": 1, "queries": 1, "episodes": 2400, "batch_size": 16,
              "eval_episodes": 300, "checkpoint_every": 2400, "seed": 0, "data": {"root": str(OMNIGLOT)}}  # fmt: skip
    record = run(config(**values), host, tmp_path, name="omniglot", **QUIET)
    accuracy = record["metrics"]["accuracy"]["accuracy"]
    assert accuracy["mean"] - accuracy["ci95"] > 1 / 3 + 0.03, accuracy


RUNS = REPO / "leaderboards" / "runs"
COMMITTED = sorted(str(p.parent.relative_to(RUNS)) for p in RUNS.glob("snail-table*/*/snail/*/seed*/record.json"))


@pytest.mark.parametrize("cell", COMMITTED)
def test_a_committed_checkpoint_gives_the_number_in_the_table(host, cell):
    if not (OMNIGLOT / "images_background.zip").exists():
        pytest.skip(f"Omniglot archives not found in {OMNIGLOT}; set HARNESS_OMNIGLOT_DIR")
    assert (RUNS / cell / "checkpoint.pkl").exists(), f"{cell}: its record is committed, its checkpoint is not"
    record = json.loads((RUNS / cell / "record.json").read_text())
    result = evaluate_checkpoint(RUNS / cell / "checkpoint.pkl", host, data={"root": str(OMNIGLOT)}, device="cpu")
    assert result["metrics"] == record["metrics"]
