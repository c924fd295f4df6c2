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


# --- efficiency at a false-alarm probability (g2res.ensemble.far) ---


def _brute_force(noise, signal, fap):
    """Smallest threshold among every distinct score (and the float just above each) whose
    share of noise at or above it is <= fap, and the share of signals at or above it."""
    values = np.unique(np.concatenate([noise, signal]))
    cands = np.sort(np.concatenate([values, np.nextafter(values, np.inf)]))
    ok = [t for t in cands if (noise >= t).mean() <= fap]
    t = min(ok)
    return t, (signal >= t).mean()


def test_threshold_and_efficiency_at_fap_match_brute_force_with_ties(rng):
    from g2res.train.metrics import efficiency_at_fap, threshold_at_fap

    for n_noise, fap in ((1000, 1e-3), (1500, 1e-2), (400, 0.05)):
        # integer scores: many ties between noise samples and between noise and signals
        noise = rng.integers(0, 60, n_noise).astype(float)
        signal = rng.integers(20, 80, 300).astype(float)
        t, eff = _brute_force(noise, signal, fap)
        assert threshold_at_fap(noise, fap) == t
        r = efficiency_at_fap(noise, signal, fap, n_boot=20)
        assert r["threshold"] == t and r["overall"]["efficiency"] == pytest.approx(eff)
        assert r["fap_achieved"] == pytest.approx((noise >= t).mean()) and r["fap_achieved"] <= fap


def test_efficiency_at_fap_matches_the_gaussian_formula(rng):
    from g2res.train.metrics import efficiency_at_fap

    mu = 2.5
    noise, signal = rng.normal(size=100_000), rng.normal(mu, 1.0, 20_000)
    for fap in (1e-2, 1e-3):
        true = 1 - norm.cdf(norm.isf(fap) - mu)  # 0.55 at 1e-2, 0.28 at 1e-3
        r = efficiency_at_fap(noise, signal, fap, n_boot=200, seed=1)["overall"]
        assert r["low"] <= true <= r["high"]
        assert abs(r["efficiency"] - true) < 0.02
        # at 1e-3 the 100 noise samples above the threshold dominate: sd ~0.013
        assert r["high"] - r["low"] < 0.06


