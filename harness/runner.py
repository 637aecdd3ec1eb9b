"""Train a model plugin on a dataset plugin's episodes, evaluate it, checkpoint and resume.

Episode ``i`` of training is drawn from ``default_rng([seed, 0, i])`` and test episode
``j`` from ``default_rng([eval_seed, 1, j])``, so episodes do not depend on batch size,
on where a run was interrupted, or on which model is trained. A checkpoint holds the
step reached and the model's own state (weights, optimizer, RNG), so a resumed run ends
with the same numbers as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from harness import __version__, atomic, provenance
from harness.config import RunConfig, build_config, merge_options
from harness.episodes import EpisodeKind, EpisodeSettings
from harness.errors import ConfigError, HarnessError, NonFiniteLossError
from harness.plugins import PluginHost, PluginInfo
from harness.specs import DatasetSpec, EpisodeSource, MetricSpec, Model, ModelContext, ModelSpec

CHECKPOINT = "checkpoint.pkl"
RECORD = "record.json"
CHECKPOINT_FORMAT = "harness-checkpoint/1"
RECORD_FORMAT = "harness-run/1"
TRAIN_STREAM, TEST_STREAM = 0, 1


@dataclass
class Prepared:
    """A config resolved against the installed plugins, with its dataset opened."""

    config: RunConfig
    settings: EpisodeSettings
    model_spec: ModelSpec
    dataset_spec: DatasetSpec
    metrics: list[MetricSpec]
    source: EpisodeSource
    host: PluginHost

    def build_model(self) -> Model:
        """A fresh model from the model plugin's factory."""
        context = ModelContext(self.settings, self.source.input_shape(), self.config.params, self.config.seed)
        return self.model_spec.factory(context)

    @property
    def total_steps(self) -> int:
        """Training batches the run makes (0 for models with nothing to train)."""
        if not self.model_spec.trainable:
            return 0
        return math.ceil(self.config.episodes / self.config.batch_size)


def prepare(config: RunConfig, host: PluginHost) -> Prepared:
    """Resolve names, kind, hyperparameters and options; open the dataset and check it fits."""
    model_spec = host.models.get(config.model)
    dataset_spec = host.datasets.get(config.dataset)
    kinds = [k for k in model_spec.episode_kinds if k in dataset_spec.episode_kinds]
    if not kinds:
        raise ConfigError(f"model {model_spec.name!r} and dataset {dataset_spec.name!r} share no episode kind")
    if config.kind is None:
        if len(kinds) > 1:
            raise ConfigError(
                f"model {model_spec.name!r} accepts {' and '.join(k.value for k in kinds)} episodes; "
                "choose one with --kind"
            )
        kind = kinds[0]
    else:
        kind = EpisodeKind(config.kind)
        if kind not in kinds:
            raise ConfigError(
                f"model {model_spec.name!r} with dataset {dataset_spec.name!r} accepts only "
                f"{', '.join(k.value for k in kinds)} episodes, not {kind.value}"
            )
    params = merge_options(model_spec.defaults, config.params, f"model {model_spec.name!r}", "parameter")
    data = merge_options(dataset_spec.options, config.data, f"dataset {dataset_spec.name!r}", "option")
    if config.metrics:
        metrics = [host.metrics.get(name) for name in config.metrics]
        for metric in metrics:
            if kind not in metric.episode_kinds:
                raise ConfigError(f"metric {metric.name!r} does not apply to {kind.value} episodes")
    else:
        metrics = [m for m in host.metrics if kind in m.episode_kinds]
    portable = {k: v for k, v in data.items() if k not in dataset_spec.location_options}
    resolved = dataclasses.replace(
        config, kind=kind.value, params=params, data=portable, metrics=tuple(m.name for m in metrics)
    )
    settings = resolved.settings()
    source = dataset_spec.factory(data)
    if model_spec.trainable and resolved.episodes > 0:
        source.check(dataset_spec.train_split, settings)
    source.check(dataset_spec.test_split, settings)
    return Prepared(resolved, settings, model_spec, dataset_spec, metrics, source, host)


def default_name(config: RunConfig) -> str:
    """Run directory name, e.g. ``knn-synthetic-fewshot-5w1s-seed0``."""
    if config.kind == EpisodeKind.SEQUENCE.value:
        shape = f"{config.ways}w{config.instances}i-{config.labels}"
    else:
        shape = f"{config.ways}w{config.shots}s"
    return f"{config.model}-{config.dataset}-{config.kind}-{shape}-seed{config.seed}"


