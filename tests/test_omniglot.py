"""Omniglot plugin on the real archives (HARNESS_OMNIGLOT_DIR, else ../shared/data/omniglot).

The first run builds the tfds dataset and the 28x28 and 20x20 caches (about half a
minute); set HARNESS_CACHE_DIR to share that cache between runs and tox environments.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import OMNIGLOT_DIR, rngs

from harness.datasets import omniglot as loader
from harness.datasets.make_splits import make_splits
from harness.episodes import EpisodeKind, EpisodeSettings, LabelEncoding
from harness.errors import ConfigError, DataError
from harness.plugins import PluginHost

DATA = OMNIGLOT_DIR

pytestmark = [
    pytest.mark.omniglot,
    pytest.mark.skipif(
        not all((DATA / name).is_file() for name in loader.ARCHIVES.values()),
        reason=f"Omniglot archives not found in {DATA}; set {loader.ROOT_ENV} to the folder holding them",
    ),
]

SEQUENCE = EpisodeSettings(EpisodeKind.SEQUENCE, ways=5, instances=10)
STRING = EpisodeSettings(EpisodeKind.SEQUENCE, ways=5, instances=10, labels=LabelEncoding.STRING)
FEWSHOT = EpisodeSettings(EpisodeKind.FEWSHOT, ways=5, shots=1, queries=2)


@pytest.fixture(scope="session")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    shared = os.environ.get(loader.CACHE_ENV)
    return Path(shared) if shared else tmp_path_factory.mktemp("omniglot-cache")


@pytest.fixture(scope="session")
def spec():
    return PluginHost(autoload=False, modules=[]).datasets.get("omniglot")


@pytest.fixture(scope="session")
def open_source(spec, cache: Path):
    """``open_source(**options)``: the plugin's factory on the real archives and the session cache."""
    pytest.importorskip("tensorflow_datasets")

    def opener(**options):
        return spec.factory({**spec.options, "root": str(DATA), "cache_dir": str(cache), **options})

    return opener


@pytest.fixture(scope="session")
def papers(open_source):
    return open_source()


@pytest.fixture(scope="session")
def all_images(open_source, cache: Path) -> tuple[np.ndarray, list[str]]:
    open_source()  # built once
    return loader.load_images(loader.find_archives(str(DATA), loader.cache_root(cache)), 28, loader.cache_root(cache))


def one_line_error(exc_info: pytest.ExceptionInfo) -> str:
    message = str(exc_info.value)
    assert "\n" not in message
    return message


# -- content and splits -------------------------------------------------------------------


def test_counts(all_images) -> None:
    images, names = all_images
    assert images.shape == (1623, 20, 1, 28, 28) and images.dtype == np.uint8
    assert names == sorted(set(names)) and len(names) == 1623
    assert len({name.split("/")[0] for name in names}) == 50


def test_split_files() -> None:
    lake_bg, lake_ev = loader.read_split("lake_background"), loader.read_split("lake_evaluation")
    train, val, test = (loader.read_split(f"papers_{s}") for s in ("train", "val", "test"))
    assert (len(lake_bg), len(lake_ev)) == (964, 659) and not set(lake_bg) & set(lake_ev)
    assert (len(train), len(val), len(test)) == (1100, 100, 423)
    assert len(set(train) | set(val)) == 1200
    assert not set(train) & set(test) and not set(val) & set(test) and not set(train) & set(val)
    assert set(train) | set(val) | set(test) == set(lake_bg) | set(lake_ev)


def test_split_files_are_what_make_splits_writes() -> None:
    written = make_splits(DATA)
    assert written == {name: loader.read_split(name) for name in written}


def test_schemes(papers, open_source) -> None:
    assert [papers.num_classes(s) for s in ("train", "val", "test")] == [4400, 400, 1692]
    lake = open_source(scheme="lake")
    assert (lake.num_classes("train"), lake.num_classes("test"), lake.rotations) == (964, 659, False)
    with pytest.raises(ConfigError, match="no split 'val'"):
        lake.check("val", FEWSHOT)


def test_splits_hold_their_characters(papers, all_images) -> None:
    images, names = all_images
    index = {name: i for i, name in enumerate(names)}
    for split in ("train", "val", "test"):
        rows = [index[c] for c in loader.read_split(f"papers_{split}")]
        np.testing.assert_array_equal(papers.splits[split], images[rows])


# -- episodes -----------------------------------------------------------------------------


