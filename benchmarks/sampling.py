"""Episode-sampler speed benchmark: harness's samplers against a peer's, on the same image arrays.

Measures, single process, CPU:

* episodes per second of ``ArrayEpisodeSource.sample`` (what the runner calls, with one
  ``default_rng([seed, 0, i])`` per episode made inside the timed loop, and the batch's
  conversion to torch tensors) for Omniglot 5-way 1-shot (1 and 15 queries per class)
  and 20-way 5-shot (1 query per class) at 28x28, and MANN 5-way x10-instance one-hot
  label sequences at 20x20, plain and augmented (random shifts and rotations of every
  image, as ``augment = true`` asks for on the training split; also at 15-way), at batch
  sizes 16 and 32;
* the same few-shot episodes from easyfsl's ``TaskSampler`` driven through a torch
  ``DataLoader`` over a ``Dataset`` that wraps the very same uint8 split array (images
  converted with ``torch.from_numpy(x).float() / 255``, the loader's episodes stacked to
  a batch); easyfsl has no label-sequence sampler, so the MANN rows have no peer;
* the dataset's first build (empty cache) and cached load, each in a fresh subprocess,
  with that process's peak resident memory (``ru_maxrss``);
* one training step of a cheap few-shot model, to put the sampling cost in proportion:
  a prototypical network with a 4 x [conv3x3 64, BatchNorm, ReLU, maxpool 2] embedding,
  forward + loss + backward + Adam step on one 5-way 1-shot batch of 16 episodes.

Each rate is the best of ten timed rounds (``--seconds`` in all) after a warm-up, the
rounds of harness and peer alternating so that both see the same load; the machine is
shared, so best-of is the stable number. The dataset is Omniglot through the
plugin host when its plugin and data are there (``--dataset auto``), else the built-in
synthetic dataset with Omniglot's shapes (964 classes x 20 examples, 1 channel).

    python benchmarks/sampling.py [--dataset auto|omniglot|synthetic] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from harness.episodes import EpisodeKind, EpisodeSettings  # noqa: E402

SEED = 0
SYNTHETIC_SHAPE = {"train_classes": 964, "val_classes": 16, "test_classes": 659, "examples": 20}
"""Omniglot background set shapes: 964 classes of 20 drawings (evaluation set: 659)."""


def _omniglot_root() -> Path:
    env = os.environ.get("HARNESS_OMNIGLOT_DIR")
    candidates = [Path(env)] if env else []
    candidates += [REPO.parent / "shared" / "data" / "omniglot", Path("/work/shared/data/omniglot")]
    return next((p for p in candidates if p.is_dir()), candidates[0])


# -- opening the dataset ------------------------------------------------------------------


def open_source(dataset: str, image_size: int, cache_dir: str | None) -> Any:
    """``(source, description)`` for ``dataset`` at ``image_size`` through the plugin host."""
    from harness.plugins import PluginHost

    host = PluginHost(autoload=False, modules=[])
    spec = host.datasets.get(dataset)
    if dataset == "omniglot":
        options = {**spec.options, "root": str(_omniglot_root()), "image_size": image_size}
        if "cache_dir" in spec.options and cache_dir is not None:
            options["cache_dir"] = cache_dir
    else:
        options = {**spec.options, **SYNTHETIC_SHAPE, "image_size": image_size}
    return spec.factory(options), spec.train_split, options


def resolve_dataset(choice: str) -> str:
    """``omniglot`` if asked or (``auto``) if its plugin is registered and its data is present, else ``synthetic``."""
    if choice != "auto":
        return choice
    from harness.plugins import PluginHost

    host = PluginHost(autoload=False, modules=[])
    if "omniglot" in host.datasets.names() and _omniglot_root().is_dir():
        return "omniglot"
    return "synthetic"


def load_phase(dataset: str, image_size: int, cache_dir: str) -> dict[str, Any]:
    """Open the dataset once (the subprocess side of the build / cached-load measurements)."""
    start = time.perf_counter()
    source, split, _ = open_source(dataset, image_size, cache_dir)
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "peak_rss_mib": _peak_rss_mib(),
        "train_shape": list(source.splits[split].shape),
    }


def measure_load(dataset: str, image_size: int, cache_dir: str) -> dict[str, Any]:
    """Run ``load_phase`` in a fresh interpreter so its time and peak memory are its own."""
    command = [sys.executable, str(Path(__file__).resolve()), "--load-phase", dataset, str(image_size), cache_dir]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"loading {dataset} failed: {done.stderr.strip().splitlines()[-1:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_wall_seconds"] = wall
    return result


def _peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / 2**20  # KiB on Linux, bytes on macOS


# -- timing -------------------------------------------------------------------------------


def best_rates(
    steps: Mapping[str, Callable[[], int]], seconds: float, rounds: int = 10, warmup: int = 3
) -> dict[str, float]:
    """Best items-per-second of each ``step`` (which returns items done) over ``rounds`` rounds.

    Rounds of the different steps alternate, ``seconds / rounds`` each, so that all of them
    see the same machine load; the best round is the one least disturbed by other work.
    """
    for step in steps.values():
        for _ in range(warmup):
            step()
    best = dict.fromkeys(steps, 0.0)
    for _ in range(rounds):
        for name, step in steps.items():
            done, start = 0, time.perf_counter()
            while (elapsed := time.perf_counter() - start) < seconds / rounds:
                done += step()
            best[name] = max(best[name], done / elapsed)
    return best


def harness_stepper(
    source: Any, split: str, settings: EpisodeSettings, batch: int, fresh_generators: bool = True
) -> Callable[[], int]:
    """One runner-style batch per call: fresh generators (as the runner makes them), ``sample``, ``to_torch``.

    With ``fresh_generators=False`` one set of generators is made up front and drawn on
    again and again: the sampler's own cost.
    """
    counter = iter(range(10**12))
    reused = [np.random.default_rng([SEED, 0, i]) for i in range(batch)]

    def step() -> int:
        first = next(counter) * batch
        rngs = [np.random.default_rng([SEED, 0, first + i]) for i in range(batch)] if fresh_generators else reused
        source.sample(split, settings, rngs).to_torch()
        return batch

    return step


# -- the peer: easyfsl's TaskSampler --------------------------------------------------------


def load_task_sampler() -> tuple[Any, str]:
    """easyfsl's ``TaskSampler`` class and a note on how it was imported.

    ``easyfsl/datasets/__init__.py`` imports torchvision (for its dataset classes); the
    sampler itself needs only ``FewShotDataset``. Without torchvision we load the real
    ``easyfsl/datasets/few_shot_dataset.py`` as ``easyfsl.datasets`` and import the real
    ``easyfsl/samplers/task_sampler.py``: no easyfsl code is replaced.
    """
    import easyfsl

    version = getattr(easyfsl, "__version__", "?")
    try:
        from easyfsl.samplers import TaskSampler

        return TaskSampler, f"easyfsl {version} TaskSampler"
    except ModuleNotFoundError as exc:
        if exc.name != "torchvision":
            raise
    path = Path(easyfsl.__path__[0]) / "datasets" / "few_shot_dataset.py"
    spec = importlib.util.spec_from_file_location("easyfsl.datasets.few_shot_dataset", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    package = types.ModuleType("easyfsl.datasets")
    package.FewShotDataset = module.FewShotDataset  # type: ignore[attr-defined]
    sys.modules["easyfsl.datasets"] = package
    from easyfsl.samplers import TaskSampler

    return TaskSampler, f"easyfsl {version} TaskSampler (easyfsl.datasets/__init__ skipped: it needs torchvision)"


def peer_stepper(task_sampler: Any, split_array: np.ndarray, settings: EpisodeSettings, batch: int) -> Any:
    """``(step, close)``: one batch of ``batch`` easyfsl episodes per call, stacked to ``[B, ...]`` tensors."""
    import torch
    from torch.utils.data import DataLoader, Dataset, Sampler

    classes, examples = split_array.shape[:2]
    flat = split_array.reshape(classes * examples, *split_array.shape[2:])
    labels = np.repeat(np.arange(classes), examples).tolist()

    class ArrayDataset(Dataset):
        """The harness's uint8 split array, one (image, class) per item."""

        def __len__(self) -> int:
            return len(labels)

        def __getitem__(self, item: int) -> tuple[Any, int]:
            return torch.from_numpy(flat[item]).float() / 255.0, labels[item]

        def get_labels(self) -> list[int]:
            return labels

    class _SamplerInit(Sampler):
        """torch 2.x dropped ``Sampler.__init__(data_source)``, which TaskSampler 1.5 still calls."""

        def __init__(self, data_source: Any = None) -> None:
            pass

    class CompatTaskSampler(task_sampler, _SamplerInit):
        pass

    dataset = ArrayDataset()
    compat: Any = CompatTaskSampler
    sampler = compat(dataset, n_way=settings.ways, n_shot=settings.shots, n_query=settings.queries, n_tasks=10**9)
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=sampler.episodic_collate_fn, num_workers=0)
    episodes: Iterator[Any] = iter(loader)

    def step() -> int:
        got = [next(episodes) for _ in range(batch)]
        torch.stack([g[0] for g in got]), torch.stack([g[1] for g in got])
        torch.stack([g[2] for g in got]), torch.stack([g[3] for g in got])
        return batch

    return step


