"""Stage 1 of ``g2res preprocess``: checks of the settings, the shard slice and the
input files, fingerprints, and reading files with the worker pool."""

from __future__ import annotations

import contextlib
import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from g2res import SAMPLE_RATE
from g2res.config import PreprocessConfig
from g2res.data.validate import read_file

# Samples per worker task (read + check + FFT on the CPU): small enough that a task's
# working set stays in a core's cache, large enough to amortise the FFT set-up per call.
CHUNK = 32


def _check_config(config: PreprocessConfig) -> None:
    if config.dtype not in ("float32", "float16"):
        raise ValueError(f"preprocess dtype must be float32 or float16, got {config.dtype!r}")
    if config.batch_size < 1 or config.psd_max_samples < 1:
        raise ValueError("preprocess batch_size and psd_max_samples must be positive")
    if not 0 < config.fmin < config.fmax < SAMPLE_RATE / 2:
        raise ValueError(
            f"bandpass needs 0 < fmin < fmax < {SAMPLE_RATE / 2:g} Hz, "
            f"got fmin={config.fmin}, fmax={config.fmax}"
        )


def _check_shard(shard) -> list[int] | None:
    if shard is None:
        return None
    i, n = (int(v) for v in shard)
    if not 0 <= i < n:
        raise ValueError(f"shard {i}/{n}: need 0 <= I < N")
    return [i, n]


def _shard_rows(n_rows: int, shard) -> tuple[int, int]:
    """Row range ``[start, stop)`` of a split that ``shard`` processes (all without one)."""
    if shard is None:
        return 0, n_rows
    i, n = shard
    return n_rows * i // n, n_rows * (i + 1) // n


def _fingerprint(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def _torch_threads(n: int):
    """Run the block with ``n`` torch intra-op threads (process-wide), then restore."""
    # The worker threads are the parallelism: each reads and conditions its own chunk
    # with the GIL released. torch's OpenMP team on top spins while it waits for work,
    # taking the cores the readers need (2.6x slower end to end on 2 cores).
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _in_order(pool: ThreadPoolExecutor, fn, items: list, depth: int = 8):
    """``pool.map(fn, items)`` with at most ``depth`` tasks queued ahead of the consumer."""
    tasks = [pool.submit(fn, item) for item in items[:depth]]
    for k in range(len(items)):
        result = tasks[k].result()
        tasks[k] = None  # let the result go once consumed
        if k + depth < len(items):
            tasks.append(pool.submit(fn, items[k + depth]))
        yield result


def _file_lines(entries, crcs: np.ndarray) -> str:
    return "".join(
        f"{e.id} {c:08x}\n" if c >= 0 else f"{e.id} -\n" for e, c in zip(entries, crcs.tolist())
    )


def _read_into(path: Path, buf: np.ndarray, i: int) -> tuple[str | None, int]:
    """Read, check and checksum one file; a good sample goes to ``buf[i]``."""
    array, problem, crc = read_file(path)
    if array is not None:
        buf[i] = array
    return problem, crc
