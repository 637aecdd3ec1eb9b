"""How much MANN's controller says: its output h_t beside the memory's reads r_t (slow; not a test).

    python plugins/harness-mann/benchmarks/controller_state.py inspect RUN_DIR [RUN_DIR ...]
    python plugins/harness-mann/benchmarks/controller_state.py train --ways 15 --steps 400 [--param lr=0.001]
    python plugins/harness-mann/benchmarks/controller_state.py train --ways 15 --steps 1500 --init RUN_DIR

``inspect`` loads a run's kept model (the best validation's, as ``harness evaluate`` does) and,
on 64 validation episodes, prints the mean |h_t| of the controller, the mean |r_t| of the
reads, the mean |interface| (keys and gates), and the spread of the output logits that come
from h_t and from r_t. ``train`` trains a ``mann`` (string labels, Omniglot, the Table 2
settings, one thread) from scratch, or from the weights of ``--init``'s run with a fresh
optimizer, and prints every 25 steps the loss, |h_t|, |r_t|, the keys and the LSTM's mean gate
values, and every ``--eval-every`` steps the accuracy by instance on 160 validation episodes.
Needs the Omniglot archives (``HARNESS_OMNIGLOT_DIR``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from harness_mann.model import _fused_loop, decode

from harness import checkpoints
from harness.config import build_config
from harness.errors import HarnessError
from harness.evaluation import TRAIN, VAL, batches
from harness.plugins import PluginHost
from harness.prepare import prepare
from harness.restore import restore

TABLE2 = {
    "model": "mann",
    "dataset": "omniglot",
    "kind": "sequence",
    "instances": 10,
    "labels": "string",
    "augment": True,
    "batch_size": 16,
    "device": "cpu",
    "threads": 1,
    "data": {"image_size": 20},
}


def kept_model(run: Path):
    """A run's checkpoint and its model with the weights ``harness evaluate`` would test."""
    state = checkpoints.load(run / "checkpoint.pkl")
    if state["config"].get("model") != "mann":
        raise HarnessError(f"{run}: a run of {state['config'].get('model')!r}; this script looks inside 'mann' runs")
    return state, restore(state, PluginHost(), {**state["config"], "device": "cpu"}, source=str(run))


def internals(net, data: dict) -> dict:
    """h_t, r_t, the interface and (LRUA memory) the LSTM gates of one forward pass (no gradient)."""
    with torch.no_grad():
        pre = net.input_proj(torch.cat([data["images"].flatten(2), data["previous_codes"].float()], -1))
        if net.memory_kind != "lrua" or not net.memory.has_tape:  # the plain loop, without the gates
            hs, rs = net._loop_reference(pre, False)
            return {"h": hs, "r": rs, "interface": net.interface(hs)}
        hs, rs, saved, _ = _fused_loop(net, pre, net.recurrent.weight, net.interface.weight, net.interface.bias, True)
        out = {"h": hs, "r": rs, "interface": hs @ net.interface.weight.T + net.interface.bias}
        if net.controller == "lstm":
            gates = torch.stack([entry[1] for entry in saved], 1)
            hid = net.hidden
            out.update(input=gates[..., :hid], forget=gates[..., hid : 2 * hid], output=gates[..., 2 * hid :])
        return out


def inspect(runs: list[Path]) -> None:
    for run in runs:
        state, restored = kept_model(run)
        prepared, net = restored.prepared, restored.model.module
        data = next(iter(batches(prepared, "val", VAL, 0, 64))).to_torch("cpu")
        parts = internals(net, data)
        hid = net.hidden
        from_h = parts["h"] @ net.output.weight[:, :hid].T
        from_r = parts["r"] @ net.output.weight[:, hid:].T
        print(
            json.dumps(
                {
                    "run": str(run),
                    "ways": state["config"]["ways"],
                    "episodes_trained": state["episodes_trained"],
                    "h": round(parts["h"].abs().mean().item(), 4),
                    "r": round(parts["r"].abs().mean().item(), 4),
                    "interface": round(parts["interface"].abs().mean().item(), 4),
                    "logit_std_from_h": round(from_h.std().item(), 4),
                    "logit_std_from_r": round(from_r.std().item(), 4),
                }
            )
        )


def accuracy_by_instance(model, episodes: list) -> list[float]:
    """Percent right at the 1st..10th instance of a class (string labels: all five characters)."""
    right, count = torch.zeros(10), torch.zeros(10)
    for batch in episodes:
        ids = torch.as_tensor(model.predict(batch).labels)
        data = batch.to_torch("cpu")
        truth = decode(data["targets"], True) if data["targets"].dim() == 3 else data["targets"]
        instance = data["instance"].long() - 1
        ok = (ids == truth).float()
        right.index_add_(0, instance.flatten(), ok.flatten())
        count.index_add_(0, instance.flatten(), torch.ones_like(ok.flatten()))
    return [round(v, 1) for v in (100 * right / count).tolist()]


def train(ways: int, steps: int, init: Path | None, params: dict, eval_every: int, seed: int) -> None:
    values = {**TABLE2, "ways": ways, "episodes": steps * 16, "seed": seed, "params": {"lr": 0.003, **params}}
    prepared = prepare(build_config(values, source="controller_state"), PluginHost())
    model = prepared.build_model()
    if init is not None:
        model.module.load_state_dict(kept_model(init)[1].model.module.state_dict())
    net = model.module
    episodes = list(batches(prepared, "val", VAL, 0, 160))
    if init is not None:
        print(json.dumps({"step": 0, "accuracy_by_instance": accuracy_by_instance(model, episodes)}), flush=True)
    start, losses = time.time(), []
    for step, batch in enumerate(batches(prepared, "train", TRAIN, seed, steps * 16), start=1):
        losses.append(model.train_step(batch).item())
        row: dict = {}
        if step % 25 == 0 or step == 1:
            parts = internals(net, batch.to_torch("cpu"))
            row = {"loss": round(sum(losses[-25:]) / len(losses[-25:]), 4)}
            row.update({k: round(parts[k].abs().mean().item(), 4) for k in ("h", "r", "interface")})
            row.update({k: round(parts[k].mean().item(), 3) for k in ("input", "forget", "output") if k in parts})
        if eval_every and step % eval_every == 0:
            row["accuracy_by_instance"] = accuracy_by_instance(model, episodes)
        if row:
            print(json.dumps({"step": step, "episodes": step * 16, **row, "s": round(time.time() - start)}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("inspect", help="controller and read magnitudes of trained runs")
    one.add_argument("runs", nargs="+", type=Path, help="run folders holding a checkpoint.pkl of a mann run")
    two = sub.add_parser("train", help="train from scratch (or from --init) and print the controller's state")
    two.add_argument("--ways", type=int, default=15)
    two.add_argument("--steps", type=int, default=400, help="training steps of 16 episodes")
    two.add_argument("--init", type=Path, help="start from this run's kept weights (fresh optimizer)")
    two.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="model parameter")
    two.add_argument("--eval-every", type=int, default=0, help="steps between accuracy checks (0: none)")
    two.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    try:
        if args.command == "inspect":
            inspect(args.runs)
        else:
            train(args.ways, args.steps, args.init, parse_params(args.param), args.eval_every, args.seed)
    except HarnessError as exc:
        raise SystemExit(f"error: {exc}") from None


def parse_params(items: list[str]) -> dict:
    """KEY=VALUE pairs, numbers as floats."""
    params = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            params[key] = float(value)
        except ValueError:
            params[key] = value
    return params


if __name__ == "__main__":
    main()
