"""Metrics agree with scikit-learn; efficiency vs SNR behaves like a detector's."""

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import f1_score, roc_auc_score

from g2res.train.metrics import (
    auc_by_snr,
    classification_metrics,
    efficiency_vs_snr,
    noise_outranking,
    paired_auc_by_snr,
    paired_auc_difference,
    threshold_at_fpr,
)


@pytest.fixture
def detector(rng):
    """Scores that grow with the SNR of the signals; noise scores N(0, 1)."""
    n = 4000
    y = (rng.uniform(size=n) < 0.5).astype(int)
    snr = np.where(y == 1, rng.uniform(4, 20, n), 0.0)
    stat = rng.normal(size=n) + np.where(y == 1, 0.35 * snr, 0.0)
    return y, 1 / (1 + np.exp(-(stat - 2))), snr


def test_classification_metrics_match_sklearn(detector):
    y, p, _ = detector
    m = classification_metrics(y, p)
    assert m["auc"] == pytest.approx(roc_auc_score(y, p))
    assert m["f1"] == pytest.approx(f1_score(y, p >= 0.5))
    cm = np.array(m["confusion_matrix"])
    assert cm.sum() == len(y) and cm[1].sum() == y.sum()
    assert cm[1, 1] == ((p >= 0.5) & (y == 1)).sum()
    # The best-F1 threshold beats 0.5 and a grid of other thresholds.
    assert m["f1_best_f1"] >= m["f1"] - 1e-12
    grid = np.quantile(p, np.linspace(0.05, 0.95, 37))
    assert m["f1_best_f1"] >= max(f1_score(y, p >= t) for t in grid) - 1e-12
    assert m["f1_best_f1"] == pytest.approx(f1_score(y, p >= m["threshold_best_f1"]))


def test_metrics_refuse_bad_input():
    with pytest.raises(ValueError, match="not finite"):
        classification_metrics([0, 1], [0.2, np.nan])
    with pytest.raises(ValueError, match="shape"):
        classification_metrics([0, 1, 1], [0.2, 0.3])
    with pytest.raises(ValueError, match="0 or 1"):
        classification_metrics([0, 2], [0.2, 0.3])


def test_threshold_at_fpr_is_the_tightest(detector):
    y, p, _ = detector
    for fpr in (0.0, 0.01, 0.1):
        t = threshold_at_fpr(y, p, fpr)
        noise = p[y == 0]
        assert (noise > t).mean() <= fpr
        # Any lower noise score as threshold lets more than fpr through.
        lower = noise[noise < t]
        if lower.size:
            assert (noise > lower.max()).mean() > fpr


def test_efficiency_rises_with_snr(detector):
    y, p, snr = detector
    table = efficiency_vs_snr(y, p, snr, fpr=0.01, bins=(4, 8, 12, 16, 20))
    assert list(table["snr_low"]) == [4, 8, 12, 16]
    assert table["n_signals"].sum() == y.sum()
    eff = table["efficiency"].to_numpy()
    assert np.all(np.diff(eff) > 0)
    # Analytic efficiency: P(N(0,1) + 0.35 snr > z_0.99), snr uniform in each bin.
    z = norm.isf(0.01)
    for (lo, hi), got in zip(((4, 8), (8, 12), (12, 16), (16, 20)), eff):
        s = np.linspace(lo, hi, 401)
        assert got == pytest.approx(norm.sf(z - 0.35 * s).mean(), abs=0.06)
    auc = auc_by_snr(y, p, snr, bins=(4, 8, 12, 16, 20))["auc"].to_numpy()
    assert np.all(np.diff(auc) > 0)


def _two_detectors(rng, n=600, gain_a=0.35, gain_b=0.35):
    """Two detectors seeing the same noise realisation (shared term) plus their own."""
    y = (rng.uniform(size=n) < 0.3).astype(int)
    snr = np.where(y == 1, rng.uniform(4, 12, n), 0.0)
    shared = rng.normal(size=n)
    a = 0.8 * shared + 0.6 * rng.normal(size=n) + gain_a * snr
    b = 0.8 * shared + 0.6 * rng.normal(size=n) + gain_b * snr
    return y, a, b


