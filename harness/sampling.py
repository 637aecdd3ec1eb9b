"""Seeded episode samplers over images held in memory as uint8 arrays.

A split is an array ``[classes, examples, channels, height, width]``. Dataset plugins
(synthetic, Omniglot, mini-ImageNet) hand their splits to ``ArrayEpisodeSource``, which
draws label-sequence and N-way K-shot episodes from it. Each episode comes from its own
``numpy.random.Generator``, so an episode is the same whatever the batch it lands in.
Each generator gives one block of uniforms per episode; turning those into indices and
gathering the images is vectorised over the batch. Augmentation likewise: each episode
draws its images' angles and shifts from its own generator, then all images of the
batch are warped in one float32 pass (``warp_affine``).
"""

from __future__ import annotations

import hashlib
import math
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

    ``images`` is ``[n, C, H, W]``; the result is float32, bilinear interpolation, zeros
    outside. Draws ``n`` angles, then ``n`` (dy, dx) shifts, from ``rng``.
    """
    angles, shifts = affine_draws(rng.random(3 * len(images)), max_shift, max_degrees)
    return warp_affine(images, angles, shifts)


def affine_draws(uniforms: np.ndarray, max_shift: float, max_degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """Angles (radians) ``[..., n]`` and (dy, dx) shifts ``[..., n, 2]`` from uniforms ``[..., 3n]`` in [0, 1).

    The first ``n`` uniforms give the angles, the rest the shifts: exactly the values of
    ``rng.uniform(-max_degrees, max_degrees, n)`` then ``rng.uniform(-max_shift, max_shift, (n, 2))``
    when the uniforms are ``rng.random(3 * n)``.
    """
    n = uniforms.shape[-1] // 3
    degrees = -max_degrees + (max_degrees - -max_degrees) * uniforms[..., :n]  # as Generator.uniform computes
    shifts = -max_shift + (max_shift - -max_shift) * uniforms[..., n:]
    return np.deg2rad(degrees), shifts.reshape(*uniforms.shape[:-1], n, 2)


def warp_affine(images: np.ndarray, angles: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Image ``i`` rotated by ``angles[i]`` radians about its centre and shifted by ``shifts[i]`` = (dy, dx) pixels.

    ``images`` is ``[n, C, H, W]``; the result is float32 of that shape, bilinear
    interpolation with zeros outside the image. Output pixel (y, x) samples the input at
    ``R(angle) @ ((y, x) - centre - shift) + centre``, with ``R`` the rotation matrix
    ``[[cos, -sin], [sin, cos]]``. All images are warped in one vectorised float32 pass,
    and each comes out exactly as it would alone.
    """
    return _warp(images, np.asarray(angles, dtype=np.float64), np.asarray(shifts, dtype=np.float64))


_WARP_CHUNK_PIXELS = 1 << 15
"""Output pixels per vectorised pass of ``_warp``, so that its temporaries stay in the CPU's cache."""


