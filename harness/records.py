"""Reading the JSON files of a run directory (``record.json``, ``cell.json``): damaged ones refused in one line.

Every reader names the file and the fix that suits its command (``--restart`` for ``harness
run``, deleting the cell's folder for ``harness reproduce``), never a traceback.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from harness import checkpoints, files
from harness.checkpoints import CHECKPOINT, is_count, is_finite, run_id
from harness.config_changes import plain
from harness.errors import DataError, HarnessError, describe, printable, shortened
from harness.tables import UNFIXED_KEYS, TableSpec, cell_name

RECORD = "record.json"
"""A run's record: its numbers and provenance, written when it is tested."""
CELL = "cell.json"
"""Written by ``harness reproduce`` beside each run's record: which cell of which table it is."""
CELL_FIELDS = ("table", "row", "setting", "seed", "budget")
"""What ``cell.json`` says of its cell (``harness.tables.Cell.describe``)."""
RESTART = "rerun with --restart to start the run over"
"""What starts a ``harness run`` over: the fix its errors offer where the run directory cannot be resumed."""

JSON_TYPES = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean"}
JSON_MAX_BYTES = 64 * 2**20
"""The largest record or cell file read (the committed records are under 100 kB): a larger one is damaged."""


def read_json(path: Path, fix: str) -> dict[str, Any]:
    """The JSON object in ``path``; a one-line ``DataError`` naming it and ``fix`` when it is damaged."""
    try:
        value = json.loads(files.read_regular(path, max_size=JSON_MAX_BYTES).decode("utf-8"))
    except files.TooLarge as exc:
        raise DataError(f"{path} cannot be read: {exc.strerror}, far more than a run writes; {fix}") from None
    except IsADirectoryError:
        raise DataError(f"{path} is a folder, not a JSON file; {fix}") from None
    except files.NotRegularFile:
        raise DataError(f"{path} is not a regular file (a FIFO, device or socket); {fix}") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} cannot be read: not UTF-8 text (byte {exc.start}); {fix}") from None
    except (ValueError, RecursionError) as exc:
        raise DataError(f"{path} cannot be read: not valid JSON ({describe(exc)}); {fix}") from None
    except OSError as exc:  # a link to nothing or in a loop, a file it may not read
        what = "a link to nothing" if path.is_symlink() and not path.exists() else exc.strerror or type(exc).__name__
        raise DataError(f"{path} cannot be read ({what}); {fix}") from None
    if not isinstance(value, dict):
        raise DataError(f"{path} cannot be read: it holds {JSON_TYPES.get(type(value), 'null')}, not an object; {fix}")
    return value


def record_fix(path: Path, rerun: str) -> str:
    """The fix for the damaged record at ``path``: delete it alone where the checkpoint keeps the training
    (``rerun`` then tests that checkpoint again), else start over (``--restart`` for a run of ``harness run``,
    deleting the folder for a cell of ``harness reproduce``, which has no ``--restart``)."""
    cell = is_cell(path.parent)
    if (path.parent / CHECKPOINT).is_file():
        what = "cell" if cell else "run"
        fix = (
            f"delete {path} and {rerun}: it carries on from the {what}'s checkpoint (tests it again, without "
            "training, if finished)"
        )
        return fix if cell else f"{fix} (or pass --restart to train it again)"
    return start_cell_over(path.parent, rerun) if cell else RESTART


def read_cell(directory: Path, table: str) -> dict[str, Any]:
    """What ``directory``'s ``cell.json`` says: a cell of ``table``, its row, setting, budget and seed, whose folder
    is this one. A damaged, foreign, copied or moved one is a one-line ``DataError`` naming its fix."""
    path, fix = directory / CELL, rewrite_cell_file(directory)
    cell = read_json(path, fix)
    if (
        cell.get("table") != table
        or not all(isinstance(cell.get(field), str) for field in ("row", "setting", "budget"))
        or not is_count(cell.get("seed"))
    ):
        raise DataError(f"{path} does not name table {table!r} and the row, setting, budget and seed of a cell; {fix}")
    expected = cell_name(table, cell["budget"], cell["row"], cell["setting"], cell["seed"])
    if directory.parts[-len(PurePosixPath(expected).parts) :] != PurePosixPath(expected).parts:
        raise DataError(
            f"{path} describes the cell {expected} but lies in {directory}: a copied or moved cell folder; "
            f"delete it, or move it to <results>/{expected} if that cell is missing (if only the file was edited, "
            f"{rewrite_cell_file(directory)})"
        )
    return cell


