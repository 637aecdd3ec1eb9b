"""Omniglot (Lake et al. 2015) from its zip archives, through tensorflow-datasets without TensorFlow.

The data directory (option ``root``, else ``$HARNESS_OMNIGLOT_DIR``) holds Lake's
``images_background.zip`` and ``images_evaluation.zip``. With neither set, the two
archives are downloaded with tensorflow-datasets' download manager, as the stock tfds
``omniglot`` builder would.

The first open checks the archives' content (30 + 20 alphabets, 964 + 659 characters, 20
drawings each, CRCs), packs them into array_record files with the ``harness_omniglot``
tfds builder (``omniglot_builder.py``), decodes them, shrinks the 105x105 drawings to
``image_size`` by area averaging and stores them as one uint8 ``.npy`` file per size,
strokes bright (255) on a dark (0) background: 13 MB of tfds files once, then
1,623 x 20 x size^2 bytes per size (25 MB at 28, 358 MB at 105). It says so on stderr
first. A build that fails names what is wrong (say the archive member that is no readable
PNG) and, when it was the first, removes its folder. Later opens read the ``.npy`` file
(about a second). Everything lives under ``<cache>/omniglot/<archives' sha256>/``, where
``<cache>`` is the option ``cache_dir``, else ``$HARNESS_CACHE_DIR``, else
``~/.cache/harness``; delete that folder to clear the cache.

Classes are characters in sorted ``Alphabet/characterNN`` order. The character splits
are data files in ``splits/`` (see ``make_splits.py``):

* ``papers`` (default): 1,200 training characters as in Santoro et al. and Vinyals et al.,
  of which 100 are ``val`` and 1,100 ``train``; the other 423 are ``test``. Every character
  also appears rotated by 90, 180 and 270 degrees as three more classes.
* ``lake``: Lake's split, ``train`` = the 964 background characters, ``test`` = the 659
  evaluation characters, no rotations and no ``val`` split (all background characters train).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import socket
import sys
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from importlib import resources
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from harness import atomic
from harness.config import did_you_mean
from harness.datasets import CACHE_ENV
from harness.datasets import cache_dir as cache_folder
from harness.errors import ConfigError, DataError, describe
from harness.sampling import ArrayEpisodeSource

ROOT_ENV = "HARNESS_OMNIGLOT_DIR"
URL = "https://github.com/brendenlake/omniglot/raw/master/python/"
DOWNLOAD_ADDRESS = ("github.com", 443)
"""Probed before downloading so that an offline machine fails at once, not after minutes of retries."""

ARCHIVES = {"background": "images_background.zip", "evaluation": "images_evaluation.zip"}
"""tfds split name -> archive file name."""
EXPECTED = {"background": (30, 964), "evaluation": (20, 659)}
"""tfds split -> (alphabets, characters) the archive must hold."""
DRAWINGS = 20
ARCHIVE_MAX_BYTES = 100 * 2**20
"""The largest archive read: Lake's are 8.5 and 5.8 MB, so a far larger file is another one (read, it would only
cost minutes and gigabytes before its content is refused)."""
CACHE_VERSION = 1
"""Part of the cache key: bump it when the cached arrays change meaning, and old caches are ignored."""
SOURCE_SIZE = 105
TFDS_BYTES = 13_300_000
"""Size of the tfds dataset a first build writes (the drawings' PNGs), as measured on the real archives."""
SCHEMES: dict[str, dict[str, str]] = {
    "papers": {"train": "papers_train", "val": "papers_val", "test": "papers_test"},
    "lake": {"train": "lake_background", "test": "lake_evaluation"},
}
"""Scheme -> harness split -> split file in ``splits/``."""
ROTATED_SCHEMES = ("papers",)
INSTALL_HINT = "Omniglot needs tensorflow-datasets: pip install 'harness[omniglot]'"
DIR_HINT = f"pass --data root=DIR or set {ROOT_ENV} to the folder holding {' and '.join(ARCHIVES.values())}"


def open_omniglot(options: Mapping[str, Any]) -> ArrayEpisodeSource:
    """The episode source for a run's dataset options (``root``, ``image_size``, ``scheme``, ``cache_dir``)."""
    size, scheme = check_options(options)
    cache = cache_root(options.get("cache_dir"))
    images, names = load_images(find_archives(options.get("root"), cache), size, cache)
    index = {name: i for i, name in enumerate(names)}
    splits = {split: images[[index[c] for c in read_split(file)]] for split, file in SCHEMES[scheme].items()}
    return ArrayEpisodeSource(splits, rotations=scheme in ROTATED_SCHEMES, name="omniglot")


def check_options(options: Mapping[str, Any]) -> tuple[int, str]:
    """``(image_size, scheme)``, or a ``ConfigError`` naming the valid values."""
    size, scheme = options.get("image_size", 28), options.get("scheme", "papers")
    if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= SOURCE_SIZE:
        raise ConfigError(f"omniglot option image_size must be an integer from 1 to {SOURCE_SIZE}, got {size!r}")
    if scheme not in SCHEMES:
        hint = did_you_mean(str(scheme), list(SCHEMES))
        raise ConfigError(f"omniglot option scheme must be one of {', '.join(SCHEMES)}, got {scheme!r}{hint}")
    return size, scheme


def cache_root(cache_dir: Any) -> Path:
    """``<cache>/omniglot``: option ``cache_dir``, else ``$HARNESS_CACHE_DIR``, else ``~/.cache/harness``."""
    return cache_folder(cache_dir) / "omniglot"


def read_split(name: str) -> list[str]:
    """The characters (``Alphabet/characterNN``) listed in ``splits/<name>.txt``."""
    text = resources.files("harness.datasets").joinpath("splits", f"{name}.txt").read_text(encoding="utf-8")
    return text.splitlines()


def find_archives(root: Any, cache: Path) -> dict[str, Path]:
    """tfds split -> archive path, from ``root``, else ``$HARNESS_OMNIGLOT_DIR``, else a download."""
    value = root or os.environ.get(ROOT_ENV, "").strip()
    if not value:
        return _download(cache)
    folder = Path(value).expanduser()
    if not folder.is_dir():
        problem = "is a file, not the folder of the archives" if folder.exists() else "does not exist"
        raise DataError(f"Omniglot directory {folder} {problem}; {DIR_HINT}")
    paths = {split: folder / name for split, name in ARCHIVES.items()}
    for path in paths.values():
        if not path.is_file():
            raise DataError(f"{path.name} is missing from {folder}; download it from {URL}{path.name} and put it there")
        size = path.stat().st_size
        if size > ARCHIVE_MAX_BYTES:
            raise DataError(
                f"{path} is {size:,} bytes, not Lake's archive (under 10 MB); download it again from {URL}{path.name}"
            )
    return paths


def load_images(archives: Mapping[str, Path], size: int, cache: Path) -> tuple[np.ndarray, list[str]]:
    """All 1,623 characters as uint8 ``[characters, 20, 1, size, size]`` and their names, built once then cached."""
    folder = cache / fingerprint(archives)
    names_file, images_file = folder / "characters.txt", folder / f"images_{size}.npy"
    if not (names_file.is_file() and images_file.is_file()):
        try:
            with _locked(folder):  # a parallel process (say another tox env) may be building it
                if not (names_file.is_file() and images_file.is_file()):
                    _build_or_clean(archives, size, folder)
        except OSError as exc:
            raise DataError(
                f"cannot write the Omniglot cache in {folder} ({describe(exc)}); "
                f"set cache_dir or {CACHE_ENV} to a writable folder"
            ) from None
    names = names_file.read_text(encoding="utf-8").splitlines()
    try:
        images = np.load(images_file, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"Omniglot cache file {images_file} is unreadable ({exc}); delete {folder} and retry") from None
    if images.shape != (len(names), DRAWINGS, 1, size, size) or images.dtype != np.uint8:
        raise DataError(f"Omniglot cache file {images_file} has shape {images.shape}; delete {folder} and retry")
    return images, names


def _build_or_clean(archives: Mapping[str, Path], size: int, folder: Path) -> None:
    """``build_cache``, announced on stderr; a failed first build leaves no folder behind (its lock included)."""
    first = not (folder / "characters.txt").is_file()
    added = DRAWINGS * sum(characters for _, characters in EXPECTED.values()) * size * size
    added += TFDS_BYTES if first else 0
    print(
        f"harness: building the Omniglot cache in {folder} from {archives['background'].parent} "
        f"(once for image_size {size}: about {added / 1e6:.0f} MB and up to a few minutes)",
        file=sys.stderr,
    )
    try:
        build_cache(archives, size, folder)
    except BaseException:
        if first:  # nothing in it is usable before characters.txt is written
            shutil.rmtree(folder, ignore_errors=True)
        raise


def fingerprint(archives: Mapping[str, Path]) -> str:
    """First 16 hex digits of a sha256 over ``CACHE_VERSION`` and the archives' bytes: the cache key."""
    digest = hashlib.sha256(f"v{CACHE_VERSION}".encode())
    for split in ARCHIVES:
        archive = hashlib.sha256()
        with open(archives[split], "rb") as handle:
            for chunk in iter(lambda: handle.read(2**20), b""):  # a MiB at a time, never the whole file
                archive.update(chunk)
        digest.update(archive.digest())
    return digest.hexdigest()[:16]


def character_members(archive: zipfile.ZipFile) -> dict[str, list[str]]:
    """``Alphabet/characterNN`` -> its PNG members (sorted), characters sorted."""
    groups: dict[str, list[str]] = {}
    for member in archive.namelist():
        parts = member.split("/")
        if len(parts) == 4 and parts[3].endswith(".png") and not parts[3].startswith("."):
            groups.setdefault(f"{parts[1]}/{parts[2]}", []).append(member)
    return {character: sorted(groups[character]) for character in sorted(groups)}


def check_archive(split: str, path: Path) -> list[str]:
    """The archive's characters after checking its CRCs and content; ``DataError`` naming the fix if bad."""
    where = f"{ARCHIVES[split]} in {path.parent}"
    fix = f"download it again from {URL}{ARCHIVES[split]} and put it there"
    try:
        with zipfile.ZipFile(path) as archive:
            members = character_members(archive)
            bad = archive.testzip()
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as exc:
        raise DataError(f"{where} is truncated or corrupt ({describe(exc)}); {fix}") from None
    if bad is not None:
        raise DataError(f"{where} is corrupt (bad CRC in {bad}); {fix}")
    alphabets = len({character.split("/")[0] for character in members})
    want_alphabets, want_characters = EXPECTED[split]
    if (alphabets, len(members)) != (want_alphabets, want_characters):
        raise DataError(
            f"{where} holds {alphabets} alphabets and {len(members)} characters, "
            f"expected {want_alphabets} and {want_characters}; {fix}"
        )
    odd = [character for character, drawings in members.items() if len(drawings) != DRAWINGS]
    if odd:
        raise DataError(
            f"{where}: {len(odd)} characters do not have {DRAWINGS} drawings "
            f"({odd[0]} has {len(members[odd[0]])}); {fix}"
        )
    if list(members) != read_split(f"lake_{split}"):
        raise DataError(f"{where} does not hold Lake's {split} characters; {fix}")
    return list(members)


def build_cache(archives: Mapping[str, Path], size: int, folder: Path) -> None:
    """Check the archives, build the tfds dataset if needed, and write ``images_<size>.npy`` and ``characters.txt``."""
    tfds, image_module = _import_tfds()
    names_file = folder / "characters.txt"
    if names_file.is_file():  # archives with this fingerprint were checked before
        names = names_file.read_text(encoding="utf-8").splitlines()
    else:
        names = sorted(name for split, path in archives.items() for name in check_archive(split, path))
    from harness.datasets.omniglot_builder import HarnessOmniglot

    tfds.disable_progress_bar()
    builder = HarnessOmniglot(archives=archives, data_dir=str(folder / "tfds"))
    builder.download_and_prepare()
    sources = builder.as_data_source(decoders={"image": tfds.decode.SkipDecoding()})
    index = {name: i for i, name in enumerate(names)}
    images = np.zeros((len(names), DRAWINGS, 1, size, size), dtype=np.uint8)
    filled = np.zeros((len(names), DRAWINGS), dtype=bool)
    weights = area_weights(SOURCE_SIZE, size)
    for split, source in sources.items():
        for start in range(0, len(source), 1024):
            records = source.__getitems__(range(start, min(start + 1024, len(source))))
            ink = np.stack([_ink(image_module, record, archives[split]) for record in records])
            small = np.rint(np.clip(weights @ ink @ weights.T, 0.0, 1.0) * 255).astype(np.uint8)
            rows = [index[_text(record["character"])] for record in records]
            columns = [int(record["drawing"]) for record in records]
            images[rows, columns, 0] = small
            filled[rows, columns] = True
    if not filled.all():
        raise DataError(f"the Omniglot tfds dataset in {folder / 'tfds'} is incomplete; delete {folder} and retry")
    atomic.write_array(folder / f"images_{size}.npy", images)
    atomic.write_bytes(names_file, ("\n".join(names) + "\n").encode())


def area_weights(source: int, target: int) -> np.ndarray:
    """``[target, source]`` matrix that resizes one axis by area averaging (rows sum to 1)."""
    edges = np.arange(target + 1) * (source / target)
    pixels = np.arange(source)
    overlap = np.minimum(edges[1:, None], pixels + 1) - np.maximum(edges[:-1, None], pixels)
    return (np.clip(overlap, 0.0, None) * (target / source)).astype(np.float32)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder/.lock``, waiting for another builder; the file goes with the lock.

    POSIX only; elsewhere no lock. A lock taken on a file its holder deleted (with a failed
    build's folder) is let go and taken again on a new one.
    """
    try:
        import fcntl
    except ImportError:  # Windows
        folder.mkdir(parents=True, exist_ok=True)
        yield
        return
    lock = folder / ".lock"
    while True:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        with contextlib.suppress(FileNotFoundError):
            if os.path.samestat(os.fstat(fd), os.stat(lock)):
                break
        os.close(fd)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)  # while still locked, so nobody locks a file about to go
        os.close(fd)


def _ink(image_module: ModuleType, record: Mapping[str, Any], archive: Path) -> np.ndarray:
    """A drawing as float32 ``[105, 105]``: 1.0 on strokes (black in the PNG), 0.0 elsewhere.

    A drawing that is no readable 105x105 PNG is a ``DataError`` naming its archive member.
    """
    try:
        with image_module.open(io.BytesIO(record["image"])) as image:
            pixels = np.asarray(image.convert("L"))
    except Exception as exc:  # PIL raises many kinds of error for damaged image bytes
        problem = f"is not a readable PNG ({describe(exc)})"
    else:
        if pixels.shape == (SOURCE_SIZE, SOURCE_SIZE):
            return (pixels < 128).astype(np.float32)
        problem = f"is {pixels.shape[1]}x{pixels.shape[0]} pixels, not {SOURCE_SIZE}x{SOURCE_SIZE}"
    with zipfile.ZipFile(archive) as opened:
        member = character_members(opened)[_text(record["character"])][int(record["drawing"])]
    raise DataError(
        f"{member} in {archive} {problem}; download {archive.name} again from {URL}{archive.name} and put it there"
    )


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _import_tfds() -> tuple[ModuleType, ModuleType]:
    """``(tensorflow_datasets, PIL.Image)``, or the one-line install hint."""
    try:
        import tensorflow_datasets as tfds
        from PIL import Image
    except ImportError:
        raise DataError(INSTALL_HINT) from None
    return tfds, Image


def _download(cache: Path) -> dict[str, Path]:
    """Fetch the two archives into ``<cache>/downloads`` with tfds' download manager."""
    host, port = DOWNLOAD_ADDRESS
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as exc:
        raise DataError(
            f"no Omniglot directory given and {host} is unreachable ({describe(exc)}); {DIR_HINT}"
        ) from None
    tfds, _ = _import_tfds()
    manager = tfds.download.DownloadManager(download_dir=cache / "downloads")
    try:
        paths = manager.download({split: URL + name for split, name in ARCHIVES.items()})
    except Exception as exc:  # requests, tfds and OS errors alike
        raise DataError(f"downloading Omniglot from {URL} failed ({describe(exc)}); {DIR_HINT}") from None
    return {split: Path(path) for split, path in paths.items()}
