"""One-line errors (exit status 2, nothing lost) for files and folders the commands cannot use."""

from __future__ import annotations

import errno
import json
import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.cli import main

KNN = ["--model", "knn", "--kind", "fewshot", "--eval-episodes", "8", "--no-progress"]
RUN_NAME = "knn-synthetic-fewshot-5w1s-seed0"


def error_of(capsys: pytest.CaptureFixture, *args: str) -> str:
    """The error line of ``harness ARGS``, checked to be the only output, with exit status 2."""
    status = main(list(args))
    out, err = capsys.readouterr()
    assert status == 2 and out == "", err
    assert err.startswith("harness: error: ") and err.count("\n") == 1, err
    return err.removeprefix("harness: error: ").rstrip("\n")


@pytest.fixture
def read_only(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], None]:
    """``read_only(folder)``: no file or folder can be made in ``folder`` or below.

    Its mode says so; root, whom modes do not stop, is refused by ``os.open`` and ``os.mkdir`` instead.
    """
    changed: list[tuple[Path, int]] = []

    def make(folder: Path) -> None:
        if os.geteuid() != 0:
            for path in [folder, *folder.rglob("*")]:
                if path.is_dir():
                    changed.append((path, path.stat().st_mode))
                    path.chmod(0o555)
            return
        top = folder.resolve()
        real_open, real_mkdir = os.open, os.mkdir

        def inside(path: object) -> bool:
            return isinstance(path, str | os.PathLike) and top in (
                Path(os.fspath(path)).resolve(),
                *Path(os.fspath(path)).resolve().parents,
            )

        def refusing_open(path, flags, *args, **kwargs):
            if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and inside(path):
                raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
            return real_open(path, flags, *args, **kwargs)

        def refusing_mkdir(path, *args, **kwargs):
            if inside(path):
                raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
            return real_mkdir(path, *args, **kwargs)

        monkeypatch.setattr(os, "open", refusing_open)
        monkeypatch.setattr(os, "mkdir", refusing_mkdir)

    yield make
    for path, mode in changed:
        path.chmod(mode)


# -- config files and checkpoints -----------------------------------------------------------


