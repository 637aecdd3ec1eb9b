"""Run directories: names that stay inside --out, one process per directory, leftovers of killed writers."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from conftest import PROTONET, TESTS, fewshot_config, harness_cli
from lock_holder import held_elsewhere

from harness import locks
from harness.checkpoints import load as load_checkpoint
from harness.errors import ConfigError, HarnessError
from harness.runner import run

QUIET = {"log": lambda _: None}


@pytest.mark.parametrize(
    "name", ["../x", "../../x", "..", "a/../..", "a/../../b", "", ".", "./", "ABSOLUTE", "nl\nx", "a/\tb", "esc\x1b"]
)
def test_a_name_outside_out_or_naming_out_itself_is_refused_before_anything_is_written(protonet_host, tmp_path, name):
    name = str(tmp_path / "abs") if name == "ABSOLUTE" else name
    with pytest.raises(ConfigError) as err:
        run(fewshot_config(), protonet_host, tmp_path / "deep" / "results", name=name, **QUIET)
    assert "\n" not in str(err.value) and "give a folder name inside" in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_a_name_through_a_symlink_out_of_out_is_refused(protonet_host, tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "results" / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ConfigError, match="through a symlink"):
        run(fewshot_config(), protonet_host, tmp_path / "results", name="link/r", **QUIET)
    assert list((tmp_path / "elsewhere").iterdir()) == []


@pytest.mark.parametrize("name", ["r/record.json", "r/episodes.npz", "checkpoint.pkl", "r/cell.json/x", "r/.lock"])
def test_a_name_taking_a_run_files_name_is_refused(protonet_host, tmp_path, name):
    with pytest.raises(ConfigError, match=r"holds '[^']+', the name of a run's own file; give a folder name"):
        run(fewshot_config(), protonet_host, tmp_path, name=name, **QUIET)
    assert list(tmp_path.iterdir()) == []


def test_a_name_inside_another_runs_folder_is_refused(protonet_host, tmp_path):
    run(fewshot_config(), protonet_host, tmp_path, name="r", **QUIET)
    before = sorted(path.name for path in (tmp_path / "r").iterdir())
    with pytest.raises(ConfigError, match=f"leads into the run folder {tmp_path / 'r'}, whose files are its own"):
        run(fewshot_config(), protonet_host, tmp_path, name="r/backup", **QUIET)
    assert sorted(path.name for path in (tmp_path / "r").iterdir()) == before


def test_a_nested_name_inside_out_is_kept_and_the_cli_prints_its_record(tmp_path):
    args = ["run", "--model", "knn", "--kind", "fewshot", "--episodes", "0", "--eval-episodes", "16"]
    result = harness_cli(*args, "--out", str(tmp_path), "--name", "group/r", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert f"record: {tmp_path / 'group' / 'r' / 'record.json'}" in result.stdout
    assert json.loads((tmp_path / "group" / "r" / "record.json").read_text())["status"] == "complete"


def test_cli_restart_with_a_name_climbing_out_leaves_other_records_alone(tmp_path):
    unrelated = tmp_path / "record.json"
    unrelated.write_text('{"status": "complete", "mine": true}')
    out = tmp_path / "a" / "results"
    args = ["run", "--model", "knn", "--kind", "fewshot", "--episodes", "0", "--eval-episodes", "16"]
    result = harness_cli(*args, "--out", str(out), "--name", "../..", "--restart", "--no-progress")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "run name '../..' holds '..', which could lead outside the results folder" in result.stderr
    assert json.loads(unrelated.read_text()) == {"status": "complete", "mine": True}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.json"]


def test_a_busy_run_directory_is_refused_naming_its_holder_and_left_alone(protonet_host, tmp_path):
    orphan = tmp_path / "r" / ".checkpoint.pkl.abcd1234.tmp"
    with held_elsewhere(tmp_path / "r") as holder:
        orphan.write_bytes(b"a live writer's half-written file")
        with pytest.raises(HarnessError) as err:
            run(fewshot_config(), protonet_host, tmp_path, name="r", **QUIET)
        message = str(err.value)
        holder_text = f"is in use by pid {holder.pid} on {socket.gethostname()} since"
        assert message.startswith(f"run directory {tmp_path / 'r'} {holder_text}")
        assert "\n" not in message
        assert orphan.exists() and not (tmp_path / "r" / "checkpoint.pkl").exists()


def test_a_killed_holder_leaves_no_stale_lock_and_its_temp_files_go(protonet_host, tmp_path):
    directory = tmp_path / "r"
    with held_elsewhere(directory) as holder:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    orphans = [directory / ".checkpoint.pkl.abcd1234.tmp", directory / ".record.json.x_y_z123.tmp"]
    for orphan in orphans:
        orphan.write_bytes(b"half")
    kept = [directory / "notes.tmp", directory / ".keep", directory / "model-extras", directory / ".draft.tmp"]
    kept[0].write_text("not ours")
    kept[1].write_text("")
    kept[2].mkdir()
    kept[3].write_text("a user's file, named like a temporary one but not by the harness")
    messages: list[str] = []
    record = run(fewshot_config(), protonet_host, tmp_path, name="r", log=messages.append)
    assert record["status"] == "complete"
    assert not any(orphan.exists() for orphan in orphans) and all(path.exists() for path in kept)
    assert not (directory / ".lock").exists()
    assert any("removed 2 temporary files" in message for message in messages), messages


@pytest.mark.parametrize("kind", ["symlink", "dangling symlink", "hard link", "folder", "fifo"])
def test_a_lock_file_that_is_no_regular_file_is_refused_and_never_followed(protonet_host, tmp_path, kind):
    victim, directory = tmp_path / "victim.txt", tmp_path / "r"
    victim.write_text("precious")
    directory.mkdir()
    lock = directory / ".lock"
    {
        "symlink": lambda: lock.symlink_to(victim),
        "dangling symlink": lambda: lock.symlink_to(tmp_path / "absent"),
        "hard link": lambda: lock.hardlink_to(victim),
        "folder": lock.mkdir,
        "fifo": lambda: os.mkfifo(lock),
    }[kind]()
    with pytest.raises(HarnessError) as err:
        run(fewshot_config(), protonet_host, tmp_path, name="r", **QUIET)
    assert str(err.value) == (
        f"{lock} is not a regular file of its own (a symlink, hard link, folder or FIFO), as a lock must be; move it "
        "away (or delete it) and run again"
    )
    assert victim.read_text() == "precious" and not (tmp_path / "absent").exists()
    assert os.path.lexists(lock) and not (directory / "checkpoint.pkl").exists()


def test_a_run_in_a_held_directory_of_its_own_process_and_thread_is_allowed(protonet_host, tmp_path):
    from harness import rundirs

    with rundirs.claim(tmp_path / "r"):
        assert run(fewshot_config(), protonet_host, tmp_path, name="r", **QUIET)["status"] == "complete"
        assert (tmp_path / "r" / ".lock").exists()
    assert not (tmp_path / "r" / ".lock").exists()


def test_another_thread_of_the_holding_process_is_refused(tmp_path):
    from harness import locks, rundirs

    errors: list[Exception] = []

    def claim_again() -> None:
        try:
            with rundirs.claim(tmp_path / "r"):
                pass
        except locks.LockHeldError as exc:
            errors.append(exc)

    with rundirs.claim(tmp_path / "r"):
        thread = threading.Thread(target=claim_again)
        thread.start()
        thread.join()
    assert len(errors) == 1 and f"pid {os.getpid()} on " in str(errors[0])


SLOW_RUN = [
    "run", "--model", "weighted-protonet", "--kind", "fewshot", "--queries", "2", "--episodes", "160",
    "--batch-size", "8", "--checkpoint-every", "160", "--eval-episodes", "32", "--param", "delay=0.15",
    "--data", "train_classes=30", "--data", "test_classes=10", "--name", "r", "--no-progress",
]  # fmt: skip


@pytest.mark.slow
def test_two_runs_with_one_name_at_once_second_stops_and_first_is_whole(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(TESTS), "HARNESS_PLUGINS": PROTONET}
    first = subprocess.Popen(
        [sys.executable, "-m", "harness", *SLOW_RUN, "--out", str(tmp_path)], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lock = tmp_path / "r" / ".lock"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and first.poll() is None and not (lock.exists() and lock.read_text()):
        time.sleep(0.02)
    second = harness_cli(*SLOW_RUN, "--out", str(tmp_path), "--seed", "1", env={"HARNESS_PLUGINS": PROTONET})
    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert second.returncode == 2 and second.stderr.count("\n") == 1, second.stderr
    assert f"is in use by pid {first.pid} on {socket.gethostname()} since" in second.stderr
    record = json.loads((tmp_path / "r" / "record.json").read_text())
    assert record["seed"] == 0 and load_checkpoint(tmp_path / "r" / "checkpoint.pkl")["config"]["seed"] == 0
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["checkpoint.pkl", "episodes.npz", "record.json"]


@pytest.mark.parametrize(
    ("listing", "held"),
    [
        ("1: FLOCK  ADVISORY  WRITE 4242 fe:00:7 0 EOF\n2: POSIX  ADVISORY  WRITE 99 fe:00:8 0 EOF\n", True),
        ("1: FLOCK  ADVISORY  WRITE 17 fe:00:7 0 EOF\n1: -> FLOCK  ADVISORY  WRITE 4242 fe:00:7 0 EOF\n", False),
        ("2: POSIX  ADVISORY  WRITE 4242 fe:00:8 0 EOF\n", None),  # no flock at all: a kernel that keeps none
        ("1: FLOCK\n", None),
        ("", None),
    ],
)
def test_whether_a_pid_holds_a_flock_is_read_from_proc_locks(tmp_path, monkeypatch, listing, held):
    fake = tmp_path / "locks"
    fake.write_text(listing)
    monkeypatch.setattr(locks, "PROC_LOCKS", fake)
    assert locks.holds_a_flock(4242) is held
    monkeypatch.setattr(locks, "PROC_LOCKS", tmp_path / "missing")
    assert locks.holds_a_flock(4242) is None


def test_whether_a_pid_holds_a_flock_on_a_file_is_read_from_its_fd_links_and_fdinfo(tmp_path):
    held, other = tmp_path / "held.lock", tmp_path / "other.lock"
    held.write_text("")
    other.write_text("")
    link = tmp_path / "link.lock"
    link.symlink_to(held)
    with open(held) as opened:
        assert locks.holds_flock_on(os.getpid(), held) is False  # open, but no flock on it
        with open(other) as locked:
            fcntl.flock(locked, fcntl.LOCK_EX)  # a flock on another file: still not this one's
            assert locks.holds_flock_on(os.getpid(), held) is False
        fcntl.flock(opened, fcntl.LOCK_EX)
        assert locks.holds_flock_on(os.getpid(), held) is True
        assert locks.holds_flock_on(os.getpid(), link) is True  # the file it names
        assert locks.holds_flock_on(os.getpid(), other) is False
    assert locks.holds_flock_on(os.getpid(), held) is False
    assert locks.holds_flock_on(2**22 + 1, held) is None  # no such process (above Linux's largest pid)
