"""`g2res pseudo-label`: the new cache is a valid cache, no fold's validation samples reach
its own training data, fold k's pseudo-labels come from fold k's model alone, cv-train
runs on it, and what would mix splits or overwrite data is refused."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from g2res.cli import main
from g2res.config import Config
from g2res.data.cache import Cache, CacheDataset
from g2res.train.checkpoint import load_fold_model
from g2res.train.cv import cv_train
from g2res.train.pseudo import pseudo_label, resolve_thresholds

MODEL_1D = {
    "frontend": {"name": "identity"},
    "backbone": {"name": "resnet1d_18", "base_width": 8},
    "head": {"name": "linear"},
}


def recipe(cache, epochs=2) -> Config:
    t = {"epochs": epochs, "batch_size": 32, "lr": 2e-3, "num_workers": 0, "warmup_epochs": 0.5}
    return Config().replace({
        "cache": str(cache), "model": MODEL_1D, "train": {**Config().train.__dict__, **t},
        "cv.folds": 2, "seed": 3,
    })  # fmt: skip


@pytest.fixture(scope="module")
def run(tiny_cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("pseudo") / "run"
    cv_train(recipe(tiny_cache), out, progress=False, log=None)
    return out


def fold_probs(run, cache) -> np.ndarray:
    """Each fold model's probabilities on the test split, computed here directly: (K, n)."""
    x = torch.from_numpy(np.array(Cache(cache).array("test"), np.float32))
    probs = []
    for k in (0, 1):
        model, _ = load_fold_model(run / f"fold{k}" / "best.pt")
        with torch.no_grad():
            probs.append(torch.sigmoid(model(x)).reshape(-1).double().numpy())
    return np.stack(probs)


@pytest.mark.parametrize("soft", [True, False], ids=["soft", "hard"])
def test_pseudo_cache_has_no_leak_and_fold_own_targets(run, tiny_cache, tmp_path, soft):
    out = tmp_path / "cache2"
    summary = pseudo_label([run], tiny_cache, out, soft=soft, progress=False, log=None)
    src, c2 = Cache(tiny_cache), Cache(out)
    probs = fold_probs(run, tiny_cache)
    mean = probs.mean(axis=0)
    low, high = resolve_thresholds(soft)
    keep = np.flatnonzero((mean <= low) | (mean >= high))
    if soft:
        assert keep.size == 100  # --soft keeps every test sample by default
    assert summary["n_pseudo"] == keep.size > 0

    # A valid cache: arrays, ids and labels agree; test split unchanged.
    n = 400 + keep.size
    train = c2.array("train")
    assert train.shape == (n, 3, 4096) and train.dtype == src.array("train").dtype
    ids = c2.ids("train")
    assert len(ids) == n and len(set(ids)) == n
    np.testing.assert_array_equal(train[:400], src.array("train"))
    np.testing.assert_array_equal(train[400:], src.array("test")[keep])
    assert ids[:400] == src.ids("train")
    assert ids[400:] == [src.ids("test")[i] for i in keep]
    labels = c2.labels("train")
    assert labels.dtype == np.int8
    np.testing.assert_array_equal(labels[:400], src.labels("train"))
    np.testing.assert_array_equal(labels[400:], (mean[keep] >= 0.5).astype(np.int8))
    assert c2.ids("test") == src.ids("test")
    np.testing.assert_array_equal(c2.array("test"), src.array("test"))
    assert len(CacheDataset(c2)) == n
    m = c2.manifest
    assert m["counts"]["train"] == n and m["counts"]["train_positive"] == int(labels.sum())
    assert m["pseudo"]["n_pseudo_positive"] + m["pseudo"]["n_pseudo_negative"] == keep.size
    assert m["pseudo"]["soft"] is soft

    # No leak: for every fold, the validation ids are exactly the run's, and none of them
    # is among that fold's training rows.
    run_folds = pd.read_csv(run / "folds.csv", dtype={"id": str})
    folds = pd.read_csv(out / "folds.csv", dtype={"id": str})
    assert list(folds["id"]) == ids
    for k in (0, 1):
        val = set(folds.loc[folds["fold"] == k, "id"])
        training = set(folds.loc[folds["fold"] != k, "id"])
        assert val == set(run_folds.loc[run_folds["fold"] == k, "id"])
        assert not val & training
        assert set(ids[400:]) <= training  # pseudo rows are training data of every fold
    assert (folds["fold"].to_numpy()[400:] == -1).all()

    # Fold k's targets are fold k's model's predictions only.
    pseudo = np.load(out / "train_pseudo.npy", allow_pickle=False)
    assert pseudo.shape == (n, 2) and pseudo.dtype == np.float32
    assert np.isnan(pseudo[:400]).all()
    for k in (0, 1):
        want = probs[k, keep] if soft else (probs[k, keep] >= 0.5).astype(np.float64)
        np.testing.assert_allclose(pseudo[400:, k], want, atol=1e-5)
    if soft:  # the two folds' models disagree somewhere: each column is its own model's
        assert not np.allclose(pseudo[400:, 0], pseudo[400:, 1], atol=1e-4)


