"""``init_from``: a new run that starts from the tested weights of a finished run (fine-tuning).

Only a finished run's checkpoint is taken: it holds the weights that were tested (its ``kept`` model) and none
of the optimizer's state, so the new run's optimizer, learning rate and schedule start afresh.
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


def load(prepared: Prepared, model: Model) -> dict[str, Any]:
    """Load into ``model`` the tested weights of the finished run that ``init_from`` names; what the new run's
    record keeps of them (where they came from, that run's id, length, kept model and parameters)."""
    config = prepared.config
    given = str(config.init_from)
    if not prepared.model_spec.trainable:
        raise ConfigError(f"model {config.model!r} has nothing to train, so init_from does not apply; drop it")
    path = Path(given).expanduser()
    checkpoint = path / CHECKPOINT if path.is_dir() else path
    if not checkpoint.is_file():
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
        "from": given,
        "checkpoint_sha256": hashlib.sha256(files.read_regular(checkpoint)).hexdigest(),
        "run_id": state.get("run_id", ""),
        "episodes_trained": state["episodes_trained"],
        "kept": state.get("kept"),
        "budget": saved.get("budget"),
        "seed": saved.get("seed"),
        "params": saved.get("params"),
    }
