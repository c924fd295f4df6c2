"""benchmarks/glitches.py: the AUC-loss verdict and its paired interval (the clean and the
glitchy test splits share ids, labels and injections, so one bootstrap resamples both)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import glitches  # noqa: E402


@pytest.mark.parametrize(
    ("low", "high", "verdict"),
    [(0.002, 0.009, "met"), (-0.01, 0.01, "met"), (0.004, 0.016, "not resolved"),
     (0.011, 0.03, "not met")],
)  # fmt: skip
def test_loss_verdict_reads_the_whole_interval(low, high, verdict):
    assert glitches.loss_verdict(low, high, 0.01) == verdict


def test_loss_verdict_rejects_a_reversed_interval():
    with pytest.raises(ValueError, match="reversed"):
        glitches.loss_verdict(0.02, 0.01, 0.01)


def _submission(path: Path, ids, p) -> Path:
    pd.DataFrame({"id": ids, "target": p}).to_csv(path, index=False)
    return path


def test_auc_loss_is_paired_and_gives_each_verdict(tiny_dataset, tmp_path):
    labels = pd.read_csv(tiny_dataset / "truth" / "test_labels.csv")
    y = labels["target"].to_numpy()
    rng = np.random.default_rng(0)
    sharp = 1 / (1 + np.exp(-(3.0 * y + rng.normal(size=len(y)))))  # AUC ~ 0.98
    clean = _submission(tmp_path / "clean.csv", labels["id"], sharp)
    # The same scores: a zero loss with a zero-width interval.
    same = glitches.auc_loss(clean, _submission(tmp_path / "same.csv", labels["id"], sharp),
                             tiny_dataset)  # fmt: skip
    assert same["diff"] == pytest.approx(0.0) and same["low"] == same["high"] == 0.0
    assert same["verdict"] == "met" and same["goal"] == glitches.GOAL_AUC_LOSS
    # Scores that ignore the labels on a third of the samples lose far more than 0.01.
    broken = sharp.copy()
    hit = rng.random(len(y)) < 1 / 3
    broken[hit] = rng.random(hit.sum())
    loss = glitches.auc_loss(clean, _submission(tmp_path / "g.csv", labels["id"], broken),
                             tiny_dataset)  # fmt: skip
    from sklearn.metrics import roc_auc_score

    expected = roc_auc_score(y, sharp) - roc_auc_score(y, broken)
    assert loss["diff"] == pytest.approx(expected)
    assert loss["low"] <= loss["diff"] <= loss["high"]
    assert loss["verdict"] == "not met", loss
    assert loss["diff"] > 0.05


def test_where_lost_puts_the_loss_on_the_glitched_samples_that_cause_it(rng):
    import _glitch_report as gr

    n = 400
    y = np.r_[np.zeros(n // 2, int), np.ones(n // 2, int)]
    glitched = rng.random(n) < 0.3
    clean = y + 0.1 * rng.normal(size=n)  # separable on the clean split
    # On the glitchy split the glitched noise samples score like signals; nothing else moves.
    glitchy = np.where(glitched & (y == 0), 1.0 + 0.1 * rng.normal(size=n), clean)
    got = gr.where_lost(y, clean, y, glitchy, glitched)
    assert got["clean, unglitched ids"] == got["unglitched"] == 1.0
    assert got["+ glitched signals"] == 1.0  # the glitched signals are not what costs
    # A glitched noise sample outranks about half the signals: 1 - share / 2 ~ 0.85.
    share = glitched[y == 0].mean()
    assert got["+ glitched noise"] == pytest.approx(1 - share / 2, abs=0.03)
    assert got["all"] == pytest.approx(got["+ glitched noise"], abs=0.03)
    assert "+ glitched noise" in gr.format_where_lost({"m": got})
    with pytest.raises(ValueError, match="share labels"):
        gr.where_lost(y, clean, y[::-1], glitchy, glitched)
