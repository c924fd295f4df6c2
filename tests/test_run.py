"""`g2res run`: README's main job, end to end, on a shrunken quickstart recipe."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from g2res.cli import main
from g2res.config import load_config

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "pipelines" / "quickstart.yaml"
SMALL = ["simulate.n_train=240", "simulate.n_test=100", "simulate.snr=[12,20]", "train.epochs=3",
         "cv.folds=2", "model.backbone.base_width=8"]  # fmt: skip


def test_every_recipe_loads_and_builds():
    from g2res.models import build_model

    for recipe in sorted((ROOT / "pipelines").glob("*.yaml")):
        cfg = load_config(recipe)
        assert cfg.name == recipe.stem, recipe
        build_model(cfg.model)


@pytest.mark.slow
def test_quickstart_runs_end_to_end_and_scores(tmp_path, capsys):
    work = tmp_path / "qs"
    assert main(["run", str(QUICKSTART), "--out", str(work), "-q", *SMALL]) == 0
    out = capsys.readouterr().out
    assert "test AUC" in out
    sub = pd.read_csv(work / "submission.csv", dtype={"id": str})
    sample = pd.read_csv(work / "data" / "sample_submission.csv", dtype={"id": str})
    assert list(sub["id"]) == list(sample["id"]) and sub["target"].between(0, 1).all()
    evaluation = json.loads((work / "evaluation.json").read_text())
    assert evaluation["metrics"]["auc"] > 0.75
    for name in ("runs/quickstart/oof.csv", "runs/quickstart/fold1/best.pt", "cache/train.npy"):
        assert (work / name).is_file(), name
    # Run again: every step is complete and skipped, nothing changes.
    before = (work / "submission.csv").read_bytes()
    assert main(["run", str(QUICKSTART), "--out", str(work), "-q", *SMALL]) == 0
    assert "already complete" in capsys.readouterr().out
    assert (work / "submission.csv").read_bytes() == before
