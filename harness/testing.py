"""Helpers for plugins' tests: small datasets in the layouts the built-in datasets read."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

SPLIT_CLASSES: Mapping[str, int] = {"train": 3, "val": 2, "test": 2}


def write_miniimagenet(
    root: Path, classes: Mapping[str, int] = SPLIT_CLASSES, per_class: int = 2, size: int = 84
) -> Path:
    """A mini-ImageNet folder at ``root`` (``images/`` and ``train/val/test.csv``, Ravi & Larochelle's layout) of
    plain-colour ``size`` x ``size`` JPEGs, ``per_class`` per class; returns ``root`` (needs Pillow)."""
    from PIL import Image

    (root / "images").mkdir(parents=True)
    for split, count in classes.items():
        rows = []
        for c in range(count):
            wnid = f"n{split}{c:05d}"
            for i in range(per_class):
                colour = (40 * c + 20 * i, 255 - 40 * c, 90 + 10 * i)
                Image.new("RGB", (size, size), colour).save(root / "images" / f"{wnid}{i}.jpg")
                rows.append(f"{wnid}{i}.jpg,{wnid}")
        (root / f"{split}.csv").write_text("filename,label\n" + "\n".join(rows) + "\n")
    return root
