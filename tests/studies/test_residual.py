"""`g2res study residual-vs-plain` on the tiny simulated cache: every variant in the
summary with the parameter counts of its model, finite positive gradient norms that
match the recorder's own arithmetic, plots, resumption, and no overwrite without force."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from g2res.cli import main
from g2res.config import Config
from g2res.models import build_model
from g2res.studies import residual_vs_plain
from g2res.studies.residual import variant_config
from g2res.train.callbacks import GradNormRecorder, layer_group

MODEL_1D = {
    "frontend": {"name": "identity"},
    "backbone": {"name": "resnet1d_18", "base_width": 4},
    "head": {"name": "linear"},
}


def recipe(cache, **train) -> Config:
    t = {"epochs": 2, "batch_size": 32, "lr": 2e-3, "num_workers": 0, "warmup_epochs": 0.5}
    return Config().replace({
        "cache": str(cache), "model": MODEL_1D, "train": {**Config().train.__dict__, **t, **train},
        "cv.folds": 2,
    })  # fmt: skip


class _FakeTrainer:
    def __init__(self, model):
        self.model = model


def test_recorder_means_the_gradient_norms_of_each_layer():
    torch.manual_seed(0)
    model = nn.Sequential()
    model.add_module("backbone", nn.Sequential(nn.Conv1d(2, 3, 3), nn.Conv1d(3, 3, 3)))
    model.add_module("head", nn.Linear(3, 1))
    trainer, rec = _FakeTrainer(model), GradNormRecorder()
    expected = []
    for step in range(3):
        model.zero_grad()
        x = torch.randn(4, 2, 16)
        y = model.head(model.backbone(x).mean(-1))
        (y**2).sum().backward()
        expected.append([float(p.weight.grad.norm()) for p in model.modules()
                         if isinstance(p, (nn.Conv1d, nn.Linear))])  # fmt: skip
        rec.after_backward(trainer, 0, step)
    row = {"epoch": 1}
    rec.epoch_end(trainer, row)
    assert rec.layers == ["backbone.0", "backbone.1", "head"]
    got = [rec.epochs[1][n] for n in rec.layers]
    np.testing.assert_allclose(got, np.mean(expected, axis=0), rtol=1e-5)
    assert row["grad_ratio"] == pytest.approx(got[0] / got[1], rel=1e-6)


def test_layer_groups():
    assert layer_group("backbone.conv1") == "stem"
    assert layer_group("backbone.layer3.1.conv2") == "layer3.1"
    assert layer_group("backbone.layer2.0.downsample.0") == "layer2.0"
    assert layer_group("head.fc") == "head"


def test_study_summary_plots_resume_and_refusal(tiny_cache, tmp_path, capsys):
    out = tmp_path / "study"
    cfg = recipe(tiny_cache)
    logs: list[str] = []
    summary = residual_vs_plain(cfg, [18], out, kind="1d", fold=1, progress=False,
                                log=logs.append)  # fmt: skip
    names = ["resnet1d_18-residual", "resnet1d_18-plain"]
    assert list(summary["variants"]) == names
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary))
    folds = pd.read_csv(out / "folds.csv")
    assert summary["n_val"] == int((folds["fold"] == 1).sum()) == 200
    res, plain = (summary["variants"][n] for n in names)
    for v, r in ((res, True), (plain, False)):
        model = build_model(variant_config(cfg, "1d", 18, r).model)
        assert v["params"] == sum(p.numel() for p in model.parameters())
        hist = pd.read_csv(out / v["variant"] / "history.csv")
        assert v["best_auc"] == pytest.approx(hist["val_auc"].max())
        assert v["final_train_loss"] == pytest.approx(hist["train_loss"].iloc[-1])
        assert len(v["epoch_seconds"]) == 2 and min(v["epoch_seconds"]) > 0
        g = v["grad_norms"]
        assert sorted(g["by_epoch"]) == ["1", "2"]
        norms = np.array(list(g["by_epoch"].values()))
        assert norms.shape == (2, len(g["layers"])) and np.isfinite(norms).all()
        assert (norms > 0).all()
        # first/last ratio from the stem conv and the last body conv, also in history.csv
        i0, i1 = g["layers"].index(g["body_layers"][0]), g["layers"].index(g["body_layers"][-1])
        assert v["grad_ratio_first_last"] == pytest.approx(list(norms[:, i0] / norms[:, i1]))
        assert hist["grad_ratio"].tolist() == pytest.approx(v["grad_ratio_first_last"])
        for name in ("best.pt", "last.pt", "oof.csv", "grad_norms.json"):
            assert (out / v["variant"] / name).is_file()
    # Same body layers; the plain twin lacks exactly the projection shortcuts.
    assert res["grad_norms"]["body_layers"] == plain["grad_norms"]["body_layers"]
    assert plain["shortcut_params"] == 0 < res["shortcut_params"]
    assert res["params"] - res["shortcut_params"] == plain["params"]
    assert res["weight_layers"] == plain["weight_layers"] == 1 + 16
    # Both saw the same data: same validation ids in the same order.
    ids = [pd.read_csv(out / n / "oof.csv")["id"].tolist() for n in names]
    assert ids[0] == ids[1]
    for p in ("plots/grad_norms.png", "plots/curves.png"):
        assert (out / p).stat().st_size > 10_000

    # Resume: finished variants are skipped, nothing retrains, the summary is the same.
    mtimes = {n: (out / n / "last.pt").stat().st_mtime_ns for n in names}
    logs.clear()
    again = residual_vs_plain(cfg, [18], out, kind="1d", fold=1, resume=True, progress=False,
                              log=logs.append)  # fmt: skip
    assert sum("skipped" in m for m in logs) == 2
    assert {n: (out / n / "last.pt").stat().st_mtime_ns for n in names} == mtimes
    for n in names:
        assert again["variants"][n]["best_auc"] == summary["variants"][n]["best_auc"]
        assert again["variants"][n]["grad_norms"] == summary["variants"][n]["grad_norms"]

    # No overwrite without --force; a different recipe does not resume.
    with pytest.raises(FileExistsError, match="not empty"):
        residual_vs_plain(cfg, [18], out, kind="1d", fold=1, progress=False, log=None)
    with pytest.raises(ValueError, match="recipe differs"):
        residual_vs_plain(cfg.replace({"train.lr": 1e-3}), [18], out, kind="1d", fold=1,
                          resume=True, progress=False, log=None)  # fmt: skip
    with pytest.raises(ValueError, match="depth 19"):
        residual_vs_plain(cfg, [19], tmp_path / "other", kind="1d", progress=False, log=None)

    # The CLI: refuses, then --force reruns one epoch into the same directory.
    argv = ["study", "residual-vs-plain", "--cache", str(tiny_cache), "--out", str(out),
            "--kind", "1d", "--depths", "18", "--epochs", "1", "--folds", "2", "--fold", "1",
            "-q", "model.frontend.name=identity", "model.backbone.base_width=4",
            "train.batch_size=32", "train.num_workers=0"]  # fmt: skip
    assert main(argv) == 1
    assert "not empty" in capsys.readouterr().err
    assert main([*argv, "--force"]) == 0
    forced = json.loads((out / "summary.json").read_text())
    assert forced["epochs"] == 1 and list(forced["variants"]) == names
