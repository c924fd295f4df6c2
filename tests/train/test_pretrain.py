"""g2res pretrain: a model trained only on injections detects the simulator's signals in
held-out labelled data; resume equals an uninterrupted run; checkpoints load into the
recipe's model; mixing injected samples into labelled batches; the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from g2res.config import Config, load_config
from g2res.data.cache import Cache
from g2res.data.pool import PoolConfig, make_pool
from g2res.train import pretrain as pretrain_module
from g2res.train.pretrain import (
    holdout_split,
    injection_source,
    load_pretrained,
    mix_injections,
    pretrain,
)

TINY_MODEL = {
    "frontend": {"name": "identity"},
    "backbone": {"name": "resnet1d_18", "base_width": 8},
    "head": {"name": "linear"},
}


class SmallNet(nn.Module):
    """A small strided 1D CNN (batch, 3, 4096) -> logits (batch, 1), fast on 2 cores."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(3, width, 64, stride=4), nn.BatchNorm1d(width), nn.SiLU(),
            nn.Conv1d(width, width, 32, stride=4), nn.BatchNorm1d(width), nn.SiLU(),
            nn.Conv1d(width, 2 * width, 16, stride=2), nn.SiLU(),
            nn.AdaptiveMaxPool1d(1), nn.Flatten(), nn.Linear(2 * width, 1),
        )  # fmt: skip

    def forward(self, x):
        return self.net(x)


def needs_build_model():
    import g2res.models

    if not hasattr(g2res.models, "build_model"):
        pytest.skip("g2res.models.build_model is not in this checkout yet")


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    path = tmp_path_factory.mktemp("pretrain") / "pool"
    return make_pool(path, PoolConfig(n=48, mass_range=(10.0, 50.0), workers=2), progress=False)


def recipe(tiny_cache, pool, **injection) -> Config:
    inj = dict(
        mode="pretrain", pool=str(pool), snr=[12.0, 24.0], rate=0.5, steps=6, eval_every=3,
        merger_window=[1.5, 1.9], lr=3e-3, val_fraction=0.25,
    )  # fmt: skip
    inj.update(injection)
    return Config().replace(
        {
            "cache": str(tiny_cache),
            "device": "cpu",
            "model": TINY_MODEL,
            "train": {**Config().train.__dict__, "batch_size": 16, "num_workers": 0},
            "injection": inj,
        }
    )


def test_holdout_split_is_stratified_and_seeded():
    labels = np.array([0] * 60 + [1] * 40)
    train, val = holdout_split(labels, 0.25, seed=3)
    assert len(val) == 25 and labels[val].sum() == 10
    assert set(train).isdisjoint(val) and len(train) + len(val) == 100
    np.testing.assert_array_equal(holdout_split(labels, 0.25, seed=3)[1], val)


@pytest.mark.slow
def test_pretraining_on_injections_detects_simulated_signals(tiny_cache, pool, tmp_path):
    """Only injected batches (pool waveforms, cache noise) are seen in training, yet the
    held-out labelled samples (the simulator's own signals, SNR 10-20) are separated."""
    cfg = recipe(tiny_cache, pool, steps=80, eval_every=40)
    torch.manual_seed(0)
    metrics = pretrain(cfg, tmp_path / "run", progress=False, model=SmallNet())
    assert metrics["best_val_auc"] > 0.8
    # The noise rows used for injection are the label-0 rows outside the held-out set.
    labels = Cache(tiny_cache).labels()
    assert metrics["n_val"] == round(0.25 * len(labels))
    train_rows, _ = holdout_split(labels, cfg.injection.val_fraction, cfg.seed)
    assert metrics["n_noise_rows"] == int((labels[train_rows] == 0).sum())
    for name in ("best.pt", "last.pt", "history.csv", "metrics.json", "config.yaml"):
        assert (tmp_path / "run" / name).is_file()


