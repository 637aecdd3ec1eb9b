"""Building the Omniglot cache from small fake archives: what it says, and what a failed build leaves.

The loader's expected content (Lake's 1,623 characters, 20 drawings each) is shrunk to
three characters of two drawings, so a build takes a second and needs no real archives.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from harness.datasets import omniglot as loader
from harness.errors import DataError

pytest.importorskip("tensorflow_datasets")
Image = pytest.importorskip("PIL.Image")

CHARACTERS = {"background": ["Alpha/character01", "Alpha/character02"], "evaluation": ["Beta/character01"]}
BAD = "images_evaluation/Beta/character01/0002_02.png"


@pytest.fixture(autouse=True)
def small_omniglot(monkeypatch: pytest.MonkeyPatch) -> None:
    """The loader expects the fake archives' three characters of two drawings."""
    monkeypatch.setattr(loader, "EXPECTED", {split: (1, len(names)) for split, names in CHARACTERS.items()})
    monkeypatch.setattr(loader, "DRAWINGS", 2)
    monkeypatch.setattr(loader, "read_split", lambda name: CHARACTERS[name.removeprefix("lake_")])


def png(size: int = loader.SOURCE_SIZE) -> bytes:
    """A drawing: a black stroke on white, as Omniglot's PNGs are."""
    pixels = np.full((size, size), 255, dtype=np.uint8)
    pixels[10:20, :] = 0
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert("1").save(buffer, format="PNG")
    return buffer.getvalue()


def make_archives(folder: Path, bad: bytes | None = None) -> dict[str, Path]:
    """The two fake archives in ``folder``; ``bad`` replaces the drawing ``BAD``."""
    folder.mkdir(parents=True, exist_ok=True)
    archives = {}
    for split, name in loader.ARCHIVES.items():
        archives[split] = folder / name
        with zipfile.ZipFile(archives[split], "w") as archive:
            for character in CHARACTERS[split]:
                for drawing in (1, 2):
                    member = f"images_{split}/{character}/{drawing:04d}_{drawing:02d}.png"
                    archive.writestr(member, bad if member == BAD and bad is not None else png())
    return archives


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        (b"not an image", "is not a readable PNG (UnidentifiedImageError: "),
        (png()[:60], "is not a readable PNG (OSError: "),
        (png(50), "is 50x50 pixels, not 105x105"),
    ],
    ids=["garbage", "truncated", "wrong-size"],
)
def test_a_bad_drawing_is_named_and_the_failed_build_leaves_nothing(tmp_path: Path, bad: bytes, problem: str) -> None:
    cache = tmp_path / "cache" / "omniglot"
    archives = make_archives(tmp_path / "data", bad)
    with pytest.raises(DataError) as exc:
        loader.load_images(archives, 8, cache)
    message = str(exc.value)
    assert "\n" not in message and "cache_dir" not in message
    assert message.startswith(f"{BAD} in {archives['evaluation']} {problem}")
    assert message.endswith(
        "download images_evaluation.zip again from " + loader.URL + "images_evaluation.zip and put it there"
    )
    assert not list(cache.rglob("*")), "the partial cache and its lock are removed"
    make_archives(tmp_path / "data")  # fixed
    images, names = loader.load_images(archives, 8, cache)
    assert images.shape == (3, 2, 1, 8, 8) and names == sorted(n for names in CHARACTERS.values() for n in names)


def test_a_build_says_what_it_does_and_tfds_says_nothing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    archives = make_archives(tmp_path / "data")
    images, _ = loader.load_images(archives, 8, tmp_path / "cache")
    out, err = capsys.readouterr()
    assert out == "" and "Downloading and preparing" not in err
    folder = tmp_path / "cache" / loader.fingerprint(archives)
    assert err.startswith(f"harness: building the Omniglot cache in {folder} from {tmp_path / 'data'} (once for ")
    assert err.count("\n") == 1
    assert images[:, :, 0, 1].min() > 0 and images[:, :, 0, 3:].max() == 0, "the stroke, bright on dark"
    assert not (folder / ".lock").exists()
    loader.load_images(archives, 8, tmp_path / "cache")
    assert capsys.readouterr() == ("", ""), "a cached open says nothing"


def test_an_archive_far_larger_than_lakes_is_refused_unread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archives = make_archives(tmp_path / "data")
    monkeypatch.setattr(loader, "ARCHIVE_MAX_BYTES", 100)
    with pytest.raises(DataError, match=r"images_[a-z]+.zip is [0-9,]+ bytes, not Lake's archive \(under 10 MB\)"):
        loader.find_archives(str(tmp_path / "data"), tmp_path / "cache")
    monkeypatch.setattr(loader, "ARCHIVE_MAX_BYTES", 100 * 2**20)
    assert loader.find_archives(str(tmp_path / "data"), tmp_path / "cache") == archives
