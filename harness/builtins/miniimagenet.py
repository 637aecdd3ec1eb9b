"""Built-in ``miniimagenet`` dataset: the 64/16/20-class split of Ravi & Larochelle, 84x84 RGB.

The data is not downloadable here: point the ``root`` option (``--data root=DIR``) or
``HARNESS_MINIIMAGENET_DIR`` at a directory with ``images/`` and ``train.csv``,
``val.csv``, ``test.csv``. Decoded arrays are cached under ``cache_dir`` (else
``HARNESS_CACHE_DIR``, else ``~/.cache/harness``). Importing this module imports
neither PIL nor torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness import hookimpl
from harness.episodes import EpisodeKind
from harness.sampling import ArrayEpisodeSource
from harness.specs import DatasetSpec

OPTIONS: dict[str, Any] = {"root": None, "cache_dir": None}


def open_miniimagenet(options: Mapping[str, Any]) -> ArrayEpisodeSource:
    """Load (or read from the cache) the three splits and wrap them in an episode source."""
    from harness.datasets.miniimagenet import load_from_options

    return ArrayEpisodeSource(load_from_options(options), name="mini-ImageNet")


@hookimpl
def harness_datasets() -> list[DatasetSpec]:
    """Register mini-ImageNet."""
    return [
        DatasetSpec(
            name="miniimagenet",
            description=(
                "mini-ImageNet, 84x84 RGB, 64/16/20 classes x 600 (Ravi & Larochelle split); "
                "local directory via root= or HARNESS_MINIIMAGENET_DIR"
            ),
            splits=("train", "val", "test"),
            episode_kinds=(EpisodeKind.FEWSHOT, EpisodeKind.SEQUENCE),
            factory=open_miniimagenet,
            options=OPTIONS,
            location_options=("root", "cache_dir"),
        )
    ]