# -- a cheap model's training step ------------------------------------------------------------


def train_step_seconds(source: Any, split: str, settings: EpisodeSettings, batch: int, steps: int) -> float:
    """Median seconds of one Adam step of a conv-4 prototypical network on one batch (sampling excluded)."""
    import torch
    from torch import nn

    torch.manual_seed(SEED)

    def block(cin: int) -> nn.Module:
        return nn.Sequential(nn.Conv2d(cin, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2))

    channels = source.input_shape()[0]
    net = nn.Sequential(block(channels), block(64), block(64), block(64), nn.Flatten())
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    rngs = [np.random.default_rng([SEED, 9, i]) for i in range(batch)]
    tensors = source.sample(split, settings, rngs).to_torch()
    support, query = tensors["support_images"], tensors["query_images"]
    s_y, q_y = tensors["support_targets"], tensors["query_targets"]
    b, ns, nq = support.shape[0], support.shape[1], query.shape[1]

    def one_step() -> float:
        start = time.perf_counter()
        emb = net(torch.cat([support.flatten(0, 1), query.flatten(0, 1)]))
        s_emb, q_emb = emb[: b * ns].view(b, ns, -1), emb[b * ns :].view(b, nq, -1)
        onehot = nn.functional.one_hot(s_y, settings.ways).float()  # [B, NK, N]
        prototypes = onehot.transpose(1, 2) @ s_emb / onehot.sum(1)[:, :, None]
        logits = -(torch.cdist(q_emb, prototypes) ** 2)
        loss = nn.functional.cross_entropy(logits.flatten(0, 1), q_y.flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return time.perf_counter() - start

    for _ in range(3):
        one_step()
    return statistics.median(one_step() for _ in range(steps))


# -- the run -------------------------------------------------------------------------------

CONFIGS: list[tuple[str, int, EpisodeSettings]] = [
    ("Omniglot 5-way 1-shot, 1 query/class", 28, EpisodeSettings(EpisodeKind.FEWSHOT, ways=5, shots=1, queries=1)),
    ("Omniglot 5-way 1-shot, 15 queries/class", 28, EpisodeSettings(EpisodeKind.FEWSHOT, ways=5, shots=1, queries=15)),
    ("Omniglot 20-way 5-shot, 1 query/class", 28, EpisodeSettings(EpisodeKind.FEWSHOT, ways=20, shots=5, queries=1)),
    ("MANN 5-way x10 one-hot sequences", 20, EpisodeSettings(EpisodeKind.SEQUENCE, ways=5, instances=10)),
    (
        "MANN 5-way x10 one-hot sequences, augmented",
        20,
        EpisodeSettings(EpisodeKind.SEQUENCE, ways=5, instances=10, augment=True),
    ),
    (
        "MANN 15-way x10 one-hot sequences, augmented",
        20,
        EpisodeSettings(EpisodeKind.SEQUENCE, ways=15, instances=10, augment=True),
    ),
]


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    dataset = resolve_dataset(args.dataset)
    out: dict[str, Any] = {
        "dataset": dataset,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "seconds_per_rate": args.seconds,
    }
    cache_dir = args.cache_dir or tempfile.mkdtemp(prefix="harness-bench-cache-")
    try:
        sizes = sorted({size for _, size, _ in CONFIGS})
        out["load"] = {
            "first_build": measure_load(dataset, 28, cache_dir),
            "cached_load": measure_load(dataset, 28, cache_dir),
        }
        sources = {size: open_source(dataset, size, cache_dir)[:2] for size in sizes}
    finally:
        if args.cache_dir is None:
            shutil.rmtree(cache_dir, ignore_errors=True)
    out["train_shape"] = {str(size): list(src.splits[split].shape) for size, (src, split) in sources.items()}
    out["rotations"] = bool(getattr(sources[28][0], "rotations", False))

    task_sampler, peer_note = None, "not measured (--no-peer)"
    if not args.no_peer:
        try:
            task_sampler, peer_note = load_task_sampler()
        except ImportError as exc:
            peer_note = f"easyfsl unavailable ({exc}); pip install --no-deps easyfsl"
    out["peer"] = peer_note

    rows = []
    for label, size, settings in CONFIGS:
        source, split = sources[size]
        for batch in args.batch_sizes:
            steps = {
                "harness": harness_stepper(source, split, settings, batch),
                "sampler": harness_stepper(source, split, settings, batch, fresh_generators=False),
            }
            if task_sampler is not None and settings.kind is EpisodeKind.FEWSHOT:
                steps["peer"] = peer_stepper(task_sampler, source.splits[split], settings, batch)
            rates = best_rates(steps, args.seconds)
            harness_rate, sampler_rate, peer_rate = rates["harness"], rates["sampler"], rates.get("peer")
            rows.append(
                {
                    "episodes": label,
                    "image_size": size,
                    "batch": batch,
                    "harness_eps": harness_rate,
                    "sampler_only_eps": sampler_rate,
                    "peer_eps": peer_rate,
                    "ratio": harness_rate / peer_rate if peer_rate else None,
                    "harness_ms_per_batch": 1000 * batch / harness_rate,
                }
            )
            print(f"  measured {label} B={batch}", file=sys.stderr, flush=True)
    out["rates"] = rows

    step_settings = CONFIGS[0][2]
    step_source, step_split = sources[28]
    step = train_step_seconds(step_source, step_split, step_settings, 16, args.train_steps)
    sample_ms = next(r["harness_ms_per_batch"] for r in rows if r["episodes"] == CONFIGS[0][0] and r["batch"] == 16)
    out["train_step"] = {
        "what": (
            "prototypical net, 4 x [conv3x3 64, BN, ReLU, maxpool2] embedding; forward + squared-Euclidean "
            "prototype loss + backward + Adam step on one 5-way 1-shot, 1-query batch of 16 episodes "
            "(160 images 1x28x28), median of steps"
        ),
        "ms": 1000 * step,
        "sampling_ms": sample_ms,
        "sampling_share": sample_ms / (1000 * step),
    }
    out["peak_rss_mib"] = _peak_rss_mib()
    return out


def markdown(result: Mapping[str, Any]) -> str:
    """The result as markdown tables."""

    def num(value: float | None, digits: int = 0) -> str:
        return "n/a" if value is None else f"{value:,.{digits}f}"

    lines = [
        f"Dataset: **{result['dataset']}** (train split {result['train_shape']}, "
        f"rotated classes: {result['rotations']}); Python {result['python']}, numpy {result['numpy']}, "
        f"torch {result['torch']} ({result['torch_threads']} threads), {result['cpus']} CPUs.",
        f"Peer: {result['peer']}, DataLoader num_workers=0.",
        "",
        "| episodes | image | batch | harness episodes/s | peer episodes/s | harness / peer | harness ms/batch "
        "| sampler alone episodes/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rates"]:
        ratio = "n/a" if r["ratio"] is None else f"{r['ratio']:.1f}x"
        lines.append(
            f"| {r['episodes']} | {r['image_size']}x{r['image_size']} | {r['batch']} | {num(r['harness_eps'])} | "
            f"{num(r['peer_eps'])} | {ratio} | {num(r['harness_ms_per_batch'], 2)} | {num(r['sampler_only_eps'])} |"
        )
    load, step = result["load"], result["train_step"]
    lines += [
        "",
        "harness episodes/s: what the runner does per batch (a fresh ``default_rng([seed, 0, i])`` per episode, "
        "``sample``, ``to_torch``). Sampler alone: the same with the generators made once, outside the timing. "
        "Peer: TaskSampler through a DataLoader, its episodes stacked to the same batch.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| first build (empty cache), 28x28 | {load['first_build']['seconds']:.2f} s, "
        f"peak RSS {load['first_build']['peak_rss_mib']:.0f} MiB |",
        f"| cached load, 28x28 | {load['cached_load']['seconds']:.2f} s, "
        f"peak RSS {load['cached_load']['peak_rss_mib']:.0f} MiB |",
        f"| one training step (see below) | {step['ms']:.1f} ms |",
        f"| sampling one such batch (harness) | {step['sampling_ms']:.2f} ms = "
        f"{100 * step['sampling_share']:.1f}% of the step |",
        f"| peak RSS of this benchmark process | {result['peak_rss_mib']:.0f} MiB |",
        "",
        f"Training step: {step['what']}.",
    ]
    if result["dataset"] == "synthetic":
        lines.append("Synthetic data has no cache: 'cached load' generates the arrays again.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=("auto", "omniglot", "synthetic"), default="auto")
    parser.add_argument("--seconds", type=float, default=1.5, help="timing per rate, over 10 rounds (default 1.5)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--train-steps", type=int, default=10, help="timed training steps (median)")
    parser.add_argument("--cache-dir", help="dataset cache to build into (default: a temporary folder, removed)")
    parser.add_argument("--no-peer", action="store_true", help="skip easyfsl")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--load-phase", nargs=3, metavar=("DATASET", "SIZE", "CACHE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.load_phase:
        dataset, size, cache = args.load_phase
        print(json.dumps(load_phase(dataset, int(size), cache)))
        return 0
    with contextlib.redirect_stdout(sys.stderr):
        result = run(args)
    print(markdown(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
