"""Benchmark: per-sample gwpy whiten+bandpass vs g2res's batched path, and preprocess end to end.

Run: ``.venv/bin/python benchmarks/preprocess.py [--n 10000] [--gwpy-n 32] [--workers 4]``.
Prints a table and writes ``benchmarks/results/preprocess.json``. Goals on 2 CPU
cores: batched signal path >= 100x the gwpy loop; end to end >= 2,000 samples/s.

End to end runs ``preprocess`` on ``--n`` files written just before (flushed to
disk with ``os.sync`` so their writeback does not land in the run's ``fsync``;
page cache warm), once with the PSD estimated from the data and once with
``--psd-source`` (the streaming pass alone). Next to it, the floor of each stage
in the same thread pool: reading the raw bytes, ``np.load``, ``read_file`` (read +
crc32 + checks + float32 copy), conditioning alone (``WhitenBandpass`` on
``CHUNK``-sample chunks, one torch thread per worker, as preprocess runs it) and
writing the float32 cache (``pwrite`` + ``fsync``). Each row also gives CPU
microseconds per sample (process time), which other jobs on the machine disturb
less than the rate; the load average is recorded.
"""

from __future__ import annotations

import argparse
import functools
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
from g2res.data.preprocess import CHUNK, _torch_threads, preprocess
from g2res.data.validate import read_file
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


def timed(fn, n: int) -> tuple[float, float]:
    """``(items per second, CPU microseconds per item)`` of ``fn()`` over ``n`` items."""
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return n / wall, 1e6 * cpu / n


def read_floor(paths: list[Path], workers: int, reader) -> tuple[float, float]:
    """Files per second (and CPU us per file) reading every path with ``reader`` in threads."""

    def run():
        with ThreadPoolExecutor(workers) as pool:
            for _ in pool.map(reader, paths, chunksize=64):
                pass

    return timed(run, len(paths))


def read_checked(path: Path) -> None:
    """What a preprocess worker does per file before the FFT: read, check, float32 copy."""
    array, _, _ = read_file(path)
    np.empty((3, 4096), np.float32)[...] = array


def condition_floor(cond, x: torch.Tensor, workers: int) -> tuple[float, float]:
    """Conditioning alone as preprocess runs it: CHUNK-sample chunks in ``workers`` threads."""
    out = torch.empty_like(x)

    def one(c):
        with torch.no_grad():
            out[c : c + CHUNK] = cond(x[c : c + CHUNK])

    def run():
        with _torch_threads(1), ThreadPoolExecutor(workers) as pool:
            list(pool.map(one, range(0, len(x), CHUNK)))

    one(0)  # warm-up
    return timed(run, len(x))