def _plain(obj: Any) -> Any:
    """JSON round trip, so configs compare equal whether read from TOML, flags or a checkpoint."""
    return json.loads(json.dumps(obj))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint, with one-line errors for a missing or foreign file."""
    try:
        with open(path, "rb") as handle:
            state = pickle.load(handle)
    except FileNotFoundError:
        raise HarnessError(f"checkpoint {path} does not exist; check the path") from None
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
        raise HarnessError(f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise HarnessError(f"{path} is not a harness checkpoint")
    return state


class Run:
    """One run directory: ``checkpoint.pkl`` while training, ``record.json`` when done."""

    def __init__(self, prepared: Prepared, directory: Path) -> None:
        self.prepared = prepared
        self.directory = directory
        self.checkpoint_path = directory / CHECKPOINT
        self.record_path = directory / RECORD

    def execute(self, *, restart: bool = False, progress: bool = False, log: Callable[[str], None] = print) -> dict:
        """Train (resuming if a checkpoint exists), evaluate, write and return the run record."""
        config = self.prepared.config
        if restart:
            self.checkpoint_path.unlink(missing_ok=True)
            self.record_path.unlink(missing_ok=True)
        state = self._resume_state()
        if state is not None and self.record_path.exists():
            record: dict[str, Any] = json.loads(self.record_path.read_text())
            if record.get("status") == "complete":
                log(f"{self.directory} is already complete; pass --restart to run it again")
                return record
        model = self.prepared.build_model()
        step, wall, history, resumes = 0, 0.0, [], 0
        if state is not None:
            model.load_state_dict(state["model_state"])
            step, wall, history, resumes = (
                state["step"],
                state["wall_time_s"],
                state["loss_history"],
                state["resumes"] + 1,
            )
            log(f"resuming {self.directory} at episode {state['episodes_trained']}")
        started = datetime.now(timezone.utc)
        clock = time.perf_counter()
        step, wall = self._train(model, step, wall, history, resumes, progress)
        eval_clock = time.perf_counter()
        metrics = evaluate(self.prepared, model, progress=progress)
        eval_wall = time.perf_counter() - eval_clock
        record = {
            "format": RECORD_FORMAT,
            "name": self.directory.name,
            "status": "complete",
            "model": config.model,
            "dataset": config.dataset,
            "setting": self.prepared.settings.describe(),
            "budget": config.budget,
            "seed": config.seed,
            "episodes_trained": self._episodes(step),
            "eval_episodes": config.eval_episodes,
            "wall_time_s": round(wall + eval_wall, 3),
            "train_wall_time_s": round(wall, 3),
            "eval_wall_time_s": round(eval_wall, 3),
            "resumes": resumes,
            "metrics": metrics,
            "loss_history": history,
            "config": _plain(config.to_dict()),
            "provenance": self._provenance(),
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "session_started_at": started.isoformat(timespec="seconds"),
            "session_wall_time_s": round(time.perf_counter() - clock, 3),
        }
        atomic.write_json(self.record_path, record)
        return record

    # -- internals ----------------------------------------------------------------------

    def _episodes(self, step: int) -> int:
        return min(step * self.prepared.config.batch_size, self.prepared.config.episodes)

    def _resume_state(self) -> dict[str, Any] | None:
        if not self.checkpoint_path.exists():
            return None
        state = load_checkpoint(self.checkpoint_path)
        saved, wanted = state["config"], _plain(self.prepared.config.to_dict())
        if saved != wanted:
            changed = ", ".join(
                f"{k}: {saved.get(k)!r} -> {wanted.get(k)!r}" for k in wanted if saved.get(k) != wanted[k]
            )
            raise ConfigError(
                f"{self.directory} holds a run with another config ({changed}); "
                "pass --name for a new run or --restart to discard it"
            )
        return state

    def _save(self, model: Model, step: int, wall: float, history: list, resumes: int) -> None:
        atomic.write_pickle(
            self.checkpoint_path,
            {
                "format": CHECKPOINT_FORMAT,
                "harness_version": __version__,
                "config": _plain(self.prepared.config.to_dict()),
                "step": step,
                "episodes_trained": self._episodes(step),
                "wall_time_s": wall,
                "loss_history": history,
                "resumes": resumes,
                "model_state": model.state_dict(),
            },
        )

    def _train(
        self, model: Model, step: int, wall: float, history: list, resumes: int, progress: bool
    ) -> tuple[int, float]:
        from tqdm import tqdm

        prepared, config = self.prepared, self.prepared.config
        total = prepared.total_steps
        every = max(1, config.checkpoint_every // config.batch_size)
        split = prepared.dataset_spec.train_split
        session_start = time.perf_counter()
        losses: list[float] = []
        saved = step if self.checkpoint_path.exists() else None
        bar = tqdm(
            total=self._episodes(total),
            initial=self._episodes(step),
            unit="ep",
            desc="train",
            disable=not progress or step >= total,
            dynamic_ncols=True,
        )
        with bar:
            while step < total:
                first = step * config.batch_size
                count = min(config.batch_size, config.episodes - first)
                rngs = [np.random.default_rng([config.seed, TRAIN_STREAM, first + i]) for i in range(count)]
                loss = float(model.train_step(prepared.source.sample(split, prepared.settings, rngs)))
                if not math.isfinite(loss):
                    kept = (
                        f"last good checkpoint kept: {self.checkpoint_path} (episode {self._episodes(saved)})"
                        if saved is not None
                        else "no checkpoint had been saved yet"
                    )
                    raise NonFiniteLossError(
                        f"training loss became {loss} at episode {first + count}; stopped, {kept}; "
                        "lower the learning rate (--param lr=...) or rerun with --restart"
                    )
                losses.append(loss)
                step += 1
                bar.update(count)
                if step % every == 0 or step == total:
                    history.append([self._episodes(step), float(np.mean(losses))])
                    losses = []
                    bar.set_postfix(loss=f"{history[-1][1]:.4f}")
                    self._save(model, step, wall + time.perf_counter() - session_start, history, resumes)
                    saved = step
        wall += time.perf_counter() - session_start
        if total == 0:
            self._save(model, step, wall, history, resumes)
        return step, wall

    def _provenance(self) -> dict[str, Any]:
        host, config = self.prepared.host, self.prepared.config
        model_plugin = host.info(host.models.plugin_of(config.model))
        dataset_plugin = host.info(host.datasets.plugin_of(config.dataset))
        return {
            "git": provenance.git_state(),
            "harness_version": __version__,
            "model_plugin": _plugin_ref(model_plugin),
            "dataset_plugin": _plugin_ref(dataset_plugin),
            "plugins": {p.name: p.version for p in host.plugins() if not p.error},
            "libraries": provenance.library_versions(),
            "machine": provenance.machine(),
        }


def _plugin_ref(info: PluginInfo) -> dict[str, str | None]:
    return {"name": info.name, "distribution": info.distribution, "version": info.version}


def evaluate(prepared: Prepared, model: Model, *, progress: bool = False) -> dict[str, dict[str, dict[str, Any]]]:
    """Metrics of ``model`` on the fixed test episodes: ``{metric: {key: {mean, ci95, n}}}``."""
    from tqdm import tqdm

    config = prepared.config
    split = prepared.dataset_spec.test_split
    values: dict[str, dict[str, list[np.ndarray]]] = {m.name: {} for m in prepared.metrics}
    with tqdm(total=config.eval_episodes, unit="ep", desc="test", disable=not progress, dynamic_ncols=True) as bar:
        for first in range(0, config.eval_episodes, config.batch_size):
            count = min(config.batch_size, config.eval_episodes - first)
            rngs = [np.random.default_rng([config.eval_seed, TEST_STREAM, first + i]) for i in range(count)]
            batch = prepared.source.sample(split, prepared.settings, rngs)
            predictions = np.asarray(model.predict(batch))
            if predictions.shape != batch.targets.shape:
                raise HarnessError(
                    f"model {config.model!r} predicted shape {predictions.shape}, expected {batch.targets.shape}"
                )
            for metric in prepared.metrics:
                for key, per_episode in metric.per_episode(batch, predictions).items():
                    values[metric.name].setdefault(key, []).append(np.asarray(per_episode, dtype=np.float64))
            bar.update(count)
    return {
        metric.name: {
            key: metric.aggregate(np.concatenate(parts)).as_dict() for key, parts in values[metric.name].items()
        }
        for metric in prepared.metrics
    }


def run(
    config: RunConfig,
    host: PluginHost,
    out: Path,
    *,
    name: str | None = None,
    restart: bool = False,
    progress: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Prepare ``config``, then train/resume, evaluate and record it under ``out/<name>``."""
    prepared = prepare(config, host)
    return Run(prepared, out / (name or default_name(prepared.config))).execute(
        restart=restart, progress=progress, log=log
    )


def evaluate_checkpoint(
    path: Path,
    host: PluginHost,
    *,
    eval_episodes: int | None = None,
    data: dict[str, Any] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Rebuild the model saved in a checkpoint and evaluate it on the fixed test episodes.

    ``data`` adds dataset options such as where the data lives on this machine.
    """
    state = load_checkpoint(path)
    values = dict(state["config"])
    if eval_episodes is not None:
        values["eval_episodes"] = eval_episodes
    if data:
        values["data"] = {**values["data"], **data}
    prepared = prepare(build_config(values, source=str(path)), host)
    model = prepared.build_model()
    model.load_state_dict(state["model_state"])
    return {
        "checkpoint": str(path),
        "model": prepared.config.model,
        "dataset": prepared.config.dataset,
        "setting": prepared.settings.describe(),
        "episodes_trained": state["episodes_trained"],
        "eval_episodes": prepared.config.eval_episodes,
        "metrics": evaluate(prepared, model, progress=progress),
    }
