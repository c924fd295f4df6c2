"""Benchmark scaling: cv-train with 1 and N processes (torchrun, gloo on CPU) and
`g2res scan` throughput in seconds of strain per second.

Training: the same recipe, data and folds trained by ``g2res cv-train`` (1 process) and
by ``torchrun --nproc-per-node N -m g2res cv-train`` (DDP; and ``--fold-parallel``);
samples/s = training samples seen / training seconds (from each run's histories).
Scan: the 1-process run's fold ensemble scans simulated Gaussian strain (design PSDs) at
two strides. Prints a table and writes benchmarks/results/scale.json.

    python benchmarks/scale.py --n-train 2000 --procs 2 --epochs 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from g2res.utils import write_json

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from train import make_cache  # noqa: E402  (the loader benchmark's data set)


def train_rate(run: Path) -> dict:
    """Samples/s and seconds of a cv-train run from its fold histories."""
    samples = seconds = 0.0
    for h in run.glob("fold*/history.csv"):
        t = pd.read_csv(h)
        samples += t["train_samples"].sum()
        seconds += (t["data_seconds"] + t["step_seconds"]).sum()
    auc = json.loads((run / "metrics.json").read_text())["auc"]
    return {"samples": int(samples), "train_seconds": seconds,
            "samples_per_s": samples / max(seconds, 1e-9), "oof_auc": auc}  # fmt: skip


def run_cv(cmd: list[str], threads: int) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(res.stdout[-2000:] + res.stderr[-2000:])
    return time.perf_counter() - t0


def scan_rate(run: Path, duration: float, strides: list[float], threads: int) -> list[dict]:
    import torch

    from g2res.data.noise import ColoredNoise
    from g2res.scan.scan import ScanSettings, scan_strain
    from g2res.scan.search import run_scorer
    from g2res.scan.strain import Strain

    torch.set_num_threads(threads)
    n = int(duration * 2048)
    noise = ColoredNoise(n_samples=n, segment_duration=2 * duration)
    strain = Strain(noise(np.random.default_rng(0)), gps_start=1e9, sample_rate=2048.0)
    scorer = run_scorer(run, device="cpu")
    rows = []
    for stride in strides:
        t0 = time.perf_counter()
        res = scan_strain(strain, scorer, ScanSettings(stride=stride), progress=False)
        sec = time.perf_counter() - t0
        rows.append({"stride_s": stride, "strain_s": duration, "windows": int(res.scores.size),
                     "seconds": sec, "strain_s_per_s": duration / sec,
                     "windows_per_s": res.scores.size / sec})  # fmt: skip
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--recipe", default=str(ROOT / "pipelines" / "quickstart.yaml"))
    p.add_argument("--n-train", type=int, default=2000)
    p.add_argument("--procs", type=int, default=2, help="processes of the torchrun runs")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--folds", type=int, default=2)
    p.add_argument("--threads", type=int, default=2, help="CPU threads in total")
    p.add_argument("--scan-seconds", type=float, default=128.0, help="s of strain to scan")
    p.add_argument("--strides", type=float, nargs="+", default=[0.25, 1.0])
    p.add_argument("--workdir", default="/tmp/g2res-bench-train")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "scale.json"))
    p.add_argument("--retrain", action="store_true", help="train again even if runs exist")
    args = p.parse_args()

    work = Path(args.workdir)
    cache = make_cache(work, args.n_train, seed=0)
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    common = ["cv-train", "--config", args.recipe, "--cache", str(cache), "--folds",
              str(args.folds), "--epochs", str(args.epochs), "-q", "--force"]  # fmt: skip
    n = args.procs
    runs = {
        "1 process": ([sys.executable, "-m", "g2res", *common], args.threads),
        f"{n} processes (DDP)": (
            [torchrun, "--standalone", "--nproc-per-node", str(n), "-m", "g2res", *common],
            max(1, args.threads // n)),
        f"{n} processes (fold-parallel)": (
            [torchrun, "--standalone", "--nproc-per-node", str(n), "-m", "g2res", *common,
             "--fold-parallel"], max(1, args.threads // n)),
    }  # fmt: skip
    table = {}
    for name, (cmd, threads) in runs.items():
        out = work / "scale" / name.split()[0] / name.split()[-1].strip("()")
        timing = out.parent / f"{out.name}.wall.json"
        if args.retrain or not timing.is_file():
            write_json(timing, {"wall_seconds": run_cv([*cmd, "--out", str(out)], threads)})
        wall = json.loads(timing.read_text())["wall_seconds"]
        table[name] = {**train_rate(out), "wall_seconds": wall, "threads_per_process": threads}
        print(f"{name}: {table[name]['samples_per_s']:.1f} samples/s, wall {wall:.0f} s")
    scan = scan_rate(work / "scale" / "1" / "process", args.scan_seconds, args.strides,
                     args.threads)  # fmt: skip

    base = table["1 process"]["wall_seconds"]
    print(f"\n{'cv-train':<30}{'samples/s':>11}{'wall s':>9}{'speed-up':>10}{'OOF AUC':>9}")
    for name, r in table.items():
        r["speedup_wall"] = base / r["wall_seconds"]
        print(f"{name:<30}{r['samples_per_s']:>11.1f}{r['wall_seconds']:>9.0f}"
              f"{r['speedup_wall']:>10.2f}{r['oof_auc']:>9.3f}")  # fmt: skip
    print(f"\n{'scan stride s':<16}{'windows/s':>11}{'strain s per s':>16}")
    for r in scan:
        print(f"{r['stride_s']:<16}{r['windows_per_s']:>11.1f}{r['strain_s_per_s']:>16.1f}")
    write_json(args.out, {
        "recipe": Path(args.recipe).name, "n_train": args.n_train, "folds": args.folds,
        "epochs": args.epochs, "cpu": platform.machine(), "cpu_count": os.cpu_count(),
        "threads": args.threads, "cv_train": table, "scan": scan,
    })  # fmt: skip


if __name__ == "__main__":
    main()
