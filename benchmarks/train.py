"""Benchmark the cv-train data path: is the loader the bottleneck?

Times training epochs of one recipe on the same fold three ways, in one run:
- ``default``: the real path (memory-mapped cache, ``train.num_workers`` left to g2res:
  worker processes from the CPU count, none on a 2-core machine),
- ``memmap, N workers``: the cache read by N DataLoader worker processes,
- ``in-memory``: the same samples already in RAM (no loader at all),
and reports the loader's cost as the extra epoch time over ``in-memory``. Goal: under
10 %. Prints a table and writes benchmarks/results/train.json.

    python benchmarks/train.py --n-train 2000 --epochs 2 --threads 2
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from g2res.config import load_config
from g2res.data.cache import Cache
from g2res.train.folds import make_folds
from g2res.train.loop import FoldTrainer, default_workers
from g2res.utils import write_json

GOAL_LOADER_SHARE = 0.10
ROOT = Path(__file__).resolve().parents[1]


def make_cache(work: Path, n_train: int, seed: int) -> Path:
    """A simulated data set and its cache in ``work`` (reused when present)."""
    from g2res.config import PreprocessConfig, SimulateConfig
    from g2res.data.preprocess import preprocess
    from g2res.data.simulate import simulate

    data, cache = work / "data", work / "cache"
    if not (data / "training_labels.csv").is_file():
        cfg = SimulateConfig(n_train=n_train, n_test=16, snr=(6.0, 20.0), workers=2)
        simulate(data, config=cfg, seed=seed, force=True, progress=True)
    if not (cache / "manifest.json").is_file():
        preprocess(data, cache, config=PreprocessConfig(), seed=seed, force=True)
    return cache


def trainer(cfg, cache, train_rows, val_rows, in_memory: bool, out: Path) -> FoldTrainer:
    t = FoldTrainer(cfg, cache, train_rows, val_rows, 0, out, torch.device("cpu"),
                    progress=False, in_memory=in_memory)  # fmt: skip
    t._build()
    t._train_epoch(0)  # warm-up: workers, allocator, page cache
    return t


def time_epochs(trainers: dict[str, FoldTrainer], epochs: int) -> dict[str, dict]:
    """Median epoch time per variant; variants interleaved epoch by epoch so that a change
    in machine load hits them all alike."""
    times = {name: [] for name in trainers}
    data = {name: [] for name in trainers}
    samples = {}
    for e in range(1, epochs + 1):
        for name, t in trainers.items():
            t0 = time.perf_counter()
            row = t._train_epoch(e)
            times[name].append(time.perf_counter() - t0)
            data[name].append(row["data_seconds"])
            samples[name] = row["train_samples"]
    return {name: {"epoch_seconds": statistics.median(times[name]),
                   "data_seconds": statistics.median(data[name]), "samples": samples[name]}
            for name in trainers}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--recipe", default=str(ROOT / "pipelines" / "quickstart.yaml"))
    p.add_argument("--n-train", type=int, default=2000, help="simulated training samples")
    p.add_argument("--epochs", type=int, default=4, help="timed epochs per variant")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers to compare")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--workdir", default="/tmp/g2res-bench-train")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "train.json"))
    p.add_argument("overrides", nargs="*", help="recipe overrides, e.g. train.batch_size=64")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.workdir)
    cache = Cache(make_cache(work, args.n_train, seed=0))
    cfg = load_config(args.recipe, args.overrides).replace({"cache": str(cache.path)})
    labels = cache.labels("train")
    fold = make_folds(cache.ids("train"), labels, 5, seed=0)["fold"].to_numpy()
    train_rows, val_rows = np.flatnonzero(fold != 0), np.flatnonzero(fold == 0)

    auto = default_workers(None)
    variants = {
        f"default ({auto} workers)": (cfg.replace({"train.num_workers": None}), False),
        "memmap, 0 workers": (cfg.replace({"train.num_workers": 0}), False),
        f"memmap, {args.workers} workers": (cfg.replace({"train.num_workers": args.workers}),
                                            False),
        "in-memory": (cfg, True),
    }  # fmt: skip
    if auto == 0:
        del variants["memmap, 0 workers"]
    trainers = {name: trainer(c, cache, train_rows, val_rows, in_memory, work / "runs" / name)
                for name, (c, in_memory) in variants.items()}  # fmt: skip
    rows = time_epochs(trainers, args.epochs)
    ref = rows["in-memory"]["epoch_seconds"]
    print(f"{'variant':<22}{'epoch s':>10}{'samples/s':>12}{'waiting on data s':>20}"
          f"{'loader cost':>13}")  # fmt: skip
    for name, r in rows.items():
        r["samples_per_s"] = r["samples"] / r["epoch_seconds"]
        r["loader_cost"] = r["epoch_seconds"] / ref - 1.0
        print(f"{name:<22}{r['epoch_seconds']:>10.2f}{r['samples_per_s']:>12.1f}"
              f"{r['data_seconds']:>20.2f}{100 * r['loader_cost']:>12.1f}%")  # fmt: skip
    cost = rows[f"default ({auto} workers)"]["loader_cost"]
    verdict = "met" if cost < GOAL_LOADER_SHARE else "NOT met"
    print(f"loader cost of the real path: {100 * cost:.1f}% (goal < "
          f"{100 * GOAL_LOADER_SHARE:.0f}%: {verdict})")  # fmt: skip
    write_json(args.out, {
        "recipe": Path(args.recipe).name, "overrides": args.overrides,
        "n_train_fold": int(train_rows.size), "epochs_timed": args.epochs,
        "threads": args.threads, "workers": args.workers, "cpu": platform.machine(),
        "cpu_count": os.cpu_count(), "variants": rows, "loader_cost": cost,
        "goal_loader_cost": GOAL_LOADER_SHARE, "goal_met": cost < GOAL_LOADER_SHARE,
    })  # fmt: skip


if __name__ == "__main__":
    main()
