"""Seeded episode samplers over images held in memory as uint8 arrays.

A split is an array ``[classes, examples, channels, height, width]``. Dataset plugins
(synthetic, Omniglot, mini-ImageNet) hand their splits to ``ArrayEpisodeSource``, which
draws label-sequence and N-way K-shot episodes from it. Each episode comes from its own
``numpy.random.Generator``, so an episode is the same whatever the batch it lands in.
Each generator gives one block of uniforms per episode; turning those into indices and
gathering the images is vectorised over the batch.
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


def random_affine(images: np.ndarray, rng: np.random.Generator, max_shift: float, max_degrees: float) -> np.ndarray:
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


ROTATION_CACHE_BYTES = 1 << 30
"""Largest pre-rotated copy of a split (four times its size) that ``ArrayEpisodeSource`` keeps."""


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
            raise ValueError(
                "splits must be uint8 arrays [classes, examples, channels, height, width] of one image shape"
            )
        self.splits = {name: np.ascontiguousarray(array) for name, array in splits.items()}
        self.rotations = rotations
        self.train_split = train_split
        self.max_shift = max_shift
        self.max_degrees = max_degrees
        self.name = name
        self._rotation_cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

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
            raise ConfigError(
                f"ways={settings.ways} exceeds the {settings.num_labels} labels of {settings.labels.value}"
            )

    def sample(self, split: str, settings: EpisodeSettings, rngs: Sequence[np.random.Generator]) -> EpisodeBatch:
        """One batch; episode ``i`` is drawn from ``rngs[i]`` alone."""
        if settings.kind is EpisodeKind.SEQUENCE:
            return self._sequence_batch(split, settings, rngs)
        return self._fewshot_batch(split, settings, rngs)

    # -- internals ----------------------------------------------------------------------

    def _split(self, split: str) -> np.ndarray:
        try:
            return self.splits[split]
        except KeyError:
            raise ConfigError(f"{self.name} has no split {split!r} (splits: {', '.join(self.splits)})") from None

    def _pixels(self, split: str, class_ids: np.ndarray, examples: np.ndarray) -> np.ndarray:
        """uint8 images for episode class ids and example indices (arrays of one shape), rotated if need be."""
        data = self._split(split)
        if self.rotations:
            rotated = self._rotated(split, data)
            if rotated is not None:  # class c is row c of the pre-rotated copy
                return np.take(rotated, class_ids * data.shape[1] + examples, axis=0)
        base = class_ids // 4 if self.rotations else class_ids
        flat = data.reshape(-1, *data.shape[2:])  # a view: __init__ made the arrays C-contiguous
        images = np.take(flat, base * data.shape[1] + examples, axis=0)
        if self.rotations:
            turns = class_ids % 4
            for k in (1, 2, 3):
                chosen = turns == k
                if chosen.any():
                    images[chosen] = np.rot90(images[chosen], k=k, axes=(-2, -1))
        return images

    def _rotated(self, split: str, data: np.ndarray) -> np.ndarray | None:
        """``[classes * 4 * examples, C, H, W]``: every class in its four rotations, made once per split.

        Kept only for splits up to ``ROTATION_CACHE_BYTES`` (four times the split's size);
        larger splits are rotated image by image as episodes are drawn.
        """
        hit = self._rotation_cache.get(split)
        if hit is not None and hit[0] is data:
            return hit[1]
        if 4 * data.nbytes > ROTATION_CACHE_BYTES or data.shape[-1] != data.shape[-2]:
            return None
        rotated = np.stack([np.rot90(data, k, axes=(-2, -1)) for k in range(4)], axis=1)
        rotated = rotated.reshape(-1, *data.shape[2:])
        self._rotation_cache[split] = (data, rotated)
        return rotated

    def _augment(self, split: str, settings: EpisodeSettings) -> bool:
        return settings.augment and split == self.train_split

    def _sequence_batch(
        self, split: str, settings: EpisodeSettings, rngs: Sequence[np.random.Generator]
    ) -> SequenceBatch:
        n, k = settings.ways, settings.instances
        total, available = self.num_classes(split), self._split(split).shape[1]
        string = settings.labels is LabelEncoding.STRING
        draws = _Uniforms(rngs)
        class_arr = draws.distinct(total, n)
        label_of_class = draws.distinct(settings.num_labels, n) if string else draws.permutations(n)
        examples = draws.first_of_shuffles(n, available, k)  # [B, N, K]
        order = draws.permutations(n * k)  # step t shows example order[t] of the episode's N*K
        draws.finish()
        cls = order // k  # [B, T]: episode class shown at step t
        rows = np.arange(len(rngs))[:, None]
        images = _unit(self._pixels(split, class_arr[rows, cls], examples[rows, cls, order % k]))
        if self._augment(split, settings):
            for i, rng in enumerate(rngs):
                images[i] = random_affine(images[i], rng, self.max_shift, self.max_degrees)
        targets = label_of_class[rows, cls].astype(np.int64)
        seen = np.cumsum(cls[:, :, None] == np.arange(n), axis=1)  # [B, T, N] presentations so far
        instance = seen[rows, np.arange(n * k), cls].astype(np.int64)
        codes = string_label_code(targets) if string else np.eye(n, dtype=np.float32)[targets]
        return SequenceBatch(
            settings=settings,
            images=images,
            targets=targets,
            codes=codes,
            classes=cls.astype(np.int64),
            instance=instance,
        )

    def _fewshot_batch(
        self, split: str, settings: EpisodeSettings, rngs: Sequence[np.random.Generator]
    ) -> FewShotBatch:
        n, k, q = settings.ways, settings.shots, settings.queries
        total, available = self.num_classes(split), self._split(split).shape[1]
        draws = _Uniforms(rngs)
        class_arr = draws.distinct(total, n)
        examples = draws.first_of_shuffles(n, available, k + q)  # [B, N, K+Q]: first K support, rest query
        s_order, q_order = draws.permutations(n * k), draws.permutations(n * q)
        draws.finish()
        s_cls, q_cls = s_order // k, q_order // q
        rows, cls = np.arange(len(rngs))[:, None], np.concatenate([s_cls, q_cls], axis=1)
        slot = np.concatenate([s_order % k, k + q_order % q], axis=1)  # column of ``examples``
        pixels = self._pixels(split, class_arr[rows, cls], examples[rows, cls, slot])
        support, query = _unit(pixels[:, : n * k]), _unit(pixels[:, n * k :])
        if self._augment(split, settings):
            for i, rng in enumerate(rngs):
                both = random_affine(np.concatenate([support[i], query[i]]), rng, self.max_shift, self.max_degrees)
                support[i], query[i] = both[: n * k], both[n * k :]
        return FewShotBatch(
            settings=settings,
            support_images=support,
            support_targets=s_cls.astype(np.int64),
            query_images=query,
            query_targets=q_cls.astype(np.int64),
        )


def _unit(pixels: np.ndarray) -> np.ndarray:
    """uint8 pixels as float32 in [0, 1] (exactly ``pixels.astype(np.float32) / 255``)."""
    return np.divide(pixels, np.float32(255.0), dtype=np.float32)


class _Uniforms:
    """The random draws of a batch of episodes, vectorised across episodes.

    Each episode's draws come from its own generator alone: ``finish`` takes one block of
    uniforms ``rngs[i].random(L)`` per episode, laid out by the ``distinct``,
    ``permutations`` and ``first_of_shuffles`` calls made before it (always in the same
    order); turning the ``[B, L]`` block into indices is then done for all episodes at once.
    The arrays those calls return are filled in by ``finish``.
    """

    def __init__(self, rngs: Sequence[np.random.Generator]) -> None:
        self.rngs = rngs
        self.width = 0
        self.pending: list[tuple[str, slice, int, np.ndarray]] = []

    def _take(self, kind: str, width: int, arg: int, out: np.ndarray) -> np.ndarray:
        self.pending.append((kind, slice(self.width, self.width + width), arg, out))
        self.width += width
        return out

    def distinct(self, total: int, count: int) -> np.ndarray:
        """``[B, count]``: distinct integers below ``total`` in random order, every ordered draw equally likely.

        Few out of many: sequential rejection over candidates ``floor(u * total)`` (which
        depart from uniform by less than ``total / 2**53``); a row that runs out of
        candidates draws more from its own generator. Otherwise the first ``count`` of a
        random permutation.
        """
        out = np.empty((len(self.rngs), count), dtype=np.int64)
        if count * 4 > total:
            return self._take("first", total, total, out[:, None, :])[:, 0, :]
        return self._take("reject", count + 2 + count * count // total, total, out)

    def permutations(self, size: int) -> np.ndarray:
        """``[B, size]``: a uniformly random permutation of ``range(size)`` per episode."""
        out = np.empty((len(self.rngs), 1, size), dtype=np.int64)
        return self._take("first", size, size, out)[:, 0, :]

    def first_of_shuffles(self, rows: int, size: int, count: int) -> np.ndarray:
        """``[B, rows, count]``: per row, the first ``count`` of a random permutation of ``range(size)``."""
        return self._take("first", rows * size, size, np.empty((len(self.rngs), rows, count), dtype=np.int64))

    def finish(self) -> None:
        """Draw each episode's block of uniforms and fill in the arrays handed out."""
        block = np.stack([rng.random(self.width) for rng in self.rngs]) if self.rngs else np.empty((0, self.width))
        for kind, columns, arg, out in self.pending:
            keys = block[:, columns]
            if kind == "first":  # out [B, rows, count]; arg = size of each row's permutation
                out[...] = _first_of_shuffle(keys.reshape(len(block), out.shape[1], arg), out.shape[-1])
            else:  # "reject": out [B, count]; arg = total
                out[...] = self._reject(keys, arg, out.shape[1])
        self.pending.clear()

    def _reject(self, keys: np.ndarray, total: int, count: int) -> np.ndarray:
        candidates = np.minimum((keys * total).astype(np.int64), total - 1)
        first = candidates[:, :count].copy()
        ordered = np.sort(first, axis=1)
        for i in np.flatnonzero((ordered[:, 1:] == ordered[:, :-1]).any(axis=1)).tolist():  # rows with a repeat
            picked = dict.fromkeys(candidates[i].tolist())  # first occurrences, in draw order
            while len(picked) < count:
                more = np.minimum((self.rngs[i].random(count) * total).astype(np.int64), total - 1)
                picked.update(dict.fromkeys(more.tolist()))
            first[i] = list(picked)[:count]
        return first


def _first_of_shuffle(keys: np.ndarray, count: int) -> np.ndarray:
    """Indices of the ``count`` smallest keys along the last axis, smallest first: ``argsort(keys)[..., :count]``.

    With i.i.d. uniform keys that is the first ``count`` entries of a uniform random permutation.
    """
    if keys.shape[-1] <= 64 or count * 8 >= keys.shape[-1]:  # a full sort is cheap enough
        return np.argsort(keys, axis=-1)[..., :count]
    part = np.argpartition(keys, count - 1, axis=-1)[..., :count]
    return np.take_along_axis(part, np.argsort(np.take_along_axis(keys, part, -1), axis=-1), -1)
