"""Sanity check that SNAIL learns: meta-train on episodes of freshly drawn random glyphs and watch the loss.

Every episode draws N brand-new glyph classes (3 random strokes on a 28x28 canvas); instances are the
class glyph shifted by up to 2 pixels with 3% of pixels flipped. No class is ever seen twice, so the
only way to beat chance (loss ln N) is to compare the query against the labelled support set.

    python benchmarks/learn_synthetic.py --steps 300 --ways 5 --shots 1
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness_snail.model import SNAIL


def glyphs(n: int, g: torch.Generator, size: int = 28, strokes: int = 3) -> torch.Tensor:
    """n random glyphs [n, size, size] in {0, 1}: each a few thick line segments."""
    ends = torch.rand(n, strokes, 2, 2, generator=g) * (size - 8) + 4  # [n, stroke, endpoint, xy]
    t = torch.linspace(0, 1, 2 * size)[None, None, :, None]
    points = ends[:, :, :1] + t * (ends[:, :, 1:] - ends[:, :, :1])  # [n, stroke, 2*size, xy]
    points = points.reshape(n, -1, 2).round().long().clamp(0, size - 1)
    canvas = torch.zeros(n, size * size)
    canvas.scatter_(1, points[..., 1] * size + points[..., 0], 1.0)
    canvas = F.max_pool2d(canvas.view(n, 1, size, size), 3, stride=1, padding=1)  # thicken
    return canvas.view(n, size, size)


SHIFT, FLIP = 2, 0.03  # instance noise: max shift in pixels, fraction of pixels flipped


def instances(protos: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """One noisy instance per prototype [m, 28, 28]: shifted by up to SHIFT px, a FLIP fraction flipped."""
    out = []
    for p in protos:
        dx, dy = torch.randint(-SHIFT, SHIFT + 1, (2,), generator=g).tolist()
        out.append(torch.roll(p, (dy, dx), dims=(0, 1)))
    x = torch.stack(out)
    flip = torch.rand(x.shape, generator=g) < FLIP
    return torch.where(flip, 1 - x, x)


def episode(batch: int, ways: int, shots: int, queries: int, g: torch.Generator):
    protos = glyphs(batch * ways, g).view(batch, ways, 28, 28)
    labels = torch.stack([torch.randperm(ways * shots, generator=g) % ways for _ in range(batch)])
    q_labels = torch.stack([torch.randperm(queries, generator=g) % ways for _ in range(batch)])
    support = torch.stack([instances(protos[b, labels[b]], g) for b in range(batch)])
    query = torch.stack([instances(protos[b, q_labels[b]], g) for b in range(batch)])
    return support.unsqueeze(2), labels, query.unsqueeze(2), q_labels


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--ways", type=int, default=5)
    parser.add_argument("--shots", type=int, default=1)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--every", type=int, default=25)
    parser.add_argument("--shift", type=int, default=SHIFT)
    parser.add_argument("--flip", type=float, default=FLIP)
    args = parser.parse_args()
    global SHIFT, FLIP
    SHIFT, FLIP = args.shift, args.flip
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    model = SNAIL(args.ways, args.shots)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    print(f"chance loss ln {args.ways} = {math.log(args.ways):.3f}, chance accuracy {1 / args.ways:.2f}")
    losses, accs, t0 = [], [], time.time()
    for step in range(1, args.steps + 1):
        support, labels, query, target = episode(args.batch, args.ways, args.shots, args.ways, g)
        logits = model(support, labels, query)
        loss = F.cross_entropy(logits.flatten(0, 1), target.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        accs.append((logits.argmax(-1) == target).float().mean().item())
        if step % args.every == 0:
            n = args.every
            print(
                f"step {step:4d}  loss {sum(losses[-n:]) / n:.3f}  acc {sum(accs[-n:]) / n:.3f}  "
                f"({time.time() - t0:.0f} s)",
                flush=True,
            )
    model.eval()
    with torch.no_grad():
        support, labels, query, target = episode(64, args.ways, args.shots, args.ways, g)
        logits = model(support, labels, query)
        acc = (logits.argmax(-1) == target).float().mean().item()
        loss = F.cross_entropy(logits.flatten(0, 1), target.flatten()).item()
        print(f"eval (64 new episodes, BN eval mode): loss {loss:.3f}  acc {acc:.3f}")


if __name__ == "__main__":
    main()
