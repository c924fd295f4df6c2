"""Benchmark: per-sample gwpy whiten+bandpass vs g2res's batched path, and preprocess end to end.

Run: ``.venv/bin/python benchmarks/preprocess.py [--n 4096] [--gwpy-n 32] [--threads 2]``.
Prints a table and writes ``benchmarks/results/preprocess.json``. Goals on 2 CPU
cores: batched signal path >= 100x the gwpy loop; end to end >= 2,000 samples/s.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from g2res.config import PreprocessConfig
from g2res.data.layout import sample_path
from g2res.data.preprocess import preprocess
from g2res.signal import WhitenBandpass, welch
from g2res.signal.reference import coloured_noise
from g2res.utils import write_json

FS = 2048.0
RESULTS = Path(__file__).parent / "results" / "preprocess.json"


def noise_psd(f):
    f = np.maximum(f, 10.0)
    return 1e-46 * ((f / 40.0) ** -4 + 1 + (f / 300.0) ** 2)


def write_dataset(root: Path, data: np.ndarray, n_train: int, rng) -> None:
    ids = [f"{i:03x}{rng.integers(16**7):07x}" for i in range(len(data))]
    for k, sample_id in enumerate(ids):
        path = sample_path(root, "train" if k < n_train else "test", sample_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, data[k])
    rows = "".join(f"{i},{k % 2}\n" for k, i in enumerate(ids[:n_train]))
    (root / "training_labels.csv").write_text("id,target\n" + rows)
    rows = "".join(f"{i},0\n" for i in ids[n_train:])
    (root / "sample_submission.csv").write_text("id,target\n" + rows)


def gwpy_loop(data: np.ndarray) -> tuple[float, np.ndarray]:
    """Seconds per sample of gwpy ``TimeSeries.whiten().bandpass()`` per detector."""
    from gwpy.timeseries import TimeSeries

    out = np.empty_like(data)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, sample in enumerate(data):
            for d in range(3):
                ts = TimeSeries(sample[d], sample_rate=FS)
                out[i, d] = ts.whiten(fftlength=0.5, overlap=0.25).bandpass(20, 500).value
    return (time.perf_counter() - t0) / len(data), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=4096, help="samples (end to end and batched)")
    ap.add_argument("--gwpy-n", type=int, default=32, help="samples for the slow gwpy loop")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--batch-size", type=int, default=1024)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    data = coloured_noise(rng, noise_psd, (args.n, 3, 4096), FS)

    gwpy_s, _ = gwpy_loop(data[: args.gwpy_n])

    f, p = welch(torch.from_numpy(data[:256]), FS)
    cond = WhitenBandpass(f, p.mean(0), FS, 4096, 20.0, 500.0)
    x = torch.from_numpy(data.astype(np.float32))
    bs = args.batch_size
    with torch.no_grad():
        cond(x[:bs])  # warm-up
        t0 = time.perf_counter()
        for s in range(0, args.n, bs):
            cond(x[s : s + bs])
        batched_s = (time.perf_counter() - t0) / args.n

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        write_dataset(root, data, args.n * 3 // 4, rng)
        cfg = PreprocessConfig(batch_size=bs, workers=4)
        t0 = time.perf_counter()
        preprocess(root, Path(tmp) / "cache", cfg, device="cpu", progress=False)
        e2e_s = (time.perf_counter() - t0) / args.n

    result = {
        "samples": args.n,
        "gwpy_samples": args.gwpy_n,
        "torch_threads": args.threads,
        "cpu": platform.processor() or platform.machine(),
        "gwpy_loop_samples_per_s": 1 / gwpy_s,
        "batched_samples_per_s": 1 / batched_s,
        "batched_vs_gwpy": gwpy_s / batched_s,
        "end_to_end_samples_per_s": 1 / e2e_s,
        "end_to_end_vs_gwpy": gwpy_s / e2e_s,
        "goals": {"batched_vs_gwpy": 100, "end_to_end_samples_per_s": 2000},
    }
    print(f"{'path':<36}{'samples/s':>12}{'x gwpy':>10}")
    print(f"{'gwpy whiten().bandpass() loop':<36}{1 / gwpy_s:>12.1f}{1:>10.1f}")
    print(
        f"{'g2res WhitenBandpass (batched)':<36}{1 / batched_s:>12.1f}{gwpy_s / batched_s:>10.1f}"
    )
    print(f"{'g2res preprocess end to end':<36}{1 / e2e_s:>12.1f}{gwpy_s / e2e_s:>10.1f}")
    write_json(RESULTS, result)
    print(json.dumps({k: round(v, 1) for k, v in result.items() if isinstance(v, float)}))


if __name__ == "__main__":
    main()