def test_resume_equals_uninterrupted(tiny_cache, pool, tmp_path, monkeypatch):
    cfg = recipe(tiny_cache, pool)
    torch.manual_seed(0)
    pretrain(cfg, tmp_path / "full", progress=False, model=SmallNet())
    original = pretrain_module.injection_source

    def interrupted(*args, **kwargs):
        source = original(*args, **kwargs)
        batch = source.batch

        def stop_at_4(step, n):
            if step == 4:
                raise KeyboardInterrupt
            return batch(step, n)

        source.batch = stop_at_4
        return source

    monkeypatch.setattr(pretrain_module, "injection_source", interrupted)
    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):
        pretrain(cfg, tmp_path / "cut", progress=False, model=SmallNet())
    monkeypatch.setattr(pretrain_module, "injection_source", original)
    with pytest.raises(FileExistsError):
        pretrain(cfg, tmp_path / "cut", progress=False, model=SmallNet())
    pretrain(cfg, tmp_path / "cut", resume=True, progress=False, model=SmallNet())
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)
    assert a["step"] == b["step"] == 6
    for key, value in a["model"].items():
        torch.testing.assert_close(b["model"][key], value, rtol=0, atol=0)
    history = json.loads((tmp_path / "cut" / "metrics.json").read_text())
    assert history["steps"] == 6

    # TensorBoard: one event per step in both runs, the resumed curve equal to the whole one
    ea = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    curves = {}
    for name in ("full", "cut"):
        acc = ea.EventAccumulator(str(tmp_path / name / "tb"), size_guidance={ea.SCALARS: 0})
        acc.Reload()
        curves[name] = {t: acc.Scalars(t) for t in acc.Tags()["scalars"]}
    full, cut = curves["full"], curves["cut"]
    for tag in ("train/loss", "train/lr", "train/grad_norm", "time/injection_share"):
        assert [e.step for e in full[tag]] == [e.step for e in cut[tag]] == list(range(1, 7)), tag
    assert [e.step for e in cut["val/auc"]] == [e.step for e in cut["val/loss"]] == [3, 6]
    assert [e.value for e in cut["train/loss"]] == pytest.approx(
        [e.value for e in full["train/loss"]], rel=1e-6
    )
    assert all(0 < e.value < 1 for e in cut["time/injection_share"])
    hist = pd.read_csv(tmp_path / "full" / "history.csv")
    assert [e.value for e in full["val/auc"]] == pytest.approx(list(hist["val_auc"]))


def test_checkpoint_loads_into_the_recipe_model_only(tiny_cache, pool, tmp_path):
    needs_build_model()
    from g2res.models import build_model

    cfg = recipe(tiny_cache, pool, steps=2, eval_every=2)
    pretrain(cfg, tmp_path / "run", progress=False)
    model = build_model(cfg.model)
    ckpt = load_pretrained(model, tmp_path / "run" / "best.pt")
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, ckpt["model"][key])
    other = build_model(
        cfg.replace({"model.backbone": {"name": "resnet1d_18", "base_width": 16}}).model
    )  # fmt: skip
    with pytest.raises(ValueError, match="best.pt"):
        load_pretrained(other, tmp_path / "run" / "best.pt")
    with pytest.raises(FileNotFoundError, match="nothing.pt"):
        load_pretrained(model, tmp_path / "nothing.pt")


def test_mix_injections_replaces_a_fraction(tiny_cache, pool):
    cfg = recipe(tiny_cache, pool, rate=1.0)
    source = injection_source(cfg)
    x = torch.zeros(10, 3, 4096)
    y = torch.zeros(10)
    mx, my = mix_injections(x, y, source, step=0, fraction=0.4)
    assert mx.shape == x.shape and my.shape == y.shape
    assert torch.all(my[:4] == 1) and torch.all(my[4:] == 0)
    assert torch.all(mx[:4].abs().amax((1, 2)) > 0) and torch.all(mx[4:] == 0)


def test_pretrain_cli(tiny_cache, pool, tmp_path):
    needs_build_model()
    from g2res.cli import main

    out = tmp_path / "cli"
    args = ["pretrain", "--out", str(out), "--cache", str(tiny_cache), "--pool", str(pool)]
    over = [f"model.backbone={json.dumps(TINY_MODEL['backbone'])}", "model.frontend.name=identity"]
    assert main([*args, "--steps", "2", "--batch-size", "8", "-q", *over,
                 "injection.eval_every=2", "injection.merger_window=[1.5,1.9]"]) == 0  # fmt: skip
    assert (out / "best.pt").is_file()
    assert main([*args, "--steps", "2", "-q", *over]) == 1  # non-empty RUN without --force


def test_mix_mode_and_fine_tuning_from_a_checkpoint(tiny_cache, pool, tmp_path):
    """mix: half of each batch injected; off + train.init_from: labelled batches only,
    starting from the checkpoint's weights (a negligible learning rate keeps them)."""
    cfg = recipe(tiny_cache, pool, mode="mix", mix_fraction=0.5, steps=2, eval_every=2)
    metrics = pretrain(cfg, tmp_path / "mix", progress=False, model=SmallNet())
    assert metrics["injected_per_batch"] == 8 and metrics["mode"] == "mix"
    start = torch.load(tmp_path / "mix" / "best.pt", weights_only=True)["model"]
    tuned_cfg = recipe(tiny_cache, pool, mode="off", steps=1, eval_every=1, lr=1e-12)
    tuned_cfg = tuned_cfg.replace(
        {"train.init_from": str(tmp_path / "mix" / "best.pt"), "injection.pool": None}
    )
    metrics = pretrain(tuned_cfg, tmp_path / "ft", progress=False, model=SmallNet())
    assert metrics["injected_per_batch"] == 0 and metrics["n_noise_rows"] == 0
    tuned = torch.load(tmp_path / "ft" / "last.pt", weights_only=True)["model"]
    fresh = SmallNet().state_dict()
    weights = [k for k, v in fresh.items() if v.is_floating_point() and "running" not in k]
    for key in weights:
        torch.testing.assert_close(tuned[key], start[key], rtol=0, atol=1e-6)
    assert any(not torch.allclose(fresh[k], start[k]) for k in weights)