def _foreign(cell: dict[str, Any], record: dict[str, Any], setting: Mapping[str, Any] | None) -> str | None:
    """How ``record`` shows that it is another cell's (copied or moved here), if it does: the cell it names (records
    of cells name theirs) in another folder, a seed or budget other than ``cell``'s, or a value other than what
    ``setting`` fixes where the record holds it: a key of the cell's setting (of ``data``, an option the setting
    gives), the row's model or a hyperparameter that tells the rows apart (``Cell.fixed_config``; the setting's
    own values where the rows are unknown; ``None``: not checked). The problem, or ``None``."""
    stamp = record.get("cell")
    if stamp is not None and _folder(stamp) != _folder(cell):  # a row or setting relabelled keeps its folder
        return f"it is the record of the cell {_folder(stamp) or repr(stamp)}, not of {_folder(cell)}"
    for field in ("seed", "budget"):
        if field in record and record[field] != cell[field]:
            return f"it is the record of {field} {record[field]!r}, but its cell is {field} {cell[field]!r}"
    config = record.get("config")
    if not setting or not isinstance(config, dict):
        return None
    for key, value in setting.items():
        if key in ("model", "params", "param_defaults", "data_defaults") or key not in config:
            continue
        saved, given = config[key], value
        if key == "data" and isinstance(saved, dict) and isinstance(value, Mapping):  # the options the cell fixes
            differing = _differing(value, saved, setting.get("data_defaults"))
            if differing is None:
                continue
            option, saved = differing
            key, given = f"data option {option}", value[option]
        elif plain(saved) == plain(value):
            continue
        where = f"setting {cell['setting']!r} at budget {cell['budget']!r}"
        if key.startswith("data option"):  # the setting's options, or a row's in its place
            where = f"row {cell['row']!r} in {where}"
        return f"it was trained with {key} {saved!r}, but its cell's {where} has {key} {given!r}"
    return _other_row(cell, config, setting)


Fixed = Mapping[tuple[str, str, str], Mapping[str, Any]]
"""What the cells of a table fix of their records, by ``(budget, row, setting)`` (``reproduce.fixed_configs``)."""


def fixed_for(cell: Mapping[str, Any], table: TableSpec, fixed: Fixed) -> Mapping[str, Any] | None:
    """What ``cell`` (its ``cell.json``) fixes of its record: its row's cell's ``fixed`` values where the installed
    rows make that cell, else what its budget and setting in ``table`` give but ``data`` (whose options a row may
    change) and ``UNFIXED_KEYS`` (``None`` for a setting the table lacks)."""
    made = fixed.get((cell["budget"], cell["row"], cell["setting"]))
    if made is not None:
        return made
    setting = table.setting_config(cell["setting"])
    if setting is None:
        return None
    given = {**table.budgets.get(cell["budget"], {}), **setting}
    return {key: value for key, value in given.items() if key not in (*UNFIXED_KEYS, "data")}


def _other_row(cell: dict[str, Any], config: dict[str, Any], fixed: Mapping[str, Any]) -> str | None:
    """How the record's ``config`` shows that another row trained it, if it does: a model, or a hyperparameter the
    row gives (``fixed["params"]``), other than the cell's row fixes (``Cell.fixed_config``)."""
    if "model" in fixed and "model" in config and config["model"] != fixed["model"]:
        model, row = config["model"], cell["row"]
        return f"it was trained with model {model!r}, but its cell's row {row!r} has {fixed['model']!r}"
    params, given = config.get("params"), dict(fixed.get("params") or {})
    differing = _differing(given, params, fixed.get("param_defaults")) if isinstance(params, dict) else None
    if differing is None:
        return None
    name, saved = differing
    return (
        f"it was trained with the hyperparameter {name}={saved!r}, but its cell's row {cell['row']!r} has "
        f"{name}={given[name]!r}"
    )


