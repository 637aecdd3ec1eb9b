"""``init_from``: a new run that starts from the tested weights of a finished run (fine-tuning).

Only a finished run's checkpoint is taken: it holds the weights that were tested (its ``kept`` model) and none
of the optimizer's state, so the new run's optimizer, learning rate and schedule start afresh. ``init_from`` is
a run directory, or in a table's budget ``budget:NAME``: the same cell (row, setting, seed) at budget NAME, in
the same results folder, which a budget that carries on from another one names (``xxl-lr-drop`` from ``xxl``); the
record names such a source relative to the run's own directory.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from pathlib import Path
from typing import Any

from harness import checkpoints, files, records
from harness.checkpoints import CHECKPOINT
from harness.errors import ConfigError, DataError, shortened
from harness.prepare import Prepared
from harness.specs import Model
from harness.tables import BUDGET

FIX = "give the directory of a finished run of the same model"


def source(given: str, directory: Path, cell: bool) -> Path:
    """The run directory ``init_from`` names for the run in ``directory`` (``cell``: one of ``harness reproduce``,
    ``<results>/<table>/<budget>/<row>/<setting>/seed<N>``, where ``budget:NAME`` names a sibling)."""
    if not given.startswith(BUDGET):
        try:
            return Path(given).expanduser()
        except RuntimeError as exc:  # ~user of no such user
            raise ConfigError(f"init_from {shortened(given, 200)}: {exc}; give a run's directory") from None
    if not cell:
        raise ConfigError(
            f"init_from {given!r} names a budget, which only a cell of harness reproduce has; give a run's directory"
        )
    *_, table, _, row, setting, seed = directory.parts
    return directory.parents[4] / table / given.removeprefix(BUDGET) / row / setting / seed


def load(prepared: Prepared, model: Model, directory: Path, cell: bool) -> dict[str, Any]:
    """Load into ``model`` the tested weights of the finished run that ``init_from`` names (for the run in
    ``directory``: ``source``); what the new run's record keeps of them (where they came from, that run's id,
    length, kept model and parameters)."""
    config = prepared.config
    given = str(config.init_from)
    named = f"init_from {shortened(given, 200)}"
    try:
        path = source(given, directory, cell)
        checkpoint = path / CHECKPOINT if path.is_dir() else path
        if checkpoint.resolve().parent == directory.resolve():
            raise ConfigError(f"{named} is this run's own directory, which the run replaces; {FIX}")
        found = checkpoint.is_file()
    except OSError as exc:  # a name too long, a folder it may not enter
        raise ConfigError(f"{named} cannot be read ({type(exc).__name__}: {exc.strerror or exc}); {FIX}") from None
    start = _start_command(given, directory) if given.startswith(BUDGET) else ""
    if not found:
        if checkpoint.exists() or checkpoint.is_symlink():  # a FIFO, a device, a folder, a link to nothing
            raise ConfigError(f"{named}: {checkpoint} is not a regular file, as a run's {CHECKPOINT} is; {FIX}")
        if not start:
            raise ConfigError(f"{named}: no run's {CHECKPOINT} there; {FIX}")
        if _complete(path / records.RECORD):  # a finished cell that lost its checkpoint: reproduce would skip it
            raise ConfigError(
                f"{named}: the cell at that budget ({path}) has a record but no {CHECKPOINT}; restore that file "
                f"(e.g. git checkout), or delete {path} and run it again: {start}"
            )
        raise ConfigError(f"{named}: the cell at that budget ({path}) has no {CHECKPOINT}; run it first: {start}")
    if start:
        records.read_cell(path, directory.parts[-5])  # a copied or moved cell folder: one line naming its fix
    state = checkpoints.load_run(checkpoint, given=FIX)  # a damaged one: a one-line error naming the file
    saved = state["config"]
    if saved["model"] != config.model:
        raise ConfigError(f"{named} holds a run of model {saved['model']!r}, not {config.model!r}; {FIX}")
    budget = given.removeprefix(BUDGET)
    if start and (saved.get("seed"), saved.get("budget")) != (config.seed, budget):
        raise ConfigError(
            f"{named}: the checkpoint in {path} is a run of seed {saved.get('seed')!r} at budget "
            f"{saved.get('budget')!r}, not this cell's seed {config.seed} at {budget!r} (a copied checkpoint?); "
            f"delete {path} and run it again: {start}"
        )
    if not state.get("final"):
        if not hasattr(model, "final_state_dict") and _complete(checkpoint.parent / records.RECORD):
            raise ConfigError(
                f"{named}: model {config.model!r} keeps no tested weights apart from its training state (its plugin "
                "has no final_state_dict), so no run can start from them"
            )
        finish = f"finish it: {start}" if start else f"finish it (rerun its command), or {FIX}"
        raise ConfigError(
            f"{named}: that run has not finished ({state['episodes_trained']:,} episodes trained); {finish}"
        )
    try:
        model.load_state_dict(state["model_state"])
    except DataError as exc:  # weights refused unloaded (``harness.torch``)
        raise DataError(f"{named}: {exc}") from None
    except Exception as exc:  # the plugin's own (``guarded``: its cause), of any type, for weights that do not fit
        cause = exc.__cause__ or exc
        text = " ".join(str(cause).split())  # every line: torch names the keys that differ after the first
        problem = shortened(f"{type(cause).__name__}: {text}" if text else type(cause).__name__, 300)
        raise ConfigError(
            f"{named}: its weights do not fit this model ({problem}); give a run of the same model, parameters and "
            "setting (ways, labels, image size: whatever shapes the network)"
        ) from None
    entry = {
        "from": _relative(path) if given.startswith(BUDGET) else given,
        "checkpoint_sha256": hashlib.sha256(files.read_regular(checkpoint)).hexdigest(),
        "run_id": state.get("run_id", ""),
        "episodes_trained": state["episodes_trained"],
        "kept": state.get("kept"),
        "budget": saved.get("budget"),
        "seed": saved.get("seed"),
        "params": saved.get("params"),
    }
    try:  # what the record will hold: checked now, not after training
        return dict(json.loads(json.dumps(entry, allow_nan=False)))
    except (TypeError, ValueError):
        raise ConfigError(f"{named}: its checkpoint holds values that are not JSON (kept, params); {FIX}") from None


def _relative(path: Path) -> str:
    """``path`` (a sibling cell) as seen from the cell that carries on from it:
    ``../../../../NAME/row/setting/seedN``, the same on every machine the results folder is copied to (an absolute
    path names this machine's folders)."""
    return Path("..", "..", "..", "..", *path.parts[-4:]).as_posix()


def _start_command(given: str, directory: Path) -> str:
    """The ``harness reproduce`` command that runs the cell ``given`` (``budget:NAME``) names for the cell in
    ``directory``: the same row, setting and seed at budget NAME, in the same results folder."""
    cell = records.cell_of(directory) or {}
    row, setting, seed = (cell.get(field) for field in ("row", "setting", "seed"))
    if not (isinstance(row, str) and isinstance(setting, str) and records.is_count(seed)):
        table, budget = directory.parts[-5], given.removeprefix(BUDGET)
        return f"harness reproduce {table} --budget {budget} with this cell's --row, --setting and --seeds"
    return shlex.join(
        [
            "harness", "reproduce", directory.parts[-5], "--budget", given.removeprefix(BUDGET), "--row", row,
            "--setting", setting, "--seeds", str(seed), "--results", str(directory.parents[4]),
        ]
    )  # fmt: skip


def _complete(record: Path) -> bool:
    """Whether ``record`` is there and says its run is complete (a damaged one does not)."""
    try:
        return record.is_file() and records.read_json(record, "").get("status") == "complete"
    except (DataError, OSError):
        return False
