"""Write small runs in the official one-shot classification layout, for the tests.

With the real Omniglot evaluation archive (``$HARNESS_OMNIGLOT_DIR/images_evaluation.zip``)
each run takes ``ways`` characters of one alphabet: drawer 1 for the training file, drawer 2
for the test file, as Lake et al.'s runs do. Without it, the drawings are simple shapes.
"""

from __future__ import annotations

import io
import os
import random
import zipfile
from pathlib import Path

from PIL import Image, ImageDraw


def _real_drawings(ways: int, runs: int, seed: int) -> list[list[tuple[bytes, bytes]]] | None:
    folder = os.environ.get("HARNESS_OMNIGLOT_DIR", "")
    archive = Path(folder) / "images_evaluation.zip" if folder else None
    if archive is None or not archive.is_file():
        return None
    with zipfile.ZipFile(archive) as z:
        by_character: dict[str, list[str]] = {}
        for name in z.namelist():
            if name.endswith(".png"):
                by_character.setdefault(name.rsplit("/", 1)[0], []).append(name)
        alphabets: dict[str, list[str]] = {}
        for character in sorted(by_character):
            alphabets.setdefault(character.split("/")[1], []).append(character)
        rng = random.Random(seed)
        chosen = rng.sample(sorted(a for a, chars in alphabets.items() if len(chars) >= ways), runs)
        out = []
        for alphabet in chosen:
            characters = rng.sample(alphabets[alphabet], ways)
            pairs = []
            for character in characters:
                first, second = sorted(by_character[character])[:2]
                pairs.append((z.read(first), z.read(second)))
            out.append(pairs)
        return out


def _shape(kind: int, shift: int) -> bytes:
    """A 105x105 drawing of shape ``kind`` (0..4), moved ``shift`` pixels to the right."""
    image = Image.new("L", (105, 105), 255)
    draw = ImageDraw.Draw(image)
    left, right = 20 + shift, 85 + shift
    if kind == 0:
        draw.ellipse((left, 20, right, 85), outline=0, width=4)
    elif kind == 1:
        draw.rectangle((left, 20, right, 85), outline=0, width=4)
    elif kind == 2:
        draw.line((left, 20, right, 85), fill=0, width=4)
    elif kind == 3:
        draw.line((left, 52, right, 52), fill=0, width=4)
        draw.line((52 + shift, 20, 52 + shift, 85), fill=0, width=4)
    else:
        draw.polygon((left, 85, 52 + shift, 20, right, 85), outline=0, width=4)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_runs(root: Path, *, ways: int = 5, runs: int = 3, seed: int = 0, as_zip: bool = False) -> Path:
    """Write ``runs`` runs of ``ways`` classes under ``root``; test item ``k`` is of class ``ways + 1 - k``."""
    drawings = _real_drawings(ways, runs, seed) or [
        [(_shape(c % 5, 0), _shape(c % 5, 3)) for c in range(ways)] for _ in range(runs)
    ]
    files: dict[str, bytes] = {}
    for r, pairs in enumerate(drawings, 1):
        run = f"run{r:02d}"
        lines = []
        for c, (training, test) in enumerate(pairs, 1):
            item = ways + 1 - c  # test files in another order than the classes
            files[f"{run}/training/class{c:02d}.png"] = training
            files[f"{run}/test/item{item:02d}.png"] = test
            lines.append(f"{run}/test/item{item:02d}.png {run}/training/class{c:02d}.png")
        files[f"{run}/class_labels.txt"] = ("\n".join(sorted(lines)) + "\n").encode()
    root.mkdir(parents=True, exist_ok=True)
    if as_zip:
        with zipfile.ZipFile(root / "all_runs.zip", "w") as z:
            for name, data in files.items():
                z.writestr(name, data)
    else:
        for name, data in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(data)
    return root


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Write runs in the official layout (all_runs.zip) to try the plugin.")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--ways", type=int, default=20)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    print(write_runs(args.folder, ways=args.ways, runs=args.runs, as_zip=True) / "all_runs.zip")
