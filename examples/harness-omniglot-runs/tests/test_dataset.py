"""The runs as a dataset: episode j is run j + 1, exactly; the test split only; one-line errors."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from harness_omniglot_runs.dataset import OmniglotRuns
from harness_omniglot_runs.runs import RunFiles
from make_runs import write_runs

from harness.episodes import EpisodeKind, EpisodeSettings
from harness.errors import ConfigError, DataError

FIVE_WAY = EpisodeSettings(EpisodeKind.FEWSHOT, ways=5, shots=1, queries=1)


def source(folder: Path, size: int = 105) -> OmniglotRuns:
    return OmniglotRuns({"runs_dir": str(folder), "image_size": size})


def test_episode_j_is_run_j_plus_one_whatever_the_batch(runs_dir: Path) -> None:
    runs = source(runs_dir)
    rng = [np.random.default_rng(0)] * 2
    batch = runs.sample("test", FIVE_WAY, rng, [2, 0])
    alone = runs.sample("test", FIVE_WAY, rng[:1], [0])
    np.testing.assert_array_equal(batch.support_images[1], alone.support_images[0])
    np.testing.assert_array_equal(batch.query_targets[1], alone.query_targets[0])
    third = runs.files.load(2, 105)
    np.testing.assert_array_equal(batch.support_images[0, :, 0], third.training)
    np.testing.assert_array_equal(batch.query_images[0, :, 0], third.test)
    assert batch.support_images.shape == (2, 5, 1, 105, 105)
    assert runs.episode_count("test") == 3


def test_answers_come_from_class_labels(runs_dir: Path) -> None:
    # make_runs pairs test item k with training class 6 - k: item01 is class05 (index 4)
    run = RunFiles(runs_dir).load(0, 105)
    np.testing.assert_array_equal(run.answers, [4, 3, 2, 1, 0])
    (runs_dir / "run01" / "class_labels.txt").write_text(
        "run01/test/item01.png run01/training/class01.png\n"
        "run01/test/item02.png run01/training/class02.png\n"
        "run01/test/item03.png run01/training/class03.png\n"
        "run01/test/item04.png run01/training/class04.png\n"
        "run01/test/item05.png run01/training/class05.png\n"
    )
    np.testing.assert_array_equal(RunFiles(runs_dir).load(0, 105).answers, [0, 1, 2, 3, 4])


def test_drawings_are_ink_on_zero_and_shrink_by_box_averages(runs_dir: Path) -> None:
    full, small = source(runs_dir).run(0), source(runs_dir, 35).run(0)
    assert full.training.min() == 0.0 and full.training.max() == 1.0
    assert full.training.mean() < 0.25  # mostly paper: ink is the minority
    box = full.training[0].reshape(35, 3, 35, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(small.training[0], box, atol=1 / 255 + 1e-6)


def test_the_zip_and_the_folder_give_the_same_runs(tmp_path: Path) -> None:
    folder = write_runs(tmp_path / "folder", ways=5, runs=2)
    archived = write_runs(tmp_path / "archived", ways=5, runs=2, as_zip=True)
    a, b = source(folder).run(1), source(archived).run(1)
    np.testing.assert_array_equal(a.training, b.training)
    np.testing.assert_array_equal(a.answers, b.answers)


def test_a_zip_holding_an_all_runs_folder_is_read_too(tmp_path: Path) -> None:
    write_runs(tmp_path / "plain", ways=5, runs=1, as_zip=True)
    nested = tmp_path / "nested"
    nested.mkdir()
    with zipfile.ZipFile(tmp_path / "plain" / "all_runs.zip") as plain:
        files = {name: plain.read(name) for name in plain.namelist()}
    with zipfile.ZipFile(nested / "all_runs.zip", "w") as out:
        for name, data in files.items():
            out.writestr("all_runs/" + name, data)
    assert source(nested).files.runs == ["run01"]


def test_only_the_test_split_and_only_the_runs_shape(runs_dir: Path) -> None:
    runs = source(runs_dir)
    runs.check("test", FIVE_WAY)
    with pytest.raises(ConfigError, match="only a test split"):
        runs.check("train", FIVE_WAY)
    with pytest.raises(ConfigError, match="pass --kind fewshot --ways 5 --shots 1 --queries 1"):
        runs.check("test", EpisodeSettings(EpisodeKind.FEWSHOT, ways=20, shots=1, queries=1))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("missing", "does not exist"),
        ("empty", "no run01..run20 folders"),
        ("png", "cannot read run01/training/class02.png"),
        ("labels", "is not 'TEST_FILE TRAINING_FILE'"),
        ("zip", "is not a zip archive"),
    ],
)
def test_bad_runs_are_refused_in_one_line(tmp_path: Path, damage: str, message: str) -> None:
    folder = write_runs(tmp_path / "runs", ways=5, runs=1)
    if damage == "missing":
        folder = tmp_path / "nowhere"
    elif damage == "empty":
        folder = tmp_path / "empty"
        folder.mkdir()
    elif damage == "png":
        (folder / "run01" / "training" / "class02.png").write_bytes(b"not a png")
    elif damage == "labels":
        (folder / "run01" / "class_labels.txt").write_text("just-one-name\n")
    else:
        (folder / "all_runs.zip").write_bytes(b"PK but not really")
    with pytest.raises(DataError, match=message) as caught:
        source(folder).run(0)
    assert "\n" not in str(caught.value)


def test_no_runs_dir_names_the_option() -> None:
    with pytest.raises(DataError, match="--data runs_dir=DIR") as caught:
        OmniglotRuns({"runs_dir": "", "image_size": 105})
    assert "--data-dir" not in str(caught.value), "the harness writes the hint for the command that shows it"


def test_runs_of_another_shape_are_refused_naming_the_run(tmp_path: Path) -> None:
    folder = write_runs(tmp_path / "runs", ways=5, runs=2)
    labels = folder / "run02" / "class_labels.txt"
    labels.write_text("".join(labels.read_text().splitlines(keepends=True)[:4]))  # a 4-way run02
    runs = source(folder)
    with pytest.raises(DataError) as caught:
        runs.sample("test", FIVE_WAY, [np.random.default_rng(0)] * 2, [0, 1])
    assert str(caught.value) == (
        f"omniglot-runs: run02 in {folder} is 4-way with 4 test drawings, but run01 is 5-way with 5; "
        "every run must have the same shape (check run02/class_labels.txt)"
    )
    with pytest.raises(DataError, match=r"run02 in .* is 4-way"):
        source(folder).run(1)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ("", "omniglot-runs: run01/class_labels.txt in {folder} pairs no drawings; download all_runs.zip again"),
        (
            "run01/test/item01.png run01/training/class01.png\nrun01/test/item02.png run01/training/class01.png\n",
            "omniglot-runs: run01/class_labels.txt in {folder} line 2 names run01/training/class01.png again (first "
            "on line 1); each test drawing pairs with its own training drawing: download all_runs.zip again",
        ),
        (
            "run01/test/item01.png run01/training/class01.png\nrun01/test/item01.png run01/training/class02.png\n",
            "omniglot-runs: run01/class_labels.txt in {folder} line 2 names run01/test/item01.png again (first "
            "on line 1); each test drawing pairs with its own training drawing: download all_runs.zip again",
        ),
    ],
)
def test_labels_pairing_nothing_or_a_file_twice_are_refused(tmp_path: Path, labels: str, message: str) -> None:
    folder = write_runs(tmp_path / "runs", ways=5, runs=1)
    (folder / "run01" / "class_labels.txt").write_text(labels)
    with pytest.raises(DataError) as caught:
        source(folder).run(0)
    assert str(caught.value) == message.format(folder=folder)


def test_a_damaged_zip_member_is_refused_naming_it(tmp_path: Path) -> None:
    folder = write_runs(tmp_path / "runs", ways=5, runs=1, as_zip=True)
    archive = folder / "all_runs.zip"
    with zipfile.ZipFile(archive) as z:
        drawing = z.read("run01/training/class02.png")
    data = bytearray(archive.read_bytes())
    at = data.find(drawing) + len(drawing) // 2
    data[at] ^= 0xFF  # stored, not compressed: the bytes read back, their CRC does not match
    archive.write_bytes(bytes(data))
    with pytest.raises(DataError) as caught:
        source(folder).run(0)
    assert str(caught.value).startswith(f"omniglot-runs: run01/training/class02.png in {archive} is damaged (")
    assert str(caught.value).endswith("); download all_runs.zip again") and "\n" not in str(caught.value)