@pytest.mark.parametrize("settings", [SEQUENCE, FEWSHOT], ids=["sequence", "fewshot"])
def test_determinism(papers, settings: EpisodeSettings) -> None:
    first, again, other = (papers.sample("train", settings, rngs(seed)) for seed in (1, 1, 2))
    images = "images" if settings.kind is EpisodeKind.SEQUENCE else "query_images"
    np.testing.assert_array_equal(getattr(first, images), getattr(again, images))
    np.testing.assert_array_equal(first.targets, again.targets)
    assert not np.array_equal(getattr(first, images), getattr(other, images))


def test_label_offset(papers) -> None:
    batch = papers.sample("train", SEQUENCE, rngs(3))
    assert batch.images.shape == (4, 50, 1, 28, 28)
    np.testing.assert_array_equal(batch.codes.argmax(-1), batch.targets)
    np.testing.assert_array_equal(batch.previous_codes[:, 0], 0)
    np.testing.assert_array_equal(batch.previous_codes[:, 1:], batch.codes[:, :-1])


def test_string_labels(papers) -> None:
    batch = papers.sample("test", STRING, rngs(4))
    assert batch.codes.shape == (4, 50, 25)
    np.testing.assert_array_equal(batch.codes.reshape(4, 50, 5, 5).sum(-1), 1)
    for classes, targets in zip(batch.classes, batch.targets, strict=True):
        label_of = {int(c): int(t) for c, t in zip(classes, targets, strict=True)}
        assert len(label_of) == 5 and len(set(label_of.values())) == 5
        assert all(label_of[int(c)] == int(t) for c, t in zip(classes, targets, strict=True))


def test_rotations_are_distinct_classes(papers) -> None:
    base = papers.splits["test"][:, :, 0]
    lookup = {image.tobytes(): c for c, drawings in enumerate(base) for image in drawings}
    turns_seen = set()
    for seed in range(10):
        batch = papers.sample("test", FEWSHOT, rngs(seed, 8))
        images = np.concatenate([batch.support_images, batch.query_images], axis=1)
        targets = np.concatenate([batch.support_targets, batch.query_targets], axis=1)
        for episode_images, episode_targets in zip(images, targets, strict=True):
            found: dict[int, set[tuple[int, int]]] = {}
            for image, target in zip(episode_images[:, 0], episode_targets, strict=True):
                pixels = np.rint(image * 255).astype(np.uint8)
                matches = {(lookup[key], k) for k in range(4) if (key := np.rot90(pixels, -k).tobytes()) in lookup}
                assert matches, "every image is a drawing of the split rotated by a multiple of 90 degrees"
                found[int(target)] = found.get(int(target), matches) & matches
            assert all(found.values()), "all images of one class share its base character and rotation"
            turns_seen |= {k for pairs in found.values() for _, k in pairs}
    assert turns_seen == {0, 1, 2, 3}


def test_pixels_strokes_bright(papers) -> None:
    images = papers.sample("train", FEWSHOT, rngs(5)).support_images
    assert images.dtype == np.float32 and images.min() == 0.0 and images.max() == 1.0
    assert np.median(images) == 0.0 and images.mean() < 0.2


def test_mann_size(open_source) -> None:
    source = open_source(image_size=20)
    assert source.input_shape() == (1, 20, 20)
    assert source.sample("train", SEQUENCE, rngs(6)).images.shape == (4, 50, 1, 20, 20)


# -- cache --------------------------------------------------------------------------------