def test_a_config_file_that_is_not_utf8(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "run.toml"
    config.write_bytes(b'model = "knn"\n# caf\xe9\n')
    message = error_of(capsys, "run", "--config", str(config))
    assert message == f"config file {config} is not UTF-8 text (byte 0xe9 at offset 19); save it as UTF-8"


def test_a_config_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    message = error_of(capsys, "run", "--config", str(tmp_path))
    assert (
        message == f"config file {tmp_path} is a folder; give the TOML file itself, e.g. --config {tmp_path}/run.toml"
    )


def test_a_config_that_is_no_file_too_big_or_too_deep_is_refused_unread(tmp_path: Path, capsys) -> None:
    fifo, big, deep = tmp_path / "fifo.toml", tmp_path / "big.toml", tmp_path / "deep.toml"
    os.mkfifo(fifo)  # reading it would block for ever, and /dev/zero would take all memory
    big.write_text(" " * (2**20 + 1))
    deep.write_text("x = " + "[" * 100_000 + "]" * 100_000)
    for path in (fifo, Path("/dev/zero")):
        assert error_of(capsys, "run", "--config", str(path)) == (
            f"config file {path} is not a regular file (a FIFO, device or socket); check the path"
        )
    message = error_of(capsys, "run", "--config", str(big))
    assert message == f"config file {big} is 1,048,577 bytes, not a run config; check the path"
    message = error_of(capsys, "run", "--config", str(deep))
    assert message == f"config file {deep} nests tables or arrays too deeply to be a run config"


def test_a_checkpoint_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    message = error_of(capsys, "evaluate", "--checkpoint", str(tmp_path))
    assert message.startswith(f"checkpoint {tmp_path} is a folder, not a checkpoint file; give a run's checkpoint.pkl")
    assert main(["run", *KNN, "--out", str(tmp_path)]) == 0
    run_dir = tmp_path / RUN_NAME
    capsys.readouterr()
    message = error_of(capsys, "evaluate", "--checkpoint", str(run_dir))
    assert message == f"checkpoint {run_dir} is a folder, not a checkpoint file; give {run_dir / 'checkpoint.pkl'}"


# -- results folders --------------------------------------------------------------------------


def test_results_under_a_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    file = tmp_path / "file"
    file.write_text("kept")
    for args, fix in [
        (["run", *KNN, "--out", f"{file}/results"], "--out DIR naming a folder"),
        (
            ["reproduce", "mann-table1", "--model", "knn", "--results", f"{file}/results"],
            "--results DIR naming a folder",
        ),
        (
            ["reproduce", "mann-table1", "--results", str(tmp_path / "r"), "--leaderboards", f"{file}/b"],
            "--leaderboards DIR naming a folder",
        ),
        (["leaderboard", "mann-table1", "--results", str(tmp_path), "--out", f"{file}/b"], "--out DIR naming a folder"),
        (["curves", str(tmp_path), "--out", f"{file}/curves.png"], "--out PNG in a folder"),
    ]:
        message = error_of(capsys, *args)
        assert f": {file} is a file, not a folder; pass {fix} you can write to" in message
    assert sorted(tmp_path.iterdir()) == [file] and file.read_text() == "kept"


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_results_in_proc(capsys: pytest.CaptureFixture) -> None:
    message = error_of(capsys, "run", *KNN, "--out", "/proc/x")
    assert message.startswith("cannot write in /proc/x: /proc does not take new files (")
    assert message.endswith("); pass --out DIR naming a folder you can write to")


def test_run_reproduce_and_leaderboard_in_a_read_only_folder(tmp_path: Path, capsys, read_only) -> None:
    read_only(tmp_path)
    for args, option in [
        (["run", *KNN, "--out", str(tmp_path / "results")], "--out"),
        (["reproduce", "mann-table1", "--model", "knn", "--results", str(tmp_path)], "--results"),
        (["leaderboard", "mann-table1", "--results", str(tmp_path)], "--out"),
    ]:
        message = error_of(capsys, *args)
        assert message.startswith(f"cannot write in {tmp_path}")
        assert f"does not take new files (PermissionError: Permission denied); pass {option} DIR" in message
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("locked", ["results", "run"])
def test_resuming_in_a_read_only_folder_keeps_the_checkpoint(tmp_path: Path, capsys, read_only, locked: str) -> None:
    assert main(["run", *KNN, "--out", str(tmp_path)]) == 0
    run_dir = tmp_path / RUN_NAME
    (run_dir / "record.json").unlink()  # as a run killed before its end leaves it
    files = {path.name: path.read_bytes() for path in run_dir.iterdir()}
    capsys.readouterr()
    read_only(tmp_path if locked == "results" else run_dir)
    message = error_of(capsys, "run", *KNN, "--out", str(tmp_path))
    if locked == "results":
        assert message.startswith(f"cannot write in {tmp_path}: {tmp_path} does not take new files")
    else:  # found only once the run starts
        assert message.startswith(f"PermissionError: [Errno 13] Permission denied: '{run_dir / '.lock'}'; make that")
        assert message.endswith(
            "rerun the same command, which keeps finished runs and checkpoints (--traceback shows where)"
        )
    assert {path.name: path.read_bytes() for path in run_dir.iterdir()} == files


def test_status_and_leaderboard_refuse_a_file_given_as_the_results_folder(tmp_path, capsys):
    results = tmp_path / "results.txt"
    results.write_text("not a folder")
    for command in ("status", "leaderboard"):
        assert error_of(capsys, command, "mann-table1", "--results", str(results)) == (
            f"results folder {results} is a file; pass --results DIR naming the folder of your runs"
        )
    assert results.read_text() == "not a folder"
    missing = tmp_path / "reslts"  # a typo would look like a folder where nothing ran yet
    for command in ("status", "leaderboard"):
        assert error_of(capsys, command, "mann-table1", "--results", str(missing)) == (
            f"--results {missing} does not exist; check the path (the folder 'harness reproduce' wrote)"
        )
    assert not missing.exists()


@pytest.mark.parametrize(
    ("seeds", "message"),
    [
        ("0,0", "seed 0 is listed twice in '0,0'; list each seed once"),
        ("-1", "-1 is not a seed from 0 to 4,294,967,295, got '-1'"),
        ("4294967296", "4294967296 is not a seed from 0 to 4,294,967,295, got '4294967296'"),
        (",", "no seed given; give a seed from 0 to 4,294,967,295, got ','"),
        ("0,,1", "expected comma-separated integers, got '0,,1'"),
        ("\u0663", "expected comma-separated integers, got '\u0663'"),
    ],
)
def test_bad_seeds_are_refused_naming_the_flag_before_anything_runs(
    capsys: pytest.CaptureFixture, tmp_path: Path, seeds: str, message: str
) -> None:
    # "0,0" used to run as far as the table's rows and blame a row "listed twice (for model 'feedforward' and
    # model 'feedforward')"; "-1" blamed "seed in table mann-table1".
    with pytest.raises(SystemExit) as exited:
        main(["reproduce", "mann-table1", f"--seeds={seeds}", "--results", str(tmp_path / "r")])
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"harness reproduce: error: argument --seeds: {message}"
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("command", [["reproduce", "mann-table1", "--results"], ["run", *KNN, "--out"], ["curves"]])
def test_an_empty_path_is_refused_instead_of_meaning_the_current_folder(
    capsys: pytest.CaptureFixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exited:
        main([*command, ""])
    assert exited.value.code == 2
    assert (
        capsys.readouterr()
        .err.splitlines()[-1]
        .endswith(": expected a path, got an empty one (write . for the current folder)")
    )
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("command", [["evaluate", "--checkpoint"], ["curves", ".", "--out"], ["run", *KNN, "--config"]])
def test_an_empty_file_name_is_refused_without_suggesting_a_folder(capsys: pytest.CaptureFixture, command) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command, ""])
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(": expected a file name, got an empty one")


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (
            ["run", "--eval-episodes", "abc"],
            "harness run: error: argument --eval-episodes: invalid integer value: 'abc'",
        ),
        (["run", "--episodes", "\u0663"], "harness run: error: argument --episodes: invalid integer value: '\u0663'"),
        (["evaluate"], "harness evaluate: error: the following arguments are required: --checkpoint"),
        (["bogus"], "harness: error: argument COMMAND: invalid choice: 'bogus' (choose from "),
    ],
)
def test_a_flag_argparse_refuses_is_one_line_without_the_usage_block(capsys: pytest.CaptureFixture, argv, line) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.count("\n") == 1 and err.startswith(line)


