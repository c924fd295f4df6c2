"""TensorBoard event files of cv-train and pretrain (g2res.train.tracking): the logged
scalars are there, with one event per step or per epoch, and logging never stops training."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from g2res.config import Config
from g2res.train import tracking
from g2res.train.batches import epoch_batches
from g2res.train.cv import cv_train

MODEL_1D = {
    "frontend": {"name": "identity"},
    "backbone": {"name": "resnet1d_18", "base_width": 8},
    "head": {"name": "linear"},
}


def recipe(cache, **train) -> Config:
    t = {"epochs": 2, "batch_size": 32, "lr": 2e-3, "num_workers": 0, **train}
    return Config().replace({
        "cache": str(cache), "model": MODEL_1D, "train": {**Config().train.__dict__, **t},
        "cv.folds": 2, "seed": 3,
    })  # fmt: skip


def _scalars(path) -> dict[str, list]:
    ea_mod = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    acc = ea_mod.EventAccumulator(str(path), size_guidance={ea_mod.SCALARS: 0})
    acc.Reload()
    return {tag: acc.Scalars(tag) for tag in acc.Tags()["scalars"]}


def test_cv_train_writes_scalars_per_step_and_epoch(tiny_cache, tmp_path):
    pytest.importorskip("tensorboard")
    out = tmp_path / "run"
    cv_train(recipe(tiny_cache, epochs=2, grad_clip=1.0), out, progress=False, log=None)
    for k in (0, 1):
        hist = pd.read_csv(out / f"fold{k}" / "history.csv")
        folds = pd.read_csv(out / "folds.csv")
        rows = np.flatnonzero(folds["fold"].to_numpy() != k)
        steps = len(epoch_batches(rows, 32, 3, k, 0, min_size=2))
        assert steps >= 5
        s = _scalars(out / "tb" / f"fold{k}")
        n_steps = 2 * steps
        for tag in ("train/loss", "train/lr", "train/grad_norm"):
            assert [e.step for e in s[tag]] == list(range(1, n_steps + 1)), tag
        for tag in ("epoch/train_loss", "epoch/val_loss", "epoch/val_auc", "epoch/lr"):
            assert [e.step for e in s[tag]] == [1, 2], tag
        # the values are the history's (float32 in the event file)
        assert [e.value for e in s["epoch/val_auc"]] == pytest.approx(list(hist["val_auc"]))
        assert [e.value for e in s["epoch/train_loss"]] == pytest.approx(
            list(hist["train_loss"]), rel=1e-5
        )
        norms = [e.value for e in s["train/grad_norm"]]
        assert all(n > 0 and math.isfinite(n) for n in norms)


def test_grad_norm_without_clipping_matches_clip_grad_norm():
    net = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Linear(4, 1))
    net(torch.randn(8, 5)).pow(2).sum().backward()
    want = torch.nn.utils.get_total_norm([p.grad for p in net.parameters()])
    assert float(tracking.total_grad_norm(net.parameters())) == pytest.approx(float(want))


def test_logging_failure_turns_logging_off_not_training(tmp_path, capsys):
    pytest.importorskip("tensorboard")
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    w = tracking.open_writer(blocker / "tb")
    w.scalar("a", 1.0, 0)  # cannot create the folder: reported once, then off
    w.scalar("a", 2.0, 1)
    assert not w.enabled
    assert capsys.readouterr().err.count("TensorBoard logging") == 1


def test_without_tensorboard_one_notice(monkeypatch, tmp_path, capsys):
    import builtins

    real = builtins.__import__

    def no_tb(name, *a, **kw):
        if name.startswith("tensorboard") or name == "torch.utils.tensorboard":
            raise ImportError(name)
        return real(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_tb)
    monkeypatch.setattr(tracking, "_NOTICE_SHOWN", False)
    assert tracking.open_writer(tmp_path / "a") is None
    assert tracking.open_writer(tmp_path / "b") is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "g2res[tracking]" in err
    assert not (tmp_path / "a").exists()