def test_efficiency_at_fap_interval_covers_and_shrinks(rng):
    """~95% of intervals of repeated experiments hold the true efficiency, and 4x the
    samples halve the width (binomial + threshold noise both scale as 1/sqrt(n))."""
    from g2res.train.metrics import efficiency_at_fap

    mu, fap = 2.0, 1e-2
    true = 1 - norm.cdf(norm.isf(fap) - mu)
    hits, widths = [], {}
    for n in (2000, 8000):
        w = []
        for i in range(40 if n == 2000 else 8):
            r = efficiency_at_fap(
                rng.normal(size=n), rng.normal(mu, 1, n // 4), fap, n_boot=300, seed=i
            )["overall"]
            w.append(r["high"] - r["low"])
            if n == 2000:
                hits.append(r["low"] <= true <= r["high"])
        widths[n] = np.mean(w)
    assert 0.85 <= np.mean(hits) <= 1.0
    assert widths[8000] == pytest.approx(widths[2000] / 2, rel=0.25)


def test_efficiency_at_fap_per_snr_bin(rng):
    from g2res.train.metrics import efficiency_at_fap

    snr = rng.uniform(4, 16, 3000)
    noise, signal = rng.normal(size=5000), rng.normal(size=3000) + 0.3 * snr
    r = efficiency_at_fap(noise, signal, 1e-2, signal_snr=snr, bins=(4, 8, 12, 16), n_boot=200)
    effs = [b["efficiency"] for b in r["by_snr"]]
    assert [b["snr_low"] for b in r["by_snr"]] == [4, 8, 12]
    assert effs[0] < effs[1] < effs[2]
    for b in r["by_snr"]:
        assert b["low"] <= b["efficiency"] <= b["high"]
        mid = 0.3 * 0.5 * (b["snr_low"] + b["snr_high"])  # rough: mean shift of the bin
        assert abs(b["efficiency"] - (1 - norm.cdf(norm.isf(1e-2) - mid))) < 0.1
    n = [b["n_signals"] for b in r["by_snr"]]
    assert sum(n) == 3000
    assert r["overall"]["efficiency"] == pytest.approx(np.dot(effs, n) / 3000)


def test_efficiency_at_fap_refuses_an_unresolvable_fap(rng):
    from g2res.train.metrics import (
        FAPResolutionError,
        efficiency_at_fap,
        min_noise_for_fap,
        paired_efficiency_difference,
        threshold_at_fap,
    )

    assert min_noise_for_fap(1e-3) == 1000 and min_noise_for_fap(1e-2) == 100
    signal = rng.normal(size=50)
    with pytest.raises(FAPResolutionError, match="needs at least 1000 noise samples"):
        efficiency_at_fap(rng.normal(size=999), signal, 1e-3)
    with pytest.raises(ValueError, match="999 noise samples"):
        threshold_at_fap(rng.normal(size=999), 1e-3)
    with pytest.raises(FAPResolutionError):
        paired_efficiency_difference(np.zeros(99), signal, np.zeros(99), signal, 1e-2)
    efficiency_at_fap(rng.normal(size=1000), signal, 1e-3, n_boot=5)  # exactly enough
    with pytest.raises(ValueError, match="fap=0"):
        threshold_at_fap(np.zeros(10), 0.0)
    with pytest.raises(ValueError, match="no signal"):
        efficiency_at_fap(np.zeros(1000), [], 1e-2)


def test_paired_efficiency_difference_verdicts(rng):
    from g2res.train.metrics import (
        efficiency_at_fap,
        interval_verdict,
        paired_efficiency_difference,
    )

    snr = rng.uniform(4, 16, 2000)
    noise = rng.normal(size=5000)
    base = rng.normal(size=2000) + 0.25 * snr
    better = base + 0.8  # same samples, louder signals
    kw = dict(fap=1e-2, signal_snr=snr, bins=(4, 10, 16), n_boot=300, seed=3)
    d = paired_efficiency_difference(noise, better, noise, base, **kw)
    assert d["overall"]["verdict"] == "better" and d["overall"]["low"] > 0
    assert all(b["verdict"] == "better" for b in d["by_snr"])
    swapped = paired_efficiency_difference(noise, base, noise, better, **kw)
    assert swapped["overall"]["verdict"] == "worse"
    assert swapped["overall"]["diff"] == pytest.approx(-d["overall"]["diff"])
    # the point values are those of efficiency_at_fap, each at its own threshold
    one = efficiency_at_fap(noise, better, **kw)
    assert d["overall"]["efficiency_a"] == one["overall"]["efficiency"]
    assert d["threshold_a"] == one["threshold"]
    same = paired_efficiency_difference(noise, base, noise, base.copy(), **kw)
    for row in (same["overall"], *same["by_snr"]):
        assert row["diff"] == row["low"] == row["high"] == 0.0
        assert row["verdict"] == "not resolved" and row["p_a_better"] == 0.5
    assert [interval_verdict(lo, hi) for lo, hi in ((0.1, 0.2), (-0.2, -0.1), (-0.1, 0.1))] == [
        "better",
        "worse",
        "not resolved",
    ]
    with pytest.raises(ValueError, match="different samples"):
        paired_efficiency_difference(noise, base, noise[:-1], base, fap=1e-2)


def test_paired_auc_difference_uses_the_shared_verdict(detector, monkeypatch):
    from g2res.ensemble import metrics

    y, p, _ = detector
    monkeypatch.setattr(metrics, "interval_verdict", lambda low, high: "sentinel")
    assert metrics.paired_auc_difference(y, p, p, n_boot=10)["verdict"] == "sentinel"


def test_resampled_u_is_scipys_mann_whitney_u_of_each_resample(rng):
    """The bootstrap of paired_auc_difference weighs samples by their draws instead of
    ranking each resample: the U must be scipy's, ties (rounded scores) included."""
    from scipy.stats import mannwhitneyu

    from g2res.ensemble.metrics import _resampled_u

    y = (rng.random(900) < 0.3).astype(int)
    s = np.round(rng.normal(size=900) + y, 1)  # ~40 distinct values: many ties
    neg, pos = np.flatnonzero(y == 0), np.flatnonzero(y == 1)
    ineg, ipos = rng.choice(neg, (40, neg.size)), rng.choice(pos, (40, pos.size))
    want = mannwhitneyu(s[ipos], s[ineg], axis=1, method="asymptotic").statistic
    np.testing.assert_array_equal(_resampled_u(s, neg, pos, ineg, ipos), want)
