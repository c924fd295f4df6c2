"""`g2res cv-train` on the tiny simulated cache: it learns, it resumes exactly, it writes
every file of a run, and it refuses what would cost data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from g2res.cli import main
from g2res.config import Config, load_config
from g2res.train import loop
from g2res.train.checkpoint import load_checkpoint, load_fold_model
from g2res.train.cv import cv_train

MODEL_1D = {
    "frontend": {"name": "identity"},
    "backbone": {"name": "resnet1d_18", "base_width": 8},
    "head": {"name": "linear"},
}
MODEL_CQT = {
    "frontend": {"name": "cqt"},
    "backbone": {"name": "resnet18", "base_width": 8},
    "head": {"name": "linear"},
}


def recipe(cache, model=MODEL_1D, **train) -> Config:
    t = {"epochs": 6, "batch_size": 32, "lr": 2e-3, "num_workers": 0, "warmup_epochs": 0.5}
    return Config().replace({
        "cache": str(cache), "model": model, "train": {**Config().train.__dict__, **t, **train},
        "cv.folds": 2, "augment.time_shift": 0.5, "augment.max_shift": 0.1,
        "augment.swap_h1l1": 0.5,
    })  # fmt: skip


@pytest.mark.parametrize("model", [MODEL_1D, MODEL_CQT], ids=["resnet1d", "cqt-resnet"])
def test_out_of_fold_auc_is_well_above_chance(tiny_cache, tmp_path, model):
    metrics = cv_train(recipe(tiny_cache, model), tmp_path / "run", progress=False, log=None)
    oof = pd.read_csv(tmp_path / "run" / "oof.csv")
    assert metrics["auc"] == pytest.approx(roc_auc_score(oof["target"], oof["prediction"]))
    assert metrics["auc"] > 0.8, metrics["folds"]


def test_run_directory_and_reloaded_models(tiny_cache, tmp_path):
    out = tmp_path / "run"
    cfg = recipe(tiny_cache, epochs=2, ema=0.9)
    metrics = cv_train(cfg, out, progress=False, log=None)
    for name in ("config.yaml", "folds.csv", "oof.csv", "metrics.json", "plots/curves.png",
                 "plots/roc.png", "plots/confusion.png", "plots/efficiency.png"):  # fmt: skip
        assert (out / name).is_file(), name
    for k in (0, 1):
        for name in ("best.pt", "last.pt", "history.csv", "oof.csv"):
            assert (out / f"fold{k}" / name).is_file(), (k, name)
        hist = pd.read_csv(out / f"fold{k}" / "history.csv")
        assert list(hist["epoch"]) == [1, 2]
        assert hist["val_auc"].max() == pytest.approx(metrics["folds"][str(k)]["auc"])
    assert load_config(out / "config.yaml").to_dict() == cfg.to_dict()
    folds = pd.read_csv(out / "folds.csv", dtype={"id": str})
    oof = pd.read_csv(out / "oof.csv", dtype={"id": str})
    assert sorted(oof["id"]) == sorted(folds["id"]) and len(oof) == 400
    assert metrics["efficiency_fpr_0.01"], "the simulated truth gives efficiency vs SNR"

    # A reloaded fold model reproduces its out-of-fold predictions (EMA weights).
    model, cfg2 = load_fold_model(out / "fold1" / "best.pt")
    assert cfg2.to_dict() == cfg.to_dict() and not model.training
    from g2res.data.cache import Cache

    cache = Cache(tiny_cache)
    rows = np.flatnonzero(folds["fold"].to_numpy() == 1)
    with torch.no_grad():
        x = torch.from_numpy(np.asarray(cache.array("train")[rows], np.float32))
        p = torch.sigmoid(model(x)).reshape(-1).numpy()
    want = oof.set_index("id").loc[folds["id"][rows], "prediction"].to_numpy()
    np.testing.assert_allclose(p, want, rtol=1e-4, atol=1e-6)
    ckpt = load_checkpoint(out / "fold1" / "best.pt")
    # EMA weights are what was evaluated and saved; the raw weights differ.
    some = next(k for k in ckpt["model"] if k.endswith("weight") and "conv" in k)
    assert not torch.equal(ckpt["model"][some], ckpt["train_model"][some])


def test_resume_after_an_interruption_equals_an_uninterrupted_run(tiny_cache, tmp_path,
                                                                  monkeypatch):  # fmt: skip
    model = {**MODEL_1D, "head": {"name": "mlp", "hidden": [16], "dropout": 0.3}}
    cfg = recipe(tiny_cache, model, epochs=2, ema=0.9).replace({"augment.time_mask": 0.5})
    whole = cv_train(cfg, tmp_path / "whole", progress=False, log=None)

    calls = {"n": 0}
    original = loop.FoldTrainer._validate

    def interrupted(self):
        calls["n"] += 1
        if calls["n"] == 4:  # fold 1, second epoch: after training, before saving
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(loop.FoldTrainer, "_validate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cv_train(cfg, tmp_path / "cut", progress=False, log=None)
    assert not (tmp_path / "cut" / "oof.csv").exists()
    assert load_checkpoint(tmp_path / "cut" / "fold1" / "last.pt")["epoch"] == 1
    monkeypatch.setattr(loop.FoldTrainer, "_validate", original)
    with pytest.raises(FileExistsError, match="--resume"):
        cv_train(cfg, tmp_path / "cut", progress=False, log=None)
    resumed = cv_train(cfg, tmp_path / "cut", resume=True, progress=False, log=None)

    a = pd.read_csv(tmp_path / "whole" / "oof.csv")
    b = pd.read_csv(tmp_path / "cut" / "oof.csv")
    pd.testing.assert_frame_equal(a, b)
    assert resumed["auc"] == whole["auc"]
    for k in (0, 1):
        wa = load_checkpoint(tmp_path / "whole" / f"fold{k}" / "last.pt")["model"]
        wb = load_checkpoint(tmp_path / "cut" / f"fold{k}" / "last.pt")["model"]
        assert all(torch.equal(wa[n], wb[n]) for n in wa)
    # TensorBoard: the resumed fold's curves are the uninterrupted ones, each step once.
    ea = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")

    def curves(run):
        acc = ea.EventAccumulator(str(run / "tb" / "fold1"), size_guidance={ea.SCALARS: 0})
        acc.Reload()
        return {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}

    cw, cc = curves(tmp_path / "whole"), curves(tmp_path / "cut")
    assert sorted(cw) == sorted(cc) and len(cw) == 7
    for tag in cw:
        assert [s for s, _ in cc[tag]] == [s for s, _ in cw[tag]], tag
        assert [v for _, v in cc[tag]] == pytest.approx([v for _, v in cw[tag]], rel=1e-5), tag
    assert [s for s, _ in cw["epoch/val_auc"]] == [1, 2]
    # Resuming a finished run trains nothing and changes nothing.
    cv_train(cfg, tmp_path / "cut", resume=True, progress=False, log=None)
    pd.testing.assert_frame_equal(a, pd.read_csv(tmp_path / "cut" / "oof.csv"))
    with pytest.raises(ValueError, match="train.lr"):
        cv_train(cfg.replace({"train.lr": 1e-4}), tmp_path / "cut", resume=True,
                 progress=False, log=None)  # fmt: skip


def test_folds_one_at_a_time_init_from_and_early_stopping(tiny_cache, tmp_path):
    cfg = recipe(tiny_cache, epochs=1)
    run = tmp_path / "run"
    m0 = cv_train(cfg.replace({"cv.fold": [1]}), run, progress=False, log=None)
    assert m0["folds_trained"] == [1]
    assert set(pd.read_csv(run / "oof.csv")["fold"]) == {1}
    m1 = cv_train(cfg.replace({"cv.fold": [0]}), run, resume=True, progress=False, log=None)
    assert m1["folds_trained"] == [0, 1]
    assert len(pd.read_csv(run / "oof.csv")) == 400

    # Another run adopts the split, starts from fold 0's weights and does not move (frozen
    # backbone and its BatchNorms, learning rate 0): its fold-0 predictions are fold 0's.
    frozen = cfg.replace({"train.lr": 0.0, "model.freeze": "backbone", "cv.fold": [0],
                          "cv.folds_file": str(run / "folds.csv"),
                          "train.init_from": str(run / "fold0" / "best.pt")})  # fmt: skip
    cv_train(frozen, tmp_path / "ft", progress=False, log=None)
    a = pd.read_csv(run / "fold0" / "oof.csv")
    b = pd.read_csv(tmp_path / "ft" / "fold0" / "oof.csv")
    np.testing.assert_allclose(a["prediction"], b["prediction"], rtol=1e-5, atol=1e-7)

    # Patience 1 and a model that cannot move: the AUC never improves after epoch 1.
    stop = cfg.replace({"train.epochs": 5, "train.patience": 1, "train.lr": 0.0,
                        "model.freeze": "backbone"})  # fmt: skip
    m = cv_train(stop, tmp_path / "stop", progress=False, log=None)
    assert all(f["epochs_run"] == 2 and f["stopped_early"] for f in m["folds"].values())


def test_cli_trains_and_refuses_to_overwrite(tiny_cache, tmp_path, capsys):
    out = tmp_path / "cli"
    args = [
        "cv-train",
        "--cache",
        str(tiny_cache),
        "--out",
        str(out),
        "--folds",
        "2",
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--workers",
        "0",
        "-q",
        "--seed",
        "3",
        "model.frontend.name=identity",
        "model.backbone={name: resnet1d_18, base_width: 8}",
    ]
    assert main(args) == 0  # fmt: skip
    assert "out-of-fold AUC" in capsys.readouterr().out
    cfg = load_config(out / "config.yaml")
    assert cfg.seed == 3 and cfg.cv.folds == 2 and cfg.train.epochs == 1
    (out / "notes.txt").write_text("mine")
    assert main(args) != 0
    assert "--resume" in capsys.readouterr().err
    assert main([*args, "--force"]) == 0
    assert (out / "notes.txt").read_text() == "mine"  # --force only replaces run files


def test_init_from_checkpoint_or_backbone_weights_and_frozen_stages_stay(tiny_cache, tmp_path):
    from g2res.models import build_model

    base = recipe(tiny_cache, epochs=1).replace({"cv.fold": [0]})
    cv_train(base, tmp_path / "a", progress=False, log=None)
    start = load_checkpoint(tmp_path / "a" / "fold0" / "best.pt")["model"]
    # A g2res checkpoint: the first two stages (stem, layer 1) frozen, the rest trains.
    cfg = base.replace(
        {
            "train.init_from": str(tmp_path / "a" / "fold0" / "best.pt"),
            "model.freeze": 2,
            "cv.folds_file": str(tmp_path / "a" / "folds.csv"),
        }
    )
    cv_train(cfg, tmp_path / "b", progress=False, log=None)  # fmt: skip
    after = load_checkpoint(tmp_path / "b" / "fold0" / "last.pt")["model"]
    model = build_model(cfg.model)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen and all(torch.equal(after[n], start[n]) for n in frozen)
    trained = [n for n, p in model.named_parameters() if p.requires_grad and "weight" in n]
    assert any(not torch.equal(after[n], start[n]) for n in trained)
    # Backbone weights alone (a bare state dict, e.g. from timm): loaded into the backbone.
    weights = {k: v.clone() for k, v in build_model(cfg.model).backbone.state_dict().items()}
    torch.save(weights, tmp_path / "backbone.pth")
    cfg2 = base.replace({"train.init_from": str(tmp_path / "backbone.pth"), "train.lr": 0.0,
                         "model.freeze": "backbone"})  # fmt: skip
    cv_train(cfg2, tmp_path / "c", progress=False, log=None)
    got = load_checkpoint(tmp_path / "c" / "fold0" / "last.pt")["model"]
    assert all(torch.equal(got[f"backbone.{k}"], v) for k, v in weights.items())


@pytest.mark.gpu
def test_cuda_training_with_amp_and_channels_last(tiny_cache, tmp_path):
    cfg = recipe(tiny_cache, MODEL_CQT, epochs=1, amp=True, channels_last=True)
    m = cv_train(cfg.replace({"device": "cuda"}), tmp_path / "gpu", progress=False, log=None)
    assert m["device"].startswith("cuda") and m["auc"] > 0.6
    model, _ = load_fold_model(tmp_path / "gpu" / "fold0" / "best.pt", device="cuda")
    assert next(model.parameters()).is_cuda


def test_glitch_augmentation_reaches_cv_train(tiny_cache, tmp_path, monkeypatch):
    """augment.glitch in a recipe: every training batch gets glitches from the cache's PSD
    (about the configured share of its samples), validation never."""
    from g2res.transforms.augment import GlitchInjector

    seen: list[int] = []
    original = GlitchInjector.forward

    def counting(self, detectors, rng):
        seen.append(len(detectors))
        return original(self, detectors, rng)

    monkeypatch.setattr(GlitchInjector, "forward", counting)
    cfg = recipe(tiny_cache, epochs=1).replace({"cv.fold": [0], "augment.glitch": 0.5})
    metrics = cv_train(cfg, tmp_path / "run", progress=False, log=None)
    assert metrics["folds_trained"] == [0]
    n_train = 200  # fold 1 of 2 of the 400 tiny training samples is fold 0's training set
    assert len(seen) >= n_train // 32 - 1  # (nearly) every batch of 32 got glitches
    assert abs(sum(seen) / n_train - 0.5) < 0.15  # and about half of all samples