@pytest.mark.slow
def test_cv_train_on_pseudo_labelled_cache(run, tiny_cache, tmp_path):
    out = tmp_path / "cache2"
    pseudo_label([run], tiny_cache, out, soft=True, progress=False, log=None)
    metrics = cv_train(recipe(out, epochs=1), tmp_path / "run2", progress=False, log=None)
    oof = pd.read_csv(tmp_path / "run2" / "oof.csv", dtype={"id": str})
    assert sorted(oof["id"]) == sorted(Cache(tiny_cache).ids("train"))
    folds = pd.read_csv(tmp_path / "run2" / "folds.csv", dtype={"id": str})
    run_folds = pd.read_csv(run / "folds.csv", dtype={"id": str})
    assert folds.iloc[:400].equals(run_folds)
    assert 0.0 <= metrics["auc"] <= 1.0 and metrics["folds_trained"] == [0, 1]


def test_refusals(run, tiny_cache, tmp_path):
    out = tmp_path / "cache2"
    out.mkdir()
    (out / "mine.txt").write_text("a user's file")
    with pytest.raises(FileExistsError, match="--force"):
        pseudo_label([run], tiny_cache, out, soft=True, progress=False, log=None)
    assert (out / "mine.txt").read_text() == "a user's file"
    with pytest.raises(ValueError, match="input cache"):
        pseudo_label([run], tiny_cache, tiny_cache, soft=True, force=True, log=None)
    with pytest.raises(ValueError, match="low <= high"):
        pseudo_label([run], tiny_cache, tmp_path / "c3", threshold_low=0.8, threshold_high=0.2)

    # A second run on another split: two samples of different folds swap places.
    other = tmp_path / "other"
    shutil.copytree(run, other)
    folds = pd.read_csv(other / "folds.csv", dtype={"id": str})
    i = int(np.flatnonzero(folds["fold"] == 0)[0])
    j = int(np.flatnonzero((folds["fold"] == 1) & (folds["target"] == folds["target"][i]))[0])
    folds.loc[[i, j], "fold"] = folds.loc[[j, i], "fold"].to_numpy()
    folds.to_csv(other / "folds.csv", index=False)
    with pytest.raises(ValueError, match="different splits"):
        pseudo_label([run, other], tiny_cache, tmp_path / "c4", progress=False, log=None)
    assert not (tmp_path / "c4").exists()

    # A run missing a fold's model cannot label that fold.
    shutil.rmtree(other / "fold1")
    shutil.copy(run / "folds.csv", other / "folds.csv")
    with pytest.raises(ValueError, match=r"fold\(s\) \[1\]"):
        pseudo_label([other], tiny_cache, tmp_path / "c5", progress=False, log=None)


def test_cli_writes_then_refuses_then_forces(run, tiny_cache, tmp_path, capsys):
    out = tmp_path / "cache2"
    args = ["pseudo-label", str(run), "--cache", str(tiny_cache), "--out", str(out), "-q"]
    assert main([*args, "--threshold-high", "0.8"]) == 0
    p = Cache(out).manifest["pseudo"]
    assert (p["threshold_low"], p["threshold_high"]) == pytest.approx((0.2, 0.8))
    assert not p["soft"]
    assert main([*args, "--soft"]) == 1
    assert "--force" in capsys.readouterr().err
    assert main([*args, "--soft", "--force"]) == 0
    assert Cache(out).manifest["pseudo"]["n_pseudo"] == 100
    assert not list(tmp_path.glob(".cache2.*"))  # no temporary directory left behind
    # A pseudo-labelled cache is not labelled again.
    assert main(["pseudo-label", str(run), "--cache", str(out), "--out", str(tmp_path / "x")]) == 1
    assert "already pseudo-labelled" in capsys.readouterr().err