def _differing(
    given: Mapping[str, Any], saved: Mapping[str, Any], defaults: Mapping[str, Any] | None
) -> tuple[str, Any] | None:
    """``(name, saved value)`` of the first of ``given``'s values that ``saved`` holds otherwise, one it lacks
    counting at its ``defaults`` value (a name in neither is not compared); ``None`` if none differs."""
    known = {**dict(defaults or {}), **saved}
    name = next((name for name in given if name in known and plain(known[name]) != plain(given[name])), None)
    return None if name is None else (name, known[name])


def _folder(cell: Any) -> str | None:
    """The folder of the cell that ``cell`` (a ``cell.json`` or a record's ``cell``) describes; ``None`` if none."""
    try:
        return cell_name(*(cell[field] for field in ("table", "budget", "row", "setting", "seed")))
    except (KeyError, TypeError, AttributeError):
        return None


def cell_of(directory: Path) -> dict[str, Any] | None:
    """What ``directory``'s ``cell.json`` says of its cell (``CELL_FIELDS``), for its record to name; ``None`` where
    it is no cell or the file is damaged (the record is then checked by what it holds)."""
    try:
        cell = read_json(directory / CELL, "")
    except (DataError, OSError):
        return None
    return {field: cell.get(field) for field in CELL_FIELDS}


def check_own(
    path: Path, cell: dict[str, Any], record: dict[str, Any], setting: Mapping[str, Any] | None, fix: str
) -> None:
    """Refuse, in one line naming ``fix``, the record at ``path`` if it shows that it is another cell's than ``cell``
    (``_foreign``; ``setting``: what the cell's setting fixes of the config, ``None``: not checked)."""
    problem = _foreign(cell, record, setting)
    if problem is None:
        return
    directory = path.parent
    if record.get("run_id") and run_id(directory / CHECKPOINT) == record["run_id"]:  # the cell's own run, then
        if _checkpoint_fits(directory / CHECKPOINT, cell, setting):  # what the run saved fits: the record was edited
            raise DataError(f"{path}: {problem}; the cell's checkpoint, of the same run, fits the cell, so the record "
                            f"was changed after the run wrote it; {fix}")  # fmt: skip
        raise DataError(
            f"{path}: {problem}, and the cell's checkpoint is of the same run: the cell's row, setting or budget "
            f"changed since it ran (or the cell was copied whole); to run it as it is now, delete {directory} and "
            f"{rerun_cell(directory)}"
        )
    raise DataError(f"{path}: {problem}: a record copied from another cell; {fix}")


def _checkpoint_fits(path: Path, cell: dict[str, Any], setting: Mapping[str, Any] | None) -> bool:
    """Whether the config the checkpoint at ``path`` saved shows nothing of another cell's (``_foreign``)."""
    try:
        config = checkpoints.load(path).get("config")
    except (HarnessError, OSError):
        return False
    if not isinstance(config, dict):
        return False
    return (
        _foreign(cell, {"config": config, "seed": config.get("seed"), "budget": config.get("budget")}, setting) is None
    )


def is_cell(directory: Path) -> bool:
    """Whether ``directory`` is a cell of ``harness reproduce`` (which writes ``cell.json`` before it runs one)."""
    return (directory / CELL).is_file()


def rewrite_cell_file(directory: Path) -> str:
    """What writes a cell's missing or damaged ``cell.json`` again, keeping what the cell trained: ``harness
    reproduce`` writes it for every cell it selects (``directory`` is ``<results>/<table>/<budget>/...``)."""
    return (
        f"delete {directory / CELL} if it is there and {rerun_cell(directory)}: it writes the file again and keeps "
        "what the cell trained"
    )


def rerun_cell(directory: Path) -> str:
    """The ``harness reproduce`` command that runs the cell in ``directory`` (``<results>/<table>/<budget>/...``)."""
    table, budget, results = directory.parts[-5], directory.parts[-4], directory.parents[4]
    return (
        f"rerun 'harness reproduce {table} --budget {budget} --results {results}' with the --row, --setting and "
        "--seeds of this cell"
    )


