"""Checkpoints: read without running code, damage refused in one line, version 1 files read and upgraded."""

from __future__ import annotations

import collections
import errno
import io
import json
import os
import pickle
import random
import stat
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import PROTONET, fewshot_config, harness_cli, killed_after
from lock_holder import held_elsewhere

from harness import atomic, checkpoints
from harness.checkpoint_eval import evaluate_checkpoint
from harness.checkpoints import CHECKPOINT, FORMAT, HEADER_SIZE, LEGACY_FORMAT, MAGIC, load, save, upgrade
from harness.errors import HarnessError
from harness.prepare import prepare
from harness.reproduce import FAILED, claim_and_run
from harness.runner import run

QUIET = {"log": lambda _: None}
SMALL = {"episodes": 32, "eval_episodes": 8, "val_every": 16, "val_episodes": 8, "keep": "best"}
KNN_RUN = ["run", "--model", "knn", "--kind", "fewshot", "--episodes", "0", "--eval-episodes", "16", "--no-progress"]


class Exploit:
    """Pickles as a call of ``function(argument)``: what a planted checkpoint would run on ``pickle.load``."""

    def __init__(self, function: Any, argument: str) -> None:
        self.function, self.argument = function, argument

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return self.function, (self.argument,)


def exploits(marker: Path) -> dict[str, bytes]:
    """Files that create ``marker`` when unpickled, by name."""
    code = Exploit(exec, f"open({str(marker)!r}, 'w').close()")
    shell = Exploit(os.system, f"touch '{marker}'")
    nested = {"format": LEGACY_FORMAT, "step": 1, "config": {}, "model_state": {"weights": [1.0, code]}}
    payload = pickle.dumps({"format": FORMAT, "model_state": code}, protocol=5)
    start = struct.pack("<8sIQ", MAGIC, 2, len(payload))
    forged = start + checkpoints._digest(start, payload) + payload  # a checksum is no defence against a forger
    return {
        "exec": pickle.dumps(code, protocol=5),
        "os.system": pickle.dumps(shell, protocol=5),
        "nested in a version 1 checkpoint": pickle.dumps(nested, protocol=5),
        "version 2 with a valid checksum": forged,
        "protocol 0": pickle.dumps(code, protocol=0),  # never a checkpoint: refused unread
    }


def refusal(kind: str) -> str:
    """What the message refusing exploit ``kind`` says."""
    if kind == "protocol 0":
        return "cannot be read: not a harness checkpoint (it starts b'c__built')"
    return f"refused: it names {'posix.system' if kind == 'os.system' else 'builtins.exec'}, which a checkpoint may not"


