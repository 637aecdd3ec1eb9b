"""Run configuration: TOML files and CLI flags, checked with one-line errors."""

from __future__ import annotations

import dataclasses
import difflib
import os
import sys
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import files
from harness.episodes import EpisodeKind, EpisodeSettings, LabelEncoding
from harness.errors import SHORTER_PATH, ConfigError, describe, too_long
from harness.params import SEED_MAX, check_data, check_types

if TYPE_CHECKING:
    from harness.specs import DatasetSpec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10
    import tomli as tomllib


@dataclass(frozen=True)
class RunConfig:
    """One training-and-evaluation run. Episode counts are episodes, not batches."""

    model: str
    dataset: str = "synthetic"
    kind: str | None = None
    """``sequence`` or ``fewshot``; may be left out when the model accepts only one."""
    ways: int = 5
    shots: int = 1
    queries: int = 1
    instances: int = 10
    labels: str = "onehot"
    augment: bool = False
    batch_size: int = 16
    episodes: int = 1000
    eval_episodes: int = 1000
    seed: int = 0
    eval_seed: int = 0
    """Seed of the fixed test episodes: keep it at 0 to compare with everyone else."""
    checkpoint_every: int = 1000
    val_every: int = 0
    """Episodes between validations on the dataset's validation split; 0 turns validation off."""
    val_episodes: int = 200
    """Fixed validation episodes per validation."""
    keep: str = "last"
    """Model tested at the end: ``last`` or ``best`` (best validation accuracy; needs ``val_every``)."""
    patience: int = 0
    """Stop after this many validations without improvement; 0 never stops early."""
    device: str = "auto"
    """Where a torch model runs: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``. Not part of what a
    resumed run must match: a checkpoint moves between devices."""
    precision: str = "fp32"
    """``fp32`` or ``bf16`` (autocast) for torch models."""
    compile: bool = False
    """Wrap a torch model's network in ``torch.compile``."""
    threads: int = 1
    """CPU threads of torch's operations (``torch.set_num_threads``, set only where torch is loaded).
    Part of what a run computes: torch's sums split across threads round differently, so it is
    fixed rather than one per core, and a run gives the same numbers in this process and on
    any Ray worker or machine. 1 is what runs made before this key existed used, so their
    checkpoints (which lack it) resume as ``threads = 1``."""
    metrics: tuple[str, ...] = ()
    """Metric names; empty means every registered metric that fits the episode kind."""
    budget: str = "custom"
    """Label saying how long this run trained (``quick``, ``paper``, ``custom``)."""
    params: dict[str, Any] = field(default_factory=dict)
    """Model hyperparameters (override the model's defaults)."""
    data: dict[str, Any] = field(default_factory=dict)
    """Dataset options (override the dataset's defaults)."""
    test_dataset: str | None = None
    """Dataset to test on, when not ``dataset`` (e.g. a published set of test episodes)."""
    test_data: dict[str, Any] = field(default_factory=dict)
    """Options of ``test_dataset`` (override its defaults)."""
    init_from: str | None = None
    """A finished run's directory whose tested weights a new run starts from, its optimizer and schedule afresh
    (fine-tuning, a lower learning rate after a plateau); ``None``: the model's own initial weights."""

    def settings(self) -> EpisodeSettings:
        """Episode settings; ``kind`` must be resolved first."""
        if self.kind is None:
            raise ConfigError("episode kind is not set; pass --kind sequence or --kind fewshot")
        return EpisodeSettings(
            kind=EpisodeKind(self.kind),
            ways=self.ways,
            shots=self.shots,
            queries=self.queries,
            instances=self.instances,
            labels=LabelEncoding(self.labels),
            augment=self.augment,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON and TOML friendly)."""
        out = dataclasses.asdict(self)
        out["metrics"] = list(self.metrics)
        return out


FIELDS = {f.name: f for f in dataclasses.fields(RunConfig)}
POSITIVE = (
    "shots", "queries", "instances", "batch_size", "eval_episodes", "checkpoint_every", "val_episodes", "threads",
)  # fmt: skip
MAXIMA = {
    "batch_size": 4096, "eval_episodes": 1_000_000, "val_episodes": 1_000_000, "seed": SEED_MAX, "eval_seed": SEED_MAX,
    "threads": 1024,
}  # fmt: skip
"""Largest values the harness accepts: beyond them a run would only exhaust memory, time or the system's
threads (``threads = 100000`` crashed the process), or a seed would not fit every generator it seeds."""
KEEP = ("last", "best")
PRECISIONS = ("fp32", "bf16")
MACHINE_KEYS = ("device",)
"""Config keys that say where a run happens, not what it computes: a resumed run may change them."""
TRAINING_KEYS = (
    "episodes",
    "batch_size",
    "checkpoint_every",
    "val_every",
    "val_episodes",
    "keep",
    "patience",
    "augment",
    "init_from",
)
"""Config keys that only a model with something to train uses: a model without (kNN) ignores them."""
EVAL_KEYS = ("eval_episodes", "test_dataset", "test_data", "metrics")
"""Config keys that say only how a trained model is tested: a resumed run may change them, and a
complete one is then tested again (not ``eval_seed``: it also picks the validation episodes)."""


def did_you_mean(name: str, choices: list[str]) -> str:
    r"""``"; did you mean 'x'?"`` for the closest choice, or an empty string.

    Closest is, in order: the same but for case, spaces and dash signs ('MetaNet-' for 'MetaNet\u2212',
    'mann (lstm)'); the shortest choice whose letters and digits start with the name's ('5way' for
    '5-way 1-shot'); else the nearest by ``difflib``. A sign hard to type is named by its code point.
    """
    folded, key, letters = [_folded(choice) for choice in choices], _folded(name), _letters(name)
    if key in folded:
        close = choices[folded.index(key)]
    elif len(letters) >= 2 and (starts := [c for c in choices if _letters(c).startswith(letters)]):
        close = min(starts, key=len)
    else:
        matches = difflib.get_close_matches(key, folded, n=1, cutoff=0.6)
        if not matches:
            return ""
        close = choices[folded.index(matches[0])]
    signs = ", ".join(f"{c!r} is U+{ord(c):04X}" for c in dict.fromkeys(close) if not c.isascii() and c not in name)
    return f"; did you mean {close!r}" + (f" ({signs})?" if signs else "?")


DASHES = str.maketrans({"\u2212": "-", "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-"})


def _folded(name: str) -> str:
    """``name`` without case, spaces or underscores, its dash signs (minus, en dash...) as '-'."""
    return "".join(c for c in name.casefold().translate(DASHES) if not c.isspace() and c != "_")


def _letters(name: str) -> str:
    """``name``'s letters and digits alone, without case."""
    return "".join(c for c in name.casefold() if c.isalnum())


