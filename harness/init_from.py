"""``init_from``: a new run that starts from the tested weights of a finished run (fine-tuning).

Only a finished run's checkpoint is taken: it holds the weights that were tested (its ``kept`` model) and none
of the optimizer's state, so the new run's optimizer, learning rate and schedule start afresh. ``init_from`` is
a run directory, or in a table's budget ``budget:NAME``: the same cell (row, setting, seed) at budget NAME, in
the same results folder, which a budget that carries on from another one names (``xxl-lr-drop`` from ``xxl``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from harness import checkpoints, files
from harness.checkpoints import CHECKPOINT
from harness.errors import ConfigError, shortened
from harness.prepare import Prepared
from harness.specs import Model

FIX = "give the directory of a finished run of the same model"
BUDGET = "budget:"
"""``init_from = "budget:NAME"``: the same cell of ``harness reproduce`` at budget NAME."""


def source(given: str, directory: Path, cell: bool) -> Path:
    """The run directory ``init_from`` names for the run in ``directory`` (``cell``: one of ``harness reproduce``,
    ``<results>/<table>/<budget>/<row>/<setting>/seed<N>``, where ``budget:NAME`` names a sibling)."""
    if not given.startswith(BUDGET):
        return Path(given).expanduser()
    budget = given.removeprefix(BUDGET)
    if not cell:
        raise ConfigError(
            f"init_from {given!r} names a budget, which only a cell of harness reproduce has; give a run's directory"
        )
    *_, table, _, row, setting, seed = directory.parts
    return directory.parents[4] / table / budget / row / setting / seed


def load(prepared: Prepared, model: Model, directory: Path, cell: bool) -> dict[str, Any]:
    """Load into ``model`` the tested weights of the finished run that ``init_from`` names (for the run in
    ``directory``: ``source``); what the new run's record keeps of them (where they came from, that run's id,
    length, kept model and parameters)."""
    config = prepared.config
    given = str(config.init_from)
    path = source(given, directory, cell)
    checkpoint = path / CHECKPOINT if path.is_dir() else path
    if not checkpoint.is_file():
        if given.startswith(BUDGET):
            raise ConfigError(
                f"init_from {given!r}: the cell at that budget ({path}) has no checkpoint; run it first (harness "
                f"reproduce {directory.parts[-5]} --budget {given.removeprefix(BUDGET)})"
            )
        raise ConfigError(f"init_from {given}: no run's {CHECKPOINT} there; {FIX}")
    state = checkpoints.load_run(checkpoint)  # a damaged one: a one-line error naming the file
    saved = state["config"]
    if saved["model"] != config.model:
        raise ConfigError(f"init_from {given} holds a run of model {saved['model']!r}, not {config.model!r}; {FIX}")
    if not state.get("final"):
        raise ConfigError(
            f"init_from {given}: that run has not finished ({state['episodes_trained']:,} episodes trained); "
            f"finish it (rerun its command), or {FIX}"
        )
    try:
        model.load_state_dict(state["model_state"])
    except (
        Exception
    ) as exc:  # the plugin's own error (``guarded``: its cause), of any type, for weights that do not fit
        cause = exc.__cause__ or exc
        text = " ".join(str(cause).split())  # every line: torch names the keys that differ after the first
        problem = shortened(f"{type(cause).__name__}: {text}" if text else type(cause).__name__, 300)
        raise ConfigError(
            f"init_from {given}: its weights do not fit this model ({problem}); give a run of the same model "
            "parameters (those that shape the network)"
        ) from None
    return {
        "from": str(path) if given.startswith(BUDGET) else given,
        "checkpoint_sha256": hashlib.sha256(files.read_regular(checkpoint)).hexdigest(),
        "run_id": state.get("run_id", ""),
        "episodes_trained": state["episodes_trained"],
        "kept": state.get("kept"),
        "budget": saved.get("budget"),
        "seed": saved.get("seed"),
        "params": saved.get("params"),
    }
