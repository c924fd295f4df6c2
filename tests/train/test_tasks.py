"""Regression of source parameters and multitask training through cv-train."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import r2_score

from g2res.config import Config
from g2res.data.cache import Cache
from g2res.train.cv import cv_train
from g2res.train.tasks import DERIVED, Task, regression_targets, task_model_config

CQT = {"frontend": {"name": "cqt"}, "backbone": {"name": "resnet18", "base_width": 8},
       "head": {"name": "linear"}}  # fmt: skip


def recipe(cache, **over) -> Config:
    train = {**Config().train.__dict__, "epochs": 10, "batch_size": 16, "lr": 2e-3,
             "num_workers": 0, "warmup_epochs": 0.5}  # fmt: skip
    return Config().replace({"cache": str(cache), "model": CQT, "train": train, "cv.folds": 2,
                             **over})  # fmt: skip


def test_targets_come_from_the_truth_table(tiny_cache):
    cache = Cache(tiny_cache)
    ids = cache.ids("train")
    truth = pd.read_csv(cache.data_dir / "truth" / "injections.csv", dtype={"id": str})
    truth = truth.set_index("id").loc[ids]
    cfg = Config().replace({"task": "regression", "targets": ["network_snr", "chirp_mass"]})
    y = regression_targets(cfg, cache, ids)
    pos = truth["target"].to_numpy() == 1
    np.testing.assert_allclose(y[pos, 0], truth["snr_network"][pos])
    m1, m2 = truth["mass1"][pos], truth["mass2"][pos]
    np.testing.assert_allclose(y[pos, 1], (m1 * m2) ** 0.6 / (m1 + m2) ** 0.2)
    assert np.isnan(y[~pos]).all()  # samples: positives
    y_all = regression_targets(cfg.replace({"regression.samples": "all"}), cache, ids)
    assert (y_all[~pos, 0] == 0).all() and np.isnan(y_all[~pos, 1]).all()
    with pytest.raises(ValueError, match="neither a column"):
        regression_targets(cfg.replace({"targets": ["spin_magic"]}), cache, ids)
    assert set(DERIVED) >= {"chirp_mass", "network_snr", "mass_ratio", "total_mass"}
    assert task_model_config(cfg.replace({"task": "multitask"})).head["num_outputs"] == 3


def test_masked_loss_ignores_undefined_targets():
    cfg = Config().replace({"task": "multitask", "targets": ["a", "b"]})
    task = Task(cfg)
    out = torch.tensor([[0.0, 1.0, 5.0], [0.0, 2.0, -3.0]])
    y = torch.tensor([[1.0, 1.0, float("nan")], [0.0, 0.0, float("nan")]])
    bce = torch.nn.functional.binary_cross_entropy_with_logits(out[:, 0], y[:, 0])
    # Only the defined target of column a counts: errors 0 and 2 -> MSE 2.
    assert float(task.loss(out, y)) == pytest.approx(float(bce) + 2.0)


@pytest.mark.slow
def test_network_snr_regression_reaches_r2(tiny_cache, tmp_path):
    cfg = recipe(tiny_cache, task="regression", targets=["network_snr"],
                 **{"regression.samples": "all"})  # fmt: skip
    m = cv_train(cfg, tmp_path / "reg", progress=False, log=None)
    oof = pd.read_csv(tmp_path / "reg" / "oof.csv")
    r2 = r2_score(oof["network_snr"], oof["network_snr_pred"])
    assert m["overall"]["regression"]["network_snr"]["r2"] == pytest.approx(r2)
    assert r2 > 0.8, m["folds"]
    assert (tmp_path / "reg" / "plots" / "regression.png").is_file()
    assert oof["prediction"].isna().all()


def test_multitask_trains_both_heads(tiny_cache, tmp_path):
    cfg = recipe(tiny_cache, task="multitask", targets=["network_snr"],
                 **{"regression.samples": "all", "train.epochs": 2})  # fmt: skip
    m = cv_train(cfg, tmp_path / "mt", progress=False, log=None)
    assert m["auc"] > 0.7 and np.isfinite(m["overall"]["regression"]["network_snr"]["r2"])
    hist = pd.read_csv(tmp_path / "mt" / "fold0" / "history.csv")
    assert {"val_auc", "val_r2", "val_r2_network_snr"} <= set(hist.columns)
    # A multitask fold model still submits: column 0 is the detection logit.
    from g2res.train.checkpoint import load_fold_model

    model, _ = load_fold_model(tmp_path / "mt" / "fold0" / "best.pt")
    x = torch.from_numpy(np.array(Cache(tiny_cache).array("test")[:4], np.float32))
    with torch.no_grad():
        assert model(x).shape == (4, 2)
