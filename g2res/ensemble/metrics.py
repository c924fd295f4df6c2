"""Classification metrics of a detector, all from scikit-learn.

Shared by ``g2res cv-train`` (per fold and out-of-fold) and ``g2res evaluate``
(a submission against truth labels), so both report the same numbers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    precision_recall_curve,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
)

from g2res.ensemble.far import (
    SNR_BINS,
    FAPResolutionError,
    efficiency_at_fap,
    interval_verdict,
    min_noise_for_fap,
    paired_efficiency_difference,
    threshold_at_fap,
)

__all__ = [
    "SNR_BINS",
    "classification_metrics",
    "threshold_at_fpr",
    "efficiency_at_fpr",
    "efficiency_vs_snr",
    "auc_by_snr",
    "noise_outranking",
    "paired_auc_difference",
    "paired_auc_by_snr",
    "regression_metrics",
    # false-alarm-probability efficiencies, from g2res.ensemble.far
    "FAPResolutionError",
    "min_noise_for_fap",
    "threshold_at_fap",
    "efficiency_at_fap",
    "paired_efficiency_difference",
    "interval_verdict",
]


def _check(y_true, y_prob) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true)
    p = np.asarray(y_prob, dtype=np.float64).reshape(-1)
    if y.shape != p.shape:
        raise ValueError(f"labels {y.shape} and predictions {p.shape} differ in shape")
    if not np.isfinite(p).all():
        raise ValueError(f"{int((~np.isfinite(p)).sum())} predictions are not finite")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    return y.astype(np.int64), p


def _at_threshold(y: np.ndarray, p: np.ndarray, threshold: float) -> dict:
    pred = (p >= threshold).astype(np.int64)
    return {
        "accuracy": float(accuracy_score(y, pred)),
        "precision": float(precision_score(y, pred, zero_division=0)),
        "recall": float(recall_score(y, pred, zero_division=0)),
        "f1": float(f1_score(y, pred, zero_division=0)),
        # rows: true 0/1, columns: predicted 0/1
        "confusion_matrix": confusion_matrix(y, pred, labels=[0, 1]).tolist(),
    }


def classification_metrics(y_true, y_prob) -> dict:
    """Metrics of probabilities ``y_prob`` (n,) in [0, 1] for labels ``y_true`` (n,) 0/1.

    Keys: ``auc`` (ROC AUC, the G2Net metric; NaN with one class), ``log_loss``,
    ``n``, ``n_positive``; accuracy, precision, recall, f1 and ``confusion_matrix``
    (rows true 0/1, columns predicted 0/1) at threshold 0.5, and the same with suffix
    ``_best_f1`` at ``threshold_best_f1``, the threshold that maximises F1.
    """
    y, p = _check(y_true, y_prob)
    both = 0 < y.sum() < len(y)
    out: dict = {
        "n": int(len(y)),
        "n_positive": int(y.sum()),
        "auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "log_loss": float(log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1])),
    }
    out.update(_at_threshold(y, p, 0.5))
    if y.sum() > 0:
        precision, recall, thresholds = precision_recall_curve(y, p)
        f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
        best = int(np.argmax(f1[:-1])) if len(thresholds) else 0
        threshold = float(thresholds[best]) if len(thresholds) else 0.5
    else:
        threshold = 0.5
    out["threshold_best_f1"] = threshold
    out.update({f"{k}_best_f1": v for k, v in _at_threshold(y, p, threshold).items()})
    return out


def threshold_at_fpr(y_true, y_prob, fpr: float = 0.01) -> float:
    """Smallest score threshold whose false-positive rate on the label-0 samples is at
    most ``fpr`` (a sample is a detection when its score is strictly above it)."""
    y, p = _check(y_true, y_prob)
    noise = np.sort(p[y == 0])
    if noise.size == 0:
        raise ValueError("no label-0 samples: the false-positive rate is undefined")
    if not 0 <= fpr < 1:
        raise ValueError(f"fpr={fpr}: need a rate in [0, 1)")
    allowed = int(np.floor(fpr * noise.size))  # noise samples that may lie above
    return float(noise[noise.size - 1 - allowed])


def efficiency_at_fpr(y_true, score, fpr: float = 0.01) -> float:
    """Fraction of the label-1 samples scored strictly above :func:`threshold_at_fpr`.

    ``y_true`` (n,) 0/1 and ``score`` (n,) any monotone statistic (probability, logit,
    SNR). A point figure for tables of many inputs (OOF predictions, runs); with fewer
    than ``1 / fpr`` label-0 samples the threshold is the loudest noise score. NaN when
    either class is absent. The report with intervals is
    :func:`g2res.ensemble.far.efficiency_at_fap`.
    """
    y, s = _check(y_true, score)
    if not (y == 0).any() or not (y == 1).any():
        return float("nan")
    return float(np.mean(s[y == 1] > threshold_at_fpr(y, s, fpr)))


def _bins(snr: np.ndarray, y: np.ndarray, bins) -> list[tuple[float, float, np.ndarray]]:
    edges = np.asarray(bins, dtype=np.float64)
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (y == 1) & (snr >= lo) & (snr < hi)
        if sel.any():
            out.append((float(lo), float(hi), sel))
    return out


def efficiency_vs_snr(y_true, y_prob, snr, fpr: float = 0.01, bins=SNR_BINS) -> pd.DataFrame:
    """Detection efficiency of the signals per network-SNR bin at false-positive rate ``fpr``.

    ``snr`` (n,): each sample's network optimal SNR (ignored for label 0). Returns one row
    per non-empty bin: ``snr_low``, ``snr_high``, ``n_signals``, ``efficiency`` (fraction
    of the bin's signals scored above :func:`threshold_at_fpr`), ``threshold``, ``fpr``.
    """
    y, p = _check(y_true, y_prob)
    snr = np.asarray(snr, dtype=np.float64).reshape(-1)
    if snr.shape != y.shape:
        raise ValueError(f"snr {snr.shape} and labels {y.shape} differ in shape")
    threshold = threshold_at_fpr(y, p, fpr)
    rows = [
        {
            "snr_low": lo,
            "snr_high": hi,
            "n_signals": int(sel.sum()),
            "efficiency": float((p[sel] > threshold).mean()),
            "threshold": threshold,
            "fpr": fpr,
        }
        for lo, hi, sel in _bins(snr, y, bins)
    ]
    return pd.DataFrame(
        rows, columns=["snr_low", "snr_high", "n_signals", "efficiency", "threshold", "fpr"]
    )


def auc_by_snr(y_true, y_prob, snr, bins=SNR_BINS) -> pd.DataFrame:
    """ROC AUC of each SNR bin's signals against all label-0 samples."""
    y, p = _check(y_true, y_prob)
    snr = np.asarray(snr, dtype=np.float64).reshape(-1)
    noise = y == 0
    rows = []
    for lo, hi, sel in _bins(snr, y, bins):
        keep = noise | sel
        auc = roc_auc_score(y[keep], p[keep]) if noise.any() else float("nan")
        rows.append({"snr_low": lo, "snr_high": hi, "n_signals": int(sel.sum()), "auc": auc})
    return pd.DataFrame(rows, columns=["snr_low", "snr_high", "n_signals", "auc"])


def noise_outranking(y_true, y_prob) -> np.ndarray:
    """Per signal (label 1, in input order): the fraction of label-0 samples scored above
    it, ties counted half.

    Its mean over any set of signals is 1 minus the ROC AUC of those signals against all
    the noise, so the signals with the largest values are the ones that cost a detector
    its AUC (a value of 0.2 is one signal ranked below a fifth of the noise).
    """
    y, p = _check(y_true, y_prob)
    noise = np.sort(p[y == 0])
    if noise.size == 0:
        raise ValueError("no label-0 samples: nothing to rank the signals against")
    signal = p[y == 1]
    below = np.searchsorted(noise, signal, side="left")
    not_above = np.searchsorted(noise, signal, side="right")
    return (noise.size - not_above + 0.5 * (not_above - below)) / noise.size


def _resampled_u(scores, neg, pos, ineg, ipos) -> np.ndarray:
    """Mann-Whitney U (ties count half) of the label-1 over the label-0 samples of each
    resample: ``neg`` (n_neg,), ``pos`` (n_pos,) index ``scores`` (n,), and the rows of
    ``ineg`` (b, n_neg) and ``ipos`` (b, n_pos) are resamples of ``neg`` and ``pos``.
    Exact (the same U as scipy's ``mannwhitneyu`` on the resampled scores) without
    ranking each resample: the noise is sorted once and each resample weighs the samples
    by how often it draws them. Returns (b,) floats."""
    b = ineg.shape[0]
    where = np.empty(scores.size, dtype=np.int64)  # index of a sample in neg / pos
    where[neg], where[pos] = np.arange(neg.size), np.arange(pos.size)
    noise = scores[neg]
    order = np.argsort(noise, kind="stable")
    rank = np.empty(neg.size, dtype=np.int64)  # place of each noise sample once sorted
    rank[order] = np.arange(neg.size)
    rows = np.arange(b)[:, None]

    def counts(idx: np.ndarray, n: int) -> np.ndarray:  # (b, n) draws of each sample
        return np.bincount((rows * n + idx).ravel(), minlength=b * n).reshape(b, n)

    below = np.zeros((b, neg.size + 1))
    np.cumsum(counts(rank[where[ineg]], neg.size), axis=1, out=below[:, 1:])
    sorted_noise, signal = noise[order], scores[pos]
    lo = np.searchsorted(sorted_noise, signal, side="left")
    hi = np.searchsorted(sorted_noise, signal, side="right")
    beaten = below[:, lo] + 0.5 * (below[:, hi] - below[:, lo])  # (b, n_pos) per signal
    return (counts(where[ipos], pos.size) * beaten).sum(axis=1)


def paired_auc_difference(
    y_true, prob_a, prob_b, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> dict:
    """ROC AUC of ``prob_a`` minus that of ``prob_b`` (both (n,), same samples, labels
    ``y_true``) with a paired, stratified bootstrap confidence interval.

    Each of ``n_boot`` resamples draws the label-0 and the label-1 samples with replacement
    (keeping both counts) and scores both methods on the same draw, so the interval is that
    of the difference, which is much narrower than the two separate intervals when the
    methods agree on which samples are hard. Keys: ``auc_a``, ``auc_b``, ``diff``, ``low``,
    ``high`` (percentile interval at ``level``), ``p_a_better`` (share of resamples where
    ``a`` scores higher; ties count half), ``n_boot``, and ``verdict``: ``better`` or
    ``worse`` when the interval excludes 0, else ``not resolved``.
    """
    y, pa = _check(y_true, prob_a)
    _, pb = _check(y_true, prob_b)  # both shaped like the labels
    if not 0 < y.sum() < len(y):
        raise ValueError("need both label-0 and label-1 samples for an AUC")
    if n_boot < 1 or not 0 < level < 1:
        raise ValueError(f"n_boot={n_boot}, level={level}: need n_boot >= 1, 0 < level < 1")
    neg, pos = np.flatnonzero(y == 0), np.flatnonzero(y == 1)
    rng = np.random.default_rng(seed)
    diffs = np.empty(n_boot)
    # AUC = Mann-Whitney U / (n_pos n_neg) (ties count half, as in roc_auc_score), for a
    # block of resamples at once, sized to ~4 M scores in memory
    block = max(1, min(256, 2**22 // len(y)))
    for start in range(0, n_boot, block):
        k = min(block, n_boot - start)
        ineg = rng.choice(neg, (k, neg.size))
        ipos = rng.choice(pos, (k, pos.size))
        u = [_resampled_u(p, neg, pos, ineg, ipos) for p in (pa, pb)]
        diffs[start : start + k] = (u[0] - u[1]) / (pos.size * neg.size)
    auc_a, auc_b = float(roc_auc_score(y, pa)), float(roc_auc_score(y, pb))
    tail = 100 * (1 - level) / 2
    low, high = float(np.percentile(diffs, tail)), float(np.percentile(diffs, 100 - tail))
    return {
        "auc_a": auc_a,
        "auc_b": auc_b,
        "diff": auc_a - auc_b,
        "low": low,
        "high": high,
        "p_a_better": float((diffs > 0).mean() + 0.5 * (diffs == 0).mean()),
        "n_boot": int(n_boot),
        "verdict": interval_verdict(low, high),
    }


def paired_auc_by_snr(
    y_true, prob_a, prob_b, snr, bins=SNR_BINS, n_boot: int = 2000, seed: int = 0
) -> pd.DataFrame:
    """:func:`paired_auc_difference` of each SNR bin's signals against all label-0 samples
    (the AUC of :func:`auc_by_snr`). One row per non-empty bin: ``snr_low``, ``snr_high``,
    ``n_signals`` and the keys of :func:`paired_auc_difference`."""
    y, pa = _check(y_true, prob_a)
    snr = np.asarray(snr, dtype=np.float64).reshape(-1)
    if snr.shape != y.shape:
        raise ValueError(f"snr {snr.shape} and labels {y.shape} differ in shape")
    _, pb = _check(y_true, prob_b)
    noise = y == 0
    rows = []
    for lo, hi, sel in _bins(snr, y, bins):
        keep = noise | sel
        d = paired_auc_difference(y[keep], pa[keep], pb[keep], n_boot=n_boot, seed=seed)
        rows.append({"snr_low": lo, "snr_high": hi, "n_signals": int(sel.sum()), **d})
    return pd.DataFrame(rows)


def regression_metrics(y_true, y_pred) -> dict:
    """MSE, MAE, R² (scikit-learn) of predictions of one parameter; NaN truths are skipped."""
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    ok = np.isfinite(t) & np.isfinite(p)
    if ok.sum() < 2:
        return {"n": int(ok.sum()), "mse": float("nan"), "mae": float("nan"), "r2": float("nan")}
    return {
        "n": int(ok.sum()),
        "mse": float(mean_squared_error(t[ok], p[ok])),
        "mae": float(mean_absolute_error(t[ok], p[ok])),
        "r2": float(r2_score(t[ok], p[ok])),
    }
