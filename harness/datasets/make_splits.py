"""Write Omniglot's character splits to ``splits/*.txt`` (run once; the outputs are committed).

    python -m harness.datasets.make_splits /path/to/omniglot

* ``lake_background.txt`` / ``lake_evaluation.txt``: Lake et al.'s 964 / 659 characters.
* ``papers_*.txt``: the 1,623 characters in sorted order, shuffled by
  ``numpy.random.default_rng(SEED).permutation``; the first 1,200 are the papers'
  training characters (Santoro et al. 2016, Vinyals et al. 2016) and the other 423
  ``papers_test``. Of the 1,200, the first 100 in shuffled order are ``papers_val`` and
  the other 1,100 ``papers_train``.

Each file lists one ``Alphabet/characterNN`` per line, sorted.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import numpy as np

from harness.datasets.omniglot import ARCHIVES, character_members

SEED = 1623
TRAIN_POOL = 1200
VAL = 100


def make_splits(folder: Path) -> dict[str, list[str]]:
    """Split file name (without ``.txt``) -> its sorted characters, from the archives in ``folder``."""
    lake = {}
    for split, name in ARCHIVES.items():
        with zipfile.ZipFile(folder / name) as archive:
            lake[f"lake_{split}"] = list(character_members(archive))
    everything = sorted(lake["lake_background"] + lake["lake_evaluation"])
    shuffled = [everything[i] for i in np.random.default_rng(SEED).permutation(len(everything))]
    papers = {
        "papers_val": shuffled[:VAL],
        "papers_train": shuffled[VAL:TRAIN_POOL],
        "papers_test": shuffled[TRAIN_POOL:],
    }
    return {name: sorted(characters) for name, characters in {**lake, **papers}.items()}


def main(argv: list[str]) -> None:
    """Write the split files next to this module."""
    out = Path(__file__).with_name("splits")
    out.mkdir(exist_ok=True)
    for name, characters in make_splits(Path(argv[0])).items():
        (out / f"{name}.txt").write_text("\n".join(characters) + "\n", encoding="utf-8")
        print(f"{name}.txt: {len(characters)} characters")


if __name__ == "__main__":
    main(sys.argv[1:])
