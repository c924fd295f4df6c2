"""Reading the samples a classical baseline filters: ids of a split and raw sample files."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from g2res import DETECTORS
from g2res.data.layout import SAMPLE_SUBMISSION, TRAIN_LABELS, sample_path

N_SAMPLES = 4096

__all__ = ["split_ids", "read_sample", "read_batch"]


def split_ids(data_dir: str | os.PathLike, split: str) -> list[str]:
    """Ids of ``split`` (train: training_labels.csv; test: sample_submission.csv)."""
    name = {"train": TRAIN_LABELS, "test": SAMPLE_SUBMISSION}.get(split)
    if name is None:
        raise ValueError(f"unknown split {split!r}: use train or test")
    path = Path(data_dir) / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; is {data_dir} a G2Net-layout data set?")
    frame = pd.read_csv(path, dtype={"id": str})
    if "id" not in frame.columns:
        raise ValueError(f"{path} has no 'id' column")
    return frame["id"].tolist()


def read_sample(path: Path) -> np.ndarray:
    """One raw sample (3, 4096) float64, with errors naming the file."""
    if not path.is_file():
        raise FileNotFoundError(f"sample file {path} does not exist")
    try:
        x = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise ValueError(f"sample file {path} cannot be read: {exc}") from None
    if x.shape != (len(DETECTORS), N_SAMPLES):
        raise ValueError(f"sample file {path} has shape {x.shape}, expected (3, {N_SAMPLES})")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"sample file {path} contains NaN or infinite values")
    return np.asarray(x, dtype=np.float64)


def read_batch(data_dir, split: str, ids: list[str], pool: ThreadPoolExecutor) -> np.ndarray:
    return np.stack(list(pool.map(lambda i: read_sample(sample_path(data_dir, split, i)), ids)))