def identical(a: Any, b: Any) -> bool:
    """Same types, keys, dtypes, shapes and bytes throughout (NaN matching NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (np.ndarray, np.generic)):
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, dict):
        return [(type(k), k) for k in a] == [(type(k), k) for k in b] and all(identical(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(map(identical, a, b))
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b)
    return bool(a == b)


def one_line_error(path: Path) -> str:
    """The message ``load(path)`` refuses with; fails the test if it is not one line."""
    with pytest.raises(HarnessError) as err:
        load(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message, message
    return message


def upgrade_cli(*args: str) -> subprocess.CompletedProcess:
    """Run ``python -m harness.checkpoints ARGS``."""
    return subprocess.run([sys.executable, "-m", "harness.checkpoints", *args], capture_output=True, text=True)


@pytest.fixture
def small_run(protonet_host, tmp_path: Path) -> Path:
    """The checkpoint of a real, short ``weighted-protonet`` run (arrays, generator state, curves)."""
    run(fewshot_config(**SMALL), protonet_host, tmp_path / "runs", name="r", **QUIET)
    return tmp_path / "runs" / "r" / CHECKPOINT


# -- code in a planted file never runs ----------------------------------------------------


def test_the_exploits_are_live(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    pickle.loads(exploits(marker)["exec"])  # what the old pickle.load did with such a file
    assert marker.exists()


@pytest.mark.parametrize("kind", list(exploits(Path("m"))))
def test_a_planted_checkpoint_is_refused_by_load_and_runs_nothing(tmp_path: Path, kind: str) -> None:
    marker, path = tmp_path / "pwned", tmp_path / "evil.pkl"
    path.write_bytes(exploits(marker)[kind])
    assert refusal(kind) in one_line_error(path)
    assert not marker.exists()


def test_harness_evaluate_refuses_a_planted_checkpoint_in_one_line(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    for kind, data in exploits(marker).items():
        path = tmp_path / "evil.pkl"
        path.write_bytes(data)
        result = harness_cli("evaluate", "--checkpoint", str(path), "--no-progress")
        assert result.returncode == 2 and result.stderr.count("\n") == 1, (kind, result.stderr)
        assert result.stderr.startswith(f"harness: error: checkpoint {path} {refusal(kind)}"), result.stderr
        assert not marker.exists(), kind


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda s: s.pop("config"), "no run config naming its model"),
        (lambda s: s.update(config=[1]), "no run config naming its model"),
        (lambda s: s.pop("model_state"), "no model state"),
        (lambda s: s.update(episodes_trained=-5), "no count of the episodes trained within the run's episodes"),
        (lambda s: s.update(episodes_trained=10**9), "no count of the episodes trained within the run's episodes"),
        (lambda s: s.update(step="x", loss_history=5), "step, loss_history of another type than a run saves"),
        (lambda s: s.update(val_history=[["a"]], wall_time_s="x"), "wall_time_s, val_history of another type"),
        (lambda s: s.update(final=True, kept={"which": "best"}), "kept of another type than a run saves"),
        (lambda s: s.update(final=True, kept={"which": "weird", "episode": 0}), "kept of another type"),
        (lambda s: s.update(final=True, kept="best"), "kept of another type than a run saves"),
        (lambda s: (s.update(final=True), s.pop("kept", None)), "a finished run's weights without saying which"),
    ],
)
def test_a_hand_edited_checkpoint_with_a_valid_checksum_is_refused_in_one_line(tmp_path, edit, problem):
    assert harness_cli(*KNN_RUN, "--out", str(tmp_path), "--name", "r").returncode == 0
    path = tmp_path / "r" / CHECKPOINT
    state = load(path)
    edit(state)
    save(path, state)  # a valid checksum: the file is whole, its contents are not a run's
    (tmp_path / "r" / "record.json").unlink()
    for args in ([*KNN_RUN, "--out", str(tmp_path), "--name", "r"], ["evaluate", "--checkpoint", str(path)]):
        result = harness_cli(*args)
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
        assert f"checkpoint {path} is not one a run wrote ({problem}" in result.stderr
    assert not (tmp_path / "r" / "record.json").exists()


@pytest.mark.parametrize("kind", ["exec", "version 2 with a valid checksum"])
def test_a_resume_over_a_planted_checkpoint_refuses_in_one_line(tmp_path: Path, kind: str) -> None:
    marker, planted = tmp_path / "pwned", tmp_path / "out" / "r" / CHECKPOINT
    planted.parent.mkdir(parents=True)
    planted.write_bytes(exploits(marker)[kind])
    result = harness_cli(*KNN_RUN, "--out", str(tmp_path / "out"), "--name", "r")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert f"harness: error: checkpoint {planted} {refusal(kind)}" in result.stderr
    assert not marker.exists() and not (planted.parent / "record.json").exists()
    assert planted.read_bytes() == exploits(marker)[kind]  # left for the user to look at


# -- damage is refused in one line ----------------------------------------------------------


def test_every_byte_flip_is_refused_in_one_line(small_run: Path, tmp_path: Path) -> None:
    data = small_run.read_bytes()
    assert data.startswith(MAGIC)
    rng = random.Random(0)
    positions = list(range(HEADER_SIZE)) + [rng.randrange(len(data)) for _ in range(600 - HEADER_SIZE)]
    path = tmp_path / "flipped.pkl"
    reasons: collections.Counter[str] = collections.Counter()
    for position in positions:
        flipped = bytearray(data)
        flipped[position] ^= rng.randrange(1, 256)
        path.write_bytes(flipped)
        message = one_line_error(path)
        reasons[message.split(str(path), 1)[1].split(";")[0]] += 1
    assert sum(reasons.values()) == 600
    assert reasons[" is corrupt (checksum mismatch)"] > 500, reasons


def test_a_damaged_checkpoint_is_refused_with_the_fix_its_command_has(small_run: Path, protonet_host) -> None:
    data = small_run.read_bytes()
    small_run.write_bytes(data[:-1])
    (small_run.parent / "record.json").unlink()  # an interrupted run, then, which a rerun resumes
    size = len(data) - HEADER_SIZE
    problem = f"checkpoint {small_run} is truncated ({size - 1} of {size} payload bytes); restore the file"
    with pytest.raises(HarnessError) as err:  # harness run
        run(fewshot_config(**SMALL), protonet_host, small_run.parent.parent, name="r", **QUIET)
    assert str(err.value) == f"{problem}, or rerun with --restart to start the run over"
    cell = small_run.parent  # harness reproduce has no --restart
    outcome = claim_and_run(cell, {"row": "r"}, {}, prepare(fewshot_config(**SMALL), protonet_host))
    assert outcome == (FAILED, f"{problem}, or delete {cell} and rerun to run the cell again")
    with pytest.raises(HarnessError) as err:  # harness evaluate cannot start anything over
        evaluate_checkpoint(small_run, protonet_host)
    assert str(err.value) == problem
    assert small_run.read_bytes() == data[:-1], "left for the user to restore"


@pytest.mark.parametrize(
    ("key", "values", "problem"),
    [
        ("params", {"bogus": 2}, "model 'weighted-protonet' has no parameter 'bogus' (valid: "),
        ("params", {"lr": "fast"}, "model 'weighted-protonet' parameter lr must be a"),
        ("data", {"image_size": "8"}, "dataset 'synthetic' option image_size must be an int"),
        ("data", {"image_size": 100_000}, "dataset 'synthetic' option image_size must be at most"),
        ("data", {"noise": 0.7}, "synthetic dataset option noise must be in [0, 0.5), got 0.7"),  # its factory's
        ("data", {5: 1}, "dataset 'synthetic' has no option 5 (valid: "),  # a pickle's keys may be of any type
        ("params", {None: 1}, "model 'weighted-protonet' has no parameter None (valid: "),
    ],
)
def test_evaluate_names_the_checkpoint_whose_parameters_or_data_options_are_refused(
    small_run: Path, protonet_host, key, values, problem
) -> None:
    state = checkpoints.load_run(small_run)
    state["config"][key] = {**state["config"][key], **values}  # no flag of evaluate sets a parameter; --data is unset
    checkpoints.save(small_run, state)
    with pytest.raises(HarnessError) as err:
        evaluate_checkpoint(small_run, protonet_host)
    assert str(err.value).startswith(f"{small_run}: {problem}") and "\n" not in str(err.value)


def test_evaluate_names_the_flags_beside_the_checkpoint_where_either_may_hold_the_value_refused(
    small_run: Path, protonet_host, tmp_path: Path
) -> None:
    for data, problem in (
        ({"noise": 0.7}, "with --data noise=0.7: synthetic dataset option noise must be in [0, 0.5), got 0.7"),
        ({"bogus": 1}, "with --data bogus=1: dataset 'synthetic' has no option 'bogus' (valid: "),
    ):
        with pytest.raises(HarnessError) as err:
            evaluate_checkpoint(small_run, protonet_host, data=data)
        assert str(err.value).startswith(f"{small_run} {problem}"), str(err.value)
    with pytest.raises(HarnessError) as err:  # as typed: --data-dir, not the option it becomes
        evaluate_checkpoint(small_run, protonet_host, dataset="omniglot", data={"bogus": 1}, data_dir=tmp_path)
    flags = f"--dataset omniglot --data bogus=1 --data-dir {tmp_path}"
    assert str(err.value).startswith(f"{small_run} with {flags}: dataset 'omniglot' has no option 'bogus'")
    with pytest.raises(HarnessError) as err:  # a flag's own error names the flag alone
        evaluate_checkpoint(small_run, protonet_host, dataset="synthetc")
    assert str(err.value).startswith("unknown dataset 'synthetc'") and "did you mean 'synthetic'" in str(err.value)


def test_a_truncated_or_extended_checkpoint_is_refused_in_one_line(small_run: Path, tmp_path: Path) -> None:
    data = small_run.read_bytes()
    path = tmp_path / "cut.pkl"
    for size, reason in [(0, "is empty"), (1, "not a harness checkpoint"), (8, "truncated"), (HEADER_SIZE - 1,
                         "truncated"), (HEADER_SIZE, "truncated"), (len(data) // 2, "truncated"), (len(data) - 1,
                         "truncated (")]:  # fmt: skip
        path.write_bytes(data[:size])
        assert reason in one_line_error(path), size
    path.write_bytes(data + b"\0")
    assert "is corrupt (1 bytes too many)" in one_line_error(path)


def test_an_unknown_version_and_a_foreign_file_are_refused_in_one_line(small_run: Path, tmp_path: Path) -> None:
    data = bytearray(small_run.read_bytes())
    data[8:12] = struct.pack("<I", 4)
    path = tmp_path / "future.pkl"
    path.write_bytes(data)
    assert "is in format version 4, which this harness does not read (it reads 2 and 3)" in one_line_error(path)
    path.write_bytes(b"PK\x03\x04 a zip")
    assert "not a harness checkpoint" in one_line_error(path)
    path.write_bytes(pickle.dumps([1, 2]))
    assert one_line_error(path) == f"{path} is not a harness checkpoint; move it away (another program's file?)"
    path.write_bytes(pickle.dumps({"format": "harness-checkpoint/3"}))
    assert one_line_error(path) == f"{path} is not a harness checkpoint; move it away (another program's file?)"


def forged(state: dict[str, Any]) -> bytes:
    """A version 2 checkpoint of ``state`` with a valid checksum, as a forger writes one."""
    payload = pickle.dumps(state, protocol=5)
    start = struct.pack("<8sIQ", MAGIC, 2, len(payload))
    return start + checkpoints._digest(start, payload) + payload


def test_a_kilobyte_that_unfolds_to_an_astronomical_value_is_refused_at_once(tmp_path: Path) -> None:
    bomb: list[Any] = ["a"]
    for _ in range(60):
        bomb = [bomb, bomb]  # pickled once per level: 2**60 strings unfolded
    loop: list[Any] = [1]
    loop.append(loop)
    config = {"model": "knn", "params": {"k": bomb}}
    for what, state, reason in [
        ("params", {"format": FORMAT, "config": config, "model_state": {}}, "unfolds to more than 5,000,000 values"),
        ("kept", {"format": FORMAT, "kept": loop, "model_state": {}}, "a value that contains itself"),
    ]:
        path = tmp_path / what / CHECKPOINT
        path.parent.mkdir()
        path.write_bytes(forged(state))
        assert len(path.read_bytes()) < 2000
        assert reason in one_line_error(path)
        result = harness_cli("evaluate", "--checkpoint", str(path), "--no-progress", timeout=60)
        assert result.returncode == 2 and result.stderr.count("\n") == 1 and reason in result.stderr, result.stderr


def test_a_file_the_user_names_that_is_no_checkpoint_asks_for_a_runs_checkpoint_not_to_move_it(tmp_path: Path) -> None:
    other = tmp_path / "notes.txt"
    other.write_text("root:x:0:0\n")
    result = harness_cli("evaluate", "--checkpoint", str(other), "--no-progress")
    assert result.returncode == 2 and result.stderr == (
        f"harness: error: checkpoint {other} cannot be read: not a harness checkpoint (it starts b'root:x:0'); give "
        "the checkpoint.pkl in a run's directory\n"
    )
    args = ["run", "--model", "weighted-protonet", "--kind", "fewshot", "--episodes", "8", "--eval-episodes", "8"]
    result = harness_cli(*args, "--out", str(tmp_path), "--init-from", str(other), env={"HARNESS_PLUGINS": PROTONET})
    assert result.returncode == 2 and "move it away" not in result.stderr, result.stderr
    assert result.stderr.endswith("give the directory of a finished run of the same model\n"), result.stderr


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x80\x05\x96" + struct.pack("<Q", 10**6) + b"xy.", "expected 1000000 bytes in a bytearray8"),
        (b"\x80\x05N\x8c\x01ar" + struct.pack("<I", 10**6) + b".", "memo index 1000000 out of order"),
        (b"\x80\x05\x8c\x03a\nb\x8c\x01c\x93.", "refused: it names 'a\\nb.c'"),
        (b"\x80\x05N.junk", "4 bytes follow the end of the pickle"),
        (b"\x80\x05K\x01\x94Q.", "persistent"),
    ],
)
def test_crafted_pickles_are_refused_before_they_allocate_or_print(tmp_path: Path, data: bytes, reason: str) -> None:
    path = tmp_path / CHECKPOINT
    path.write_bytes(data)
    assert reason in one_line_error(path)


def test_byte_flips_in_a_version_1_checkpoint_never_raise_anything_but_a_one_line_error(
    small_run: Path, tmp_path: Path
) -> None:
    legacy = tmp_path / "legacy.pkl"
    atomic.write_pickle(legacy, {**load(small_run), "format": LEGACY_FORMAT})
    data, rng = legacy.read_bytes(), random.Random(1)
    for _ in range(300):
        flipped = bytearray(data)
        flipped[rng.randrange(len(data))] ^= rng.randrange(1, 256)
        legacy.write_bytes(flipped)
        try:
            load(legacy)  # no checksum: some flips go unseen, which is why upgrading matters
        except HarnessError as exc:
            assert "\n" not in str(exc)


# -- a checkpoint over PART_BYTES is stored as parts ------------------------------------------


def big_state(seed: int = 0) -> dict[str, Any]:
    return {"step": seed, "model_state": {"w": np.random.default_rng(seed).random(3000)}}  # ~24 kB of payload


def test_a_big_checkpoint_is_written_as_parts_that_read_back_exactly(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(checkpoints, "PART_BYTES", 5000)
    path = tmp_path / "r" / CHECKPOINT
    save(path, big_state(1))
    parts = checkpoints.part_files(path)
    assert checkpoints.version(path) == 3 and len(parts) == 5
    assert all(p.stat().st_size <= 5000 for p in [path, *parts])
    assert identical(load(path), {"format": FORMAT, **big_state(1)})
    save(path, big_state(2))  # new parts; the old ones are deleted once nothing lists them
    assert not set(parts) & set(checkpoints.part_files(path)) and len(checkpoints.part_files(path)) == 5
    assert identical(load(path)["model_state"], big_state(2)["model_state"])
    save(path, {"step": 3})  # small again: one file, no parts left
    assert checkpoints.version(path) == 2 and checkpoints.part_files(path) == []
    save(path, big_state(4))
    checkpoints.remove(path)
    assert list(path.parent.iterdir()) == []


def test_a_missing_or_damaged_part_is_refused_in_one_line(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(checkpoints, "PART_BYTES", 5000)
    path = tmp_path / CHECKPOINT
    save(path, big_state())
    first, second = checkpoints.part_files(path)[:2]
    data = bytearray(second.read_bytes())
    data[100] ^= 1
    second.write_bytes(data)
    assert f"is corrupt (its part {second.name} does not match its checksum)" in one_line_error(path)
    second.write_bytes(data[:-1])
    assert "does not match its checksum" in one_line_error(path)
    first.unlink()
    message = one_line_error(path)
    assert f"is missing its part {first.name}; copy the checkpoint with the parts beside it" in message
    first.mkdir()  # a folder in its place
    assert f"its part {first.name} is not a regular file; restore the file" in one_line_error(path)


def test_a_link_to_a_checkpoint_in_parts_reads_the_parts_beside_what_it_links_to(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(checkpoints, "PART_BYTES", 5000)
    (tmp_path / "run").mkdir()
    path = tmp_path / "run" / CHECKPOINT
    save(path, state := big_state())
    assert checkpoints.part_files(path)
    link = tmp_path / "elsewhere.pkl"
    link.symlink_to(path)
    assert identical(load(link), load(path)) and identical(load(link)["model_state"], state["model_state"])


def test_a_renamed_checkpoint_in_parts_says_the_name_its_parts_need(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(checkpoints, "PART_BYTES", 5000)
    path = tmp_path / CHECKPOINT
    save(path, big_state())
    renamed = path.rename(tmp_path / "best.pkl")
    message = one_line_error(renamed)
    assert message.endswith(f"{renamed} was renamed: its parts are named after 'checkpoint.pkl'; give it that name "
                            f"again ({path})")  # fmt: skip
    renamed.rename(path)  # the fix, as it says
    assert identical(load(path), {"format": FORMAT, **big_state()})


def disk_full_after(writes: int, monkeypatch) -> None:
    """``atomic.write_bytes`` writes ``writes`` files, then fails as a full disk does (in the write, naming no file)."""
    real_fsync, calls = os.fsync, []

    def fsync(fd: int) -> None:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            calls.append(fd)
            if len(calls) > writes:
                raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)


@pytest.mark.parametrize("writes", [0, 2, 5])  # in the first part, in the third, in the list of parts
def test_a_save_on_a_full_disk_keeps_the_old_checkpoint_and_leaves_no_new_part(
    tmp_path: Path, monkeypatch, writes: int
) -> None:
    monkeypatch.setattr(checkpoints, "PART_BYTES", 5000)
    path = tmp_path / CHECKPOINT
    save(path, big_state(1))
    before = sorted(tmp_path.iterdir())
    with monkeypatch.context() as patch:
        disk_full_after(writes, patch)
        with pytest.raises(OSError, match="No space left on device") as full:
            save(path, big_state(2))
    assert full.value.filename is not None and Path(full.value.filename).parent == tmp_path  # the file it wrote
    assert sorted(tmp_path.iterdir()) == before, "the old checkpoint's files, and nothing else"
    assert load(path)["step"] == 1
    save(path, big_state(2))  # space again: the next save goes through
    assert load(path)["step"] == 2


def test_a_save_that_fails_after_its_list_of_parts_is_in_place_keeps_the_new_parts(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(checkpoints, "PART_BYTES", 5000)
    path = tmp_path / CHECKPOINT
    save(path, big_state(1))
    real_fsync, old = os.fsync, path.read_bytes()

    def folder_sync_fails(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode) and path.read_bytes() != old:  # the new list of parts is in place
            raise OSError(errno.EIO, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", folder_sync_fails)
    with pytest.raises(OSError, match="Input/output error"):
        save(path, big_state(2))
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert load(path)["step"] == 2  # the parts it lists were kept


def run_state(seed: int = 0) -> dict[str, Any]:
    return {
        **big_state(seed), "episodes_trained": 4000, "config": {"episodes": 10_000, "model": "toy"},
        "val_history": [[1000, 0.25], [2000, 0.5]], "wall_time_s": 12.5,
    }  # fmt: skip


def test_progress_is_read_from_the_list_of_parts_without_the_parts(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(checkpoints, "PART_BYTES", 5000)
    path = tmp_path / CHECKPOINT
    save(path, run_state())
    expected = {
        "episodes_trained": 4000, "config": {"episodes": 10_000}, "val_history": [[2000, 0.5]],
        "wall_time_s": 12.5, "train_wall_time_s": None,
    }  # fmt: skip
    assert checkpoints.progress(path) == expected
    for part in checkpoints.part_files(path):
        part.unlink()  # what status shows needs none of them
    assert checkpoints.progress(path) == expected
    assert "is missing its part" in one_line_error(path)
    small = tmp_path / "small" / CHECKPOINT
    save(small, {**run_state(), "model_state": {}})  # one file: read whole
    assert checkpoints.version(small) == 2 and checkpoints.progress(small) == expected


@pytest.mark.parametrize(
    "stored",
    [None, "4000", {"episodes_trained": "4000"}, {"episodes_trained": 4000, "config": [], "val_history": [],
     "wall_time_s": None, "train_wall_time_s": None}, {"episodes_trained": 4000, "config": {"episodes": None},
     "val_history": [[1, "0.5"]], "wall_time_s": None, "train_wall_time_s": None}],
)  # fmt: skip
def test_progress_of_a_malformed_list_reads_the_whole_checkpoint(tmp_path: Path, monkeypatch, stored: Any) -> None:
    monkeypatch.setattr(checkpoints, "PART_BYTES", 5000)
    path = tmp_path / CHECKPOINT
    save(path, run_state())
    data = path.read_bytes()
    listing = json.loads(data[checkpoints.HEADER_SIZE :])
    manifest = json.dumps({"parts": listing["parts"], "progress": stored}).encode()
    start = struct.pack("<8sIQ", MAGIC, 3, len(manifest))
    path.write_bytes(start + checkpoints._digest(start, manifest) + manifest)  # forged, with a valid checksum
    assert checkpoints.progress(path)["val_history"] == [[2000, 0.5]]  # the truth, from the parts
    checkpoints.part_files(path)[0].unlink()
    with pytest.raises(HarnessError, match="is missing its part"):
        checkpoints.progress(path)


@pytest.mark.parametrize(
    "parts",
    [
        [["../escape.part0-0123456789abcdef", 10, "0123456789abcdef" + "0" * 48]],
        [["/etc/passwd", 10, "0" * 64]],
        [[f"{CHECKPOINT}.part1-{'0' * 16}", 10, "0" * 64]],  # out of order
        [[f"{CHECKPOINT}.part0-{'0' * 16}", 10**9, "0" * 64]],  # bigger than a part may be
        [[f"{CHECKPOINT}.part0-{'0' * 16}", 10, "1" * 64]],  # the name does not start its digest
        [[f"{CHECKPOINT}.part0-{'0' * 16}", True, "0" * 64]],
        [],
        "parts",
    ],
)
def test_a_forged_list_of_parts_reads_nothing_outside_and_is_refused(tmp_path: Path, parts: Any) -> None:
    (tmp_path / "escape.part0-0123456789abcdef").write_bytes(b"0123456789")
    manifest = json.dumps({"parts": parts}).encode()
    start = struct.pack("<8sIQ", MAGIC, 3, len(manifest))
    path = tmp_path / "d" / CHECKPOINT
    path.parent.mkdir()
    path.write_bytes(start + checkpoints._digest(start, manifest) + manifest)  # a valid checksum: forged
    assert "is corrupt (its list of parts is malformed)" in one_line_error(path)


def test_a_list_of_parts_nested_past_the_parsers_depth_is_refused_in_one_line(tmp_path: Path) -> None:
    manifest = b'{"parts": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    start = struct.pack("<8sIQ", MAGIC, 3, len(manifest))
    path = tmp_path / CHECKPOINT
    path.write_bytes(start + checkpoints._digest(start, manifest) + manifest)  # a valid checksum: forged
    assert "is corrupt (its list of parts is malformed)" in one_line_error(path)
    with pytest.raises(HarnessError, match="its list of parts is malformed"):
        checkpoints.progress(path)


def test_a_fifo_or_device_is_refused_unread_as_a_checkpoint_or_a_part(tmp_path: Path, monkeypatch) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # reading it would block for ever
    assert "is not a regular file (a FIFO, device or socket)" in one_line_error(fifo)
    assert "is not a regular file" in one_line_error(Path("/dev/zero"))  # reading it would never end
    with pytest.raises(HarnessError, match="is not a regular file"):
        checkpoints.version(fifo)
    monkeypatch.setattr(checkpoints, "PART_BYTES", 5000)
    path = tmp_path / CHECKPOINT
    save(path, big_state())
    part = checkpoints.part_files(path)[1]
    part.unlink()
    os.mkfifo(part)
    assert f"its part {part.name} is not a regular file" in one_line_error(path)


def test_a_fifo_in_place_of_a_record_or_its_per_episode_values_is_refused_unread(small_run: Path) -> None:
    from harness import per_episode, records
    from harness.errors import DataError

    run_dir = small_run.parent
    per_episode.load(run_dir)  # reads as it is
    values = run_dir / per_episode.FILE
    values.unlink()
    os.mkfifo(values)
    with pytest.raises(DataError, match="is not a regular file"):
        per_episode.load(run_dir)
    (run_dir / "record.json").unlink()
    os.mkfifo(run_dir / "record.json")
    with pytest.raises(DataError, match=r"record\.json is not a regular file .*; fix it"):
        records.read_json(run_dir / "record.json", "fix it")


def test_a_reader_racing_a_save_reads_the_old_or_the_new_checkpoint(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(checkpoints, "PART_BYTES", 5000)
    path = tmp_path / CHECKPOINT
    save(path, big_state(1))
    real_joined = checkpoints._joined

    def save_in_between(*args: Any) -> bytes:
        monkeypatch.setattr(checkpoints, "_joined", real_joined)
        save(path, big_state(2))  # deletes the parts the first read of the file listed
        return real_joined(*args)

    monkeypatch.setattr(checkpoints, "_joined", save_in_between)
    assert load(path)["step"] == 2


def test_a_run_with_a_big_checkpoint_resumes_and_restart_removes_its_parts(
    protonet_host, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(checkpoints, "PART_BYTES", 2000)
    config = fewshot_config(episodes=32, eval_episodes=8, val_every=16, val_episodes=8, keep="best")
    whole = run(config, protonet_host, tmp_path, name="whole", **QUIET)
    path = tmp_path / "whole" / CHECKPOINT
    assert checkpoints.version(path) == 3 and checkpoints.part_files(path)
    again = run(config, protonet_host, tmp_path, name="whole", **QUIET)  # complete: read back, not rerun
    assert again["metrics"] == whole["metrics"]
    stale = path.parent / f"{CHECKPOINT}.part9-{'0' * 16}"  # left by a save killed before its checkpoint file
    stale.write_bytes(b"x")
    restarted = run(config, protonet_host, tmp_path, name="whole", restart=True, **QUIET)
    assert restarted["metrics"] == whole["metrics"] and not stale.exists()
    listed = [name for name, _, _ in checkpoints._manifest(path, memoryview(path.read_bytes())[HEADER_SIZE:])]
    assert [p.name for p in checkpoints.part_files(path)] == sorted(listed)


# -- what a checkpoint holds --------------------------------------------------------------


def test_allowed_values_round_trip_exactly_and_a_generator_state_resumes(tmp_path: Path) -> None:
    generators = {
        name: np.random.Generator(getattr(np.random, name)(7)) for name in ("PCG64", "MT19937", "Philox", "SFC64")
    }
    for rng in generators.values():
        rng.random(3)
    state = {
        "rngs": {name: rng.bit_generator.state for name, rng in generators.items()},
        "legacy_rng": np.random.RandomState(3).get_state(),
        "arrays": [
            np.arange(6).astype(dtype).reshape(2, 3) for dtype in ("<f4", ">f8", "i1", "u8", "?", "c16", "M8[s]")
        ],
        "views": [np.arange(12.0).reshape(3, 4)[:, ::2], np.asfortranarray(np.ones((2, 3))), np.array(np.nan)],
        "structured": np.zeros(2, dtype=[("a", "<i4"), ("b", "<f8", (2,))]),
        "scalars": [np.float32(1.5), np.int64(-3), np.bool_(True), np.datetime64("2020-01-02"), np.str_("ab")],
        "plain": (None, True, 2**70, float("inf"), 1 - 2j, "é", b"\x00\x80", bytearray(b"x"), {1, 2}, frozenset("ab")),
        "ordered": collections.OrderedDict([("w", np.ones(2)), (3, [])]),
    }
    path = tmp_path / "c.pkl"
    save(path, {"model_state": state})
    back = load(path)["model_state"]
    assert identical(back, state) and not identical(back, {**state, "views": state["views"][:2]})
    for name, rng in generators.items():
        again = np.random.Generator(getattr(np.random, name)())
        again.bit_generator.state = back["rngs"][name]
        assert np.array_equal(again.random(5), rng.random(5)), name


@pytest.mark.parametrize(
    ("value", "named"),
    [
        (np.random.default_rng(0), "numpy.random._pickle.__generator_ctor"),
        (collections.Counter("ab"), "collections.Counter"),
        (Path("x"), "pathlib"),
        (lambda: 0, "Can't pickle"),
        (np.array([1, "a"], dtype=object), "numpy._core.multiarray._reconstruct"),
        (np.float32, "numpy.float32"),
        (np.dtype("f4"), "a bare NumPy dtype (store dtype.str)"),
        (np.ma.array([1.0]), "numpy.ma"),
    ],
)
def test_saving_what_could_not_be_read_back_is_refused_in_one_line(tmp_path: Path, value: Any, named: str) -> None:
    path = tmp_path / CHECKPOINT
    with pytest.raises(HarnessError, match="a model's state_dict may hold only plain values") as err:
        save(path, {"model_state": {"rng": value}})
    assert named in str(err.value) and "\n" not in str(err.value) and str(path) in str(err.value)
    if not isinstance(value, np.dtype):  # refused on reading back, which knows no key
        assert " at state['model_state']['rng'] (a " in str(err.value), "names where the value is"
    if isinstance(value, np.random.Generator):
        assert "Generator: store rng.bit_generator.state)" in str(err.value)
    assert not path.exists()


# -- version 1 files ----------------------------------------------------------------------


def test_a_version_1_checkpoint_is_read_and_upgraded_to_identical_state(small_run: Path, tmp_path: Path) -> None:
    state = {**load(small_run), "format": LEGACY_FORMAT}
    legacy = tmp_path / "r" / CHECKPOINT
    atomic.write_pickle(legacy, state)  # what version 1 wrote
    assert checkpoints.version(legacy) == 1 and identical(load(legacy), state)
    assert upgrade(legacy) is True
    assert checkpoints.version(legacy) == 2 and legacy.read_bytes().startswith(MAGIC)
    upgraded = load(legacy)
    assert upgraded["format"] == FORMAT and identical({**upgraded, "format": LEGACY_FORMAT}, state)
    before = legacy.read_bytes()
    assert upgrade(legacy) is False and legacy.read_bytes() == before
    assert sorted(p.name for p in legacy.parent.iterdir()) == [CHECKPOINT]  # no lock or temporary file left


def test_upgrade_refuses_a_planted_file_a_damaged_one_and_a_run_in_progress(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil" / CHECKPOINT
    evil.parent.mkdir()
    evil.write_bytes(exploits(marker)["nested in a version 1 checkpoint"])
    with pytest.raises(HarnessError, match=r"refused: it names builtins\.exec"):
        upgrade(evil)
    assert not marker.exists() and evil.read_bytes() == exploits(marker)["nested in a version 1 checkpoint"]
    busy = tmp_path / "busy" / CHECKPOINT
    busy.parent.mkdir()
    atomic.write_pickle(busy, {"format": LEGACY_FORMAT, "step": 1})
    with held_elsewhere(busy.parent), pytest.raises(HarnessError, match=r"is in use by pid .*; upgrade it once"):
        upgrade(busy)
    assert checkpoints.version(busy) == 1
    with pytest.raises(HarnessError, match="does not exist"):
        upgrade(tmp_path / "missing" / CHECKPOINT)
    assert not (tmp_path / "missing").exists()


def test_the_upgrade_command_prints_one_line_per_file(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for name, tag in [("a", LEGACY_FORMAT), ("b/seed0", FORMAT)]:  # a bare pickle, whatever its tag
        atomic.write_pickle(runs / name / CHECKPOINT, {"format": tag, "step": 1, "name": name})
    save(runs / "c" / CHECKPOINT, {"step": 2})
    (runs / "d").mkdir()
    (runs / "d" / CHECKPOINT).write_bytes(b"\x80\x05garbage")
    result = upgrade_cli(str(runs), str(tmp_path / "nothing-here"))
    assert result.returncode == 2
    assert result.stdout.splitlines() == [
        f"{runs / 'a' / CHECKPOINT}: upgraded to {FORMAT}",
        f"{runs / 'b' / 'seed0' / CHECKPOINT}: upgraded to {FORMAT}",
        f"{runs / 'c' / CHECKPOINT}: already {FORMAT}",
    ]
    errors = result.stderr.splitlines()
    assert len(errors) == 2 and f"checkpoint {runs / 'd' / CHECKPOINT} is corrupt" in errors[0]
    assert "nothing-here" in errors[1] and "does not exist" in errors[1]
    assert load(runs / "b" / "seed0" / CHECKPOINT) == {"format": FORMAT, "step": 1, "name": "b/seed0"}
    again = upgrade_cli(str(runs / "a"))
    assert again.returncode == 0 and again.stdout == f"{runs / 'a' / CHECKPOINT}: already {FORMAT}\n"
    helped = upgrade_cli("--help")
    assert helped.returncode == 0 and "usage: python -m harness.checkpoints" in helped.stdout


def test_upgrade_splits_a_one_file_checkpoint_over_the_part_size(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(checkpoints, "PART_BYTES", 5000)
    big = tmp_path / "e" / CHECKPOINT
    big.parent.mkdir()
    payload = checkpoints._encode(big, big_state())
    start = checkpoints._START.pack(MAGIC, 2, len(payload))
    big.write_bytes(start + checkpoints._digest(start, payload) + payload)  # one file, as version 2 wrote it
    assert checkpoints.main([str(tmp_path)]) == 0
    assert capsys.readouterr().out == f"{big}: upgraded to {FORMAT} in 5 parts\n"
    assert checkpoints.version(big) == 3 and identical(load(big)["model_state"], big_state()["model_state"])
    assert checkpoints.main([str(big)]) == 0
    assert capsys.readouterr().out == f"{big}: already {FORMAT} in 5 parts\n"


# -- torch models -------------------------------------------------------------------------


@pytest.mark.torch
@pytest.mark.parametrize("written_as", [1, 2])
def test_a_torch_run_resumes_exactly_from_a_checkpoint_of_either_version(
    host, tmp_path: Path, monkeypatch, written_as: int
) -> None:
    torch = pytest.importorskip("torch")
    from harness_test_plugins import torch_protonet

    from harness.torch import TorchModel

    host.register(torch_protonet, "torch-protonet-plugin")
    config = fewshot_config(model="torch-protonet", episodes=48, eval_episodes=16, augment=True)
    whole = run(config, host, tmp_path, name="whole", **QUIET)
    killed_after(5, TorchModel, config, host, tmp_path / "killed", monkeypatch)
    path = tmp_path / "killed" / CHECKPOINT
    state = load(path)
    assert state["episodes_trained"] == 32 and isinstance(state["model_state"]["torch"], bytes)
    if written_as == 1:
        atomic.write_pickle(path, {**state, "format": LEGACY_FORMAT})  # what version 1 wrote
    resumed = run(config, host, tmp_path, name="killed", **QUIET)
    assert resumed["resumes"] == 1 and whole["resumes"] == 0
    for key in ("metrics", "loss_history", "val_history", "episodes_trained"):
        assert resumed[key] == whole[key], key
    assert checkpoints.version(path) == 2
    final = [torch.load(io.BytesIO(load(tmp_path / name / CHECKPOINT)["model_state"]["torch"]), weights_only=True)
             for name in ("killed", "whole")]  # fmt: skip
    for key, tensor in final[0]["module"].items():
        assert torch.equal(tensor, final[1]["module"][key]), key


@pytest.mark.torch
def test_the_best_model_is_kept_as_weights_alone_and_a_resume_still_matches(host, tmp_path: Path, monkeypatch) -> None:
    torch = pytest.importorskip("torch")
    from harness_test_plugins import torch_protonet

    from harness.torch import TorchModel

    host.register(torch_protonet, "torch-protonet-plugin")
    config = fewshot_config(
        model="torch-protonet", episodes=48, eval_episodes=16, val_every=16, val_episodes=8, keep="best"
    )
    whole = run(config, host, tmp_path, name="whole", **QUIET)
    killed_after(5, TorchModel, config, host, tmp_path / "killed", monkeypatch)
    state = load(tmp_path / "killed" / CHECKPOINT)
    best = torch.load(io.BytesIO(state["best"]["model_state"]["torch"]), weights_only=True)
    everything = torch.load(io.BytesIO(state["model_state"]["torch"]), weights_only=True)
    assert set(best) == {"module"} and "optimizer" in everything
    resumed = run(config, host, tmp_path, name="killed", **QUIET)
    for key in ("metrics", "kept", "val_history", "loss_history"):
        assert resumed[key] == whole[key], key
