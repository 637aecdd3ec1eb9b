"""Time one SNAIL training step (forward + backward + Adam) on random Omniglot-sized episodes.

Each configuration runs in a fresh subprocess so its peak resident memory (``ru_maxrss``) is its own.

    python benchmarks/bench_step.py                    # the default table
    python benchmarks/bench_step.py --one 20 5 base    # one configuration, in this process
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

VARIANTS = ("base", "explicit_attention", "fused_adam", "bf16", "compile", "channels_last")


def run_one(ways: int, shots: int, variant: str, batch: int, threads: int, steps: int, warmup: int) -> dict:
    import torch
    import torch.nn.functional as F

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from harness_snail.model import SNAIL, AttentionBlock

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = SNAIL(ways, shots)
    parts = set(variant.split("+"))
    if "explicit_attention" in parts:  # the default is F.scaled_dot_product_attention
        for m in model.modules():
            if isinstance(m, AttentionBlock):
                m.use_sdpa = False
    if "channels_last" in parts:  # the embedding's convolutions in NHWC (its 4-d weights and activations)
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, fused="fused_adam" in parts or None)
    q = ways  # one query per class
    g = torch.Generator().manual_seed(0)
    support = torch.rand(batch, ways * shots, 1, 28, 28, generator=g)
    labels = torch.stack([torch.randperm(ways * shots, generator=g) % ways for _ in range(batch)])
    query = torch.rand(batch, q, 1, 28, 28, generator=g)
    target = torch.stack([torch.randperm(q, generator=g) % ways for _ in range(batch)])

    def loss_fn(support, labels, query, target):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled="bf16" in parts):
            logits = model(support, labels, query)
        return F.cross_entropy(logits.float().flatten(0, 1), target.flatten())

    if "compile" in parts:
        loss_fn = torch.compile(loss_fn)

    times, cpu_times = [], []
    compile_s = None
    for i in range(warmup + steps):
        t0, c0 = time.perf_counter(), time.process_time()
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(support, labels, query, target)
        loss.backward()
        opt.step()
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        if i == 0:
            compile_s = dt
        if i >= warmup:
            times.append(dt)
            cpu_times.append(dc)
    return {
        "ways": ways,
        "shots": shots,
        "variant": variant,
        "batch": batch,
        "queries": q,
        "threads": threads,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "cpu_s": statistics.median(cpu_times),  # process CPU time, all threads together
        "load_avg_1min": __import__("os").getloadavg()[0],
        "first_step_s": compile_s,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "loss": float(loss.detach()),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--one", nargs=3, metavar=("WAYS", "SHOTS", "VARIANT"))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--configs", nargs="*", default=["5,1", "20,5"])
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS))
    args = parser.parse_args()
    if args.one:
        ways, shots, variant = int(args.one[0]), int(args.one[1]), args.one[2]
        print(json.dumps(run_one(ways, shots, variant, args.batch, args.threads, args.steps, args.warmup)))
        return
    print("| N-way K-shot | variant | median s/step | min s/step | CPU s/step | first step s | peak RSS GiB | load |")
    print("|---|---|---|---|---|---|---|---|")
    for config in args.configs:
        ways, shots = config.split(",")
        for variant in args.variants:
            cmd = [sys.executable, __file__, "--one", ways, shots, variant]
            cmd += ["--batch", str(args.batch), "--threads", str(args.threads)]
            cmd += ["--steps", str(args.steps), "--warmup", str(args.warmup)]
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode != 0:
                print(f"| {ways}-way {shots}-shot | {variant} | failed: {out.stderr.strip().splitlines()[-1]} ||||||")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(
                f"| {ways}-way {shots}-shot | {variant} | {r['median_s']:.3f} | {r['min_s']:.3f} | {r['cpu_s']:.3f} | "
                f"{r['first_step_s']:.2f} | {r['peak_rss_gib']:.2f} | {r['load_avg_1min']:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