def orphan_problem(directory: Path) -> str:
    """The one-line problem of a cell folder that holds a run but no ``cell.json`` (``orphan_cells``), with its fix."""
    what = f"{CELL} that is not a file" if (directory / CELL).exists() else f"no {CELL}"
    return (
        f"{directory} holds a run but {what}; {rewrite_cell_file(directory)} (a folder that is no cell of the "
        f"table, which that command leaves alone: move it out of {directory.parents[3]})"
    )


def orphan_cells(table_results: Path) -> list[Path]:
    """Cell folders under ``<results>/<table>`` that hold a run (record or checkpoint) but no ``cell.json``."""
    return [
        directory
        for directory in cell_folders(table_results)
        if not is_cell(directory) and ((directory / RECORD).exists() or (directory / CHECKPOINT).exists())
    ]


def start_cell_over(directory: Path, rerun: str = "rerun") -> str:
    """What starts the ``harness reproduce`` cell in ``directory`` over (the command has no ``--restart``)."""
    return f"delete {directory} and {rerun} to run the cell again"


def read_record(path: Path, fix: str) -> dict[str, Any]:
    """The run record in ``path``, checked to hold what the harness reads of it (a run writes one when it is
    tested: complete, with its config, which a rerun compares, and its numbers); one-line ``DataError`` if not."""
    record = read_json(path, fix)
    problem = _record_problem(record)
    if problem is not None:
        raise DataError(f"{path} is not a run record the harness can use ({problem}); {fix}")
    return record


def of_another_run(record: Mapping[str, Any], saved: Mapping[str, Any]) -> bool:
    """Whether ``record`` is another run's than the checkpoint that holds ``saved`` (its state, or its
    ``checkpoints.progress``): the run a ``--restart`` is replacing, whose record stays until the new run writes its
    own. Another ``run_id`` says so (a checkpoint from before run ids has none), and so does another count of
    episodes trained."""
    run_id, trained = saved.get("run_id"), saved.get("episodes_trained")
    other_run = bool(run_id) and record.get("run_id") != run_id
    other_length = is_count(trained) and record.get("episodes_trained", trained) != trained
    return other_run or other_length


def per_episode_problem(record: dict[str, Any], directory: Path) -> str | None:
    """What is wrong with the per-episode file a record refers to (missing, or not the file it names by its
    SHA-256), if anything."""
    return per_episode_bytes(record, directory)[1]


def per_episode_bytes(record: dict[str, Any], directory: Path) -> tuple[bytes | None, str | None]:
    """The bytes of the per-episode file a record refers to, read once, and what is wrong with it
    (``per_episode_problem``); ``(None, None)`` for a record that names none, no bytes where it is wrong."""
    reference = record.get("per_episode")
    if not isinstance(reference, dict):
        return None, None
    path = directory / reference["file"]
    try:
        data = files.read_regular(path)
    except IsADirectoryError:
        return None, f"its {reference['file']} is a folder, not the file it refers to"
    except files.NotRegularFile:
        return None, f"its {reference['file']} is not a regular file"
    except OSError:  # missing, unreadable
        return None, f"its {reference['file']} is missing"
    if hashlib.sha256(data).hexdigest() != reference["sha256"]:
        return None, f"its {reference['file']} does not match the SHA-256 in {RECORD}"
    return data, None


def check_per_episode(path: Path, record: dict[str, Any]) -> None:
    """Refuse, in one line naming the fix, the cell record at ``path`` whose per-episode file is missing or not the
    one it names (``per_episode_problem``): its numbers cannot be checked against it (``record_values``). A rerun
    tests the cell's checkpoint again and writes both anew; without a checkpoint, the file must come back."""
    directory = path.parent
    problem = per_episode_problem(record, directory)
    if problem is None:
        return
    if (directory / CHECKPOINT).is_file():
        fix = f"{rerun_cell(directory)}: it tests the cell's checkpoint again and writes both anew"
    else:
        fix = f"restore that file (e.g. git checkout), or {start_cell_over(directory, rerun_cell(directory))}"
    named = directory / record["per_episode"]["file"]
    if named.is_dir() or (named.exists() and not named.is_file()):  # a folder or FIFO where the file goes
        fix = f"move {named} away, then {fix}"
    raise DataError(f"{path}: {problem}, so its numbers cannot be checked; {fix}")


