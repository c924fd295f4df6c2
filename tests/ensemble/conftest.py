"""Small hand-made data, cache and run directories for the ensemble tests.

The models here are tiny energy detectors written by hand, saved in the
checkpoint format of ``g2res cv-train`` (``{"model": state_dict, "config": ...}``),
so the ensembling code is tested without training anything.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

N_TIME = 256  # samples per detector: short, the models do not care about length


class EnergyDetector(nn.Module):
    """logit = sum_d w_d * log(mean_t x_d^2) + b: sees loudness per detector."""

    def __init__(self, weights=(1.0, 1.0, 1.0), bias: float = 0.0):
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(weights, dtype=torch.float32))
        self.bias = nn.Parameter(torch.tensor([bias], dtype=torch.float32))

    def forward(self, x):  # (batch, 3, time) -> (batch, 1)
        energy = torch.log(x.pow(2).mean(dim=-1))
        return (energy * self.weight).sum(dim=1, keepdim=True) + self.bias


class AbsSumH1L1(nn.Module):
    """Sees only |H1| + |L1| and |V1|: exactly invariant under H1/L1 swap and sign flip."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(2, 1, kernel_size=9, padding=4)

    def forward(self, x):
        pair = x[:, 0].abs() + x[:, 1].abs()  # addition commutes exactly in float
        z = self.conv(torch.stack([pair, x[:, 2].abs()], dim=1))
        return z.mean(dim=-1)


class RawConv(nn.Module):
    """A convolution on the raw channels: neither swap- nor sign-invariant."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(3, 1, kernel_size=9, padding=4)

    def forward(self, x):
        return torch.tanh(self.conv(x)).mean(dim=-1) * 5


def make_split(rng, n: int, amplitude: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """White noise ``(n, 3, N_TIME)`` float32 with a sine burst in half the samples."""
    y = (rng.uniform(size=n) < 0.5).astype(np.int64)
    x = rng.normal(size=(n, 3, N_TIME))
    t = np.arange(N_TIME) / N_TIME
    burst = np.sin(2 * np.pi * 30 * t) * np.exp(-(((t - 0.7) / 0.1) ** 2))
    gains = rng.uniform(0.2, 2.0, size=(n, 3))  # detector responses differ per sample
    x += amplitude * y[:, None, None] * gains[:, :, None] * burst
    return x.astype(np.float32), y


def random_ids(rng, n: int) -> list[str]:
    return [f"{v:010x}" for v in rng.choice(2**36, size=n, replace=False)]


@pytest.fixture
def fake_cache(tmp_path, rng):
    """A data directory (sample_submission.csv, truth/test_labels.csv) and a cache of it."""
    data, cache = tmp_path / "data", tmp_path / "cache"
    (data / "truth").mkdir(parents=True)
    cache.mkdir()
    x, y = make_split(rng, 80)
    ids = random_ids(rng, len(x))
    pd.DataFrame({"id": ids, "target": 0.5}).to_csv(data / "sample_submission.csv", index=False)
    pd.DataFrame({"id": ids, "target": y}).to_csv(data / "truth/test_labels.csv", index=False)
    # The cache lists its test samples in another order than the sample submission.
    order = rng.permutation(len(ids))
    np.save(cache / "test.npy", x[order])
    (cache / "test_ids.txt").write_text("\n".join(ids[i] for i in order) + "\n")
    (cache / "manifest.json").write_text(json.dumps({"data_dir": str(data), "sample_rate": 2048}))
    return {"data": data, "cache": cache, "ids": ids, "y": y, "x": x}


def save_fold(path, model: nn.Module, fold: int, kind: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "model": model.state_dict(),
            "config": {"kind": kind},
            "epoch": 1,
            "fold": fold,
            "metrics": {},
        },
        path,
    )


def load_fake(path, device):
    """Loader for the fake checkpoints (the role of g2res.train.checkpoint.load_fold_model)."""
    ckpt = torch.load(path, map_location=device, weights_only=True)
    model = {"energy": EnergyDetector, "abs": AbsSumH1L1, "raw": RawConv}[ckpt["config"]["kind"]]()
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval()


def make_energy_run(root, name: str, weights, rng, n_train: int = 400, folds: int = 2):
    """A run whose fold models are energy detectors with ``weights`` per detector.

    Its oof.csv holds the real predictions of each fold model on its held-out fold
    of a synthetic labelled set (same folds for every run built with the same rng
    state), like cv-train writes.
    """
    from g2res.ensemble.predict import predict_array

    run = root / name
    x, y = make_split(np.random.default_rng(7), n_train)  # one training set for all runs
    fold = np.arange(n_train) % folds
    oof = np.zeros(n_train)
    for k in range(folds):
        w = np.asarray(weights, dtype=np.float64) * (1 + 0.05 * rng.normal(size=3))
        model = EnergyDetector(tuple(w.tolist()), bias=-float(w.sum()) * 0.1)
        save_fold(run / f"fold{k}" / "best.pt", model, k, "energy")
        oof[fold == k] = predict_array([model], x[fold == k], progress=False, device="cpu")[0]
    ids = random_ids(np.random.default_rng(8), n_train)
    pd.DataFrame({"id": ids, "target": y, "prediction": oof, "fold": fold}).to_csv(
        run / "oof.csv", index=False
    )
    return run