def test_data_dir_and_a_data_option_naming_another_place_are_refused(capsys: pytest.CaptureFixture, tmp_path) -> None:
    args = ["run", "--model", "knn", "--kind", "fewshot", "--dataset", "omniglot", "--data", f"root={tmp_path / 'a'}"]
    assert error_of(capsys, *args, "--data-dir", str(tmp_path / "b")) == (
        f"--data-dir {tmp_path / 'b'} and --data root={tmp_path / 'a'} name two places for dataset 'omniglot'; "
        "give one of them"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--model", "knn", "--device", "CPU"],
         "--device must be auto, cpu, cuda, cuda:N (N from 0 to 127) or mps, got 'CPU'; did you mean 'cpu'?"),
        (["curves", ".", "--out", "c.txt"], "--out c.txt: curves writes a PNG; give a file name ending in .png"),
        (["run", "--model", "knn", "--device", "GPU"],
         "--device must be auto, cpu, cuda, cuda:N (N from 0 to 127) or mps, got 'GPU'; did you mean 'cuda'?"),
    ],
)  # fmt: skip
def test_near_misses_name_the_value_meant(capsys: pytest.CaptureFixture, tmp_path, monkeypatch, args, message) -> None:
    monkeypatch.chdir(tmp_path)
    assert error_of(capsys, *args) == message
    assert not any(tmp_path.iterdir())


def test_a_name_too_long_for_the_file_system_is_one_bounded_line_naming_the_fix(capsys, tmp_path) -> None:
    line = error_of(capsys, "status", "all", "--results", str(tmp_path / ("y" * 100_000)))
    assert line.startswith("OSError: [Errno 36] File name too long: ") and len(line) < 2300
    assert line.endswith(
        "; rerun: give a shorter path (a folder or file name holds at most 255 bytes, a whole path 4,096), which "
        "keeps finished runs and checkpoints (--traceback shows where)"
    )
    checkpoint = error_of(capsys, "evaluate", "--checkpoint", str(tmp_path / ("z" * 300)))
    assert "File name too long" in checkpoint and checkpoint.endswith(
        "; give a shorter path (a folder or file name holds at most 255 bytes, a whole path 4,096)"
    )
    with pytest.raises(SystemExit):  # argparse's own error
        main(["reproduce", "snail-table1", "--seeds", "1" * 100_000])
    err = capsys.readouterr().err
    assert err.startswith("harness reproduce: error: argument --seeds: ") and "characters left out" in err
    assert err.count("\n") == 1 and len(err) < 2100


