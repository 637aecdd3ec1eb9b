"""Built-in ``omniglot`` dataset: Lake et al.'s 1,623 handwritten characters, 20 drawings each.

Read from ``images_background.zip`` and ``images_evaluation.zip`` in ``root`` (``--data
root=DIR``, else ``HARNESS_OMNIGLOT_DIR``) through tensorflow-datasets (no TensorFlow
needed), then cached as uint8 arrays; see ``harness.datasets.omniglot``. Importing this
module imports neither tensorflow-datasets, PIL nor torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness import hookimpl
from harness.episodes import EpisodeKind
from harness.sampling import ArrayEpisodeSource
from harness.specs import DatasetSpec

OPTIONS: dict[str, Any] = {"root": None, "image_size": 28, "scheme": "papers", "cache_dir": None}


def open_omniglot(options: Mapping[str, Any]) -> ArrayEpisodeSource:
    """Load (or read from the cache) the scheme's splits and wrap them in an episode source."""
    from harness.datasets.omniglot import open_omniglot as open_source

    return open_source(options)


@hookimpl
def harness_datasets() -> list[DatasetSpec]:
    """Register Omniglot."""
    return [
        DatasetSpec(
            name="omniglot",
            description=(
                "Omniglot, 1,623 characters x 20 drawings; scheme papers (1,100/100/423 characters, "
                "x4 by rotation) or lake (964/659); root= or HARNESS_OMNIGLOT_DIR; image_size 20 (MANN) or 28"
            ),
            splits=("train", "val", "test"),
            episode_kinds=(EpisodeKind.SEQUENCE, EpisodeKind.FEWSHOT),
            factory=open_omniglot,
            options=OPTIONS,
            location_options=("root", "cache_dir"),
        )
    ]
