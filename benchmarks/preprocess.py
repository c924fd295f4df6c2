"""Benchmark: per-sample gwpy whiten+bandpass vs g2res's batched path, and preprocess end to end.

Run: ``.venv/bin/python benchmarks/preprocess.py [--n 10000] [--gwpy-n 32] [--threads 2]``.
Prints a table and writes ``benchmarks/results/preprocess.json``. Goals on 2 CPU
cores: batched signal path >= 100x the gwpy loop; end to end >= 2,000 samples/s.

End to end runs ``preprocess`` on ``--n`` files written just before (page cache
warm), once with the PSD estimated from the data and once with ``--psd-source``
(the streaming pass alone), next to two floors: ``np.load`` of every file in a
thread pool, and reading the raw bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
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


def write_dataset(root: Path, n: int, n_train: int, rng) -> list[Path]:
    """``n`` coloured-noise files (written in blocks of 1,000); returns their paths."""
    ids = [f"{i:03x}{rng.integers(16**7):07x}" for i in range(n)]
    paths = []
    for start in range(0, n, 1000):
        data = coloured_noise(rng, noise_psd, (min(1000, n - start), 3, 4096), FS)
        for k, sample in enumerate(data, start):
            path = sample_path(root, "train" if k < n_train else "test", ids[k])
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, sample)
            paths.append(path)
    rows = "".join(f"{i},{k % 2}\n" for k, i in enumerate(ids[:n_train]))
    (root / "training_labels.csv").write_text("id,target\n" + rows)
    rows = "".join(f"{i},0\n" for i in ids[n_train:])
    (root / "sample_submission.csv").write_text("id,target\n" + rows)
    return paths


def read_floor(paths: list[Path], workers: int, reader) -> float:
    """Files per second reading every path with ``reader`` in a thread pool."""
    with ThreadPoolExecutor(workers) as pool:
        t0 = time.perf_counter()
        for _ in pool.map(reader, paths, chunksize=64):
            pass
        return len(paths) / (time.perf_counter() - t0)


def read_raw(path: Path) -> bytes:
    with open(path, "rb", buffering=0) as fh:
        return fh.read()


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
    ap.add_argument("--n", type=int, default=10000, help="files for the end-to-end run")
    ap.add_argument("--gwpy-n", type=int, default=32, help="samples for the slow gwpy loop")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--workers", type=int, default=4, help="threads reading files")
    ap.add_argument("--tmp", default=None, help="folder for the data set (default: system tmp)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    data = coloured_noise(rng, noise_psd, (min(args.n, 4096), 3, 4096), FS)

    gwpy_s, _ = gwpy_loop(data[: args.gwpy_n])

    f, p = welch(torch.from_numpy(data[:256]), FS)
    cond = WhitenBandpass(f, p.mean(0), FS, 4096, 20.0, 500.0)
    x = torch.from_numpy(data.astype(np.float32))
    chunk = 64  # what preprocess uses on the CPU
    with torch.no_grad():
        cond(x[:chunk])  # warm-up
        t0 = time.perf_counter()
        for s in range(0, len(x), chunk):
            cond(x[s : s + chunk])
        batched_s = (time.perf_counter() - t0) / len(x)
    del data, x

    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        root = Path(tmp) / "data"
        paths = write_dataset(root, args.n, args.n * 3 // 4, rng)
        np_load = read_floor(paths, args.workers, np.load)
        raw = read_floor(paths, args.workers, read_raw)
        cfg = PreprocessConfig(batch_size=args.batch_size, workers=args.workers)
        t0 = time.perf_counter()
        cache = preprocess(root, Path(tmp) / "cache", cfg, device="cpu", progress=False)
        e2e_s = (time.perf_counter() - t0) / args.n
        stream_cfg = PreprocessConfig(
            batch_size=args.batch_size, workers=args.workers, psd_source=str(cache / "psd.npz")
        )
        t0 = time.perf_counter()
        preprocess(root, Path(tmp) / "cache2", stream_cfg, device="cpu", progress=False)
        stream_s = (time.perf_counter() - t0) / args.n
        # The two caches hold the same samples (same PSD): a check that both did the work.
        a = np.load(cache / "train.npy", mmap_mode="r")
        b = np.load(Path(tmp) / "cache2" / "train.npy", mmap_mode="r")
        assert np.array_equal(a[:64], b[:64])

    result = {
        "samples": args.n,
        "gwpy_samples": args.gwpy_n,
        "torch_threads": args.threads,
        "read_workers": args.workers,
        "batch_size": args.batch_size,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "gwpy_loop_samples_per_s": 1 / gwpy_s,
        "batched_samples_per_s": 1 / batched_s,
        "batched_vs_gwpy": gwpy_s / batched_s,
        "np_load_floor_files_per_s": np_load,
        "raw_read_floor_files_per_s": raw,
        "end_to_end_samples_per_s": 1 / e2e_s,
        "end_to_end_vs_gwpy": gwpy_s / e2e_s,
        "end_to_end_vs_np_load_floor": (1 / e2e_s) / np_load,
        "streaming_pass_samples_per_s": 1 / stream_s,
        "goals": {"batched_vs_gwpy": 100, "end_to_end_samples_per_s": 2000},
    }
    rows = [
        ("gwpy whiten().bandpass() loop", 1 / gwpy_s),
        ("g2res WhitenBandpass (64-sample chunks)", 1 / batched_s),
        ("floor: np.load in threads", np_load),
        ("floor: raw bytes in threads", raw),
        ("g2res preprocess end to end", 1 / e2e_s),
        ("g2res preprocess, PSD given", 1 / stream_s),
    ]
    print(f"{'path':<42}{'samples/s':>12}{'x gwpy':>10}")
    for name, rate in rows:
        print(f"{name:<42}{rate:>12.1f}{rate * gwpy_s:>10.1f}")
    write_json(RESULTS, result)
    print(json.dumps({k: round(v, 1) for k, v in result.items() if isinstance(v, float)}))


if __name__ == "__main__":
    main()