CONFIG_MAX_BYTES = 2**20
"""The largest config file read: a run config is a few hundred bytes."""


def load_toml(path: Path) -> dict[str, Any]:
    """Read a TOML config file, with one-line errors for a missing, unreadable or malformed file."""
    try:  # utf-8-sig: a BOM some editors write is fine
        return tomllib.loads(files.read_regular(path, max_size=CONFIG_MAX_BYTES).decode("utf-8-sig"))
    except files.TooLarge as exc:
        raise ConfigError(f"config file {path} is {exc.size:,} bytes, not a run config; check the path") from None
    except files.NotRegularFile:
        raise ConfigError(
            f"config file {path} is not a regular file (a FIFO, device or socket); check the path"
        ) from None
    except RecursionError:
        raise ConfigError(f"config file {path} nests tables or arrays too deeply to be a run config") from None
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist; check the path") from None
    except IsADirectoryError:
        raise ConfigError(
            f"config file {path} is a folder; give the TOML file itself, e.g. --config {path}/run.toml"
        ) from None
    except OSError as exc:
        fix = SHORTER_PATH if too_long(exc) else "check its permissions"
        raise ConfigError(f"config file {path} cannot be read ({describe(exc)}); {fix}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config file {path} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
            "save it as UTF-8"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def build_config(values: Mapping[str, Any], source: str = "config", flags: Collection[str] = ()) -> RunConfig:
    """A ``RunConfig`` from plain values, checking keys, types and ranges. An error names a key in ``flags`` by its
    command-line flag (``--eval-episodes``), any other as ``key in <source>``."""

    def named(key: str) -> str:
        return f"--{key.replace('_', '-')}" if key in flags or source == "flags" else f"{key} in {source}"

    for key in values:
        if key not in FIELDS:
            raise ConfigError(f"unknown key {key!r} in {source}{did_you_mean(key, list(FIELDS))}")
    if "model" not in values:
        raise ConfigError(f"no model given in {source}; pass --model NAME (see 'harness plugins')")
    clean: dict[str, Any] = {}
    for key, value in values.items():
        clean[key] = _check_type(key, value, named)
    config = RunConfig(**clean)
    _check_values(config, source, named)
    return config


def _check_type(key: str, value: Any, named: Callable[[str], str]) -> Any:
    default = FIELDS[key].default
    if key in ("params", "data", "test_data"):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{named(key)} must be a table of key = value pairs")
        return dict(value)
    if key == "metrics":
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{named(key)} must be a list of metric names")
        return tuple(value)
    if key in ("kind", "test_dataset", "init_from") and value is None:
        return None
    expected = bool if isinstance(default, bool) else int if isinstance(default, int) else str
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise ConfigError(f"{named(key)} must be {expected.__name__}, got {value!r}")
    return value


def _check_values(config: RunConfig, source: str, named: Callable[[str], str]) -> None:
    for key in POSITIVE:
        if getattr(config, key) < 1:
            raise ConfigError(f"{named(key)} must be at least 1, got {getattr(config, key)}")
    for key, bound in MAXIMA.items():
        if getattr(config, key) > bound:
            raise ConfigError(f"{named(key)} must be at most {bound:,}, got {getattr(config, key):,}")
    for key in ("episodes", "seed", "eval_seed", "val_every", "patience"):
        if getattr(config, key) < 0:
            raise ConfigError(f"{named(key)} must not be negative, got {getattr(config, key)}")
    if config.ways < 2:
        raise ConfigError(f"{named('ways')} must be at least 2, got {config.ways}")
    if config.kind is not None:
        _check_choice(named("kind"), config.kind, tuple(k.value for k in EpisodeKind))
    _check_choice(named("labels"), config.labels, tuple(e.value for e in LabelEncoding))
    _check_choice(named("keep"), config.keep, KEEP)
    _check_choice(named("precision"), config.precision, PRECISIONS)
    check_device_name(config.device, named("device"))
    if (config.keep == "best" or config.patience) and not config.val_every:
        keep = named("keep")
        best = f"{keep} best" if keep.startswith("--") else f"keep = 'best' ({keep})"
        asked = best if config.keep == "best" else named("patience")
        raise ConfigError(f"{asked} needs validation; set {named('val_every')} (episodes between validations)")
    if config.init_from is not None and not config.init_from.strip():
        raise ConfigError(f"{named('init_from')} must name a finished run's directory, got an empty string")
    if config.test_data and config.test_dataset is None:
        raise ConfigError(f"{named('test_data')} needs a test dataset; pass --test-dataset NAME or drop it")
    if config.labels == LabelEncoding.STRING.value and config.kind == EpisodeKind.FEWSHOT.value:
        raise ConfigError(f"string labels apply to sequence episodes only ({source}); drop labels or use kind sequence")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(
            f"{name} must be one of {', '.join(choices)}, got {value!r}{did_you_mean(value, list(choices))}"
        )


def check_one_place(data_dir: Path, located: Mapping[str, Any], data: Mapping[str, Any], dataset: str) -> None:
    """Refuse ``--data-dir`` beside a ``--data`` option that names another place for the same data."""
    for key, value in located.items():
        if key in data and os.path.abspath(str(data[key])) != os.path.abspath(str(value)):
            raise ConfigError(
                f"--data-dir {data_dir} and --data {key}={data[key]} name two places for dataset {dataset!r}; "
                "give one of them"
            )


def check_device_name(device: str, name: str) -> None:
    """Raise ``ConfigError`` unless ``device`` is ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``; the error calls
    the value ``name`` (``--device``, ``device in <file>``)."""
    kind, sep, index = device.partition(":")
    number = index.isascii() and index.isdigit() and (index == "0" or not index.startswith("0")) and len(index) <= 3
    if kind not in ("auto", "cpu", "cuda", "mps") or (sep and (kind != "cuda" or not number or int(index) > 127)):
        meant = {"gpu": "cuda"}.get(device.lower(), device.lower())
        hint = f"; did you mean {meant!r}?" if not sep and meant in ("auto", "cpu", "cuda", "mps") else ""
        raise ConfigError(f"{name} must be auto, cpu, cuda, cuda:N (N from 0 to 127) or mps, got {device!r}{hint}")


def merge_options(defaults: Mapping[str, Any], given: Mapping[str, Any], owner: str, noun: str) -> dict[str, Any]:
    """``defaults`` overridden by ``given``; a key the defaults lack, or a value not of its default's type
    (``harness.params.check_type``), is an error naming what is valid."""
    for key in given:
        if key not in defaults:
            valid = ", ".join(sorted(defaults)) or "none"
            hint = did_you_mean(key, list(defaults)) if isinstance(key, str) else ""  # a saved file's key: any type
            raise ConfigError(f"{owner} has no {noun} {key!r}{hint} (valid: {valid})")
    check_types(defaults, given, owner, noun)
    return {**defaults, **given}


def dataset_options(spec: DatasetSpec, given: Mapping[str, Any]) -> dict[str, Any]:
    """The options of dataset ``spec`` overridden by ``given``, checked (``merge_options``, then
    ``harness.params.check_data``)."""
    options = merge_options(spec.options, given, f"dataset {spec.name!r}", "option")
    check_data(options, spec.location_options, f"dataset {spec.name!r}")
    return options