def _warp(images: np.ndarray, angles: np.ndarray, shifts: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """``warp_affine`` of ``images / scale`` (uint8 pixels go in without a float copy first).

    A chunk of images at a time is copied into zero-padded planes that hold every source
    coordinate's four neighbours; each output pixel gathers them by flat index and
    interpolates in float32. An image's coordinates, weights and neighbours depend neither
    on the padding nor on the other images (elementwise float32 arithmetic and exact
    integer offsets), so neither does its result.
    """
    n, c, h, w = images.shape
    out = np.empty((n, c, h, w), dtype=np.float32)
    if n == 0:
        return out
    cos, sin = np.cos(angles), np.sin(angles)
    cy, cx = (h - 1) / 2, (w - 1) / 2
    # Output pixel (cy + Y, cx + X) samples the input at (ty + cos Y - sin X, tx + sin Y + cos X):
    # a part that depends on the output row plus a part that depends on its column.
    ty = cy - cos * shifts[:, 0] + sin * shifts[:, 1]
    tx = cx - sin * shifts[:, 0] - cos * shifts[:, 1]
    ys, xs = np.arange(h) - cy, np.arange(w) - cx
    by_row, by_column = np.empty((2, n, h, 1), dtype=np.float32), np.empty((2, n, 1, w), dtype=np.float32)
    np.add(ty[:, None], np.multiply.outer(cos, ys), out=by_row[0, :, :, 0], casting="same_kind")
    np.add(tx[:, None], np.multiply.outer(sin, ys), out=by_row[1, :, :, 0], casting="same_kind")
    np.multiply.outer(-sin, xs, out=by_column[0, :, 0], casting="same_kind")
    np.multiply.outer(cos, xs, out=by_column[1, :, 0], casting="same_kind")
    pad_top, pad_bottom, clip_y = _padding(ty, np.abs(cos) * cy + np.abs(sin) * cx, h)
    pad_left, pad_right, clip_x = _padding(tx, np.abs(sin) * cy + np.abs(cos) * cx, w)
    wp = pad_left + w + pad_right
    plane = (pad_top + h + pad_bottom) * wp
    step = max(1, min(_WARP_CHUNK_PIXELS // (h * w * c), (1 << 24) // (c * plane)))
    size = min(n, step)
    padded = np.zeros((size, c, pad_top + h + pad_bottom, wp), dtype=np.float32)  # the borders stay zero
    flat = padded.reshape(-1)
    # Flat indices are worked out in float32: exact, as a chunk has at most 2**24 values (unless one image has more).
    wide = c * plane > 1 << 24
    offsets = np.arange(size) * (c * plane) + (pad_top * wp + pad_left)  # where each image's pixel (0, 0) is
    offsets = offsets.astype(np.float64 if wide else np.float32)[:, None]
    channel_offsets = np.arange(c, dtype=np.intp)[:, None] * plane
    # work arrays, reused chunk after chunk (the floors live where the neighbours go later)
    coords, corners = np.empty((2, size, h * w), dtype=np.float32), np.empty((size, 1, h * w), dtype=np.intp)
    neighbours = np.empty((4, size, c, h * w), dtype=np.float32)
    floors = neighbours.reshape(4, size, c * h * w)[:2, :, : h * w]
    for start in range(0, n, step):
        m = min(n, start + step) - start
        inner = padded[:m, :, pad_top : pad_top + h, pad_left : pad_left + w]
        np.divide(images[start : start + m], np.float32(scale), out=inner, casting="unsafe")
        src, floor = coords[:, :m], floors[:, :m]  # y, x of each output pixel's source
        np.add(by_row[:, start : start + m], by_column[:, start : start + m], out=src.reshape(2, m, h, w))
        if clip_y:  # past the padding all four neighbours are zeros, as they are at its edge
            np.clip(src[0], -pad_top, h + pad_bottom - 2, out=src[0])
        if clip_x:
            np.clip(src[1], -pad_left, w + pad_right - 2, out=src[1])
        np.floor(src, out=floor)
        src -= floor  # the fractions
        corner = floor[0].astype(np.float64) if wide else floor[0]
        corner *= wp
        corner += floor[1]
        corner += offsets[:m]  # each output pixel's top-left neighbour, in the first channel
        index = corners[:m]
        np.copyto(index[:, 0], corner, casting="unsafe")
        if c > 1:
            index = index + channel_offsets  # [m, C, H*W]
        near = neighbours[:, :m]  # top left, low left, top right, low right
        for gathered, offset in zip(near, (0, wp, 1, wp + 1), strict=True):
            np.take(flat[offset:], index, out=gathered, mode="clip")  # the indices are in range
        left, right = near[:2], near[2:]
        right -= left
        right *= src[1][:, None]
        left += right  # along the top row and the row below
        upper, lower = left
        lower -= upper
        lower *= src[0][:, None]
        np.add(upper, lower, out=out[start : start + m].reshape(m, c, h * w))
    return out


def _padding(centre: np.ndarray, reach: np.ndarray, size: int) -> tuple[int, int, bool]:
    """Zero rows (or columns) before and after a plane of ``size`` for source coordinates ``centre ± reach``.

    At least one before and two after, for the neighbours of coordinates just outside the
    image, and a spare one for rounding; at most ``max(2, size // 2)``, clipping (the
    third value) the coordinates that reach further.
    """
    most = max(2, size // 2)
    before = 1 + math.ceil(max(0.0, -float(np.min(centre - reach))))
    after = 2 + math.ceil(max(0.0, float(np.max(centre + reach)) - (size - 1)))
    return min(before, most), min(after, most), max(before, after) > most


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
        self._fingerprint: str | None = None

    def input_shape(self) -> tuple[int, int, int]:
        """(channels, height, width)."""
        c, h, w = next(iter(self.splits.values())).shape[2:]
        return int(c), int(h), int(w)

    def fingerprint(self) -> str:
        """``sha256:`` and the SHA-256 of every split's name, shape and images: which data the episodes came from."""
        if self._fingerprint is None:
            digest = hashlib.sha256()
            for name in sorted(self.splits):
                array = self.splits[name]
                digest.update(f"{name}:{array.shape}:{self.rotations};".encode())
                digest.update(array.data)  # contiguous: hashed in place, not copied
            self._fingerprint = f"sha256:{digest.hexdigest()}"
        return self._fingerprint

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
                f"lower {'instances' if settings.kind is EpisodeKind.SEQUENCE else 'shots or queries'}"
            )
        if settings.kind is EpisodeKind.SEQUENCE and settings.ways > settings.num_labels:
            raise ConfigError(
                f"ways={settings.ways} exceeds the {settings.num_labels} labels of {settings.labels.value}"
            )

    def sample(
        self,
        split: str,
        settings: EpisodeSettings,
        rngs: Sequence[np.random.Generator],
        indices: Sequence[int] | None = None,
    ) -> EpisodeBatch:
        """One batch; episode ``i`` is drawn from ``rngs[i]`` alone, whatever its index in ``indices``."""
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

    def _images(
        self, parts: Sequence[np.ndarray], split: str, settings: EpisodeSettings, rngs: Sequence[np.random.Generator]
    ) -> list[np.ndarray]:
        """Each uint8 ``[B, T, C, H, W]`` part as float32 in [0, 1], augmented if the settings ask for it.

        Augmented, episode ``i`` draws from ``rngs[i]`` as ``random_affine`` does for all of
        its images at once (those of the first part, then the next), so it is the same
        whatever batch it is in; the images of the whole batch are then warped together.
        """
        if not self._augment(split, settings):
            return [_unit(part) for part in parts]
        count = sum(part.shape[1] for part in parts)
        uniforms = np.stack([rng.random(3 * count) for rng in rngs]) if rngs else np.empty((0, 3 * count))
        angles, shifts = affine_draws(uniforms, self.max_shift, self.max_degrees)
        out, start = [], 0
        for part in parts:
            stop = start + part.shape[1]
            flat = part.reshape(-1, *part.shape[2:])
            warped = _warp(flat, angles[:, start:stop].ravel(), shifts[:, start:stop].reshape(-1, 2), scale=255.0)
            out.append(warped.reshape(part.shape))
            start = stop
        return out

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
        pixels = self._pixels(split, class_arr[rows, cls], examples[rows, cls, order % k])
        (images,) = self._images([pixels], split, settings, rngs)
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
        support, query = self._images([pixels[:, : n * k], pixels[:, n * k :]], split, settings, rngs)
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
