"""Messages that name what the user can act on: the command's own options, the flag given, the file in the way."""

from __future__ import annotations

import sys
import types

import pytest
from harness_test_plugins import folder_dataset

from harness import hookimpl, plugins
from harness.builtins import knn
from harness.cli import main
from harness.config import build_config, load_toml
from harness.episodes import EpisodeKind
from harness.errors import printable
from harness.hints import EVALUATE, REPRODUCE, RUN, TEST, for_dataset
from harness.prepare import default_name
from harness.specs import DatasetSpec

FOLDER = "harness_test_plugins.folder_dataset"
KNN = ["--model", "knn", "--kind", "fewshot", "--eval-episodes", "8", "--no-progress"]


@pytest.fixture(autouse=True)
def fresh_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's host has the ``folder_dataset`` test plugin, built anew for each test."""
    monkeypatch.setenv(plugins.MODULES_ENV, FOLDER)
    monkeypatch.delenv("HARNESS_PAPERS_DIR", raising=False)
    monkeypatch.setattr(plugins, "_HOST", None)


def error_of(capsys: pytest.CaptureFixture, *args: str) -> str:
    """The one error line of ``harness ARGS`` (exit status 2), without its ``harness: error:`` prefix."""
    capsys.readouterr()
    assert main(list(args)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("harness: error: "), err
    return err[-1].removeprefix("harness: error: ")


# --- hints name the command's own option ----------------------------------------------------------


def spec(*locations: str) -> DatasetSpec:
    return DatasetSpec(
        "toy-data", "Toy data (test).", ("test",), (EpisodeKind.FEWSHOT,), lambda o: None, location_options=locations
    )


@pytest.mark.parametrize(
    ("form", "root", "cache"),
    [
        (RUN, "--data root=DIR", "--data cache_dir=DIR"),
        (TEST, "--test-data root=DIR", "--test-data cache_dir=DIR"),
        (EVALUATE, "--data-dir DIR", "--data cache_dir=DIR"),
        (REPRODUCE, "--data-dir toy-data=DIR", "--data cache_dir=DIR"),
    ],
)
def test_a_datasets_hint_is_written_for_the_command(form, root, cache):
    message = "pass --data root=DIR or --data cache_dir=DIR; --data image_size=DIR is no location"
    assert for_dataset(message, spec("root", "cache_dir"), form) == (
        f"pass {root} or {cache}; --data image_size=DIR is no location"
    )


def test_run_names_data_for_the_dataset_trained_on_and_test_data_for_the_one_tested_on(tmp_path, capsys):
    out = ["--out", str(tmp_path)]
    trained = error_of(capsys, "run", *KNN, "--dataset", "folder-glyphs", *out)
    assert trained.endswith("pass --data folder=DIR")
    tested = error_of(capsys, "run", *KNN, "--test-dataset", "folder-glyphs", *out)
    assert tested.endswith("pass --test-data folder=DIR")


def test_evaluate_and_reproduce_name_their_data_dir(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    args = ["run", *KNN, "--dataset", "folder-glyphs", "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path)]
    assert main([*args, "--name", "r"]) == 0
    checkpoint = str(tmp_path / "r" / "checkpoint.pkl")
    assert error_of(capsys, "evaluate", "--checkpoint", checkpoint, "--no-progress").endswith("pass --data-dir DIR")
    (tmp_path / "papers").mkdir()
    (tmp_path / "papers" / "folder-table.csv").write_text(folder_dataset.PAPER_CSV)
    reproduce = ["reproduce", "folder-table", "--papers", str(tmp_path / "papers"), "--results", str(tmp_path)]
    assert error_of(capsys, *reproduce, "--no-progress").endswith("pass --data-dir folder-glyphs=DIR")


# --- a value from a flag is blamed on the flag ------------------------------------------------------


def test_evaluate_blames_a_bad_flag_not_the_checkpoint(tmp_path, capsys):
    assert main(["run", *KNN, "--out", str(tmp_path), "--name", "r"]) == 0
    checkpoint = ["evaluate", "--checkpoint", str(tmp_path / "r" / "checkpoint.pkl"), "--no-progress"]
    assert error_of(capsys, *checkpoint, "--eval-episodes", "0") == "--eval-episodes must be from 1 to 1,000,000, got 0"
    assert error_of(capsys, *checkpoint, "--device", "cuda:x") == (
        "--device must be auto, cpu, cuda, cuda:N (N from 0 to 127) or mps, got 'cuda:x'"
    )
    assert error_of(capsys, *checkpoint, "--data", "test_classes=3") == (  # not "lower ways": the checkpoint fixes it
        f"{checkpoint[2]} with --data test_classes=3: ways=5 is more than the 3 classes in synthetic split 'test', "
        "and the checkpoint's model takes 5-way 1-shot "
        "episodes; evaluate on another dataset or split (--dataset, --data, --split)"
    )


def test_reproduce_refuses_a_bad_device_before_any_cell_runs(tmp_path, capsys):
    (tmp_path / "papers").mkdir()
    (tmp_path / "papers" / "folder-table.csv").write_text(folder_dataset.PAPER_CSV)
    reproduce = ["reproduce", "folder-table", "--papers", str(tmp_path / "papers"), "--no-progress"]
    results = tmp_path / "results"
    assert error_of(capsys, *reproduce, "--results", str(results), "--device", "tpu") == (
        "--device must be auto, cpu, cuda, cuda:N (N from 0 to 127) or mps, got 'tpu'"
    )
    for index in ("99999999999999999999", "\u0663", "01", "128"):  # torch.device fails on, or wraps, each of these
        line = error_of(capsys, *reproduce, "--results", str(results), "--device", f"cuda:{index}")
        assert line.startswith("--device must be auto, cpu, cuda, cuda:N (N from 0 to 127) or mps, got 'cuda:")
    assert not results.exists()


# --- files and folders in the way -------------------------------------------------------------------


def test_a_papers_file_or_a_bad_papers_variable_is_named_before_the_results_are_looked_at(
    tmp_path, capsys, monkeypatch
):
    papers = tmp_path / "papers.csv"
    papers.write_text("")
    nowhere = ["leaderboard", "mann-table1", "--results", str(tmp_path / "nowhere")]
    assert error_of(capsys, *nowhere, "--papers", str(papers)) == (
        f"papers folder {papers} is a file; pass --papers {tmp_path}, its folder"
    )
    assert error_of(capsys, *nowhere, "--papers", "/dev/null") == (
        "papers folder /dev/null is not a folder (a device, FIFO or socket); pass a folder holding <table>.csv files"
    )
    monkeypatch.setenv("HARNESS_PAPERS_DIR", str(tmp_path / "gone"))
    assert error_of(capsys, *nowhere) == (
        f"papers folder {tmp_path / 'gone'} does not exist; fix or unset $HARNESS_PAPERS_DIR, which names it"
    )
    monkeypatch.setenv("HARNESS_PAPERS_DIR", str(papers))
    assert error_of(capsys, "reproduce", "mann-table1", "--results", str(tmp_path / "nowhere")) == (
        f"papers folder {papers} is a file; set $HARNESS_PAPERS_DIR to its folder, {tmp_path}"
    )
    assert not (tmp_path / "nowhere").exists()


def test_a_run_name_into_a_file_is_refused_naming_the_file(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("a file of the user's")
    assert error_of(capsys, "run", *KNN, "--out", str(tmp_path), "--name", "notes.txt/r") == (
        f"run name 'notes.txt/r' leads into the file {tmp_path / 'notes.txt'}, not a folder; "
        f"give a folder name inside {tmp_path}, like 'my-run' or 'group/my-run'"
    )


def test_curves_refuse_a_folder_as_out_and_leave_no_temporary_file(tmp_path, capsys):
    assert main(["run", *KNN, "--out", str(tmp_path), "--name", "r"]) == 0
    run = str(tmp_path / "r")
    assert error_of(capsys, "curves", run, "--out", run) == (
        f"--out {run} is a folder; pass the PNG file to write, e.g. --out {tmp_path / 'r' / 'curves.png'}"
    )
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_a_model_with_nothing_to_train_says_which_training_settings_it_ignores(tmp_path, capsys):
    config = tmp_path / "run.toml"
    config.write_text("patience = 2\n")
    args = ["run", *KNN, "--config", str(config), "--val-every", "4", "--keep", "best", "--out", str(tmp_path)]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "note: model 'knn' has nothing to train; --val-every, --keep, patience in " in err
    assert main(["run", *KNN, "--episodes", "0", "--keep", "last", "--out", str(tmp_path), "--name", "plain"]) == 0
    assert "nothing to train" not in capsys.readouterr().err
    assert main(["run", *KNN, "--episodes", "50", "--batch-size", "2", "--out", str(tmp_path), "--name", "plain"]) == 0
    assert "plain is already complete" in capsys.readouterr().err  # the settings it ignores make no other run


def test_a_config_file_may_start_with_a_bom(tmp_path):
    path = tmp_path / "run.toml"
    path.write_bytes('\ufeffmodel = "knn"\nways = 7\n'.encode())
    assert load_toml(path) == {"model": "knn", "ways": 7}


# --- names of models and datasets -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "name"),
    [
        ("a/b", "a-b-synthetic-fewshot-5w1s-seed0"),
        ("../../../escaped", "..-..-..-escaped-synthetic-fewshot-5w1s-seed0"),
        ("knn", "knn-synthetic-fewshot-5w1s-seed0"),
    ],
)
def test_a_default_run_name_is_one_folder(model, name):
    assert default_name(build_config({"model": model, "kind": "fewshot"})) == name


def _models_named(*names: str) -> types.SimpleNamespace:
    """A plugin registering the knn model under each of ``names``."""
    import dataclasses

    (base,) = knn.harness_models()
    return types.SimpleNamespace(
        harness_models=hookimpl(lambda: [dataclasses.replace(base, name=n, rows=()) for n in names])
    )


def test_a_model_named_with_a_slash_runs_in_one_folder(host, tmp_path):
    from harness.runner import run

    host.register(_models_named("a/b"), "slashed")
    record = run(build_config({"model": "a/b", "kind": "fewshot", "eval_episodes": 8}), host, tmp_path, log=print)
    assert (tmp_path / record["name"] / "record.json").is_file() and record["name"].startswith("a-b-synthetic")


def test_names_with_control_characters_are_refused_and_never_printed_raw(host, capsys, monkeypatch):
    host.register(_models_named("red\x1b[31m"), "ansi")
    (info,) = [i for i in host.plugins() if i.name == "ansi"]
    assert info.error == (
        "failed in hook harness_models: TypeError: harness_models returned the name 'red\\x1b[31m', which holds "
        "control characters; rename it"
    )
    assert printable("a\nb\x1b[0m\u202e") == "a\\nb\\x1b[0m\\u202e"
    module = types.ModuleType("spoof_plugin")
    module.harness_datasets = hookimpl(  # type: ignore[attr-defined]
        lambda: [DatasetSpec("plain", "says\x1b[2Jhi\nthere", ("test",), (EpisodeKind.FEWSHOT,), lambda o: None)]
    )
    monkeypatch.setitem(sys.modules, "spoof_plugin", module)
    monkeypatch.setenv(plugins.MODULES_ENV, "spoof_plugin")
    capsys.readouterr()
    assert main(["plugins", "-v"]) == 0
    out = capsys.readouterr().out
    assert "plain: says\\x1b[2Jhi\\nthere" in out and "\x1b" not in out