@pytest.mark.slow
def test_cv_train_mix_learns_from_injections_in_the_folds_own_noise(tiny_cache, pool, tmp_path):
    """cv-train with injection.mode=mix: the injected samples borrow noise from the fold's
    training rows only, and with every sample injected (mix_fraction 1: the cache's
    labels never reach the loss) the folds still detect the labelled signals."""
    needs_build_model()
    from sklearn.metrics import roc_auc_score

    from g2res.train.cv import cv_train
    from g2res.train.loop import FoldTrainer

    cfg = recipe(tiny_cache, pool, mode="mix", mix_fraction=1.0, snr=[8.0, 20.0])
    cfg = cfg.replace({"cv.folds": 2, "train.epochs": 4, "train.lr": 2e-3,
                       "train.warmup_epochs": 0.5})  # fmt: skip
    cache = Cache(tiny_cache)
    rows = np.arange(len(cache.labels("train")))
    train_rows, val_rows = rows[rows % 2 == 0], rows[rows % 2 == 1]
    trainer = FoldTrainer(cfg, cache, train_rows, val_rows, 0, tmp_path / "fold",
                          torch.device("cpu"), progress=False)  # fmt: skip
    trainer._build()
    noise_rows = trainer.injections.noise.indices
    assert set(noise_rows) <= set(train_rows) and not set(noise_rows) & set(val_rows)
    assert np.all(cache.labels("train")[noise_rows] == 0)

    metrics = cv_train(cfg, tmp_path / "run", progress=False, log=None)
    oof = pd.read_csv(tmp_path / "run" / "oof.csv")
    assert metrics["auc"] == pytest.approx(roc_auc_score(oof["target"], oof["prediction"]))
    assert metrics["auc"] > 0.75, metrics["folds"]

    reg = cfg.replace({"task": "regression", "targets": ["network_snr"]})
    with pytest.raises(ValueError, match="classification"):
        FoldTrainer(reg, cache, train_rows, val_rows, 0, tmp_path / "reg", torch.device("cpu"),
                    progress=False)._build()  # fmt: skip


def test_pretraining_with_varied_psds(tiny_cache, pool, tmp_path, monkeypatch):
    """psd_sources [cache, file:...] and psd_tilt 0.2: every batch mixes both sources with
    tilted PSDs, a few steps train to finite losses and the recipe keeps the settings; a
    bad source stops the run before training, naming it."""
    psd = Cache(tiny_cache).psd
    f = psd["frequencies"][1:]
    path = tmp_path / "louder_v1.txt"  # the cache's PSD, V1 4x louder: a Virgo-poor network
    np.savetxt(path, np.column_stack([f, (psd["psd"][:, 1:] * [[1.0], [1.0], [4.0]]).T]))
    cfg = recipe(tiny_cache, pool, steps=4, eval_every=4,
                 psd_sources=["cache", f"file:{path}"], psd_tilt=0.2)  # fmt: skip
    seen = []
    original = pretrain_module.injection_source

    def spy(*args, **kwargs):
        source = original(*args, **kwargs)
        batch = source.batch

        def record(step, n):
            x, y, draws = batch(step, n)
            seen.append(draws)
            return x, y, draws

        source.batch = record
        return source

    monkeypatch.setattr(pretrain_module, "injection_source", spy)
    torch.manual_seed(0)
    metrics = pretrain(cfg, tmp_path / "run", progress=False, model=SmallNet())
    assert len(seen) == 4 and metrics["steps"] == 4
    sources = np.concatenate([d["psd_source"] for d in seen])
    assert set(sources) == {0, 1}
    scales = np.concatenate([d["psd_scale"] for d in seen])
    assert scales.min() >= 0.8 and scales.max() <= 1.2 and np.unique(scales).size == scales.size
    hist = pd.read_csv(tmp_path / "run" / "history.csv")
    assert np.isfinite(hist.filter(like="loss").to_numpy(dtype=float)).all()
    saved = load_config(tmp_path / "run" / "config.yaml").injection
    assert saved.psd_sources == ["cache", f"file:{path}"] and saved.psd_tilt == 0.2
    bad = recipe(tiny_cache, pool, steps=1, eval_every=1, psd_sources=["cache", "gwosc"])
    with pytest.raises(ValueError, match="'gwosc'"):
        pretrain(bad, tmp_path / "bad", progress=False, model=SmallNet())
