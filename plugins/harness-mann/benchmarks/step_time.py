"""Time one MANN training step (forward + backward + Adam) on CPU.

    cd plugins/harness-mann && PYTHONPATH=. python benchmarks/step_time.py [--threads 2]

Cases (batch 16, 20x20 images = 400 inputs, 10 instances per class):
  one-hot: 5 classes  (T = 50,  L = 5,  5 outputs)
  string : 15 classes (T = 150, L = 25, 25 outputs, five 5-way softmaxes)
Prints the median and the minimum over ``--steps`` steps after ``--warmup`` steps, wall
clock and process CPU time.  On a shared machine the minimum is the least disturbed.
"""

import argparse
import statistics
import time

import torch
from harness_mann.model import build, sequence_loss

CASES = {"onehot-5x10": (5, 5, 5, False), "string-15x10": (15, 25, 25, True)}


def bench(classes, code, outputs, string, steps, warmup, options):
    torch.manual_seed(0)
    T = classes * 10
    model = build("mann", 400, code, outputs, **options)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(16, T, 400)
    prev = torch.zeros(16, T, code)
    target = torch.randint(0, 5**5 if string else outputs, (16, T))
    walls, cpus, parts = [], [], []
    for i in range(warmup + steps):
        t0, c0 = time.perf_counter(), time.process_time()
        opt.zero_grad(set_to_none=True)
        loss = sequence_loss(model(x, prev), target, string)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        if i >= warmup:
            walls.append(t3 - t0)
            cpus.append(time.process_time() - c0)
            parts.append((t1 - t0, t2 - t1, t3 - t2))
    split = [statistics.median(p) for p in zip(*parts, strict=True)]
    return statistics.median(walls), min(walls), statistics.median(cpus), split


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--controller", default="lstm")
    parser.add_argument("--memory", default="lrua")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    options = {"controller": args.controller, "memory": args.memory}
    for name, case in CASES.items():
        median, best, cpu, (fwd, bwd, adam) = bench(*case, args.steps, args.warmup, options)
        print(
            f"{name:13s} {options} threads={args.threads}: median {median:.4f}s  min {best:.4f}s  "
            f"(cpu median {cpu:.4f}s; medians: forward {fwd:.4f}s, backward {bwd:.4f}s, Adam {adam:.4f}s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
