"""Training-step benchmark: one step of each installed model plugin at its tables' settings.

For every trainable model (the example ProtoNet and each installed model plugin), at each
(row, setting) of the tables it fills (a model with no rows: SNAIL Table 1's 5-way 1-shot),
batch 16, this measures, after a warm-up, the median over ``--steps`` steps of:

* ``step``: the runner's loop (``harness.evaluation.batches``, the next batch drawn in a
  background thread, then ``model.train_step``): what a training run pays per step;
* ``model``: ``train_step`` alone on batches drawn beforehand (conversion to tensors,
  forward, backward, optimizer);
* ``sample`` and ``to_torch``: drawing one batch, and converting it to tensors;

and reports ``outside`` = (step - model + to_torch) / step, the share of a step spent
outside the model's forward/backward, episodes per second, and the peak resident memory
of the process (each cell runs in its own process). ``--variants`` also times the
example ProtoNet with bf16 autocast, channels-last and ``torch.compile``.

For MetaNet it also times the per-example loss gradients of the base learner on one batch's
support examples, batched (``per_example_grads``: vmap over grad) against one backward pass
per example in a Python loop, and reports the speed-up. ``--grads-only`` times only that
(a MetaNet training step takes tens of seconds on a CPU).

    python benchmarks/train_step.py [--models NAME ...] [--row LABEL ...] [--setting NAME ...] [--threads 2]
                                    [--steps 20] [--device cuda] [--variants] [--grads-only]
                                    [--wait-policy passive|active] [--json PATH]

``--wait-policy`` sets ``OMP_WAIT_POLICY`` for the timed processes (default: the environment's, else
``passive``, as the ``harness`` command sets it). It matters at 2 threads: on an otherwise idle machine
``active`` (threads spin between parallel regions) measured 10-15% faster MANN steps and a 2-3x faster
per-example-gradient loop than ``passive`` (threads sleep), which a machine shared with other jobs needs.
Cells whose data is not on this machine (mini-ImageNet) are reported as skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the harness command sets it (before torch loads)
REPO = Path(__file__).resolve().parents[1]
OMNIGLOT = Path(os.environ.get("HARNESS_OMNIGLOT_DIR") or REPO.parent / "shared" / "data" / "omniglot")
BATCH = 16
DEFAULT_TABLE, DEFAULT_SETTING = "snail-table1", "5-way 1-shot"


def cells(models: list[str] | None) -> list[dict[str, Any]]:
    """The (model, table, row, setting) cells to time."""
    from harness.plugins import get_host

    host = get_host()
    out = []
    for spec in host.models:
        if not spec.trainable or (models and spec.name not in models):
            continue
        rows = [(row.table, row.row, s.name) for row in spec.rows for s in host.tables.get(row.table).settings
                if not row.settings or s.name in row.settings]  # fmt: skip
        for table, row, setting in rows or [(DEFAULT_TABLE, None, DEFAULT_SETTING)]:
            out.append({"model": spec.name, "table": table, "row": row, "setting": setting, "variant": "fp32"})
    return out


def time_cell(cell: dict[str, Any], steps: int, threads: int, device: str, grads_only: bool = False) -> dict[str, Any]:
    """Time one cell in this process."""
    import dataclasses

    import numpy as np
    import torch

    from harness.evaluation import TRAIN, batches, episode_rngs
    from harness.plugins import get_host
    from harness.prepare import prepare
    from harness.tables import TableRow, make_cell

    torch.set_num_threads(threads)
    host = get_host()
    table, spec = host.tables.get(cell["table"]), host.models.get(cell["model"])
    row = next((r for r in spec.rows if r.table == table.name and r.row == cell["row"]), TableRow(table.name, "-"))
    config = make_cell(table, spec.name, row, table.setting(cell["setting"]), 0, "quick").config
    variant = cell["variant"]
    config = dataclasses.replace(
        config, batch_size=BATCH, device=device, episodes=BATCH * (steps + 3) * 2, threads=threads,
        precision="bf16" if variant == "bf16" else "fp32", compile=variant == "compile",
        data={**config.data, "root": str(OMNIGLOT)} if config.dataset == "omniglot" else config.data,
    )  # fmt: skip
    prepared = prepare(config, host)
    model = prepared.build_model()
    if variant == "channels_last":
        module = model.module.to(memory_format=torch.channels_last)
        forward = module.forward
        module.forward = lambda x: forward(x.contiguous(memory_format=torch.channels_last))
    split = prepared.dataset_spec.train_split

    def sample(i: int) -> Any:
        return prepared.source.sample(split, prepared.settings, episode_rngs(0, TRAIN, i * BATCH, BATCH))

    def timed(fn: Any) -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    if grads_only:
        if not hasattr(model.module, "per_example_grads"):
            raise SystemExit(f"{cell['model']} has no per-example gradients to time")
        return {**cell, **per_example_speedup(model, sample(0)), "threads": torch.get_num_threads()}
    ready = [sample(i) for i in range(steps + 3)]
    for batch in ready[:3]:
        float(model.train_step(batch))  # warm-up (and compilation)
    sample_s = statistics.median(timed(lambda i=i: sample(i)) for i in range(steps))
    to_torch_s = statistics.median(timed(lambda b=b: b.to_torch(model.device)) for b in ready[3:])
    model_s = statistics.median(timed(lambda b=b: float(model.train_step(b))) for b in ready[3:])
    loop, marks = batches(prepared, split, TRAIN, 0, BATCH * steps), [time.perf_counter()]
    for batch in loop:
        model.train_step(batch)
        marks.append(time.perf_counter())
    float(model.train_step(ready[0]))
    step_s = statistics.median(np.diff(marks))
    per_example = per_example_speedup(model, ready[3]) if hasattr(model.module, "per_example_grads") else {}
    return {
        **per_example,
        **cell,
        "device": str(model.device),
        "threads": torch.get_num_threads(),
        "compile": getattr(model, "compile_status", "off"),
        "step_s": step_s,
        "model_s": model_s,
        "sample_s": sample_s,
        "to_torch_s": to_torch_s,
        "outside": max(0.0, step_s - model_s + to_torch_s) / step_s,
        "episodes_per_s": BATCH / step_s,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def per_example_speedup(model: Any, batch: Any) -> dict[str, float]:
    """MetaNet: its batched per-example gradients (``per_example_grads``, vmap over grad) of the base learner's
    task loss on a batch's support examples, against one backward pass per example in a Python loop (the
    thing vmap replaces); median seconds of 3 each."""
    import torch
    import torch.nn.functional as F

    net, inputs = model.module, batch.to_torch(model.device)
    images, labels = inputs["support_images"], inputs["support_targets"]
    with torch.no_grad():
        feats = net.b.trunk(images).flatten(0, 1)  # the b features per_example_grads takes
    labels = labels.flatten()
    params = list(net.b.slow_weights().values())

    def batched() -> None:
        net.per_example_grads(net.b, feats, labels)

    def looped() -> None:
        for i in range(feats.shape[0]):
            logits = net.b.head(feats[i][None, None]).reshape(1, -1)
            torch.autograd.grad(F.cross_entropy(logits, labels[i : i + 1]), params)

    def median(fn: Any) -> float:
        fn()
        times = []
        for _ in range(3):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    batched_s, looped_s = median(batched), median(looped)
    return {"examples": int(feats.shape[0]), "vmap_s": batched_s, "loop_s": looped_s, "speedup": looped_s / batched_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", help="only these models (default: every trainable one)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--row", action="append", help="only this row (repeatable), e.g. 'MetaNet'")
    parser.add_argument("--setting", action="append", help="only this setting (repeatable), e.g. '20-way 1-shot'")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--variants", action="store_true", help="also bf16, channels_last, compile for the ProtoNet")
    parser.add_argument("--grads-only", action="store_true", help="MetaNet: time only its per-example gradients")
    policy = os.environ["OMP_WAIT_POLICY"].lower()
    parser.add_argument("--wait-policy", choices=("passive", "active"), type=str.lower,
                        default=policy if policy in ("passive", "active") else "passive",
                        help="OMP_WAIT_POLICY of the timed processes")  # fmt: skip
    parser.add_argument("--json", type=Path, help="write the results here too")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(time_cell(json.loads(args.one), args.steps, args.threads, args.device, args.grads_only)))
        return
    todo = [c for c in cells(args.models) if (not args.row or c["row"] in args.row)
            and (not args.setting or c["setting"] in args.setting)]  # fmt: skip
    if args.grads_only:
        todo = [c for c in todo if c["model"] == "metanet"]
    if not todo:
        raise SystemExit("train_step.py: no installed model has a cell with that --models/--row/--setting")
    if args.variants:
        todo += [{**c, "variant": v} for c in todo if c["model"] == "example-protonet"
                 for v in ("bf16", "channels_last", "compile")]  # fmt: skip
    results = []
    env = {**os.environ, "OMP_WAIT_POLICY": args.wait_policy.upper()}
    print(f"OMP_WAIT_POLICY={args.wait_policy.upper()}, {args.threads} thread(s), batch {BATCH}")
    if not args.grads_only:
        print(f"{'model':18} {'row':26} {'setting':14} {'variant':13} {'step s':>8} {'model s':>8} "
              f"{'outside':>8} {'ep/s':>7} {'peak MiB':>9}  device/threads")  # fmt: skip
    for cell in todo:
        argv = [sys.executable, __file__, "--one", json.dumps(cell), "--steps", str(args.steps),
                "--threads", str(args.threads), "--device", args.device]  # fmt: skip
        argv += ["--grads-only"] if args.grads_only else []
        done = subprocess.run(argv, capture_output=True, text=True, env=env)
        if done.returncode:
            last = (done.stderr.strip().splitlines() or ["?"])[-1]
            what = "skipped (no data here)" if "DataError" in last else "failed"
            print(f"{cell['model']:18} {cell['row'] or '-':26} {cell['setting']:14} {what} in {cell['table']}: {last}")
            continue
        r = {**json.loads(done.stdout.strip().splitlines()[-1]), "omp_wait_policy": args.wait_policy}
        results.append(r)
        if args.grads_only:
            print(f"{r['model']:18} {r['row'] or '-':26} {r['setting']:14} per-example gradients of {r['examples']} "
                  f"support examples: vmap {r['vmap_s']:.3f} s, loop {r['loop_s']:.3f} s, {r['speedup']:.1f}x  "
                  f"cpu/{r['threads']}")  # fmt: skip
            continue
        note = "" if r["compile"] in ("off", "on") else f" ({r['compile']})"
        print(f"{r['model']:18} {r['row'] or '-':26} {r['setting']:14} {r['variant']:13} {r['step_s']:8.4f} "
              f"{r['model_s']:8.4f} {100 * r['outside']:7.1f}% {r['episodes_per_s']:7.1f} {r['peak_rss_mib']:9.0f}"
              f"  {r['device']}/{r['threads']}{note}")  # fmt: skip
        if "speedup" in r:
            print(f"{'':18} per-example gradients of {r['examples']} support examples: vmap {r['vmap_s']:.3f} s, "
                  f"loop {r['loop_s']:.3f} s, {r['speedup']:.1f}x")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
