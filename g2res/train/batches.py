"""Batches of the memory-mapped cache: seeded random streams of a run, the shuffled batches
of an epoch, the reader DataLoader workers call, and prediction over rows of the cache."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

# Independent random streams of one run, keyed with (seed, stream, fold, epoch).
_ORDER, _AUGMENT, _TORCH, _INJECT, _INIT = 1, 2, 3, 4, 5


def derive_seed(seed: int, *key: int) -> int:
    """A 63-bit seed for the stream ``key`` of run seed ``seed`` (numpy SeedSequence)."""
    state = np.random.SeedSequence(int(seed), spawn_key=tuple(int(k) for k in key))
    return int(state.generate_state(2, np.uint32).astype(np.uint64) @ [1 << 31, 1])


def epoch_batches(
    rows, batch_size: int, seed: int, fold: int, epoch: int, min_size: int = 2
) -> list[np.ndarray]:
    """Shuffled batches of ``rows`` for one epoch, a pure function of (seed, fold, epoch).

    A last batch smaller than ``min_size`` is merged into the one before (BatchNorm needs
    two samples; with N processes each takes every N-th sample of a batch).
    """
    rows = np.asarray(rows, dtype=np.int64)
    rng = np.random.default_rng(derive_seed(seed, _ORDER, fold, epoch))
    order = rows[rng.permutation(rows.size)]
    batches = [order[i : i + batch_size] for i in range(0, order.size, batch_size)]
    if len(batches) > 1 and batches[-1].size < min_size:
        batches[-2] = np.concatenate(batches[-2:])
        batches.pop()
    return batches


class BatchReader(Dataset):
    """Item ``i`` is batch ``i``: ``(x (b, 3, time) float32, y (b,) float32)``.

    ``array``: an in-memory array, or a callable that opens the (memory-mapped) array,
    called lazily in each DataLoader worker. Rows are read in sorted order (sequential
    on disk), then put back in the batch's order.
    """

    def __init__(self, array, labels: np.ndarray | None, batches: list[np.ndarray]):
        self._open = array if callable(array) else None
        self._array = None if callable(array) else array
        self.labels = labels
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int):
        if self._array is None:
            self._array = self._open()
        idx = self.batches[i]
        order = np.argsort(idx, kind="stable")
        x = np.empty((idx.size, *self._array.shape[1:]), dtype=np.float32)
        x[order] = self._array[idx[order]]
        y = self.labels[idx] if self.labels is not None else np.full(idx.size, np.nan)
        return torch.from_numpy(x), torch.from_numpy(np.asarray(y, dtype=np.float32))


def default_workers(requested: int | None) -> int:
    """DataLoader workers for ``train.num_workers`` (None: from the CPU count)."""
    if requested is not None:
        return max(0, int(requested))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return min(8, max(0, ((cores or 1) - 2) // 2))


def _loader(reader: BatchReader, workers: int, device: torch.device) -> DataLoader:
    return DataLoader(
        reader,
        batch_size=None,
        shuffle=False,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        prefetch_factor=4 if workers > 0 else None,
    )


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    array,
    rows,
    batch_size: int,
    device: torch.device,
    amp: bool = False,
    workers: int = 0,
) -> np.ndarray:
    """Outputs ``(len(rows), n_outputs)`` of ``model`` (eval mode) on ``array[rows]``."""
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size == 0:
        return np.empty((0, 1), np.float32)
    batches = [rows[i : i + batch_size] for i in range(0, rows.size, batch_size)]
    was_training = model.training
    model.eval()
    out = []
    for x, _ in _loader(BatchReader(array, None, batches), workers, device):
        x = x.to(device, non_blocking=True)
        with torch.autocast(device.type, enabled=amp):
            out.append(model(x).float().reshape(x.shape[0], -1).cpu())
    model.train(was_training)
    return torch.cat(out).numpy()


class _MemmapOpener:
    """Picklable callable that opens the cache array read-only (in each worker)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def __call__(self) -> np.ndarray:
        return np.load(self.path, mmap_mode="r", allow_pickle=False)