def test_paired_auc_difference_finds_a_better_detector(rng):
    y, a, b = _two_detectors(rng, gain_a=0.45, gain_b=0.30)
    d = paired_auc_difference(y, a, b, n_boot=500)
    assert d["auc_a"] == pytest.approx(roc_auc_score(y, a))
    assert d["diff"] == pytest.approx(roc_auc_score(y, a) - roc_auc_score(y, b))
    assert 0 < d["low"] < d["diff"] < d["high"]
    assert (d["low"] + d["high"]) / 2 == pytest.approx(d["diff"], abs=0.2 * (d["high"] - d["low"]))
    assert d["p_a_better"] > 0.975 and d["verdict"] == "better"
    swapped = paired_auc_difference(y, b, a, n_boot=500)
    assert swapped["high"] < 0 and swapped["p_a_better"] < 0.025
    assert swapped["verdict"] == "worse"


def test_paired_auc_difference_interval_has_the_spread_of_repeated_experiments(rng):
    """The bootstrap standard error of one data set matches the spread of the difference
    over independent data sets of equally good detectors, and its interval holds 0."""
    diffs = []
    for _ in range(300):
        y, a, b = _two_detectors(rng)
        diffs.append(roc_auc_score(y, a) - roc_auc_score(y, b))
    true_sd = np.std(diffs)
    y, a, b = _two_detectors(rng)
    d = paired_auc_difference(y, a, b, n_boot=1000, seed=3)
    boot_sd = (d["high"] - d["low"]) / (2 * norm.ppf(0.975))
    assert boot_sd == pytest.approx(true_sd, rel=0.3)
    assert d["low"] < 0 < d["high"] and d["verdict"] == "not resolved"
    # pairing matters: against a constant (AUC 0.5, no spread) the interval is that of
    # one AUC alone; two of those in quadrature are wider than the paired interval
    width_a, width_b = (
        (w["high"] - w["low"])
        for w in (paired_auc_difference(y, s, np.zeros_like(s), n_boot=400) for s in (a, b))
    )
    assert d["high"] - d["low"] < 0.8 * np.hypot(width_a, width_b)


def test_paired_auc_difference_of_identical_scores_is_exactly_zero(detector):
    y, p, _ = detector
    d = paired_auc_difference(y, p, p.copy(), n_boot=50)
    assert d["diff"] == d["low"] == d["high"] == 0 and d["p_a_better"] == 0.5


def test_paired_auc_difference_refuses_bad_input(detector):
    y, p, _ = detector
    with pytest.raises(ValueError, match="differ in shape"):
        paired_auc_difference(y, p, p[:-1])
    with pytest.raises(ValueError, match="both label-0 and label-1"):
        paired_auc_difference(np.zeros_like(y), p, p)
    with pytest.raises(ValueError, match="n_boot"):
        paired_auc_difference(y, p, p, n_boot=0)
    _, _, snr = detector
    with pytest.raises(ValueError, match="differ in shape"):
        paired_auc_by_snr(y, p, p[:-1], snr)


def test_noise_outranking_averages_to_one_minus_auc(detector):
    """Per-signal costs add up to the AUC lost, for all signals and for any subset, with
    ties (scores rounded to a coarse grid) counted half as roc_auc_score does."""
    y, p, snr = detector
    for scores in (p, np.round(p, 1)):
        cost = noise_outranking(y, scores)
        assert cost.shape == (int(y.sum()),)
        assert cost.mean() == pytest.approx(1 - roc_auc_score(y, scores))
        loud = snr[y == 1] >= 12
        keep = (y == 0) | ((y == 1) & (snr >= 12))
        assert cost[loud].mean() == pytest.approx(1 - roc_auc_score(y[keep], scores[keep]))
    # the faintest signals are the ones outranked by most of the noise
    cost = noise_outranking(y, p)
    faint, loud = snr[y == 1] < 6, snr[y == 1] > 16
    assert cost[faint].mean() > 0.05 > 0.001 > cost[loud].mean()
    with pytest.raises(ValueError, match="no label-0"):
        noise_outranking(np.ones_like(y), p)
