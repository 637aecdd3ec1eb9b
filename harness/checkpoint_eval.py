"""``harness evaluate``: a saved checkpoint's model rebuilt and tested again, on its own test episodes or others."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import checkpoints, devices, per_episode, rundirs, writable
from harness.checkpoints import CHECKPOINT
from harness.config import MAXIMA, check_one_place, did_you_mean
from harness.errors import ConfigError
from harness.evaluation import score
from harness.guard import guarded
from harness.plugins import PluginHost
from harness.records import CELL, RECORD
from harness.restore import restore
from harness.sources import check_episode_count

if TYPE_CHECKING:
    from harness.prepare import Prepared


def evaluate_checkpoint(
    path: Path,
    host: PluginHost,
    *,
    eval_episodes: int | None = None,
    dataset: str | None = None,
    data: dict[str, Any] | None = None,
    data_dir: Path | None = None,
    device: str = "auto",
    progress: bool = False,
    episodes_out: Path | None = None,
    split: str | None = None,
) -> dict[str, Any]:
    """Rebuild the model saved in a checkpoint (the best one with ``keep = best``) and evaluate it.

    ``dataset`` tests it on another dataset than the run's (its images must have the shape it
    was trained on; the metrics are then all that score that dataset); ``data`` adds options of
    the dataset tested on, such as where it lives on this machine (``data_dir`` sets its data
    directory option, see ``DatasetSpec.data_dir``). ``device`` is where to run it, whatever
    device wrote the checkpoint. ``episodes_out``: also write every test episode's values there
    (the format of a run's ``episodes.npz``); the result names the file and its SHA-256. ``split``: draw the
    fixed episodes from this split of the dataset tested on instead of its test split (the run's validation
    split: the episodes its validation drew; the training split: new episodes of the training classes, augmented
    as training was). Without ``dataset``, a split other than the test split is the training dataset's, with the
    options the run trained with, whatever dataset the run was tested on.
    """
    _check_flags(eval_episodes, device)
    given = _flags(dataset, data, data_dir)  # as typed, before --data-dir becomes the dataset's option
    if dataset is not None:
        host.datasets.get(dataset)  # an unknown name: the flag's error, before the checkpoint is read
    if episodes_out is not None:
        _check_episodes_out(episodes_out)
    state = checkpoints.load_run(path, given="give the checkpoint.pkl in a run's directory")
    values = {**state["config"], "device": device}
    if eval_episodes is not None:
        values["eval_episodes"] = eval_episodes
    if dataset is not None and dataset != (values.get("test_dataset") or values["dataset"]):
        values["test_dataset"] = None if dataset == values["dataset"] else dataset
        values["test_data"], values["metrics"] = {}, []
    tested_on = values.get("test_dataset")
    if dataset is None and split is not None and tested_on and split != host.datasets.get(tested_on).test_split:
        if tested_on != values["dataset"]:  # the training and validation splits are the training dataset's
            values["metrics"] = []
        values["test_dataset"], values["test_data"] = None, {}
    key = "test_data" if values.get("test_dataset") else "data"
    if data_dir is not None:
        tested_on = values.get("test_dataset") or values["dataset"]
        located = host.datasets.get(tested_on).data_dir(data_dir)
        check_one_place(data_dir, located, data or {}, tested_on)
        data = {**(data or {}), **located}
    if data:
        values[key] = {**values.get(key, {}), **data}
    restored = restore(state, host, values, source=str(path), flags=given)
    prepared = restored.prepared
    split = prepared.test_spec.test_split if split is None else split
    _check_split(prepared, split)
    model = guarded(restored.model, prepared.config.model, prepared.model_plugin)
    metrics, episode_values = score(prepared, model, progress=progress, split=split)
    result = {
        "checkpoint": str(path),
        "model": prepared.config.model,
        "dataset": prepared.config.dataset,
        "test_dataset": prepared.test_spec.name,
        "setting": prepared.settings.describe(),
        "split": split,
        "episodes_trained": state["episodes_trained"],
        "kept": restored.kept,
        "kept_episode": _kept_episode(state, restored.kept),
        "eval_episodes": prepared.config.eval_episodes,
        "data": prepared.data["test_dataset"],
        "metrics": metrics,
    }
    if episodes_out is not None:
        result["per_episode"] = per_episode.write_file(episodes_out, episode_values)
    return result


def _flags(dataset: str | None, data: dict[str, Any] | None, data_dir: Path | None) -> str:
    """The flags given that change what the checkpoint's dataset options are, as typed: errors about those
    options name them beside the checkpoint, since either may hold the value refused."""
    given = [f"--dataset {dataset}"] if dataset is not None else []
    given += [f"--data {key}={value}" for key, value in (data or {}).items()]
    return " ".join(given + ([f"--data-dir {data_dir}"] if data_dir is not None else []))


def _kept_episode(state: dict[str, Any], kept: str) -> int:
    """The episode the tested model was saved at: that of the best validation, under ``keep = best``."""
    if state.get("final") and isinstance(state.get("kept"), dict):
        return int(state["kept"]["episode"])
    return int(state["best"]["episode"]) if kept == "best" else int(state["episodes_trained"])


def _check_flags(eval_episodes: int | None, device: str) -> None:
    """Refuse a bad ``--eval-episodes`` or ``--device`` naming the flag, not the checkpoint whose value it replaces."""
    most = MAXIMA["eval_episodes"]
    if eval_episodes is not None and not 1 <= eval_episodes <= most:
        raise ConfigError(f"--eval-episodes must be from 1 to {most:,}, got {eval_episodes:,}")
    devices.check_flag(device, here=True)


def _check_split(prepared: Prepared, split: str) -> None:
    """Refuse a ``--split`` the dataset tested on does not have, or one with too few episodes, in one line."""
    spec = prepared.test_spec
    if split not in spec.splits:
        choices = list(spec.splits)
        hint = did_you_mean(split, choices)
        raise ConfigError(f"--split {split!r}: dataset {spec.name!r} has the splits {', '.join(choices)}{hint}")
    try:
        prepared.test_source.check(split, prepared.settings)
    except ConfigError as exc:  # its fix ("lower ways") is not one evaluate has: the checkpoint fixes the setting
        raise ConfigError(
            f"--split {split!r} cannot give the checkpoint's {prepared.settings.describe()} episodes: "
            f"{str(exc).rsplit('; ', 1)[0]}; evaluate on another split or dataset (--split, --dataset, --data)"
        ) from None
    check_episode_count(prepared.test_source, spec, split, prepared.config.eval_episodes, "--eval-episodes")


def _check_episodes_out(path: Path) -> None:
    """Refuse, before any work, an ``--episodes-out`` that is a folder, lies in no writable folder, bears the name
    of a run's own file (record, checkpoint, cell file, lock; its episodes file in a run's folder), or would
    replace a file other than an earlier ``--episodes-out``."""
    if path.is_dir():
        raise ConfigError(f"--episodes-out {path} is a folder; pass a file name, e.g. {path / 'test-episodes.npz'}")
    if path.name in (RECORD, CHECKPOINT, CELL, rundirs.LOCK) or (
        path.name == per_episode.FILE and any((path.parent / name).exists() for name in (RECORD, CHECKPOINT, CELL))
    ):
        raise ConfigError(f"--episodes-out {path} is the name of a run's own file; give another file name")
    if path.exists() and not per_episode.is_file(path):
        raise ConfigError(
            f"--episodes-out {path} would replace a file that is not one --episodes-out wrote; give a new file name"
        )
    if not path.parent.is_dir():
        raise ConfigError(f"--episodes-out {path}: the folder {path.parent} does not exist; create it first")
    writable.check_writable(path.parent, "--episodes-out", "FILE in a folder")
