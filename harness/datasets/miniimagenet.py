"""mini-ImageNet (Vinyals et al.; the 64/16/20-class split of Ravi & Larochelle) from a local directory.

The directory is the usual layout, which cannot be downloaded from here::

    ROOT/images/n0153282900000005.jpg ...
    ROOT/train.csv  ROOT/val.csv  ROOT/test.csv      (header ``filename,label``; label is a wnid)

Each split becomes a uint8 array ``[classes, examples, 3, 84, 84]`` with classes sorted by
wnid and examples in CSV order. Images not already 84x84 RGB are converted and resized
(Lanczos). The arrays are cached as ``.npy`` files under the cache directory, keyed by
the resolved data directory, the CSV contents and each listed image's size and time of
change, so a second open reads three files (and the images' metadata). Splits that share a
class, an image listed twice, or a name outside ``images/`` are refused. An image that is a
symbolic link is read where it leads, inside ``images/`` or not: mini-ImageNet is often put
together as links into a copy of ImageNet.

PIL is imported only when images have to be decoded.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import stat
import warnings
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from harness import atomic
from harness.datasets import CACHE_ENV
from harness.datasets import cache_dir as cache_folder
from harness.errors import DataError, describe

SPLITS = ("train", "val", "test")
IMAGE_SIZE = 84
ROOT_ENV = "HARNESS_MINIIMAGENET_DIR"
CACHE_VERSION = 1
"""Bump when the cached arrays change meaning; old cache files are then ignored."""

HINT = (
    "download the Ravi & Larochelle split (images/ + train.csv, val.csv, test.csv) "
    f"and pass --data root=DIR or set {ROOT_ENV}"
)


def resolve_root(root: Any) -> Path:
    """The data directory from the ``root`` option, else ``$HARNESS_MINIIMAGENET_DIR``; ``DataError`` if neither."""
    value = root if root not in (None, "") else os.environ.get(ROOT_ENV, "").strip() or None
    if value is None:
        raise DataError(f"mini-ImageNet directory not set: {HINT}")
    return Path(os.path.expanduser(str(value)))


def check_root(root: Path) -> None:
    """Raise ``DataError`` (one line) unless ``root`` holds ``images/`` and the three CSVs."""
    if not root.is_dir():
        raise DataError(f"mini-ImageNet not found at {root}: {HINT}")
    missing = [name for name in (*(f"{s}.csv" for s in SPLITS), "images/") if not (root / name.rstrip("/")).exists()]
    if missing:
        raise DataError(f"mini-ImageNet not found at {root} (missing {', '.join(missing)}): {HINT}")


def read_split_csv(root: Path, split: str) -> tuple[bytes, dict[str, list[str]]]:
    """Raw bytes of ``ROOT/<split>.csv`` and its files grouped by wnid (wnids sorted, files in CSV order)."""
    path = root / f"{split}.csv"
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8-sig")
    except OSError as exc:
        raise DataError(
            f"mini-ImageNet not found at {root} (cannot read {path.name}: {exc.strerror}): {HINT}"
        ) from None
    except UnicodeDecodeError as exc:
        raise DataError(
            f"mini-ImageNet {path} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
            "save it as UTF-8"
        ) from None
    rows = csv.reader(io.StringIO(text))
    try:
        header = [h.strip() for h in next(rows, [])]
        if header != ["filename", "label"]:
            raise DataError(
                f"mini-ImageNet {path} must start with the header 'filename,label', found {','.join(header)!r}: {HINT}"
            )
        by_class: dict[str, list[str]] = {}
        for line, row in enumerate(rows, start=2):
            if not row or not "".join(row).strip():
                continue
            if len(row) != 2 or not row[0].strip() or not row[1].strip():
                raise DataError(f"mini-ImageNet {path} line {line} is not 'filename,label': {','.join(row)!r}")
            name = row[0].strip()
            parts = PurePosixPath(name.replace("\\", "/")).parts
            if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
                raise DataError(
                    f"mini-ImageNet {path} line {line} names {name!r}, outside {root / 'images'}; list the names "
                    "of files in images/"
                )
            by_class.setdefault(row[1].strip(), []).append(name)
    except csv.Error as exc:
        raise DataError(f"mini-ImageNet {path} line {rows.line_num} is not CSV the harness reads ({exc})") from None
    if not by_class:
        raise DataError(f"mini-ImageNet {path} lists no images: {HINT}")
    return raw, {wnid: by_class[wnid] for wnid in sorted(by_class)}


def check_disjoint(classes: Mapping[str, Mapping[str, list[str]]]) -> None:
    """Refuse splits that share a class, or a file listed twice (in one split or two): the test classes must be
    unseen in training, and every example one image."""
    seen_class: dict[str, str] = {}
    seen_file: dict[str, str] = {}
    for split, by_class in classes.items():
        for wnid, names in by_class.items():
            if wnid in seen_class:
                raise DataError(
                    f"mini-ImageNet class {wnid} is in both {seen_class[wnid]}.csv and {split}.csv; each class "
                    "belongs to one split (the Ravi & Larochelle CSVs)"
                )
            seen_class[wnid] = split
            for name in names:
                if name in seen_file:
                    where = f"twice in {split}.csv" if seen_file[name] == split else (
                        f"in both {seen_file[name]}.csv and {split}.csv"
                    )  # fmt: skip
                    raise DataError(f"mini-ImageNet image {name} is listed {where}; list each image once")
                seen_file[name] = split


def _cache_path(cache_dir: Path, root: Path, split: str, raw_csv: bytes, images: list[os.stat_result]) -> Path:
    """The cache file of ``split``: keyed by the folder, the CSV and each listed image's size and time of change,
    so an image replaced, edited or deleted is noticed."""
    key = hashlib.sha256()
    key.update(f"v{CACHE_VERSION}\0{IMAGE_SIZE}\0{root.resolve()}\0{split}\0".encode())
    key.update(raw_csv)
    for info in images:
        key.update(f"{info.st_size}\0{info.st_mtime_ns}\0{info.st_ino}\0".encode())
    return cache_dir / "miniimagenet" / f"{split}-{key.hexdigest()[:20]}.npy"


def _image_path(root: Path, wnid: str, filename: str) -> Path:
    images = root / "images"
    path = images / filename
    if not path.exists() and (images / wnid / filename).exists():  # images/<wnid>/<file> variant
        return images / wnid / filename
    return path


def _load_image(path: Path) -> np.ndarray:
    """One image as uint8 ``[3, 84, 84]``: converted to RGB and resized (Lanczos) if needed."""
    from PIL import Image

    with Image.open(path) as im:
        rgb = im.convert("RGB")
    if rgb.size != (IMAGE_SIZE, IMAGE_SIZE):
        rgb = rgb.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.LANCZOS)
    return np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1)


def _stat_images(root: Path, split: str, paths: list[Path]) -> list[os.stat_result]:
    """Each listed image's ``os.stat``; a one-line ``DataError`` for one that is missing, not a file or unreadable."""
    where = f"(listed in {split}.csv)"
    infos = []
    for path in paths:
        try:
            info = path.stat()
        except FileNotFoundError:
            raise DataError(
                f"mini-ImageNet at {root} is incomplete: {path.name} {where} is missing from {root / 'images'}: {HINT}"
            ) from None
        except OSError as exc:  # a symlink loop, a folder it cannot enter
            raise DataError(f"mini-ImageNet image {path} {where} cannot be read ({describe(exc)})") from None
        if not stat.S_ISREG(info.st_mode):
            raise DataError(f"mini-ImageNet image {path} {where} is not a regular file; replace it with the image")
        infos.append(info)
    return infos


