"""Whether a trained MetaNet's representation learner u still tells images apart (a diagnostic; not a test).

    python plugins/harness-metanet/benchmarks/representation_state.py RUN_DIR [RUN_DIR ...]
    python plugins/harness-metanet/benchmarks/representation_state.py --untrained --seeds 0,1,2 RUN_DIR

For each run folder (a ``metanet`` run's ``checkpoint.pkl``), loads the weights that ``harness
evaluate`` tests and, on the first validation episode, prints: the memory read's attention
(mean largest weight, and its entropy beside ln(N·K), the entropy of a uniform read); how alike
u's keys of the queries are (mean cosine similarity to their mean, with and without the
task-level fast weights); and u's penultimate layer with its slow weights only (the share of
its units that no query turns on, and the spread of the rest over the queries). A collapsed u
reads memory uniformly, so every query gets the same fast weights and the same prediction.
With ``--untrained`` the same is measured on the model the run started from (its config's seed,
or each of ``--seeds``), before any training.
Needs the Omniglot archives (``HARNESS_OMNIGLOT_DIR``).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from harness import checkpoints
from harness.config import build_config
from harness.errors import HarnessError
from harness.evaluation import VAL, batches
from harness.plugins import PluginHost
from harness.prepare import prepare
from harness.restore import restore


def kept_model(run: Path):
    """The run's model with the weights ``harness evaluate`` would test, and the prepared run."""
    state = checkpoints.load(run / "checkpoint.pkl")
    if state["config"].get("model") != "metanet":
        raise HarnessError(f"{run}: a run of {state['config'].get('model')!r}; this script looks inside 'metanet' runs")
    restored = restore(state, PluginHost(), {**state["config"], "device": "cpu"}, source=str(run))
    return state, restored.prepared, restored.model.module


def untrained_model(run: Path, seed: int | None):
    """The model the run started from (seeded by its config, or by ``seed``), and the run's state and prepared run."""
    state = checkpoints.load(run / "checkpoint.pkl")
    values = {**state["config"], "device": "cpu"} | ({} if seed is None else {"seed": seed})
    prepared = prepare(build_config(values, source=str(run)), PluginHost(), input_shape=tuple(state["input_shape"]))
    return {**state, "episodes_trained": 0, "config": values}, prepared, prepared.build_model().module


def report(run: Path, untrained: bool = False, seed: int | None = None) -> dict:
    state, prepared, net = untrained_model(run, seed) if untrained else kept_model(run)
    net.eval()
    data = next(iter(batches(prepared, "val", VAL, 0, 1))).to_torch("cpu")
    support, labels, queries = data["support_images"], data["support_targets"], data["query_images"]
    with torch.no_grad():
        net(support, labels, queries)
        attention = net.last_attention[0]  # [Q, N*K]
        generated = net._generate(support, labels)
        task = () if generated["Q*"] is None else (net.u.split(generated["Q*"]),)
        features = net.u.trunk(queries)
        keys = {
            "with task fast weights": net.u.head(features, fast=task, upto=net.cfg["key_layer"])[0],
            "slow weights only": net.u.head(features, upto=net.cfg["key_layer"])[0],
        }
        penultimate = net.u.head(features, upto="penultimate")[0]  # [Q, units]
    alive = penultimate.amax(0) > 0
    entropy = -(attention * attention.clamp_min(1e-12).log()).sum(-1).mean().item()
    return {
        "run": str(run),
        "setting": f"{state['config']['ways']}-way {state['config']['shots']}-shot",
        "variant": state["config"]["params"].get("variant"),
        "seed": state["config"]["seed"],
        "episodes_trained": state["episodes_trained"],
        "attention_max": round(attention.max(-1).values.mean().item(), 4),
        "attention_entropy": round(entropy, 6),
        "uniform_entropy": round(math.log(attention.shape[-1]), 6),
        "key_cosine_to_mean": {
            name: round(F.cosine_similarity(k, k.mean(0, keepdim=True), dim=-1).mean().item(), 4)
            for name, k in keys.items()
        },
        "u_penultimate_never_active": round(1 - alive.float().mean().item(), 3),
        "u_penultimate_spread": round(penultimate[:, alive].std(0).mean().item() if alive.any() else 0.0, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders holding a metanet run's checkpoint.pkl")
    parser.add_argument("--untrained", action="store_true", help="measure the model each run started from")
    parser.add_argument("--seeds", help="with --untrained: these seeds (comma-separated) instead of the run's own")
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = [None] if args.seeds is None else [int(s) for s in args.seeds.split(",")]
    for run in args.runs:
        for seed in seeds:
            try:
                print(json.dumps(report(run, args.untrained, seed)))
            except HarnessError as exc:
                print(f"error: {exc}")


if __name__ == "__main__":
    main()