def write_floor(path: Path, n: int, batch: int) -> tuple[float, float]:
    """Writing ``n`` float32 samples in batches with ``pwrite`` + ``fsync``, as preprocess."""
    y = np.ones((batch, 3, 4096), np.float32)
    fd = os.open(path, os.O_RDWR | os.O_CREAT)

    def run():
        for start in range(0, n, batch):
            os.pwrite(fd, memoryview(y[: min(batch, n - start)]).cast("B"), start * y[0].nbytes)
            os.fsync(fd)

    try:
        return timed(run, n)
    finally:
        os.close(fd)
        path.unlink()


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
    ap.add_argument(
        "--threads", type=int, default=2, help="torch threads (preprocess uses one per worker)"
    )
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--workers", type=int, default=4, help="threads reading files")
    ap.add_argument("--tmp", default=None, help="folder for the data set (default: system tmp)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    rng = np.random.default_rng(0)
    data = coloured_noise(rng, noise_psd, (min(args.n, 4096), 3, 4096), FS)

    gwpy_s, _ = gwpy_loop(data[: args.gwpy_n])

    f, p = welch(torch.from_numpy(data[:256]), FS)
    cond = WhitenBandpass(f, p.mean(0), FS, 4096, 20.0, 500.0)
    x = torch.from_numpy(data.astype(np.float32))
    chunk = 64  # what preprocess used before running the FFTs in its worker threads
    with torch.no_grad():
        cond(x[:chunk])  # warm-up
        t0 = time.perf_counter()
        for s in range(0, len(x), chunk):
            cond(x[s : s + chunk])
        batched_s = (time.perf_counter() - t0) / len(x)
    rates = {"condition": condition_floor(cond, x, args.workers)}
    del data, x

    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        root = Path(tmp) / "data"
        paths = write_dataset(root, args.n, args.n * 3 // 4, rng)
        os.sync()  # a real data set is at rest: keep its writeback out of the timings
        rates["raw"] = read_floor(paths, args.workers, read_raw)
        rates["np_load"] = read_floor(paths, args.workers, np.load)
        rates["read_file"] = read_floor(paths, args.workers, read_checked)
        rates["write"] = write_floor(Path(tmp) / "write.bin", args.n, args.batch_size)
        cfg = PreprocessConfig(batch_size=args.batch_size, workers=args.workers)
        quiet = dict(device="cpu", progress=False)
        run = functools.partial(preprocess, root, Path(tmp) / "cache", cfg, **quiet)
        rates["end_to_end"] = timed(run, args.n)
        cache = Path(tmp) / "cache"
        stream_cfg = PreprocessConfig(
            batch_size=args.batch_size, workers=args.workers, psd_source=str(cache / "psd.npz")
        )
        run = functools.partial(preprocess, root, Path(tmp) / "cache2", stream_cfg, **quiet)
        rates["streaming"] = timed(run, args.n)
        # The two caches hold the same samples (same PSD): a check that both did the work.
        a = np.load(cache / "train.npy", mmap_mode="r")
        b = np.load(Path(tmp) / "cache2" / "train.npy", mmap_mode="r")
        assert np.array_equal(a, b)

    e2e, np_load = rates["end_to_end"][0], rates["np_load"][0]
    result = {
        "samples": args.n,
        "gwpy_samples": args.gwpy_n,
        "torch_threads_outside_preprocess": args.threads,
        "read_workers": args.workers,
        "batch_size": args.batch_size,
        "chunk": CHUNK,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_1min_before_after": [load_before[0], os.getloadavg()[0]],
        "gwpy_loop_samples_per_s": 1 / gwpy_s,
        "batched_samples_per_s": 1 / batched_s,
        "batched_vs_gwpy": gwpy_s / batched_s,
        "conditioning_in_workers_samples_per_s": rates["condition"][0],
        "raw_read_floor_files_per_s": rates["raw"][0],
        "np_load_floor_files_per_s": np_load,
        "read_file_floor_files_per_s": rates["read_file"][0],
        "write_floor_samples_per_s": rates["write"][0],
        "end_to_end_samples_per_s": e2e,
        "end_to_end_vs_gwpy": e2e * gwpy_s,
        "end_to_end_vs_np_load_floor": e2e / np_load,
        "streaming_pass_samples_per_s": rates["streaming"][0],
        "cpu_us_per_sample": {k: v[1] for k, v in rates.items()},
        "goals": {"batched_vs_gwpy": 100, "end_to_end_samples_per_s": 2000},
    }
    rows = [
        ("gwpy whiten().bandpass() loop", 1 / gwpy_s, None),
        (f"WhitenBandpass, 64-chunks, {args.threads} torch threads", 1 / batched_s, None),
        (f"WhitenBandpass, {CHUNK}-chunks in {args.workers} workers", *rates["condition"]),
        ("floor: raw bytes in threads", *rates["raw"]),
        ("floor: np.load in threads", *rates["np_load"]),
        ("floor: read_file + float32 copy", *rates["read_file"]),
        ("floor: pwrite + fsync float32", *rates["write"]),
        ("g2res preprocess end to end", *rates["end_to_end"]),
        ("g2res preprocess, PSD given", *rates["streaming"]),
    ]
    print(f"{'path':<46}{'samples/s':>11}{'CPU us/sample':>15}{'x gwpy':>9}")
    for name, rate, cpu in rows:
        cpu_text = f"{cpu:15.0f}" if cpu is not None else f"{'':15}"
        print(f"{name:<46}{rate:>11.1f}{cpu_text}{rate * gwpy_s:>9.1f}")
    print(f"load average (1 min) before/after: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f}")
    write_json(RESULTS, result)


if __name__ == "__main__":
    main()
