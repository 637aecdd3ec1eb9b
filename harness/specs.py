"""What plugins register: model, dataset and metric specs, and the protocols behind them."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, SupportsFloat, runtime_checkable

import numpy as np

from harness.episodes import EpisodeBatch, EpisodeInputs, EpisodeKind, EpisodeSettings, Prediction
from harness.errors import ConfigError
from harness.tables import TableRow


@dataclass(frozen=True)
class ModelContext:
    """Everything a model factory is told about the run it is built for."""

    settings: EpisodeSettings
    input_shape: tuple[int, int, int]
    """(channels, height, width) of one image."""
    params: Mapping[str, Any]
    """The model's defaults overridden by the run's ``params``."""
    seed: int
    model: str = ""
    """The model's registered name (for messages)."""
    batch_size: int = 16
    """Episodes per training batch."""
    total_steps: int = 0
    """Training batches the whole run makes (a learning-rate schedule needs it)."""
    device: str = "cpu"
    """Requested device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (``harness.devices``)."""
    precision: str = "fp32"
    """``fp32`` or ``bf16`` (autocast)."""
    compile: bool = False
    """Wrap the network in ``torch.compile`` where it works."""
    run_dir: Path | None = None
    """The run's directory, for models that write files of their own; ``None`` outside a run."""


@runtime_checkable
class Model(Protocol):
    """A model the runner can train, evaluate and checkpoint.

    ``state_dict`` must hold everything needed to continue training exactly: weights,
    optimizer state and the model's own random generator state. A checkpoint is read
    without running code (``harness.safepickle``), so its values may only be ``None``,
    bools, ints, floats, complex numbers, strings, ``bytes``, lists, tuples, dicts, sets,
    ``OrderedDict`` and NumPy arrays and scalars (not of Python objects): keep a dtype as
    ``dtype.str``, a NumPy generator as ``rng.bit_generator.state`` and torch state as
    ``torch.save`` bytes (as ``harness.torch.TorchModel`` does). Saving anything else stops
    the run in one line.
    """

    def train_step(self, batch: EpisodeBatch) -> SupportsFloat:
        """Train on one batch of episodes (targets included); return the loss (a float or a 0-d tensor)."""

    def predict(self, inputs: EpisodeInputs) -> Prediction | np.ndarray:
        """Predict from what a model may see (``batch.inputs()``): a ``Prediction``, or label ids
        shaped like the targets, or scores with one more axis of ``settings.num_labels``."""

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: weights, optimizer and RNG state."""

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""


@runtime_checkable
class EpisodeSource(Protocol):
    """A dataset opened with its options: samples episode batches from its splits.

    A source may also have ``episode_count(split) -> int | None``: how many episodes a split
    holds (``None``: unlimited, the default); a run asking for more is refused before it starts;
    and ``fingerprint() -> str | None``: a digest of the data its episodes come from, which
    records keep (``ArrayEpisodeSource`` gives the SHA-256 of its images).
    """

    def check(self, split: str, settings: EpisodeSettings) -> None:
        """Raise ``ConfigError`` if ``split`` cannot supply episodes with ``settings``."""

    def input_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of the images it yields."""

    def sample(
        self, split: str, settings: EpisodeSettings, rngs: Sequence[np.random.Generator], indices: Sequence[int]
    ) -> EpisodeBatch:
        """One batch: its episode ``i`` is episode ``indices[i]`` of the split's stream, drawn from ``rngs[i]`` alone.

        Episodes so do not depend on batch size; a dataset of fixed, published episodes
        serves episode ``indices[i]`` of the split and may ignore the generators.
        """


def check_spec(what: str, name: object, description: object, kinds: object) -> None:
    """Refuse a spec that would register but never run: a name or description that is not a non-empty string,
    or ``episode_kinds`` that is not a non-empty tuple of ``EpisodeKind`` (a plain string would read as letters)."""
    if not isinstance(name, str) or not name.strip():
        raise TypeError(f"{what} name must be a non-empty string, got {name!r}")
    if not isinstance(description, str) or not description.strip():
        raise TypeError(f"{what} {name!r}: description must be a non-empty string (harness plugins shows it)")
    if not isinstance(kinds, (tuple, list)) or not kinds or not all(isinstance(kind, EpisodeKind) for kind in kinds):
        raise TypeError(
            f"{what} {name!r}: episode_kinds must be a non-empty tuple of EpisodeKind, e.g. (EpisodeKind.FEWSHOT,), "
            f"got {kinds!r}"
        )


