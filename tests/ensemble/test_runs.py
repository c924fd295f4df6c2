"""`g2res runs`: two finished runs of a tiny real cv-train, one interrupted copy and one
with a corrupt metrics.json give four rows with the right states and numbers; the CSV and
Markdown outputs parse back; sorting puts the best score first."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_curve

from g2res.cli import main
from g2res.config import Config
from g2res.ensemble.metrics import efficiency_at_fpr
from g2res.ensemble.runs import runs_table, sort_runs
from g2res.models.checkpoint import load_fold_model
from g2res.train.cv import cv_train

MODEL_1D = {
    "frontend": {"name": "identity"},
    "backbone": {"name": "resnet1d_18", "base_width": 8},
    "head": {"name": "linear"},
}


def recipe(cache, name: str, epochs: int) -> Config:
    t = {"epochs": epochs, "batch_size": 32, "lr": 2e-3, "num_workers": 0}
    return Config().replace({
        "name": name, "cache": str(cache), "model": MODEL_1D,
        "train": {**Config().train.__dict__, **t}, "cv.folds": 2, "seed": 5,
    })  # fmt: skip


@pytest.fixture(scope="module")
def runs_dir(tiny_cache, tmp_path_factory):
    """runs/{short,long}: finished; runs/cut: long without metrics.json and fold1/best.pt;
    runs/group/bad: long with a truncated metrics.json."""
    root = tmp_path_factory.mktemp("runs") / "runs"
    cv_train(recipe(tiny_cache, "short", 1), root / "short", progress=False, log=None)
    cv_train(recipe(tiny_cache, "long", 2), root / "long", progress=False, log=None)
    shutil.copytree(root / "long", root / "cut")
    (root / "cut" / "metrics.json").unlink()
    (root / "cut" / "fold1" / "best.pt").unlink()
    shutil.copytree(root / "long", root / "group" / "bad")
    text = (root / "long" / "metrics.json").read_text()
    (root / "group" / "bad" / "metrics.json").write_text(text[: len(text) // 2])
    (root / "notes").mkdir()  # not a run: no config.yaml
    return root


def test_efficiency_at_fap_matches_the_roc_curve(rng):
    y = (rng.uniform(size=3000) < 0.3).astype(int)
    p = rng.normal(size=y.size) + 1.5 * y
    fpr, tpr, _ = roc_curve(y, p, drop_intermediate=False)
    want = tpr[fpr <= 1e-2].max()
    assert efficiency_at_fpr(y, p, 1e-2) == pytest.approx(want)
    assert 0.05 < want < 0.5  # a real operating point, not a trivial 0 or 1
    assert np.isnan(efficiency_at_fpr(np.zeros(5), np.arange(5.0)))


def test_four_runs_four_states(runs_dir):
    table = runs_table([runs_dir]).set_index("run")
    assert sorted(table.index) == sorted(
        str(runs_dir / n) for n in ("short", "long", "cut", "group/bad")
    )
    row = lambda n: table.loc[str(runs_dir / n)]  # noqa: E731
    assert row("short")["state"] == row("long")["state"] == "complete"
    assert row("cut")["state"] == "resumable" and "metrics.json" in row("cut")["reason"]
    assert row("group/bad")["state"] == "broken"
    assert "metrics.json is not valid JSON" in row("group/bad")["reason"]

    for name, epochs in (("short", 1), ("long", 2)):
        r = row(name)
        m = json.loads((runs_dir / name / "metrics.json").read_text())
        aucs = [m["folds"][k]["auc"] for k in ("0", "1")]
        assert r["recipe"] == name and r["model"] == "resnet1d_18" and r["folds"] == "2/2"
        assert r["auc_mean"] == pytest.approx(np.mean(aucs))
        assert r["auc_std"] == pytest.approx(np.std(aucs))
        assert r["oof_auc"] == pytest.approx(m["auc"]) and r["oof_auc"] > 0.5
        assert r["epochs"] == epochs and r["wall_s"] == pytest.approx(m["seconds"], abs=0.1)
        oof = pd.read_csv(runs_dir / name / "oof.csv")
        fpr, tpr, _ = roc_curve(oof["target"], oof["prediction"], drop_intermediate=False)
        assert r["eff_fap_1e-2"] == pytest.approx(tpr[fpr <= 1e-2].max())
        model, _ = load_fold_model(runs_dir / name / "fold0" / "best.pt")
        assert r["params"] == sum(p.numel() for p in model.parameters()) > 10_000
    # the interrupted run: fold AUCs from the histories, the model size from a checkpoint
    cut = row("cut")
    assert cut["params"] == row("long")["params"] and cut["folds"] == "1/2"
    hist = [pd.read_csv(runs_dir / "cut" / f"fold{k}" / "history.csv") for k in (0, 1)]
    assert cut["auc_mean"] == pytest.approx(np.mean([h["val_auc"].max() for h in hist]))


def test_cli_text_csv_markdown_and_sorting(runs_dir, capsys):
    assert main(["runs", str(runs_dir), "--csv", "--sort", "oof_auc"]) == 0
    df = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert len(df) == 4 and list(df["state"]).count("complete") == 2
    scores = df["oof_auc"].dropna().to_numpy()
    assert len(scores) == 2 and scores[0] >= scores[1] and df["oof_auc"].iloc[2:].isna().all()

    assert main(["runs", str(runs_dir), "--markdown", "--sort", "state"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 + 4 and set(lines[1]) <= {"|", "-"}
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    head = cells[0]
    assert len(head) == len(df.columns) and all(len(c) == len(head) for c in cells)
    states = [c[head.index("state")] for c in cells[2:]]
    assert states == sorted(states) == ["broken", "complete", "complete", "resumable"]

    assert main(["runs", str(runs_dir), "--sort", "eff_fap_1e-2"]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[0].split()[0] == "run" and len(text) == 5
    assert main(["runs", str(runs_dir), "--sort", "nope"]) == 1
    assert "not a column" in capsys.readouterr().err


def test_sort_runs_puts_high_scores_first_and_blanks_last():
    t = pd.DataFrame({"run": list("abc"), "oof_auc": [0.7, None, 0.9], "params": [3, 1, 2]})
    assert list(sort_runs(t, "oof_auc")["run"]) == ["c", "a", "b"]
    assert list(sort_runs(t, "params")["run"]) == ["b", "c", "a"]
