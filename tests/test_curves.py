"""``harness.curves``: loss and validation curves from run directories, done or still training."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import atomic
from harness.checkpoints import CHECKPOINT
from harness.checkpoints import FORMAT as CHECKPOINT_FORMAT
from harness.curves import load_curves, plot_curves, run_labels
from harness.errors import HarnessError
from harness.records import RECORD

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
INFINITE_COUNT = (
    '{"status": "complete", "config": {"model": "m"}, "metrics": {}, "episodes_trained": 1, '
    '"loss_history": [[Infinity, 1.0]]}'
)


def write_record(run_dir: Path, loss: list, val: list | None = None, **extra) -> Path:
    record = {"format": "harness-run/1", "name": run_dir.name, "status": "complete", "config": {"model": "m"},
              "metrics": {}, "episodes_trained": 48, "loss_history": loss, **extra}  # fmt: skip
    if val is not None:
        record["val_history"] = val
    atomic.write_json(run_dir / RECORD, record)
    return run_dir


def write_checkpoint(run_dir: Path, loss: list, val: list | None = None, **extra) -> Path:
    state = {
        "format": CHECKPOINT_FORMAT, "config": {"model": "m", "episodes": 10**6}, "episodes_trained": 48, "step": 3,
        "loss_history": loss, "model_state": {}, **extra,
    }  # fmt: skip
    if val is not None:
        state["val_history"] = val
    atomic.write_pickle(run_dir / CHECKPOINT, state)
    return run_dir


def loss_curve(n: int, start: float = 1.6) -> list[list[float]]:
    return [[16 * (i + 1), start * 0.9**i] for i in range(n)]


def val_curve(n: int, start: float = 0.3) -> list[list[float]]:
    return [[64 * (i + 1), min(1.0, start + 0.05 * i)] for i in range(n)]


def test_record_is_read(tmp_path: Path) -> None:
    run = write_record(tmp_path / "run-a", loss_curve(3), val_curve(2))
    curves = load_curves(run)
    assert curves == {
        "name": "run-a",
        "loss": [[16, 1.6], [32, pytest.approx(1.44)], [48, pytest.approx(1.296)]],
        "val": [[64, 0.3], [128, pytest.approx(0.35)]],
        "complete": True,
    }


def test_old_record_without_val_history(tmp_path: Path) -> None:
    curves = load_curves(write_record(tmp_path / "old", loss_curve(2)))
    assert curves["val"] == [] and len(curves["loss"]) == 2 and curves["complete"]


def test_checkpoint_read_while_training(tmp_path: Path) -> None:
    run = tmp_path / "running"
    run.mkdir()
    curves = load_curves(write_checkpoint(run, loss_curve(4), val_curve(1)))
    assert curves["name"] == "running" and not curves["complete"]
    assert [e for e, _ in curves["loss"]] == [16, 32, 48, 64] and curves["val"] == [[64, 0.3]]
    assert load_curves(write_checkpoint(run, loss_curve(1)))["val"] == []  # no val_history key


def test_record_wins_over_checkpoint(tmp_path: Path) -> None:
    run = write_record(tmp_path / "done", loss_curve(5))
    write_checkpoint(run, loss_curve(2))
    assert len(load_curves(run)["loss"]) == 5


def test_a_checkpoint_of_another_run_than_the_record_wins(tmp_path: Path) -> None:
    run = write_record(tmp_path / "restarted", loss_curve(5), run_id="old")
    write_checkpoint(run, loss_curve(2), run_id="old")
    assert len(load_curves(run)["loss"]) == 5 and load_curves(run)["complete"]
    write_checkpoint(run, loss_curve(2), run_id="new")  # --restart: the new run trains beside the old record
    assert len(load_curves(run)["loss"]) == 2 and not load_curves(run)["complete"]


def test_a_checkpoint_of_another_length_than_the_record_wins_as_harness_run_would_resume_it(tmp_path: Path) -> None:
    run = write_record(tmp_path / "rewound", loss_curve(5), episodes_trained=80)
    write_checkpoint(run, loss_curve(3))  # 48 episodes, from before run ids: the record is not its run's result
    assert len(load_curves(run)["loss"]) == 3 and not load_curves(run)["complete"]
    write_record(run, loss_curve(5), episodes_trained=48)
    assert len(load_curves(run)["loss"]) == 5 and load_curves(run)["complete"]
    (run / CHECKPOINT).write_bytes(b"damaged")  # unreadable: the record's curves still stand
    assert len(load_curves(run)["loss"]) == 5


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda d: None, "does not exist"),
        (lambda d: d.write_text("{}"), "is a file, not a run directory; pass the folder holding it"),
        (lambda d: d.mkdir(), "holds neither record.json nor checkpoint.pkl"),
        (lambda d: (d.mkdir(), (d / RECORD).write_text("{not json")), "cannot be read: not valid JSON ("),
        (
            lambda d: (d.mkdir(), (d / RECORD).write_text("[]"), (d / CHECKPOINT).write_bytes(b"")),
            "record.json cannot be read: it holds an array, not an object; delete ",
        ),
        (lambda d: (d.mkdir(), (d / CHECKPOINT).write_bytes(b"garbage")), "cannot be read"),
        (
            lambda d: (d.mkdir(), atomic.write_pickle(d / CHECKPOINT, {"format": "other"})),
            "is not a harness checkpoint",
        ),
        (lambda d: (d.mkdir(), write_record(d, [[1, 2, 3]])), "value] pairs; rerun with --restart"),
        (
            lambda d: (d.mkdir(), (d / RECORD).write_text(INFINITE_COUNT)),
            "value] pairs; rerun with --restart",
        ),
        (
            lambda d: (d.mkdir(), (d / RECORD).write_text('{"status": "bogus", "config": {"model": "m"}}')),
            "record.json is not a run record the harness can use (status 'bogus', where a run writes 'complete')",
        ),
        (
            lambda d: (d.mkdir(), (d / RECORD).write_text('{"status": "complete", "loss_history": [[1, 1.0]]}')),
            "record.json is not a run record the harness can use (no config naming its model and metrics)",
        ),
        (lambda d: (d.mkdir(), write_record(d, [[-16, 1.0]])), "value] pairs; rerun with --restart"),
        (lambda d: (d.mkdir(), write_record(d, [[10**400, 1.0]])), "value] pairs; rerun with --restart"),
    ],
)
def test_errors_are_one_line(tmp_path: Path, setup, message: str) -> None:
    run = tmp_path / "bad"
    setup(run)
    with pytest.raises(HarnessError) as info:
        load_curves(run)
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    with pytest.raises(HarnessError):
        plot_curves([run], tmp_path / "curves.png")
    assert not (tmp_path / "curves.png").exists()


def test_labels_are_names_unless_they_clash(tmp_path: Path) -> None:
    a, b, c = tmp_path / "x" / "seed0", tmp_path / "y" / "seed0", tmp_path / "y" / "seed1"
    assert run_labels([a, c]) == ["seed0", "seed1"]
    assert run_labels([a, b, c]) == ["x/seed0", "y/seed0", "y/seed1"]
    assert run_labels([a, a]) == ["seed0", "seed0 #2"]


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_plot_several_runs(tmp_path: Path) -> None:
    runs = [write_record(tmp_path / "x" / "seed0", loss_curve(40), val_curve(10))]
    runs.append(write_record(tmp_path / "y" / "seed0", loss_curve(30, 2.0), val_curve(8, 0.2)))
    running = tmp_path / "y" / "seed1"
    running.mkdir(parents=True)
    runs.append(write_checkpoint(running, loss_curve(12, 1.8), val_curve(3, 0.25)))
    out = plot_curves(runs, tmp_path / "plots" / "curves.png")
    assert out == tmp_path / "plots" / "curves.png"
    width, height = png_size(out)
    assert width > 800 and height > 300
    assert out.stat().st_size > 20_000  # lines, axes and legend, not a blank canvas
    assert sorted(p.name for p in out.parent.iterdir()) == ["curves.png"]  # no temporary file left


def test_a_link_planted_at_a_temporary_name_or_at_the_plot_is_never_written_through(tmp_path: Path) -> None:
    run = write_record(tmp_path / "run", loss_curve(4))
    victim, out = tmp_path / "victim", tmp_path / "plots" / "curves.png"
    victim.write_text("keep me")
    out.parent.mkdir()
    (out.parent / ".curves.png.tmp.png").symlink_to(victim)  # the fixed temporary name of earlier versions
    plot_curves([run], out)
    assert victim.read_text() == "keep me" and out.read_bytes().startswith(PNG_MAGIC)
    out.unlink()
    out.symlink_to(victim)
    with pytest.raises(HarnessError, match="would replace a file that is not a PNG"):
        plot_curves([run], out)
    assert victim.read_text() == "keep me"


def test_plot_without_validation(tmp_path: Path) -> None:
    run = write_record(tmp_path / "novalidation", loss_curve(20), [])
    out = plot_curves([run], tmp_path / "curves.png")
    assert png_size(out)[0] > 500 and out.stat().st_size > 10_000


def test_plot_many_runs(tmp_path: Path) -> None:
    runs = [write_record(tmp_path / f"run{i:02d}", loss_curve(10, 1 + i / 10), val_curve(4, i / 20)) for i in range(14)]
    out = plot_curves(runs, tmp_path / "many.png")
    assert out.stat().st_size > 20_000


def test_plot_needs_runs(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="no run directories"):
        plot_curves([], tmp_path / "curves.png")


def test_out_replaces_an_earlier_png_but_no_other_file(tmp_path: Path) -> None:
    run = write_record(tmp_path / "r", loss_curve(20), val_curve(4))
    record = (run / RECORD).read_bytes()
    with pytest.raises(HarnessError, match=r"^--out .*record\.json would replace a file that is not a PNG; give a new"):
        plot_curves([run], run / RECORD)  # it wrote the plot over the record before
    assert (run / RECORD).read_bytes() == record
    out = plot_curves([run], tmp_path / "curves.png")
    assert plot_curves([run], out) == out and png_size(out)[0] > 500
