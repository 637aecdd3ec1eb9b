"""The ``harness_omniglot`` tfds builder: Omniglot's zip archives to array_record files, without TensorFlow.

The stock tfds ``omniglot`` builder extracts and lists folders through TensorFlow and
checks upstream checksums; this one reads the archives with ``zipfile`` and stores each
drawing's PNG bytes with its character (``Alphabet/characterNN``) and drawing index
(0..19, in file-name order). Splits ``background`` and ``evaluation``, one per archive.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from harness.datasets.omniglot import SOURCE_SIZE, character_members


class HarnessOmniglot(tfds.core.GeneratorBasedBuilder):
    """Omniglot drawings as PNG bytes, keyed by archive member."""

    VERSION = tfds.core.Version("1.0.0")

    def __init__(self, *, archives: Mapping[str, Path], **kwargs: Any) -> None:
        self._archives = dict(archives)
        super().__init__(file_format="array_record", **kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="Omniglot (Lake et al. 2015) from images_background.zip and images_evaluation.zip.",
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(SOURCE_SIZE, SOURCE_SIZE, 1), encoding_format="png"),
                    "character": tfds.features.Text(),
                    "drawing": np.int64,
                }
            ),
            homepage="https://github.com/brendenlake/omniglot",
        )

    def _log_download_bytes(self) -> None:
        """Silent: tfds would print "Downloading and preparing dataset Unknown size" for local archives."""

    def _log_download_done(self) -> None:
        """Silent: ``omniglot.py`` says what it builds."""

    def _split_generators(self, dl_manager: Any) -> dict[str, Iterator[tuple[str, dict[str, Any]]]]:
        return {split: self._generate_examples(path) for split, path in self._archives.items()}

    def _generate_examples(self, path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
        with zipfile.ZipFile(path) as archive:
            for character, members in character_members(archive).items():
                for drawing, member in enumerate(members):
                    yield member, {"image": archive.read(member), "character": character, "drawing": drawing}
