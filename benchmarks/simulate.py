"""Benchmark ``g2res simulate``: samples/s for 1..N workers and where the time goes.

Goal: 10,000 samples (half with IMRPhenomXPHM signals) in under 5 minutes on 2 cores,
i.e. >= 33 samples/s. Prints a table and writes benchmarks/results/simulate.json.

    python benchmarks/simulate.py --n 2000 --workers 1 2
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from g2res.config import SimulateConfig
from g2res.data.simulate import Simulator, sample_rng, simulate
from g2res.utils import save_npy, write_json

GOAL_SAMPLES, GOAL_SECONDS = 10_000, 300.0


def components(config: SimulateConfig, n: int = 200) -> dict:
    """Mean ms per noise window, per signal (waveform + projection + SNR), per file write."""
    sim = Simulator(config)
    rng = sample_rng(0, 0)
    t = time.perf_counter()
    for _ in range(n):
        sim.noise(rng)
    noise_ms = (time.perf_counter() - t) / n * 1e3
    t = time.perf_counter()
    for _ in range(n // 2):
        sim.injector.render(sim.injector.draw(rng))
    signal_ms = (time.perf_counter() - t) / (n // 2) * 1e3
    x = np.zeros((3, 4096))
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        for i in range(n):
            save_npy(Path(tmp, f"{i}.npy"), x)
        write_ms = (time.perf_counter() - t) / n * 1e3
    return {"noise_ms": noise_ms, "signal_ms": signal_ms, "write_ms": write_ms}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="samples per run (train only)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--approximant", default=SimulateConfig().approximant)
    parser.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "simulate.json"), help="JSON"
    )
    args = parser.parse_args()

    base = SimulateConfig(n_train=args.n, n_test=0, approximant=args.approximant)
    parts = components(base)
    runs = []
    for workers in args.workers:
        cfg = SimulateConfig(**{**vars(base), "workers": workers})
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            simulate(Path(tmp) / "data", cfg, seed=0, progress=False)
            seconds = time.perf_counter() - t
        rate = args.n / seconds
        runs.append(
            {
                "workers": workers,
                "samples": args.n,
                "seconds": seconds,
                "samples_per_s": rate,
                "projected_10k_s": GOAL_SAMPLES / rate,
                "meets_goal": GOAL_SAMPLES / rate < GOAL_SECONDS,
            }
        )

    print(f"simulate benchmark: {args.approximant}, half the samples with signals")
    print(
        f"per sample: noise {parts['noise_ms']:.1f} ms, signal {parts['signal_ms']:.1f} ms "
        f"(per injection), write {parts['write_ms']:.2f} ms"
    )
    print(f"{'workers':>7} {'samples':>8} {'seconds':>8} {'samples/s':>10} {'10k (s)':>8} goal")
    for r in runs:
        print(
            f"{r['workers']:>7} {r['samples']:>8} {r['seconds']:>8.1f} {r['samples_per_s']:>10.1f} "
            f"{r['projected_10k_s']:>8.0f} {'yes' if r['meets_goal'] else 'NO'}"
        )
    write_json(
        args.out,
        {
            "benchmark": "simulate",
            "approximant": args.approximant,
            "goal": f"{GOAL_SAMPLES} samples in < {GOAL_SECONDS:.0f} s on 2 cores",
            "cpu_count": os.cpu_count(),
            "load_average": os.getloadavg(),
            "machine": platform.platform(),
            "components_ms": parts,
            "runs": runs,
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
