"""Train a model plugin on a dataset plugin's episodes, validate, evaluate, checkpoint and resume.

Episodes come from seeded streams (``harness.evaluation``), so they do not depend on
batch size, on where a run was interrupted, or on which model is trained. A checkpoint
holds the step reached, the curves and the model's own state (weights, optimizer, RNG),
so a resumed run ends with the same numbers as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import signal
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from harness import (
    __version__,
    atomic,
    checkpoints,
    init_from,
    interrupts,
    per_episode,
    provenance,
    records,
    rundirs,
)
from harness.checkpoints import CHECKPOINT
from harness.config import EVAL_KEYS, TRAINING_KEYS, RunConfig
from harness.config_changes import comparable, differences, plain
from harness.errors import ConfigError, DataError, HarnessError, NonFiniteLossError, shortened
from harness.evaluation import TRAIN, batches, score, validation_scores
from harness.guard import ModelError, guarded, model_state
from harness.plugins import PluginHost, PluginInfo
from harness.prepare import Prepared, default_name, prepare
from harness.records import RECORD
from harness.specs import Model
from harness.training import unread_problem

RECORD_FORMAT = "harness-run/1"
STOPPING = "stopping after the step or validation under way, with a checkpoint there (again: stop at once)"
"""What a run says on its first Ctrl-C or SIGTERM."""


@dataclass
class Progress:
    """How far training got: what a checkpoint saves besides the model's state."""

    step: int = 0
    wall_time_s: float = 0.0
    loss_history: list[list[float]] = dataclasses.field(default_factory=list)
    val_history: list[list[float]] = dataclasses.field(default_factory=list)
    val_detail: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    """One entry per validation: ``episode``, ``train_wall_time_s`` (training time until then, over every session)
    and, for label sequences, ``by_instance`` (accuracy at the 1st, 2nd, ... presentation of a class). Checkpoints
    from before it have none for their earlier validations."""
    best: dict[str, Any] | None = None
    """Best validation so far: ``episode``, ``accuracy`` and, with ``keep = best``, ``model_state`` (its weights
    alone where the model has ``final_state_dict``)."""
    stale: int = 0
    """Validations since the best one."""
    stopped_early: int | None = None
    """Episode at which ``patience`` stopped training."""
    resumes: int = 0
    sessions: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    """One entry per session that trained: when it started, from which episode, and the git state of the code
    (a run resumed after a commit was trained by more than one version of the code)."""
    pending_losses: list[float] = dataclasses.field(default_factory=list)
    """Losses of the steps since the last logged one, kept by a checkpoint saved between logs (a run stopped
    by a signal), so the resumed run logs the same mean as an uninterrupted one."""
    unvalidated: bool = False
    """The validation due at ``step`` was left undone by a signal: the resumed run does it before any step."""
    stopped_by: str | None = None
    """The signal (``SIGTERM``, ``SIGINT``) that stopped the session which saved this checkpoint, for ``harness
    status``; cleared when training resumes."""
    init: dict[str, Any] | None = None
    """Where the weights it started from came from (``init_from``: ``harness.init_from.load``); ``None`` for the
    model's own initial weights."""
    run_id: str = ""
    """Names the run (a new one at each start, ``--restart`` included; empty in checkpoints from before it), and
    its record with it: a record beside a checkpoint of another run is what a ``--restart`` is replacing."""

    @classmethod
    def from_checkpoint(cls, state: dict[str, Any]) -> Progress:
        """The progress a checkpoint saved (older checkpoints lack the validation fields)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in state.items() if k in names})


LOWER_LR = "lower the learning rate (--param lr=...)"
"""The fix of a run whose loss diverged (with nothing saved, the whole fix: a rerun starts afresh anyway)."""


class Run:
    """One run directory: ``checkpoint.pkl`` while training, ``record.json`` when done.

    In a cell of ``harness reproduce`` (``records.is_cell``, or ``cell``: one it is about to become), which has no
    ``--restart`` or ``--name``, an error that needs the run started over says to delete the folder instead.
    """

    def __init__(self, prepared: Prepared, directory: Path, *, cell: bool | None = None) -> None:
        self.prepared = prepared
        self.directory = directory
        self.checkpoint_path = directory / CHECKPOINT
        self.record_path = directory / RECORD
        self.cell = records.is_cell(directory) if cell is None else cell
        self.restart = False
        self.run_id = uuid.uuid4().hex  # a new run's (a resumed one keeps its checkpoint's)
        self.replacing = False  # --restart: the run in the directory is the old one until this one first saves
        self.start_over = records.start_cell_over(directory) if self.cell else records.RESTART
        self.new_config = self.start_over if self.cell else "pass --name for a new run or --restart to discard it"
        self.diverged = self.start_over if self.cell else (
            f"{LOWER_LR} and pass --restart to start the run over (or --name for a new run)"
        )  # fmt: skip

    def execute(self, *, restart: bool = False, progress: bool = False, log: Callable[[str], None] = print) -> dict:
        """Lock the directory, train (resuming if a checkpoint exists), evaluate, write and return the run record.

        Raises ``locks.LockHeldError`` at once when another process holds the directory.
        """
        with rundirs.claim(self.directory, log):
            try:
                return self._execute(restart, progress, log)
            except KeyboardInterrupt as exc:
                if not restart or isinstance(exc, interrupts.Stopped):
                    raise
                raise self._interrupted(exc) from None

    # -- internals ----------------------------------------------------------------------

    def _execute(self, restart: bool, progress: bool, log: Callable[[str], None]) -> dict:
        model = self._build()  # a parameter the model refuses fails first: before the old run is compared
        self.restart = self.replacing = restart  # the old run stands until the new one saves its first checkpoint
        state = None if restart else self._resume_state()
        if state is None and not restart and self.record_path.exists():
            self._keep_finished_record()
        unread = unread_problem(self.prepared.config.params) if state is None else None
        if unread is not None:  # refused for a new run only: one saved with it before goes on as it began
            raise ConfigError(f"model {self.prepared.config.model!r}: {unread}")
        config = self.prepared.config  # after _resume_state, which keeps the metrics a resumed run started with
        record = self._record_of(state) if state is not None else None
        if record is not None:
            retest = differences(comparable(record["config"]), comparable(config.to_dict()), EVAL_KEYS)
            retest = retest or records.per_episode_problem(record, self.directory) or ""
            if not retest:
                log(f"{self.directory} is already complete; {self.start_over}")
                return record
            log(f"testing {self.directory} again ({retest})")
        done = Progress(run_id=self.run_id)
        if state is not None:
            try:
                model.load_state_dict(state["model_state"])
            except DataError as exc:  # weights refused unloaded (``harness.torch``)
                raise DataError(f"{self.checkpoint_path}: {exc}") from None
            done = Progress.from_checkpoint(state)
        elif config.init_from is not None and self.prepared.model_spec.trainable:  # kNN ignores it (TRAINING_KEYS)
            done.init = init_from.load(self.prepared, model, self.directory, self.cell)
            log(f"starting from the weights of {config.init_from} ({done.init['episodes_trained']:,} episodes trained)")
        trains = self._trains(state, done)
        if state is not None:
            done.resumes += trains  # testing a trained checkpoint again is no resume of its training
            done.stopped_by = None
            what = "resuming" if trains else "testing the trained checkpoint of"
            log(f"{what} {self.directory} at episode {state['episodes_trained']}")
        started = datetime.now(timezone.utc)
        clock = time.perf_counter()
        if trains:
            done.sessions.append(
                {
                    "started_at": started.isoformat(timespec="seconds"),
                    "from_episode": self._episodes(done.step),
                    "git": provenance.git_state(),
                }
            )
        self._train(model, done, progress)
        kept = state["kept"] if state is not None and state.get("final") else self._keep(model, done)
        stopped = (
            None if done.stopped_early is None else {"at_episode": done.stopped_early, "patience": config.patience}
        )
        eval_clock = time.perf_counter()
        metrics, values = score(self.prepared, model, progress=progress)
        eval_wall = time.perf_counter() - eval_clock
        runtime = self._runtime(model)  # checked before anything is written
        stored = per_episode.write(self.directory, values)  # before the record: a complete record has its file
        record = {
            "format": RECORD_FORMAT,
            "name": self.directory.name,
            "status": "complete",
            "model": config.model,
            "dataset": config.dataset,
            "test_dataset": self.prepared.test_spec.name,
            "setting": self.prepared.settings.describe(),
            "budget": config.budget,
            "seed": config.seed,
            "cell": records.cell_of(self.directory) if self.cell else None,
            "run_id": done.run_id,
            "episodes_trained": self._episodes(done.step),
            "stopped_early": stopped,
            "kept": kept,
            "init_from": done.init,
            "eval_episodes": config.eval_episodes,
            "wall_time_s": round(done.wall_time_s + eval_wall, 3),
            "train_wall_time_s": round(done.wall_time_s, 3),
            "eval_wall_time_s": round(eval_wall, 3),
            "resumes": done.resumes,
            "sessions": done.sessions,
            "metrics": metrics,
            "per_episode": stored,
            "loss_history": done.loss_history,
            "val_history": done.val_history,
            "val_detail": done.val_detail,
            "config": plain(config.to_dict()),
            "runtime": runtime,
            "provenance": self._provenance(),
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "session_started_at": started.isoformat(timespec="seconds"),
            "session_wall_time_s": round(time.perf_counter() - clock, 3),
        }
        final = getattr(model, "final_state_dict", None)
        if final is not None:  # the tested weights alone: a small checkpoint to commit and evaluate
            done.best = None
            self._save(model, done, {"final": True, "kept": kept, "model_state": final()})
        elif self.prepared.total_steps == 0:  # saved once tested: a failed test leaves nothing to block a rerun
            self._save(model, done)
        atomic.write_json(self.record_path, record)
        return record

    def _build(self) -> Model:
        """A fresh model, a plugin's failure folded into one line (``guarded``)."""
        prepared = self.prepared
        return guarded(prepared.build_model(self.directory), prepared.config.model, prepared.model_plugin)

    def _keep_finished_record(self) -> None:
        """Refuse to train again over the record of a finished run whose checkpoint is gone (deleted to save
        space, or never copied): the record and its numbers stand unless ``--restart`` is given."""
        record = self._record()
        if record is not None:
            problem = records.per_episode_problem(record, self.directory)
            if problem is not None:  # nothing to test again without the checkpoint
                raise ConfigError(
                    f"{self.directory} holds the record of a finished run, but {problem} and its checkpoint is gone; "
                    f"restore that file (the record's numbers stand), or {self.new_config}"
                )
            raise ConfigError(
                f"{self.directory} holds the record of a finished run but not its checkpoint; the record stands: "
                f"{self.new_config}"
            )

    def _trains(self, state: dict[str, Any] | None, done: Progress) -> bool:
        """Whether this session trains: the run is neither finished nor stopped by its patience."""
        finished = state is not None and state.get("final")
        due = done.step < self.prepared.total_steps or done.unvalidated
        return not finished and done.stopped_early is None and due

    def _record_of(self, state: dict[str, Any]) -> dict[str, Any] | None:
        """The record of the run whose checkpoint holds ``state``: none where it is another run's
        (``records.of_another_run``)."""
        record = self._record()
        return None if record is None or records.of_another_run(record, state) else record

    def _runtime(self, model: Model) -> dict[str, Any] | None:
        """The model's ``runtime`` (where it ran), for the record: a dict of JSON values, else ``ModelError``."""
        runtime = getattr(model, "runtime", None)
        try:
            if runtime is not None and not isinstance(runtime, dict):
                raise TypeError(f"a {type(runtime).__name__}")
            return None if runtime is None else dict(json.loads(json.dumps(runtime, allow_nan=False)))
        except (TypeError, ValueError) as exc:
            config, plugin = self.prepared.config, self.prepared.model_plugin
            raise ModelError(
                f"model {config.model!r} (plugin {plugin!r}): its runtime must be a dict of JSON values, not "
                f"{shortened(str(exc), 200)}; fix the model's runtime attribute"
            ) from None

    def _interrupted(self, exc: KeyboardInterrupt) -> interrupts.Stopped:
        """What a ``--restart`` run a signal ends outside training (which says its own) tells the user to do: the
        checkpoint in the directory says whether it is still the old run's."""
        signum = getattr(exc, "signum", signal.SIGINT)
        again = (
            "rerun it without --restart to carry on from its last checkpoint (with --restart, it starts over)"
            if checkpoints.run_id(self.checkpoint_path) == self.run_id
            else "the old run stands: rerun the same command to start over"
        )
        return interrupts.Stopped(f"interrupted by {signal.Signals(signum).name}; {again}", signum)

    def _record(self) -> dict[str, Any] | None:
        """The run's record, if any; a damaged one is refused in one line naming its fix (``records.record_fix``)."""
        if not self.record_path.exists():
            return None
        return records.read_record(self.record_path, records.record_fix(self.record_path, "rerun"))

    def _episodes(self, step: int) -> int:
        return min(step * self.prepared.config.batch_size, self.prepared.config.episodes)

    def saved_config_changes(self) -> str:
        """How the config of the run already in the directory (its checkpoint's, else its record's) differs from
        this one, as ``differences`` says it (empty when no run is there, or none that counts differs)."""
        if self.checkpoint_path.exists():
            saved = checkpoints.load_run(self.checkpoint_path, self.start_over)["config"]
        else:
            record = self._record()
            saved = None if record is None else record.get("config")
        return "" if not isinstance(saved, dict) else self._changes(self._comparable(saved))

    def _resume_state(self) -> dict[str, Any] | None:
        if not self.checkpoint_path.exists():
            return None
        state = checkpoints.load_run(self.checkpoint_path, self.start_over)
        saved = self._comparable(state["config"])
        if not self.prepared.metrics_given:
            self._keep_metrics(saved, state)
        changed = self._changes(saved)
        if changed:
            raise ConfigError(f"{self.directory} holds a run with another config ({changed}); {self._fix(saved)}")
        return state

    def _fix(self, saved: dict[str, Any]) -> str:
        """The fix for a run in the directory trained with another config than ``saved``: where only the threads
        differ (a flag of the command), rerunning with the run's own keeps its training."""
        wanted = comparable(self.prepared.config.to_dict())
        rest = [key for key in wanted if key != "threads"]
        if saved.get("threads") != wanted["threads"] and not differences(saved, wanted, rest):
            return f"rerun with --threads {saved['threads']}, the threads it trained with (or {self.new_config})"
        return self.new_config

    def _comparable(self, saved: dict[str, Any]) -> dict[str, Any]:
        """A saved config made comparable with this run's: a parameter the model plugin added since it was saved
        counts at its default."""
        comparable_saved = comparable(saved)
        comparable_saved["params"] = {**self.prepared.model_spec.defaults, **(comparable_saved.get("params") or {})}
        return comparable_saved

    def _changes(self, saved: dict[str, Any]) -> str:
        """How this run's config differs from ``saved`` (comparable) in what it trains (a model with nothing to
        train: in what it tests on, apart from how many episodes)."""
        wanted = comparable(self.prepared.config.to_dict())
        ignored = EVAL_KEYS if self.prepared.model_spec.trainable else (*EVAL_KEYS, *TRAINING_KEYS)
        return differences(saved, wanted, [k for k in wanted if k not in ignored])

    def _keep_metrics(self, started: dict[str, Any], state: dict[str, Any]) -> None:
        """Score with the metrics of the run's last test (or its start), whatever metric plugins came since.

        Tested on another dataset now, it keeps the metrics resolved for that dataset.
        """
        prepared = self.prepared
        record = self._record_of(state)
        last = started if record is None else comparable(record["config"])
        if last["test_dataset"] != prepared.config.test_dataset:
            return
        names = last["metrics"]
        missing = [name for name in names if name not in prepared.host.metrics]
        if missing:
            raise ConfigError(
                f"{self.directory} was scored with metric {missing[0]!r}, which no installed plugin provides; "
                "install its plugin, or pass --metric NAME to score it with others"
            )
        config = dataclasses.replace(prepared.config, metrics=tuple(names))
        metrics = [prepared.host.metrics.get(name) for name in names]
        self.prepared = dataclasses.replace(prepared, config=config, metrics=metrics)

    def _save(self, model: Model, done: Progress, final: dict[str, Any] | None = None) -> None:
        with model_state(self.prepared.config.model, self.prepared.model_plugin):
            checkpoints.save(
                self.checkpoint_path,
                {
                    "harness_version": __version__,
                    "config": plain(self.prepared.config.to_dict()),
                    "input_shape": list(self.prepared.source.input_shape()),
                    "episodes_trained": self._episodes(done.step),
                    **dataclasses.asdict(done),
                    **(final or {"model_state": model.state_dict()}),
                },
            )
        self.replacing = False

    def _keep(self, model: Model, done: Progress) -> dict[str, Any]:
        """Load the model to test (``keep``) into ``model``; say which it is."""
        if self.prepared.config.keep == "best" and done.best is not None:
            model.load_state_dict(done.best["model_state"])
            return {"which": "best", "episode": done.best["episode"], "val_accuracy": done.best["accuracy"]}
        return {"which": "last", "episode": self._episodes(done.step)}

    def _losses(self, losses: list[Any], step: int, saved: int | None) -> list[float]:
        """The losses since the last log as floats (syncing a GPU only here); stop on NaN or inf."""
        values = []
        for offset, loss in enumerate(losses):
            try:
                if isinstance(loss, (str, bytes)):  # float() would read "1.5"
                    raise TypeError
                value = float(loss)
            except (TypeError, ValueError, RuntimeError):
                raise HarnessError(
                    f"model {self.prepared.config.model!r}: train_step returned {type(loss).__name__}, "
                    "not a float or a 0-d tensor"
                ) from None
            if not math.isfinite(value):
                kept = (
                    f"last good checkpoint kept: {self.checkpoint_path} (episode {self._episodes(saved)})"
                    if saved is not None
                    else "no checkpoint had been saved yet"
                )
                if self.replacing:
                    kept += f", the run it was to replace is kept in {self.directory}"
                fix = self.diverged if saved is not None or self.cell or self.replacing else LOWER_LR
                raise NonFiniteLossError(
                    f"training loss became {value} at episode {self._episodes(step - len(losses) + offset + 1)}; "
                    f"stopped, {kept}; {fix}"
                )
            values.append(value)
        return values

    def _validate(self, model: Model, done: Progress, train_wall_s: float, stopped: Callable[[], bool]) -> None:
        """Validate at ``done.step``; a signal (``stopped()``) between batches leaves it undone (``unvalidated``)."""
        scores = validation_scores(self.prepared, model, stopped)
        done.unvalidated = scores is None
        if scores is None:
            return
        accuracy, by_instance = scores
        episode = self._episodes(done.step)
        done.val_history.append([episode, accuracy])
        detail: dict[str, Any] = {"episode": episode, "train_wall_time_s": round(train_wall_s, 3)}
        done.val_detail.append(detail if by_instance is None else {**detail, "by_instance": by_instance})
        if done.best is None or accuracy > done.best["accuracy"]:
            state = None
            if self.prepared.config.keep == "best":  # the weights alone where the model gives them: nothing trains on
                state = copy.deepcopy(getattr(model, "final_state_dict", model.state_dict)())
            done.best = {"episode": episode, "accuracy": accuracy, "model_state": state}
            done.stale = 0
        else:
            done.stale += 1
        if self.prepared.config.patience and done.stale >= self.prepared.config.patience:
            done.stopped_early = episode

    def _train(self, model: Model, done: Progress, progress: bool) -> None:
        with interrupts.deferred(STOPPING) as stop:
            if done.unvalidated:  # the validation a signal left undone comes before any step
                clock = time.perf_counter()
                self._validate(model, done, done.wall_time_s, stop.came)
                self._stop_if_signalled(model, done, [], done.step, stop)
                done.wall_time_s += time.perf_counter() - clock
                self._save(model, done)
            self._steps(model, done, progress, stop)

    def _steps(self, model: Model, done: Progress, progress: bool, stop: interrupts.Deferred) -> None:
        from tqdm import tqdm

        prepared, config = self.prepared, self.prepared.config
        total = prepared.total_steps if done.stopped_early is None else done.step
        every = max(1, config.checkpoint_every // config.batch_size)
        val_every = max(1, config.val_every // config.batch_size) if config.val_every else 0
        session_start, wall_before = time.perf_counter(), done.wall_time_s
        losses: list[Any] = list(done.pending_losses)
        saved = done.step if self.checkpoint_path.exists() and not self.replacing else None
        bar = tqdm(
            total=self._episodes(total),
            initial=self._episodes(done.step),
            unit="ep",
            desc="train",
            disable=not progress or done.step >= total,
            dynamic_ncols=True,
        )
        split = prepared.dataset_spec.train_split
        stream = batches(prepared, split, TRAIN, config.seed, self._episodes(total), start=self._episodes(done.step))
        with bar, contextlib.closing(stream):
            for batch in stream:
                losses.append(model.train_step(batch))
                done.step += 1
                bar.update(len(batch))
                validate = bool(val_every) and (done.step % val_every == 0 or done.step == total)
                save = done.step % every == 0 or done.step == total
                if validate or save:
                    values = self._losses(losses, done.step, saved)
                    if validate:
                        self._validate(model, done, wall_before + time.perf_counter() - session_start, stop.came)
                        save = save or done.stopped_early is not None
                    if save:
                        done.loss_history.append([self._episodes(done.step), float(np.mean(values))])
                        losses, done.pending_losses = [], []
                        done.wall_time_s = wall_before + time.perf_counter() - session_start
                        self._save(model, done)
                        saved = done.step
                        shown = {"loss": f"{done.loss_history[-1][1]:.4f}"}
                        if done.val_history:
                            shown["val"] = f"{done.val_history[-1][1]:.3f}"
                        bar.set_postfix(shown)
                    if done.stopped_early is not None:
                        break
                if stop.came():
                    done.wall_time_s = wall_before + time.perf_counter() - session_start
                    self._stop_if_signalled(model, done, losses, saved, stop)
        done.wall_time_s = wall_before + time.perf_counter() - session_start

    def _stop_if_signalled(
        self, model: Model, done: Progress, losses: list[Any], saved: int | None, stop: interrupts.Deferred
    ) -> None:
        """After a Ctrl-C or SIGTERM: save the checkpoint at this step (unless saved there), then raise ``Stopped``."""
        if stop.signum is None:
            return
        if saved != done.step:
            done.pending_losses = self._losses(losses, done.step, saved)
        done.stopped_by = stop.name
        self._save(model, done)  # again where a checkpoint was just saved here: it now says what stopped it
        total = self.prepared.total_steps
        raise interrupts.Stopped(
            f"stopped by {stop.name} at episode {self._episodes(done.step):,} of {self._episodes(total):,}"
            + (" (its validation there left for the rerun)" if done.unvalidated else "")
            + f"; checkpoint saved in {self.checkpoint_path}; rerun the same command"
            + (" without --restart" if self.restart else "")
            + " to resume",
            stop.signum,
        )

    def _provenance(self) -> dict[str, Any]:
        host, config = self.prepared.host, self.prepared.config
        model_plugin = host.info(host.models.plugin_of(config.model))
        dataset_plugin = host.info(host.datasets.plugin_of(config.dataset))
        return {
            "git": provenance.git_state(),
            "harness_version": __version__,
            "model_plugin": _plugin_ref(model_plugin),
            "dataset_plugin": _plugin_ref(dataset_plugin),
            "test_dataset_plugin": _plugin_ref(host.info(host.datasets.plugin_of(self.prepared.test_spec.name))),
            "plugins": {p.name: p.version for p in host.plugins() if not p.error},
            "data": self.prepared.data,
            "libraries": provenance.library_versions(),
            "machine": provenance.machine(),
        }


def _plugin_ref(info: PluginInfo) -> dict[str, str | None]:
    return {"name": info.name, "distribution": info.distribution, "version": info.version}


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
    """Prepare ``config``, then train/resume, evaluate and record it under ``out/<name>``.

    A given ``name`` is checked (see ``rundirs.resolve``) and its directory locked before the
    dataset is opened; a derived one once the config is resolved.
    """
    directory = None if name is None else rundirs.resolve(out, name)
    if directory is not None:
        _refuse_cell(directory)
    with rundirs.claim(directory, log) if directory is not None else contextlib.nullcontext():
        prepared = prepare(config, host)
        if directory is None:
            directory = rundirs.resolve(out, default_name(prepared.config))
            _refuse_cell(directory)
        return Run(prepared, directory).execute(restart=restart, progress=progress, log=log)


def _refuse_cell(directory: Path) -> None:
    """Refuse ``harness run`` in a cell of ``harness reproduce``, whose run the table's leaderboard reads."""
    if records.is_cell(directory):
        raise ConfigError(
            f"{directory} is a cell of 'harness reproduce' ({records.CELL} says which); run it with 'harness "
            "reproduce', or pass another --name or --out for a run of your own"
        )
