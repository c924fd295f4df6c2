"""Reading the preprocessed cache written by ``g2res preprocess``.

Cache directory layout::

    manifest.json            settings, counts, g2res version, input checksums
    psd.npz                  frequencies (Hz), psd (detector, freq) in strain^2/Hz, sample_rate
    train.npy                (n_train, 3, 4096) whitened + bandpassed strain, float32/float16
    train_ids.txt            one id per line, same order as train.npy
    train_labels.npy         (n_train,) int8 targets 0/1
    test.npy, test_ids.txt   the same for the test split (no labels)
    bad_files.csv            files excluded with --skip-bad, when any

Arrays are opened as read-only memory maps so training never loads the whole
set into memory, and DataLoader workers share the page cache.
"""

from __future__ import annotations

import json
import os
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

MANIFEST = "manifest.json"
PSD_FILE = "psd.npz"


CONDITIONING = ("fmin", "fmax", "filter_order", "window", "window_alpha")


def conditioning_settings(settings: dict | None = None) -> dict:
    """The whitening and bandpass keys of preprocess ``settings`` (:data:`CONDITIONING`),
    preprocess's defaults (:class:`g2res.config.PreprocessConfig`) where one is missing."""
    from g2res.config import PreprocessConfig

    settings, defaults = settings or {}, PreprocessConfig()
    return {key: settings.get(key, getattr(defaults, key)) for key in CONDITIONING}


class CacheError(RuntimeError):
    """The cache directory is missing, incomplete or inconsistent."""


class Cache:
    """A preprocessed cache directory (read-only view)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        manifest = self.path / MANIFEST
        if not manifest.is_file():
            raise CacheError(
                f"{self.path} is not a g2res cache (no {MANIFEST}); "
                "make one with `g2res preprocess DATA_DIR --out CACHE`"
            )
        self.manifest: dict = json.loads(manifest.read_text())

    def has_split(self, split: str) -> bool:
        return (self.path / f"{split}.npy").is_file()

    def array(self, split: str) -> np.ndarray:
        """Memory-mapped ``(n, 3, time)`` array of ``split``."""
        f = self.path / f"{split}.npy"
        if not f.is_file():
            raise CacheError(f"cache {self.path} has no {split} split ({f.name} missing)")
        return np.load(f, mmap_mode="r", allow_pickle=False)

    def ids(self, split: str) -> list[str]:
        f = self.path / f"{split}_ids.txt"
        if not f.is_file():
            raise CacheError(f"cache {self.path} has no {f.name}")
        return f.read_text().split()

    def labels(self, split: str = "train") -> np.ndarray:
        f = self.path / f"{split}_labels.npy"
        if not f.is_file():
            raise CacheError(f"cache {self.path} has no labels for {split} ({f.name} missing)")
        return np.load(f, allow_pickle=False)

    @cached_property
    def psd(self) -> dict[str, np.ndarray]:
        """``{"frequencies": (f,), "psd": (3, f), "sample_rate": ()}`` as stored."""
        f = self.path / PSD_FILE
        if not f.is_file():
            raise CacheError(f"cache {self.path} has no {PSD_FILE}")
        with np.load(f, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    @property
    def sample_rate(self) -> float:
        return float(self.manifest.get("sample_rate", 2048))

    @property
    def conditioning(self) -> dict:
        """How the cache's arrays were whitened and bandpassed (manifest settings, with
        preprocess's defaults): ``fmin``, ``fmax`` (Hz), ``filter_order``, ``window`` and
        ``window_alpha`` (the data taper). Whatever adds signals or glitches to cached
        data, or correlates templates with it, conditions them the same way."""
        return conditioning_settings(self.manifest.get("settings", {}))

    @property
    def data_dir(self) -> Path | None:
        """The raw data directory the cache was made from, when recorded."""
        d = self.manifest.get("data_dir")
        return Path(d) if d else None


class CacheDataset(Dataset):
    """Samples of one cache split as ``(x, y)``: x float32 ``(3, time)``, y float32 ``()``.

    ``indices`` selects a subset (e.g. a fold). Test splits have no labels; y is
    then NaN. The memory map is opened lazily in each worker process.
    """

    def __init__(self, cache: str | os.PathLike | Cache, split: str = "train", indices=None):
        self.cache = cache if isinstance(cache, Cache) else Cache(cache)
        self.split = split
        n = len(self.cache.ids(split))
        self.indices = np.arange(n) if indices is None else np.asarray(indices, dtype=np.int64)
        labels_file = self.cache.path / f"{split}_labels.npy"
        self.labels = (
            self.cache.labels(split).astype(np.float32)
            if labels_file.is_file()
            else np.full(n, np.nan, np.float32)
        )
        self._array = None

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        if self._array is None:
            self._array = self.cache.array(self.split)
        j = self.indices[i]
        # A copy: float32 caches would otherwise hand torch a read-only memmap view.
        x = torch.from_numpy(np.array(self._array[j], dtype=np.float32))
        return x, torch.tensor(self.labels[j])
