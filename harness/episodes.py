"""Episode kinds, episode settings and the batches that dataset plugins hand to models.

Arrays are NumPy on the way out of a dataset; ``to_torch`` converts a batch for a
PyTorch model (torch is imported only then). A batch holds everything, targets included,
for training and for the metrics; ``batch.inputs()`` is the part a model sees when it
predicts, and a model answers with a ``Prediction``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

STRING_LABEL_LENGTH = 5
"""Characters in a MANN string label."""

STRING_LABEL_ALPHABET = "abcde"
"""Characters a MANN string label is made of (5**5 = 3,125 labels)."""


class EpisodeKind(str, enum.Enum):
    """The two shapes of episode the harness knows."""

    SEQUENCE = "sequence"
    """Label-sequence episodes as in MANN: input at step t is (x_t, y_{t-1})."""

    FEWSHOT = "fewshot"
    """N-way K-shot episodes as in SNAIL and MetaNet: a support set and a query set."""


class LabelEncoding(str, enum.Enum):
    """How sequence-episode labels are presented to a model."""

    ONEHOT = "onehot"
    """One-hot over the episode's N classes."""

    STRING = "string"
    """Five characters over {a..e}, each one-hot: a 25-dimensional code, 3,125 labels."""


@dataclass(frozen=True)
class EpisodeSettings:
    """What an episode looks like; the runner builds it from the run config."""

    kind: EpisodeKind
    ways: int
    shots: int = 1
    """Fewshot: support examples per class."""
    queries: int = 1
    """Fewshot: query examples per class."""
    instances: int = 10
    """Sequence: presentations of each class in an episode."""
    labels: LabelEncoding = LabelEncoding.ONEHOT
    """Sequence: label encoding."""
    augment: bool = False
    """Apply the dataset's augmentation (small translations and rotations) to training episodes."""

    @property
    def num_labels(self) -> int:
        """Size of the label space a model predicts in."""
        if self.kind is EpisodeKind.SEQUENCE and self.labels is LabelEncoding.STRING:
            return len(STRING_LABEL_ALPHABET) ** STRING_LABEL_LENGTH
        return self.ways

    @property
    def label_code_size(self) -> int:
        """Width of the label code a sequence model receives."""
        if self.labels is LabelEncoding.STRING:
            return len(STRING_LABEL_ALPHABET) * STRING_LABEL_LENGTH
        return self.ways

    @property
    def examples_per_class(self) -> int:
        """Distinct drawings of one class an episode needs."""
        if self.kind is EpisodeKind.SEQUENCE:
            return self.instances
        return self.shots + self.queries

    def describe(self) -> str:
        """Short human label such as ``5-way 1-shot`` or ``5-way x10 onehot``."""
        if self.kind is EpisodeKind.FEWSHOT:
            return f"{self.ways}-way {self.shots}-shot"
        return f"{self.ways}-way x{self.instances} {self.labels.value}"


