"""Learning sanity check on synthetic episodes (slow; not a test).

    cd plugins/harness-mann && PYTHONPATH=. python benchmarks/learn_synthetic.py --iters 600

Episodes: N classes x K instances (default 5 x 10, T = 50), each class a random
prototype vector in R^D (D = 400) plus Gaussian noise (std ``--noise`` per coordinate,
prototype std 1), each vector standardised; labels one-hot, shuffled per episode;
``previous_codes`` = one-hot label of the previous step.  Prints, every ``--every``
iterations, the training loss and the accuracy at the 1st, 2nd, 3rd, 5th and 10th
presentation of a class (chance = 1/N), averaged over those iterations.
"""

import argparse
import time

import torch
from harness_mann.model import build, decode, sequence_loss


def episode(batch, classes, instances, dim, noise, generator):
    steps = classes * instances
    proto = torch.randn(batch, classes, dim, generator=generator)
    order = torch.argsort(torch.rand(batch, steps, generator=generator), dim=1)
    cls = order % classes  # every class exactly `instances` times, in random order
    x = proto.gather(1, cls.unsqueeze(-1).expand(-1, -1, dim))
    x = x + noise * torch.randn(batch, steps, dim, generator=generator)
    x = (x - x.mean(-1, keepdim=True)) / x.std(-1, keepdim=True)
    label_of_class = torch.argsort(torch.rand(batch, classes, generator=generator), dim=1)
    labels = label_of_class.gather(1, cls)
    prev = torch.zeros(batch, steps, classes)
    prev[:, 1:] = torch.nn.functional.one_hot(labels[:, :-1], classes).float()
    # instance number (1-based) of each step: occurrences of its class up to and including it
    same = torch.nn.functional.one_hot(cls, classes).cumsum(1)
    instance = same.gather(2, cls.unsqueeze(-1)).squeeze(-1)
    return x, prev, labels, instance


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kind", default="mann")
    parser.add_argument("--controller", default="lstm")
    parser.add_argument("--memory", default="lrua")
    parser.add_argument("--iters", type=int, default=600)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--classes", type=int, default=5)
    parser.add_argument("--instances", type=int, default=10)
    parser.add_argument("--dim", type=int, default=400)
    parser.add_argument("--noise", type=float, default=0.5)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed + 1)
    options = {"controller": args.controller, "memory": args.memory} if args.kind == "mann" else {}
    model = build(args.kind, args.dim, args.classes, args.classes, **options)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    shown = (1, 2, 3, 5, 10)
    hits, counts = torch.zeros(len(shown)), torch.zeros(len(shown))
    start = time.time()
    for it in range(1, args.iters + 1):
        x, prev, labels, instance = episode(args.batch, args.classes, args.instances, args.dim, args.noise, generator)
        logits = model(x, prev)
        loss = sequence_loss(logits, labels, string=False)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        correct = (decode(logits.detach(), string=False) == labels).float()
        for i, k in enumerate(shown):
            mask = instance == k
            hits[i] += correct[mask].sum()
            counts[i] += mask.sum()
        if it % args.every == 0:
            acc = hits / counts.clamp_min(1)
            accs = "  ".join(f"inst{k} {a:.2f}" for k, a in zip(shown, acc.tolist(), strict=True))
            print(f"iter {it:5d}  loss {loss.item():.3f}  {accs}  ({time.time() - start:.0f}s)", flush=True)
            hits.zero_()
            counts.zero_()


if __name__ == "__main__":
    main()