@dataclass(frozen=True)
class ModelSpec:
    """A model factory a plugin registers."""

    name: str
    description: str
    episode_kinds: tuple[EpisodeKind, ...]
    factory: Callable[[ModelContext], Model]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    """Default hyperparameters; a run's ``params`` may override only these keys."""
    trainable: bool = True
    """False for models with nothing to train (e.g. nearest neighbour): the runner skips training."""
    rows: tuple[TableRow, ...] = ()
    """Rows this model fills in paper tables (``harness reproduce``)."""

    def __post_init__(self) -> None:
        """Refuse what would register but never run: see ``check_spec``."""
        check_spec("model", self.name, self.description, self.episode_kinds)


@dataclass(frozen=True)
class DatasetSpec:
    """An episode dataset a plugin registers."""

    name: str
    description: str
    splits: tuple[str, ...]
    """Splits it has; a run draws only from these (a dataset of published test episodes has ``("test",)``)."""
    episode_kinds: tuple[EpisodeKind, ...]
    factory: Callable[[Mapping[str, Any]], EpisodeSource]
    options: Mapping[str, Any] = field(default_factory=dict)
    """Default options (data directory, image size, ...); a run's ``data`` may override only these keys."""
    train_split: str = "train"
    test_split: str = "test"
    val_split: str | None = "val"
    """Split validation episodes come from (``val_every``); ``None`` when the dataset has none."""
    location_options: tuple[str, ...] = ()
    """Options that say where data lives (e.g. ``root``, ``cache_dir``): passed to the factory but
    kept out of the run config, so checkpoints move between machines and resume anywhere. The
    first is the data directory, the option ``--data-dir`` sets."""

    def __post_init__(self) -> None:
        """Refuse what would register but never run: see ``check_spec``."""
        check_spec("dataset", self.name, self.description, self.episode_kinds)

    def data_dir(self, directory: str | Path) -> dict[str, str]:
        """The options ``--data-dir DIRECTORY`` stands for; ``ConfigError`` when the dataset reads no directory."""
        if not self.location_options:
            raise ConfigError(f"dataset {self.name!r} reads no data directory; drop --data-dir")
        return {self.location_options[0]: str(directory)}


@dataclass(frozen=True)
class Summary:
    """A metric aggregated over episodes: mean and half-width of its 95% confidence interval."""

    mean: float
    ci95: float
    n: int

    def as_dict(self) -> dict[str, float | int | None]:
        """Plain dict for strict JSON: a mean or ci95 that is NaN or infinite (no episodes, or one) is ``None``."""
        return {"mean": finite_or_none(self.mean), "ci95": finite_or_none(self.ci95), "n": int(self.n)}


def finite_or_none(value: SupportsFloat) -> float | None:
    """``value`` as a float, or ``None`` when it is NaN or infinite (JSON's ``null``)."""
    number = float(value)
    return number if math.isfinite(number) else None


def mean_ci95(values: np.ndarray) -> Summary:
    """Mean over episodes and the normal-approximation 95% CI (1.96 standard errors); NaNs are skipped."""
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    n = int(values.size)
    if n == 0:
        return Summary(float("nan"), float("nan"), 0)
    with np.errstate(invalid="ignore"):  # infinite values: the mean is infinite or NaN, the CI NaN (null in JSON)
        ci = 1.96 * float(values.std(ddof=1)) / np.sqrt(n) if n > 1 else float("nan")
        return Summary(float(values.mean()), float(ci), n)


@dataclass(frozen=True)
class MetricSpec:
    """A metric a plugin registers.

    ``per_episode(batch, prediction)`` returns named arrays of shape [B], one value per
    episode (NaN where the value does not apply); ``aggregate`` turns all episodes'
    values of one name into a ``Summary``. ``prediction.labels`` is checked against the
    batch's targets (shape, range) before a metric sees it.
    """

    name: str
    description: str
    higher_is_better: bool
    episode_kinds: tuple[EpisodeKind, ...]
    per_episode: Callable[[EpisodeBatch, Prediction], Mapping[str, np.ndarray]]
    aggregate: Callable[[np.ndarray], Summary] = mean_ci95
    datasets: tuple[str, ...] = ()
    """Datasets whose test episodes it scores; empty means every dataset."""

    def __post_init__(self) -> None:
        """Refuse one dataset name given as a string (it would read as one name per letter), and see ``check_spec``."""
        check_spec("metric", self.name, self.description, self.episode_kinds)
        if isinstance(self.datasets, str):
            raise TypeError(f"metric {self.name!r}: datasets must be a tuple of names, e.g. ({self.datasets!r},)")

    def applies_to(self, kind: EpisodeKind, dataset: str) -> bool:
        """Whether it scores ``kind`` episodes of ``dataset``."""
        return kind in self.episode_kinds and (not self.datasets or dataset in self.datasets)