def _record_problem(record: dict[str, Any]) -> str | None:
    """What a record lacks that the harness reads: the status a run writes (``complete``), its config and metrics."""
    if record.get("status") != "complete":
        return f"status {printable(shortened(repr(record.get('status')), 100))}, where a run writes 'complete'"
    if not _config(record.get("config")):
        return "no config naming its model and metrics"
    metrics = record.get("metrics")
    if not isinstance(metrics, dict) or not all(
        isinstance(keys, dict) and all(isinstance(s, dict) for s in keys.values()) for keys in metrics.values()
    ):
        return "metrics is not {metric: {key: summary}}"
    if not all(_summary(summary) for keys in metrics.values() for summary in keys.values()):
        return "a summary in metrics whose mean, ci95 or n is not a number as a run writes it"
    reference = record.get("per_episode")
    if reference is not None and not _plain_file_reference(reference):
        return "per_episode does not name a file beside it and its SHA-256"
    problem = progress_problem(record)
    if problem is None and record.get("episodes_trained") is None:
        return "no count of the episodes trained"
    return problem


def stopped_at(stopped: Any) -> int | None:
    """The episode where patience stopped training: a record holds ``{"at_episode", "patience"}``, a checkpoint
    (and a record written by hand from one) the episode alone; ``None`` if training was not stopped early."""
    episode = stopped.get("at_episode") if isinstance(stopped, dict) else stopped
    return episode if is_count(episode) else None


def progress_problem(saved: dict[str, Any]) -> str | None:
    """What is wrong with the progress a record or checkpoint holds (episodes trained, where patience stopped
    training, validations, training time), if any of it is there but of another type."""
    checks = {
        "episodes_trained": is_count,
        "stopped_early": lambda value: stopped_at(value) is not None,
        "val_history": lambda value: isinstance(value, list) and all(_validation(entry) for entry in value),
        "train_wall_time_s": _duration,
        "wall_time_s": _duration,
    }
    bad = [key for key, check in checks.items() if saved.get(key) is not None and not check(saved[key])]
    return f"{', '.join(bad)} in a form the harness cannot read" if bad else None


def _summary(summary: dict[str, Any]) -> bool:
    """Whether ``summary`` holds what ``Summary.as_dict`` writes: a finite mean and a finite ci95 not below 0, each
    or ``null``, and an episode count (where it gives them)."""
    mean, ci = summary.get("mean"), summary.get("ci95")
    return (
        (mean is None or is_finite(mean))
        and (ci is None or (is_finite(ci) and ci >= 0))
        and ("n" not in summary or is_count(summary["n"]))
    )


def _validation(entry: Any) -> bool:
    """Whether ``entry`` of ``val_history`` is ``[episode, accuracy]``."""
    return isinstance(entry, (list, tuple)) and len(entry) == 2 and is_count(entry[0]) and is_finite(entry[1])


def _duration(value: Any) -> bool:
    return is_finite(value) and value >= 0


def _config(config: Any) -> bool:
    """Whether ``config`` is a run config as a record keeps it: a dict naming the model (and metrics, if any)."""
    if not isinstance(config, dict) or not isinstance(config.get("model"), str):
        return False
    names = config.get("metrics", [])
    return isinstance(names, list) and all(isinstance(name, str) for name in names)


def _plain_file_reference(reference: Any) -> bool:
    """Whether ``reference`` is ``{"file": NAME, "sha256": HEX}`` with NAME a plain file name (no folder)."""
    if not isinstance(reference, dict) or not isinstance(reference.get("sha256"), str):
        return False
    name = reference.get("file")
    return isinstance(name, str) and name not in ("", ".", "..") and "\0" not in name and Path(name).name == name


