"""Read the 20 official runs of Lake et al.'s one-shot classification task.

The runs ship as ``all_runs.zip`` in github.com/brendenlake/omniglot
(``python/one-shot-classification``). Unpacked or not, it holds ``run01`` .. ``run20``;
each has ``training/classNN.png`` (one drawing of each of 20 characters),
``test/itemNN.png`` (20 other drawings of the same characters) and ``class_labels.txt``,
whose lines pair a test file with its training file (``run01/test/item01.png
run01/training/class12.png``). Episode ``j`` is run ``j + 1``: its support set is the
training files in name order (labels 0..19), its queries the test files in name order.
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.errors import DataError

ARCHIVE = "all_runs.zip"
LABELS = "class_labels.txt"
_RUN = re.compile(r"run[0-9]{2}")


@dataclass(frozen=True)
class Run:
    """One run: training and test drawings (ink = 1, float32 in [0, 1]) and each test drawing's class."""

    name: str
    training: np.ndarray
    """[N, H, W] one drawing per class, in file-name order."""
    test: np.ndarray
    """[N, H, W] the drawings to classify, in file-name order."""
    answers: np.ndarray
    """int64 [N]: index into ``training`` of each test drawing's class."""


class RunFiles:
    """The files of the runs, from a folder of ``runNN`` folders or from ``all_runs.zip`` in it."""

    def __init__(self, location: Path) -> None:
        self.location = location
        archive = location / ARCHIVE if location.is_dir() else location
        self.archive = archive
        self._zip: zipfile.ZipFile | None = None
        self._prefix = ""
        if archive.is_file():
            try:
                self._zip = zipfile.ZipFile(archive)
            except zipfile.BadZipFile:
                raise DataError(f"{archive} is not a zip archive; download all_runs.zip again") from None
            names = self._zip.namelist()
            top = {n.split("/")[0] for n in names}
            if not any(_RUN.fullmatch(t) for t in top) and len(top) == 1:  # everything under one folder
                self._prefix = top.pop() + "/"
            self._names = {n[len(self._prefix) :] for n in names if n.startswith(self._prefix)}
        elif location.is_dir():
            self._names = {p.relative_to(location).as_posix() for p in location.rglob("*") if p.is_file()}
        else:
            raise DataError(
                f"omniglot-runs: {location} does not exist; pass the folder holding all_runs.zip or its "
                "run01..run20 folders (--data runs_dir=DIR)"
            )
        self.runs = sorted({n.split("/")[0] for n in self._names if _RUN.fullmatch(n.split("/")[0])})
        if not self.runs:
            raise DataError(
                f"omniglot-runs: no run01..run20 folders in {location}; pass the folder holding all_runs.zip "
                "(github.com/brendenlake/omniglot, python/one-shot-classification)"
            )

    def read(self, name: str) -> bytes:
        """The bytes of file ``name`` (``run01/class_labels.txt``)."""
        if name not in self._names:
            raise DataError(f"omniglot-runs: {name} is missing from {self.location}; download all_runs.zip again")
        if self._zip is None:
            return (self.location / name).read_bytes()
        try:
            return self._zip.read(self._prefix + name)
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:  # a bad CRC, damaged compressed data
            raise DataError(
                f"omniglot-runs: {name} in {self.archive} is damaged ({exc}); download all_runs.zip again"
            ) from None

    def load(self, index: int, image_size: int) -> Run:
        """Run ``index`` (0 for ``run01``), its drawings shrunk to ``image_size`` pixels a side."""
        name = self.runs[index]
        pairs = self._pairs(name)
        training = sorted(p[1] for p in pairs)
        test = sorted(p[0] for p in pairs)
        answer_of = dict(pairs)
        answers = np.array([training.index(answer_of[t]) for t in test], dtype=np.int64)
        return Run(
            name,
            np.stack([self._image(f, image_size) for f in training]),
            np.stack([self._image(f, image_size) for f in test]),
            answers,
        )

    def _pairs(self, name: str) -> list[tuple[str, str]]:
        """``(test file, training file)`` of each line of run ``name``'s labels: each file once, at least one line."""
        where = f"omniglot-runs: {name}/{LABELS} in {self.location}"
        pairs: list[tuple[str, str]] = []
        seen: dict[str, int] = {}
        for number, line in enumerate(self.read(f"{name}/{LABELS}").decode("utf-8", "replace").splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2:
                raise DataError(f"omniglot-runs: {name}/{LABELS} line {number} is not 'TEST_FILE TRAINING_FILE'")
            for file in parts:
                if file in seen:
                    raise DataError(
                        f"{where} line {number} names {file} again (first on line {seen[file]}); each test drawing "
                        "pairs with its own training drawing: download all_runs.zip again"
                    )
                seen[file] = number
            pairs.append((parts[0], parts[1]))
        if not pairs:
            raise DataError(f"{where} pairs no drawings; download all_runs.zip again")
        return pairs

    def _image(self, name: str, size: int) -> np.ndarray:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(self.read(name))) as image:
                grey = image.convert("L")
                if grey.size != (size, size):
                    grey = grey.resize((size, size), Image.Resampling.BOX)
                pixels = np.asarray(grey, dtype=np.float32) / 255.0
        except (UnidentifiedImageError, OSError) as exc:
            raise DataError(f"omniglot-runs: cannot read {name} in {self.location} ({exc})") from None
        return 1.0 - pixels  # black ink on white paper -> ink = 1
