"""Seeded episode samplers over images held in memory as uint8 arrays.

A split is an array ``[classes, examples, channels, height, width]``. Dataset plugins
(synthetic, Omniglot, mini-ImageNet) hand their splits to ``ArrayEpisodeSource``, which
draws label-sequence and N-way K-shot episodes from it. Each episode comes from its own
``numpy.random.Generator``, so an episode is the same whatever the batch it lands in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from harness.episodes import (
    EpisodeBatch,
    EpisodeKind,
    EpisodeSettings,
    FewShotBatch,
    LabelEncoding,
    SequenceBatch,
    string_label_code,
)
from harness.errors import ConfigError


def random_affine(
    images: np.ndarray, rng: np.random.Generator, max_shift: float, max_degrees: float
) -> np.ndarray:
    """Shift each image by up to ``max_shift`` pixels and rotate it by up to ``max_degrees``.

    ``images`` is float32 ``[n, C, H, W]``; bilinear interpolation, zeros outside.
    """
    n, _, h, w = images.shape
    angle = np.deg2rad(rng.uniform(-max_degrees, max_degrees, n))
    shift = rng.uniform(-max_shift, max_shift, (n, 2))
    yy, xx = np.meshgrid(np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32), indexing="ij")
    cy, cx = (h - 1) / 2, (w - 1) / 2
    cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    dy, dx = yy - cy - shift[:, 0, None, None], xx - cx - shift[:, 1, None, None]
    src_y = cos * dy - sin * dx + cy
    src_x = sin * dy + cos * dx + cx
    y0, x0 = np.floor(src_y).astype(np.int64), np.floor(src_x).astype(np.int64)
    fy, fx = (src_y - y0).astype(np.float32), (src_x - x0).astype(np.float32)
    out = np.zeros_like(images)
    idx = np.arange(n)[:, None, None]
    for oy, ox, weight in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        py, px = y0 + oy, x0 + ox
        inside = (py >= 0) & (py < h) & (px >= 0) & (px < w)
        vals = images[idx, :, np.clip(py, 0, h - 1), np.clip(px, 0, w - 1)]  # [n, H, W, C]
        out += np.moveaxis(vals * (weight * inside)[..., None], -1, 1)
    return out


class ArrayEpisodeSource:
    """Episodes from in-memory uint8 splits.

    With ``rotations=True`` each class also appears rotated by 90, 180 and 270 degrees
    as three further classes (class ``c`` is base class ``c // 4`` rotated ``c % 4``
    quarter turns). ``augment`` is applied to training-split episodes when the settings
    ask for it: small random shifts (``max_shift`` pixels) and rotations (``max_degrees``).
    """

    def __init__(
        self,
        splits: Mapping[str, np.ndarray],
        *,
        rotations: bool = False,
        train_split: str = "train",
        max_shift: float = 2.0,
        max_degrees: float = 10.0,
        name: str = "dataset",
    ) -> None:
        shapes = {tuple(a.shape[2:]) for a in splits.values()}
        if len(shapes) != 1 or any(a.ndim != 5 or a.dtype != np.uint8 for a in splits.values()):
            raise ValueError("splits must be uint8 arrays [classes, examples, channels, height, width] of one image shape")
        self.splits = dict(splits)
        self.rotations = rotations
        self.train_split = train_split
        self.max_shift = max_shift
        self.max_degrees = max_degrees
        self.name = name

    def input_shape(self) -> tuple[int, int, int]:
        """(channels, height, width)."""
        c, h, w = next(iter(self.splits.values())).shape[2:]
        return int(c), int(h), int(w)

    def num_classes(self, split: str) -> int:
        """Classes in ``split``, rotated copies included."""
        return self._split(split).shape[0] * (4 if self.rotations else 1)

    def check(self, split: str, settings: EpisodeSettings) -> None:
        """Raise ``ConfigError`` if ``split`` cannot supply such episodes."""
        classes = self.num_classes(split)
        if settings.ways > classes:
            raise ConfigError(
                f"ways={settings.ways} is more than the {classes} classes in {self.name} split {split!r}; lower ways"
            )
        available = self._split(split).shape[1]
        needed = settings.examples_per_class
        if needed > available:
            what = "instances" if settings.kind is EpisodeKind.SEQUENCE else "shots + queries"
            raise ConfigError(
                f"{what} = {needed} per class, but {self.name} has only {available} examples of each class; "
                f"lower {what.split(' ')[0]}"
            )
        if settings.kind is EpisodeKind.SEQUENCE and settings.ways > settings.num_labels:
            raise ConfigError(f"ways={settings.ways} exceeds the {settings.num_labels} labels of {settings.labels.value}")

    def sample(
        self, split: str, settings: EpisodeSettings, rngs: Sequence[np.random.Generator]
    ) -> EpisodeBatch:
        """One batch; episode ``i`` is drawn from ``rngs[i]`` alone."""
        if settings.kind is EpisodeKind.SEQUENCE:
            return self._sequence_batch(split, settings, rngs)
        return self._fewshot_batch(split, settings, rngs)

    # -- internals ----------------------------------------------------------------------

    def _split(self, split: str) -> np.ndarray:
        try:
            return self.splits[split]
        except KeyError:
            raise ConfigError(
                f"{self.name} has no split {split!r} (splits: {', '.join(self.splits)})"
            ) from None

    def _draw(
        self, split: str, rng: np.random.Generator, ways: int, per_class: int, augment: bool
    ) -> np.ndarray:
        """Images ``[ways, per_class, C, H, W]`` float32: distinct classes, distinct examples per class."""
        data = self._split(split)
        classes = rng.choice(self.num_classes(split), size=ways, replace=False)
        examples = np.argsort(rng.random((ways, data.shape[1])), axis=1)[:, :per_class]
        base = classes // 4 if self.rotations else classes
        images = data[base[:, None], examples].astype(np.float32) / 255.0
        if self.rotations:
            for i, turns in enumerate(classes % 4):
                if turns:
                    images[i] = np.rot90(images[i], k=int(turns), axes=(-2, -1))
        if augment and split == self.train_split:
            flat = images.reshape(-1, *images.shape[2:])
            images = random_affine(flat, rng, self.max_shift, self.max_degrees).reshape(images.shape)
        return images

    def _sequence_batch(
        self, split: str, settings: EpisodeSettings, rngs: Sequence[np.random.Generator]
    ) -> SequenceBatch:
        n, k = settings.ways, settings.instances
        images, targets, classes, instance = [], [], [], []
        for rng in rngs:
            drawn = self._draw(split, rng, n, k, settings.augment)
            if settings.labels is LabelEncoding.STRING:
                label_of_class = rng.choice(settings.num_labels, size=n, replace=False)
            else:
                label_of_class = rng.permutation(n)
            order = rng.permutation(n * k)
            cls, inst = order // k, order % k
            images.append(drawn[cls, inst])
            classes.append(cls)
            targets.append(label_of_class[cls])
            counts = np.zeros(n, dtype=np.int64)
            seen = np.empty(n * k, dtype=np.int64)
            for t, c in enumerate(cls):
                counts[c] += 1
                seen[t] = counts[c]
            instance.append(seen)
        target_arr = np.stack(targets).astype(np.int64)
        if settings.labels is LabelEncoding.STRING:
            codes = string_label_code(target_arr)
        else:
            codes = np.eye(n, dtype=np.float32)[target_arr]
        return SequenceBatch(
            settings=settings,
            images=np.stack(images),
            targets=target_arr,
            codes=codes,
            classes=np.stack(classes).astype(np.int64),
            instance=np.stack(instance),
        )

    def _fewshot_batch(
        self, split: str, settings: EpisodeSettings, rngs: Sequence[np.random.Generator]
    ) -> FewShotBatch:
        n, k, q = settings.ways, settings.shots, settings.queries
        support, support_y, query, query_y = [], [], [], []
        for rng in rngs:
            drawn = self._draw(split, rng, n, k + q, settings.augment)
            s_order, q_order = rng.permutation(n * k), rng.permutation(n * q)
            s_cls, q_cls = s_order // k, q_order // q
            support.append(drawn[s_cls, s_order % k])
            query.append(drawn[q_cls, k + q_order % q])
            support_y.append(s_cls)
            query_y.append(q_cls)
        return FewShotBatch(
            settings=settings,
            support_images=np.stack(support),
            support_targets=np.stack(support_y).astype(np.int64),
            query_images=np.stack(query),
            query_targets=np.stack(query_y).astype(np.int64),
        )
