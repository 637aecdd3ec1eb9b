"""mini-ImageNet plugin: a tiny fake copy in the real layout (JPEGs + filename,label CSVs)."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from harness.datasets import miniimagenet as loader
from harness.episodes import EpisodeKind, EpisodeSettings, FewShotBatch, SequenceBatch
from harness.errors import ConfigError, DataError
from harness.plugins import PluginHost

pytest.importorskip("PIL")

CLASSES = {"train": 6, "val": 3, "test": 3}
PER_CLASS = 8


def make_fake(root: Path, per_class: dict[str, int] | None = None, size: tuple[int, int] = (100, 90)) -> None:
    """Random JPEGs (``size`` = width, height) under ``root/images`` and the three CSVs, wnids shuffled in the CSV."""
    from PIL import Image

    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    wnid = 1532829
    for split, n in CLASSES.items():
        rows = []
        for _ in range(n):
            wnid += 1000
            label = f"n{wnid:08d}"
            for i in range(per_class.get(label, PER_CLASS) if per_class else PER_CLASS):
                name = f"{label}{i + 1:08d}.jpg"
                pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / "images" / name, quality=90)
                rows.append(f"{name},{label}")
        rng.shuffle(rows)  # the loader sorts classes itself
        (root / f"{split}.csv").write_text("filename,label\n" + "\n".join(rows) + "\n")


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mini") / "miniimagenet"
    make_fake(root)
    return root


@pytest.fixture
def spec():
    return PluginHost(autoload=False).datasets.get("miniimagenet")


def open_source(spec, root: Path, cache: Path):
    return spec.factory({**spec.options, "root": str(root), "cache_dir": str(cache)})


def test_registered_with_options(spec) -> None:
    assert spec.splits == ("train", "val", "test")
    assert set(spec.episode_kinds) == {EpisodeKind.FEWSHOT, EpisodeKind.SEQUENCE}
    assert dict(spec.options) == {"root": None, "cache_dir": None}


def test_counts_shapes_and_class_order(spec, fake_root: Path, tmp_path: Path) -> None:
    source = open_source(spec, fake_root, tmp_path)
    assert source.input_shape() == (3, 84, 84)
    for split, n in CLASSES.items():
        array = source.splits[split]
        assert array.shape == (n, PER_CLASS, 3, 84, 84)
        assert array.dtype == np.uint8
        assert source.num_classes(split) == n
    # classes sorted by wnid, examples in CSV order: compare with a direct decode of one file
    _, by_class = loader.read_split_csv(fake_root, "val")
    assert list(by_class) == sorted(by_class)
    wnid = list(by_class)[1]
    first = by_class[wnid][0]
    np.testing.assert_array_equal(source.splits["val"][1, 0], loader._load_image(fake_root / "images" / first))


def test_episodes_sample_in_unit_range_and_deterministically(spec, fake_root: Path, tmp_path: Path) -> None:
    source = open_source(spec, fake_root, tmp_path)
    fewshot = EpisodeSettings(EpisodeKind.FEWSHOT, ways=5, shots=1, queries=2)
    source.check("train", fewshot)

    def draw(src, settings, split="train"):
        return src.sample(split, settings, [np.random.default_rng([7, i]) for i in range(4)])

    batch = draw(source, fewshot)
    assert isinstance(batch, FewShotBatch)
    assert batch.support_images.shape == (4, 5, 3, 84, 84)
    assert batch.query_images.shape == (4, 10, 3, 84, 84)
    assert batch.support_images.dtype == np.float32
    for images in (batch.support_images, batch.query_images):
        assert images.min() >= 0.0 and images.max() <= 1.0
        assert images.max() > 0.5  # not all black: pixels really were decoded
    again = draw(open_source(spec, fake_root, tmp_path), fewshot)
    np.testing.assert_array_equal(batch.support_images, again.support_images)
    np.testing.assert_array_equal(batch.query_targets, again.query_targets)

    sequence = EpisodeSettings(EpisodeKind.SEQUENCE, ways=3, instances=4)
    source.check("test", sequence)
    seq = draw(source, sequence, "test")
    assert isinstance(seq, SequenceBatch)
    assert seq.images.shape == (4, 12, 3, 84, 84)
    assert seq.images.min() >= 0.0 and seq.images.max() <= 1.0


def test_too_many_ways_is_one_line_config_error(spec, fake_root: Path, tmp_path: Path) -> None:
    source = open_source(spec, fake_root, tmp_path)
    with pytest.raises(ConfigError) as info:
        source.check("test", EpisodeSettings(EpisodeKind.FEWSHOT, ways=5, shots=1))
    message = str(info.value)
    assert "\n" not in message
    assert "ways" in message and "3 classes" in message


def test_cache_is_written_once_and_reused(spec, fake_root: Path, tmp_path: Path, monkeypatch) -> None:
    first = open_source(spec, fake_root, tmp_path)
    files = sorted((tmp_path / "miniimagenet").glob("*.npy"))
    assert [f.name.split("-")[0] for f in files] == ["test", "train", "val"]
    assert not list((tmp_path / "miniimagenet").glob(".*"))  # no temporary files left behind
    mtimes = [f.stat().st_mtime_ns for f in files]

    def no_decoding(path):
        raise AssertionError(f"decoded {path} although the cache was there")

    monkeypatch.setattr(loader, "_load_image", no_decoding)
    second = open_source(spec, fake_root, tmp_path)
    assert [f.stat().st_mtime_ns for f in files] == mtimes
    for split in CLASSES:
        np.testing.assert_array_equal(first.splits[split], second.splits[split])


def test_corrupt_cache_is_rebuilt(spec, fake_root: Path, tmp_path: Path) -> None:
    first = open_source(spec, fake_root, tmp_path)
    victim = next((tmp_path / "miniimagenet").glob("val-*.npy"))
    victim.write_bytes(b"not an npy file")
    second = open_source(spec, fake_root, tmp_path)
    np.testing.assert_array_equal(first.splits["val"], second.splits["val"])
    assert np.load(victim).shape == (3, PER_CLASS, 3, 84, 84)


def test_root_and_cache_from_environment(spec, fake_root: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HARNESS_MINIIMAGENET_DIR", str(fake_root))
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "envcache"))
    source = spec.factory(dict(spec.options))
    assert source.splits["train"].shape[0] == 6
    assert len(list((tmp_path / "envcache" / "miniimagenet").glob("*.npy"))) == 3


def test_already_84_images_are_not_resized(tmp_path: Path) -> None:
    from PIL import Image

    pixels = np.random.default_rng(1).integers(0, 256, (84, 84, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    np.testing.assert_array_equal(loader._load_image(tmp_path / "a.png"), pixels.transpose(2, 0, 1))


def test_unequal_counts_take_the_minimum_with_a_warning(spec, tmp_path: Path) -> None:
    root = tmp_path / "uneven"
    make_fake(root, per_class={"n01535829": 5})  # first train class has 5 images, the rest 8
    with pytest.warns(UserWarning, match=r"\(n01535829 has 5\); using the first 5 of each class"):
        source = open_source(spec, root, tmp_path / "cache")
    assert source.splits["train"].shape == (6, 5, 3, 84, 84)
    assert source.splits["val"].shape == (3, PER_CLASS, 3, 84, 84)


def _one_line_data_error(spec, root: Path, cache: Path) -> str:
    with pytest.raises(DataError) as info:
        open_source(spec, root, cache)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_directory(spec, tmp_path: Path) -> None:
    message = _one_line_data_error(spec, tmp_path / "nowhere", tmp_path / "cache")
    assert str(tmp_path / "nowhere") in message
    assert "train.csv" in message and "images/" in message
    assert "root=" in message and "HARNESS_MINIIMAGENET_DIR" in message


def test_root_not_set(spec, monkeypatch) -> None:
    monkeypatch.delenv("HARNESS_MINIIMAGENET_DIR", raising=False)
    with pytest.raises(DataError, match="HARNESS_MINIIMAGENET_DIR") as info:
        spec.factory(dict(spec.options))
    assert "\n" not in str(info.value)


def test_missing_csv(spec, tmp_path: Path) -> None:
    root = tmp_path / "mini"
    make_fake(root)
    (root / "val.csv").unlink()
    message = _one_line_data_error(spec, root, tmp_path / "cache")
    assert "missing val.csv" in message and "HARNESS_MINIIMAGENET_DIR" in message


def test_missing_image_file(spec, tmp_path: Path) -> None:
    root = tmp_path / "mini"
    make_fake(root)
    victim = sorted((root / "images").glob("*.jpg"))[10]
    victim.unlink()
    message = _one_line_data_error(spec, root, tmp_path / "cache")
    assert victim.name in message and "incomplete" in message


def test_corrupt_image_file(spec, tmp_path: Path) -> None:
    root = tmp_path / "mini"
    make_fake(root)
    victim = sorted((root / "images").glob("*.jpg"))[3]
    victim.write_bytes(b"\xff\xd8 truncated")
    message = _one_line_data_error(spec, root, tmp_path / "cache")
    assert victim.name in message and "cannot be read" in message


def test_bad_csv_header(spec, tmp_path: Path) -> None:
    root = tmp_path / "mini"
    make_fake(root)
    text = (root / "test.csv").read_text().replace("filename,label", "file,wnid", 1)
    (root / "test.csv").write_text(text)
    message = _one_line_data_error(spec, root, tmp_path / "cache")
    assert "filename,label" in message


def test_import_pulls_in_neither_pil_nor_torch() -> None:
    code = (
        "import sys, harness.builtins.miniimagenet, harness.datasets.miniimagenet; "
        "bad = [m for m in ('PIL', 'torch') if m in sys.modules]; "
        "sys.exit(f'imported {bad}' if bad else 0)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_no_warnings_for_equal_counts(spec, fake_root: Path, tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        open_source(spec, fake_root, tmp_path)


def test_the_cache_notices_an_image_replaced_or_deleted(spec, tmp_path: Path) -> None:
    from PIL import Image

    root = tmp_path / "mini"
    make_fake(root)
    first = open_source(spec, root, tmp_path / "cache")
    _, by_class = loader.read_split_csv(root, "test")
    wnid = next(iter(by_class))
    Image.new("RGB", (84, 84), (7, 7, 7)).save(root / "images" / by_class[wnid][0], format="JPEG")
    second = open_source(spec, root, tmp_path / "cache")
    assert not np.array_equal(first.splits["test"][0, 0], second.splits["test"][0, 0])
    np.testing.assert_array_equal(first.splits["test"][1:], second.splits["test"][1:])
    (root / "images" / by_class[wnid][1]).unlink()
    assert "incomplete" in _one_line_data_error(spec, root, tmp_path / "cache")


def _edit_csv(root: Path, split: str, edit) -> None:
    (root / f"{split}.csv").write_bytes(edit((root / f"{split}.csv").read_bytes()))


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda root: (root / "test.csv").write_bytes((root / "train.csv").read_bytes()), "is in both train.csv and"),
        (
            lambda root: _edit_csv(root, "val", lambda raw: raw + raw.splitlines(keepends=True)[1]),
            "is listed twice in val.csv; list each image once",
        ),
        (
            lambda root: _edit_csv(root, "val", lambda raw: raw + b"../outside.jpg,n09999999\n"),
            "names '../outside.jpg', outside",
        ),
        (
            lambda root: _edit_csv(root, "val", lambda raw: raw + b"/etc/passwd,n09999999\n"),
            "names '/etc/passwd', outside",
        ),
        (lambda root: _edit_csv(root, "val", lambda raw: raw + "caf\u00e9.jpg,n09".encode("latin-1")), "not UTF-8"),
        (
            lambda root: _edit_csv(root, "val", lambda raw: raw + b'"' + b"x" * 200_000 + b'",n09\n'),
            "is not CSV the harness reads (field larger than field limit",
        ),
    ],
)
def test_splits_that_share_classes_or_images_or_reach_outside_are_refused(spec, tmp_path: Path, edit, problem):
    root = tmp_path / "mini"
    make_fake(root)
    edit(root)
    assert problem in _one_line_data_error(spec, root, tmp_path / "cache")
    assert not (tmp_path / "cache").exists(), "refused before any image is decoded"


@pytest.mark.parametrize("limit", [5000, 4000])  # a 100x90 image: over the limit (PIL warns), over twice (PIL raises)
def test_an_image_with_more_pixels_than_the_limit_is_refused_naming_it(spec, tmp_path, monkeypatch, limit):
    from PIL import Image

    root = tmp_path / "mini"
    make_fake(root)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    message = _one_line_data_error(spec, root, tmp_path / "cache")
    assert f"has more pixels than an image is decoded with ({limit:,}): a decompression bomb?" in message
    assert "(listed in train.csv)" in message


def test_an_image_that_is_a_folder_is_named_as_such(spec, tmp_path: Path) -> None:
    root = tmp_path / "mini"
    make_fake(root)
    victim = sorted((root / "images").glob("*.jpg"))[4]
    victim.unlink()
    victim.mkdir()
    assert f"{victim} (listed in" in (message := _one_line_data_error(spec, root, tmp_path / "cache"))
    assert "is not a regular file; replace it with the image" in message