def mean_ci(table: TableSpec, record: Mapping[str, Any], key: str, path: Path, fix: str) -> tuple[float, float]:
    """The mean and 95% CI half-width behind column ``key`` of the record at ``path``: fractions, the mean in 0..1,
    the CI NaN where the record has ``null``; otherwise a one-line ``DataError`` naming ``fix``."""
    try:
        summary = table.summary(record["metrics"], key)
        mean, ci = _number(summary["mean"]), _number(summary["ci95"])
    except (KeyError, TypeError, ValueError):
        mean = ci = math.nan
    if math.isfinite(mean) and not 0 <= mean <= 1:
        raise DataError(
            f"{path} holds {table.metric} {key!r} mean {mean:g}, not a fraction from 0 to 1, which the leaderboard "
            f"shows in percent: give table {table.name!r} a metric of fractions (TableSpec.metric); if the record "
            f"was damaged, {fix}"
        )
    if not 0 <= mean <= 1 or ci < 0 or math.isinf(ci):  # NaN fails the first test
        raise DataError(f"{path} has no {table.metric} {key!r} mean (a fraction) and ci95 (one not below 0); {fix}")
    return mean, ci


def _number(value: Any) -> float:
    """A summary's number: ``null`` (what JSON keeps of NaN) is NaN; anything but a number is a ``TypeError``."""
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"not a number: {value!r}")
    return float(value)


def cell_files(folder: Path) -> list[Path]:
    """The ``cell.json`` of each cell of the table whose results are in ``folder``, at the depth cells lie
    (``<budget>/<row>/<setting>/seed<N>``): a copy nested inside a cell is no cell. A file in the folder's place
    is a one-line ``DataError``: it would read as a table with no runs."""
    return [directory / CELL for directory in cell_folders(folder) if (directory / CELL).exists()]


def cell_folders(folder: Path) -> list[Path]:
    """The folders at the depth of cells (``<budget>/<row>/<setting>/seed<N>``) under a table's ``folder``, sorted.

    A file in the folder's place is a one-line ``DataError`` (it would read as a table with no runs), and so is a
    symbolic link for the folder or among those below it (``real_folder``)."""
    if folder.exists() and not folder.is_dir():
        raise DataError(f"{folder} is a file, where the runs of table {folder.name!r} belong; move it away")
    real_folder(folder)
    level = [folder] if folder.is_dir() else []
    for _ in range(4):
        below = []
        for parent in level:
            try:
                entries = sorted(parent.iterdir())
            except PermissionError:
                raise DataError(f"{parent} cannot be read (permission denied); make it readable, then rerun") from None
            for entry in entries:
                real_folder(entry)
                if entry.is_dir():
                    below.append(entry)
        level = below
    return level


def real_folder(path: Path) -> None:
    """Refuse in one line a symbolic link where a table's folder or one of its cells' folders belongs: a link
    makes one cell's folder another's (whose fixes would then delete or overwrite that one) or leads off the
    results folder, and a dangling one blocks the cell; the results folder itself may be a link."""
    if path.is_symlink() and (path.is_dir() or not path.exists()):  # a link to a file is no folder: left alone
        raise DataError(
            f"{path} is a symbolic link ({_target(path)}); a table's cells are read and written in real folders "
            "only: replace the link with a folder (or move the folder it names there), or link the results folder "
            "itself"
        )


def _target(link: Path) -> str:
    """Where ``link`` leads, for a message: ``to /x``, ``to nothing``, or ``in a loop``."""
    try:
        return f"to {link.resolve(strict=True)}"
    except RuntimeError:  # a loop, before Python 3.13
        return "in a loop"
    except OSError as exc:  # a loop from Python 3.13, or a link to nothing
        return "in a loop" if exc.errno == errno.ELOOP else "to nothing"


def check_setting(path: Path, cell: Mapping[str, Any], table: TableSpec) -> None:
    """Refuse in one line the cell file at ``path`` whose setting ``table`` does not have."""
    if table.setting_config(cell["setting"]) is None:
        raise DataError(
            f"{path} describes setting {cell['setting']!r}, which table {table.name!r} does not have; delete its folder"
        )