def _build_split(root: Path, split: str, paths: list[Path], classes: int, per_class: int) -> np.ndarray:
    from PIL import Image

    out = np.empty((len(paths), 3, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)

    def load(index: int) -> None:
        where = f"mini-ImageNet image {paths[index]} (listed in {split}.csv)"
        try:
            out[index] = _load_image(paths[index])
        except (Image.DecompressionBombWarning, Image.DecompressionBombError):
            raise DataError(
                f"{where} has more pixels than an image is decoded with ({Image.MAX_IMAGE_PIXELS:,}): a "
                "decompression bomb? Replace it with the image itself"
            ) from None
        except PermissionError as exc:
            raise DataError(f"{where} cannot be read ({describe(exc)}); check its permissions") from None
        except (OSError, ValueError, SyntaxError) as exc:  # PIL raises these for unreadable files
            raise DataError(f"{where} cannot be read ({describe(exc)}); re-download it: {HINT}") from None

    workers = max(1, min(8, os.cpu_count() or 1))
    with warnings.catch_warnings():  # an image past PIL's limit is refused, not decoded with a warning
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for _ in pool.map(load, range(len(paths))):  # PIL decodes and resizes with the GIL released
                pass
    return out.reshape(classes, per_class, 3, IMAGE_SIZE, IMAGE_SIZE)


def _read_cache(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if array.dtype != np.uint8 or array.shape != shape:
        return None
    return array


def _write_cache(path: Path, array: np.ndarray) -> None:
    """Write ``array`` to ``path`` atomically; a cache that cannot be written is a warning, not an error."""
    try:
        atomic.write_array(path, array)
    except OSError as exc:
        warnings.warn(
            f"mini-ImageNet: could not write cache {path} ({exc.strerror or exc}); set cache_dir or "
            f"{CACHE_ENV} to a writable folder to avoid decoding the images on every open",
            stacklevel=3,
        )


def load_split(root: Path, split: str, cache_dir: Path, csv_file: tuple[bytes, dict[str, list[str]]]) -> np.ndarray:
    """Split ``split`` (``csv_file``: its ``read_split_csv``) as uint8 ``[classes, examples, 3, 84, 84]``, from the
    cache when it is there and its images are unchanged.

    Classes are sorted by wnid. If classes list different numbers of images (600 each in
    the real data) every class is cut to the smallest count, with a warning naming that class.
    """
    raw, classes = csv_file
    counts = {wnid: len(names) for wnid, names in classes.items()}
    smallest = min(counts, key=lambda wnid: counts[wnid])
    per_class = counts[smallest]
    if per_class != max(counts.values()):
        warnings.warn(
            f"mini-ImageNet {split}.csv: classes have {per_class} to {max(counts.values())} images ({smallest} has "
            f"{per_class}); using the first {per_class} of each class",
            stacklevel=2,
        )
    paths = [_image_path(root, wnid, name) for wnid, names in classes.items() for name in names[:per_class]]
    shape = (len(classes), per_class, 3, IMAGE_SIZE, IMAGE_SIZE)
    path = _cache_path(cache_dir, root, split, raw, _stat_images(root, split, paths))
    cached = _read_cache(path, shape) if path.is_file() else None
    if cached is not None:
        return cached
    array = _build_split(root, split, paths, len(classes), per_class)
    _write_cache(path, array)
    return array


def load_splits(root: Path, cache_dir: Path) -> dict[str, np.ndarray]:
    """All three splits (see ``load_split``) after checking the directory is complete and the splits disjoint."""
    check_root(root)
    csv_files = {split: read_split_csv(root, split) for split in SPLITS}
    check_disjoint({split: by_class for split, (_, by_class) in csv_files.items()})
    return {split: load_split(root, split, cache_dir, csv_files[split]) for split in SPLITS}


def load_from_options(options: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The splits for a dataset's ``root`` and ``cache_dir`` options (with their environment fallbacks)."""
    return load_splits(resolve_root(options.get("root")), cache_folder(options.get("cache_dir")))