def string_label_code(label_ids: np.ndarray) -> np.ndarray:
    """Encode integer string-label ids (0..3124) as 25-dim codes (5 one-hot characters)."""
    base = len(STRING_LABEL_ALPHABET)
    ids = np.asarray(label_ids, dtype=np.int64)
    digits = (ids[..., None] // base ** np.arange(STRING_LABEL_LENGTH)) % base
    code = np.zeros((*ids.shape, STRING_LABEL_LENGTH, base), dtype=np.float32)
    np.put_along_axis(code, digits[..., None], 1.0, axis=-1)
    return code.reshape(*ids.shape, STRING_LABEL_LENGTH * base)


def string_label_text(label_id: int) -> str:
    """The five-character string of a string-label id, e.g. ``0 -> 'aaaaa'``."""
    base = len(STRING_LABEL_ALPHABET)
    return "".join(STRING_LABEL_ALPHABET[(label_id // base**i) % base] for i in range(STRING_LABEL_LENGTH))


def string_label_decode(codes: np.ndarray) -> np.ndarray:
    """Integer ids from 25-dim codes or scores, taking the arg-max of each character."""
    base = len(STRING_LABEL_ALPHABET)
    scores = np.asarray(codes).reshape(*np.shape(codes)[:-1], STRING_LABEL_LENGTH, base)
    digits = scores.argmax(axis=-1)
    return (digits * base ** np.arange(STRING_LABEL_LENGTH)).sum(axis=-1)


@dataclass(frozen=True)
class SequenceInputs:
    """What a model sees of label-sequence episodes: each step's image and the previous step's label.

    ``previous_codes[:, t]`` is the code of the label of step ``t - 1`` (zeros at ``t = 0``):
    a model's prediction at step ``t`` may use steps ``0..t`` of both arrays and nothing later.
    The harness checks this (``harness.evaluation.check_causal``).
    """

    settings: EpisodeSettings
    images: np.ndarray
    """float32 [B, T, C, H, W] in [0, 1]."""
    previous_codes: np.ndarray
    """float32 [B, T, L]: label codes shifted one step."""

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def steps(self, count: int) -> SequenceInputs:
        """The first ``count`` steps of every episode."""
        return SequenceInputs(self.settings, self.images[:, :count], self.previous_codes[:, :count])

    def to_torch(self, device: Any = None) -> dict[str, Any]:
        """The arrays as torch tensors, on ``device``."""
        return _arrays_to_torch(self, device)


@dataclass(frozen=True)
class FewShotInputs:
    """What a model sees of N-way K-shot episodes: the labelled support set and the query images."""

    settings: EpisodeSettings
    support_images: np.ndarray
    """float32 [B, N*K, C, H, W] in [0, 1]."""
    support_targets: np.ndarray
    """int64 [B, N*K]: the support labels, 0..N-1."""
    query_images: np.ndarray
    """float32 [B, N*Q, C, H, W] in [0, 1]."""

    def __len__(self) -> int:
        return int(self.query_images.shape[0])

    def to_torch(self, device: Any = None) -> dict[str, Any]:
        """The arrays as torch tensors, on ``device``."""
        return _arrays_to_torch(self, device)


EpisodeInputs = SequenceInputs | FewShotInputs


@dataclass
class SequenceBatch:
    """A batch of label-sequence episodes (MANN), as a dataset draws it.

    ``targets[b, t]`` is the label id a model must predict at step t (0..N-1 for one-hot
    labels, 0..3124 for string labels); ``codes[b, t]`` is its code. Models train on the
    whole batch but predict from ``inputs()`` alone: images and ``previous_codes``.
    """

    settings: EpisodeSettings
    images: np.ndarray
    """float32 [B, T, C, H, W] in [0, 1]."""
    targets: np.ndarray
    """int64 [B, T] label ids."""
    codes: np.ndarray
    """float32 [B, T, L] label codes (one-hot or 25-dim string code)."""
    classes: np.ndarray
    """int64 [B, T] class index within the episode (0..N-1)."""
    instance: np.ndarray
    """int64 [B, T]: 1 for the first presentation of a class in the episode, 2 for the second, ..."""

    @property
    def previous_codes(self) -> np.ndarray:
        """Label codes shifted one step: zeros at t=0, ``codes[:, t-1]`` at step t."""
        shifted = np.zeros_like(self.codes)
        shifted[:, 1:] = self.codes[:, :-1]
        return shifted

    def inputs(self) -> SequenceInputs:
        """What a model may see when it predicts."""
        return SequenceInputs(self.settings, self.images, self.previous_codes)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def to_torch(self, device: Any = None) -> dict[str, Any]:
        """Every array as a torch tensor (plus ``previous_codes``), on ``device``: for training."""
        out = _arrays_to_torch(self, device)
        out["previous_codes"] = _tensor(self.previous_codes, device)
        return out


@dataclass
class FewShotBatch:
    """A batch of N-way K-shot episodes: support set and query set, classes 0..N-1."""

    settings: EpisodeSettings
    support_images: np.ndarray
    """float32 [B, N*K, C, H, W] in [0, 1]."""
    support_targets: np.ndarray
    """int64 [B, N*K]."""
    query_images: np.ndarray
    """float32 [B, N*Q, C, H, W] in [0, 1]."""
    query_targets: np.ndarray
    """int64 [B, N*Q]."""

    @property
    def targets(self) -> np.ndarray:
        """What a model must predict: the query labels."""
        return self.query_targets

    def inputs(self) -> FewShotInputs:
        """What a model may see when it predicts: everything but ``query_targets``."""
        return FewShotInputs(self.settings, self.support_images, self.support_targets, self.query_images)

    def __len__(self) -> int:
        return int(self.query_images.shape[0])

    def to_torch(self, device: Any = None) -> dict[str, Any]:
        """Every array as a torch tensor, on ``device``: for training."""
        return _arrays_to_torch(self, device)


EpisodeBatch = SequenceBatch | FewShotBatch


@dataclass(frozen=True)
class Prediction:
    """What a model predicts for a batch: label ids, and optionally its scores per label."""

    labels: np.ndarray
    """int64, shaped like the batch's ``targets``: [B, T] or [B, N*Q]."""
    scores: np.ndarray | None = None
    """float [*labels.shape, num_labels] (logits or probabilities), where the model gives them."""


def _tensor(array: np.ndarray, device: Any) -> Any:
    import torch

    return torch.from_numpy(np.ascontiguousarray(array)).to(device)


def _arrays_to_torch(batch: Any, device: Any) -> dict[str, Any]:
    return {
        f.name: _tensor(getattr(batch, f.name), device)
        for f in fields(batch)
        if isinstance(getattr(batch, f.name), np.ndarray)
    }
