"""Helpers of the data tests: G2Net-layout data sets of coloured Gaussian noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from g2res.data.layout import sample_path
from g2res.signal.reference import coloured_noise

FS = 2048.0


def noise_psd(f):
    """A detector-like one-sided PSD (strain^2/Hz): seismic wall, flat bucket, shot noise."""
    f = np.maximum(f, 10.0)
    return 1e-46 * ((f / 40.0) ** -4 + 1 + (f / 300.0) ** 2)


def write_noise_dataset(root: Path, rng, n_train: int, n_test: int, labels) -> list[str]:
    """Write ``n_train`` + ``n_test`` noise samples and both CSVs under ``root``; returns ids
    (train first). ``labels``: the targets written for the training ids."""
    ids = [f"{i:03x}{rng.integers(16**7):07x}" for i in range(n_train + n_test)]
    data = coloured_noise(rng, noise_psd, (n_train + n_test, 3, 4096), FS)
    for k, sample_id in enumerate(ids):
        path = sample_path(root, "train" if k < n_train else "test", sample_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, data[k])
    rows = "".join(f"{i},{t}\n" for i, t in zip(ids[:n_train], labels))
    (root / "training_labels.csv").write_text("id,target\n" + rows)
    rows = "".join(f"{i},0\n" for i in ids[n_train:])
    (root / "sample_submission.csv").write_text("id,target\n" + rows)
    return ids