def test_restart_with_a_parameter_the_model_refuses_keeps_the_run_it_would_replace(capsys, tmp_path) -> None:
    args = ["run", "--model", "knn", "--dataset", "synthetic", "--kind", "fewshot", "--eval-episodes", "5"]
    assert main([*args, "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    (directory,) = tmp_path.iterdir()
    before = {path.name: path.read_bytes() for path in directory.iterdir()}
    for restart in ([], ["--restart"]):  # not first "holds a run with another config ...; pass --restart"
        line = error_of(capsys, *args, "--param", "k=-1", *restart, "--out", str(tmp_path))
        assert line == "knn parameter k must be at least 1, got -1"
    assert {path.name: path.read_bytes() for path in directory.iterdir()} == before


def test_a_long_value_in_an_error_is_shortened_keeping_the_fix(capsys: pytest.CaptureFixture, tmp_path) -> None:
    line = error_of(capsys, "reproduce", "snail-table1", "--row", "x" * 100_000, "--results", str(tmp_path))
    assert len(line) <= 2100 and "characters left out" in line
    assert line.startswith("table 'snail-table1' has no row 'xxx") and "' (its rows: kNN (raw pixels)" in line


def test_all_among_table_names_means_every_table_once(capsys: pytest.CaptureFixture) -> None:
    assert main(["status", "all", "--json"]) == 0
    every = json.loads(capsys.readouterr().out)
    assert main(["status", "all", "all", "snail-table1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == every


def test_a_leaderboard_of_a_table_without_runs_says_it_holds_the_papers_rows_only(capsys, tmp_path) -> None:
    assert main(["leaderboard", "snail-table1", "--results", str(tmp_path)]) == 0
    assert (
        capsys.readouterr()
        .out.rstrip()
        .endswith(f"; no runs of it under {tmp_path} yet, so only the paper's rows (harness reproduce snail-table1)")
    )
    assert (tmp_path / "leaderboards" / "snail-table1.md").is_file()


def test_an_empty_results_variable_means_the_default_folder(
    capsys: pytest.CaptureFixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HARNESS_RESULTS_DIR", "")
    assert main(["run", *KNN]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["results"]


def test_a_full_disk_names_the_file_it_was_writing_and_the_fix(tmp_path: Path, capsys, monkeypatch) -> None:
    real_fsync = os.fsync

    def full(fd: int) -> None:  # a full disk's write error: raised by the write, naming no file
        if stat.S_ISREG(os.fstat(fd).st_mode) and os.fstat(fd).st_size > 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full)
    message = error_of(capsys, "run", *KNN, "--out", str(tmp_path))
    assert message.startswith("OSError: [Errno 28] No space left on device: '" + str(tmp_path / RUN_NAME))
    assert message.endswith(
        "'; free disk space there, then rerun the same command, which keeps finished runs and checkpoints "
        "(--traceback shows where)"
    )
    assert not [path for path in tmp_path.rglob("*") if path.is_file()], "no half-written file left"


@pytest.mark.parametrize(
    "args",
    [
        ("run", "--param", "lr=0.1", "--param", "lr=0.2"),
        ("run", "--data", "noise=0.1", "--data", "image_size=8", "--data", "noise=0.2"),
        ("run", "--test-data", "seed=1", "--test-data", "seed=2"),
        ("evaluate", "--checkpoint", __file__, "--data", "noise=0.1", "--data", "noise=0.2"),
        ("reproduce", "mann-table1", "--data-dir", "omniglot=/a", "--data-dir", "omniglot=/b"),
    ],
)
def test_a_key_given_twice_is_refused_not_guessed(args: tuple[str, ...], capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    err = capsys.readouterr().err
    flag, key = args[-2], args[-1].partition("=")[0]
    assert exited.value.code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"harness {args[0]}: error: {flag} {key} is given twice (") and "give each key once" in err


@pytest.mark.skipif(not hasattr(sys, "get_int_max_str_digits"), reason="this Python reads integers of any length")
def test_a_number_too_long_to_read_in_a_key_value_flag_is_one_line(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["run", "--param", "lr=" + "9" * 4301])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.count("\n") == 1
    assert err == "harness run: error: argument --param: lr: a number too long to read (4,301 digits)\n"