def test_cached_open_does_not_build(open_source, monkeypatch: pytest.MonkeyPatch) -> None:
    open_source()

    def no_build(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(loader, "build_cache", no_build)
    assert open_source().num_classes("test") == 1692


def test_cached_open_imports_neither_tfds_nor_pil(open_source, cache: Path) -> None:
    open_source()
    code = (
        "import sys; from harness.datasets.omniglot import open_omniglot; "
        f"open_omniglot({{'root': {str(DATA)!r}, 'cache_dir': {str(cache)!r}}}); "
        "print(sorted(m for m in ('tensorflow_datasets', 'PIL') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_plugin_import_is_light() -> None:
    code = (
        "import sys, harness.builtins.omniglot; "
        "print(sorted(m for m in ('tensorflow_datasets', 'PIL', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- errors -------------------------------------------------------------------------------


@pytest.fixture
def open_in(spec, tmp_path: Path):
    """``open_in(folder, **options)``: the factory on ``folder`` with an empty cache."""

    def opener(folder: Path | None, **options):
        root = None if folder is None else str(folder)
        return spec.factory({**spec.options, "root": root, "cache_dir": str(tmp_path / "cache"), **options})

    return opener


def with_evaluation(tmp_path: Path, data: bytes) -> Path:
    """A folder with the real background archive and ``data`` as images_evaluation.zip."""
    folder = tmp_path / "omniglot"
    folder.mkdir()
    (folder / "images_background.zip").symlink_to(DATA / "images_background.zip")
    (folder / "images_evaluation.zip").write_bytes(data)
    return folder


def test_missing_directory(open_in, tmp_path: Path) -> None:
    with pytest.raises(DataError) as exc:
        open_in(tmp_path / "nowhere")
    assert "does not exist" in one_line_error(exc) and loader.ROOT_ENV in str(exc.value)


def test_an_archive_given_as_the_directory_is_named_as_a_file(open_in, tmp_path: Path) -> None:
    with pytest.raises(DataError) as exc:
        open_in(DATA / "images_background.zip")
    assert "images_background.zip is a file, not the folder of the archives" in one_line_error(exc)


def test_missing_archive(open_in, tmp_path: Path) -> None:
    folder = tmp_path / "omniglot"
    folder.mkdir()
    (folder / "images_background.zip").symlink_to(DATA / "images_background.zip")
    with pytest.raises(DataError) as exc:
        open_in(folder)
    assert one_line_error(exc).startswith(f"images_evaluation.zip is missing from {folder}; download it from https")


@pytest.mark.parametrize(
    "damage",
    [lambda data: data[: len(data) // 2], lambda data: bytes(np.random.default_rng(0).integers(0, 256, 4096))],
    ids=["truncated", "garbage"],
)
def test_broken_archive(open_in, tmp_path: Path, damage) -> None:
    pytest.importorskip("tensorflow_datasets")
    folder = with_evaluation(tmp_path, damage((DATA / "images_evaluation.zip").read_bytes()))
    with pytest.raises(DataError) as exc:
        open_in(folder)
    message = one_line_error(exc)
    assert message.startswith(f"images_evaluation.zip in {folder} is truncated or corrupt (BadZipFile")
    assert message.endswith("images_evaluation.zip and put it there")


def test_bad_crc(open_in, tmp_path: Path) -> None:
    pytest.importorskip("tensorflow_datasets")
    data = bytearray((DATA / "images_evaluation.zip").read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)
    with pytest.raises(DataError) as exc:
        open_in(with_evaluation(tmp_path, bytes(data)))
    assert "images_evaluation.zip" in one_line_error(exc) and "corrupt" in str(exc.value)


def test_wrong_content(open_in, tmp_path: Path) -> None:
    pytest.importorskip("tensorflow_datasets")
    folder = with_evaluation(tmp_path, (DATA / "images_background_small1.zip").read_bytes())
    with pytest.raises(DataError) as exc:
        open_in(folder)
    assert "holds 5 alphabets" in one_line_error(exc)


def test_no_tfds(open_in, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    with pytest.raises(DataError, match=r"^Omniglot needs tensorflow-datasets: pip install 'harness\[omniglot\]'$"):
        open_in(DATA)


def test_offline_without_directory(open_in, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(loader.ROOT_ENV, raising=False)
    monkeypatch.setattr(loader, "DOWNLOAD_ADDRESS", ("127.0.0.1", 9))  # refused at once
    with pytest.raises(DataError) as exc:
        open_in(None)
    assert "unreachable" in one_line_error(exc) and loader.ROOT_ENV in str(exc.value)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"image_size": 0}, "image_size must be an integer from 1 to 105"),
        ({"image_size": "28"}, "image_size must be an integer"),
        ({"image_size": True}, "image_size must be an integer"),
        ({"scheme": "vinyals"}, "scheme must be one of papers, lake, got 'vinyals'"),
    ],
)
def test_bad_options(open_in, options, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        open_in(DATA, **options)


# -- end to end ---------------------------------------------------------------------------


def test_harness_run_knn_on_omniglot_end_to_end(papers, cache: Path, tmp_path: Path) -> None:
    args = ["run", "--model", "knn", "--dataset", "omniglot", "--kind", "sequence", "--data", "image_size=20"]
    args += ["--data-dir", str(DATA), "--data", f"cache_dir={cache}", "--eval-episodes", "48", "--out", str(tmp_path)]
    result = subprocess.run([sys.executable, "-m", "harness", *args, "--no-progress"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "knn on omniglot (5-way x10 onehot), 0 episodes trained" in result.stdout
    record = (tmp_path / "knn-omniglot-sequence-5w10i-onehot-seed0" / "record.json").read_text()
    assert '"root"' not in record and '"image_size": 20' in record
