"""Blending the predictions of several runs: mean, rank average or fitted weights.

Weights are fitted on the runs' out-of-fold predictions (``oof.csv``), which must
cover the same ids with the same targets and folds: otherwise the blend's OOF
AUC would compare different things and the fit would be meaningless.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score

from g2res.ensemble.submission import read_csv_ids

METHODS = ("mean", "rank")
OOF_COLUMNS = ("id", "target", "prediction", "fold")


def read_oof(path: str | os.PathLike) -> pd.DataFrame:
    """A run's ``oof.csv`` (id,target,prediction,fold), checked for completeness."""
    path = Path(path)
    df = read_csv_ids(path, "out-of-fold predictions")
    missing = [c for c in OOF_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; expected {list(OOF_COLUMNS)}")
    if df["id"].duplicated().any():
        raise ValueError(f"{path}: ids appear more than once")
    pred = pd.to_numeric(df["prediction"], errors="coerce").to_numpy(np.float64)
    if not np.isfinite(pred).all():
        raise ValueError(f"{path}: {int((~np.isfinite(pred)).sum())} predictions are not finite")
    return df


def align_oof(
    frames: Sequence[pd.DataFrame], names: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Align OOF tables by id -> ``(ids (n,), y (n,), predictions (n, runs))``.

    Raises ``ValueError`` naming the runs when their ids, targets or folds differ.
    """
    if not frames:
        raise ValueError("no out-of-fold predictions to align")
    ref = frames[0].set_index("id").sort_index()
    cols = [ref["prediction"].to_numpy(np.float64)]
    for df, name in zip(frames[1:], names[1:]):
        other = df.set_index("id").sort_index()
        if not ref.index.equals(other.index):
            only_ref = ref.index.difference(other.index)
            only_other = other.index.difference(ref.index)
            raise ValueError(
                f"runs {names[0]} and {name} have out-of-fold predictions for different ids "
                f"({len(only_ref)} only in {names[0]}, {len(only_other)} only in {name}); "
                "train them on the same cache to blend them"
            )
        if not np.array_equal(ref["target"].to_numpy(), other["target"].to_numpy()):
            raise ValueError(f"runs {names[0]} and {name} disagree on the targets of some ids")
        if not np.array_equal(ref["fold"].to_numpy(), other["fold"].to_numpy()):
            raise ValueError(
                f"runs {names[0]} and {name} used different folds; fitting blend weights on "
                "their out-of-fold predictions needs the same folds (same cv.folds and seed)"
            )
        cols.append(other["prediction"].to_numpy(np.float64))
    y = ref["target"].to_numpy()
    return ref.index.to_numpy(dtype=str), y, np.stack(cols, axis=1)


def rank_normalise(p: np.ndarray) -> np.ndarray:
    """Average ranks divided by n per column: ``(n,)`` or ``(n, runs)`` -> values in (0, 1]."""
    p = np.asarray(p, dtype=np.float64)
    return rankdata(p, axis=0) / p.shape[0]


def _check_weights(weights, n_runs: int) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.size != n_runs:
        raise ValueError(f"{w.size} weights given for {n_runs} runs")
    if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights must be non-negative and not all zero, got {w.tolist()}")
    return w / w.sum()


def blend(
    predictions: np.ndarray, method: str = "mean", weights: Sequence[float] | None = None
) -> np.ndarray:
    """Combine ``(n, runs)`` probabilities into ``(n,)`` values in [0, 1].

    ``mean``: weighted mean of probabilities. ``rank``: weighted mean of ranks
    divided by n (order-only; the values are not probabilities). ``weights``
    default to equal.
    """
    p = np.asarray(predictions, dtype=np.float64)
    if p.ndim == 1:
        p = p[:, None]
    if method not in METHODS:
        raise ValueError(f"unknown blend {method!r}; choose from {list(METHODS)}")
    w = _check_weights(np.ones(p.shape[1]) if weights is None else weights, p.shape[1])
    if method == "rank":
        p = rank_normalise(p)
    return np.clip(p @ w, 0.0, 1.0)


def auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC AUC (sklearn); NaN when ``y`` holds a single class."""
    y = np.asarray(y)
    if len(np.unique(y)) < 2:
        return float("nan")
    return float(roc_auc_score(y, p))


def fit_weights(
    y: np.ndarray, predictions: np.ndarray, method: str = "mean", step: float = 0.05
) -> np.ndarray:
    """Non-negative weights (summing to 1) maximising the OOF AUC of the blend.

    AUC is piecewise constant in the weights, so instead of a gradient method this
    is a search on the simplex grid of spacing ``step``: start from the best of
    equal weights and each single run, then move ``step`` of weight between pairs
    of runs while the AUC strictly improves. The result is never worse on the OOF
    rows than equal weights or any single run (an in-sample figure).
    """
    p = np.asarray(predictions, dtype=np.float64)
    n_runs = p.shape[1]
    if method == "rank":
        p = rank_normalise(p)
    if n_runs == 1:
        return np.ones(1)
    units = round(1 / step)

    def score(counts: np.ndarray) -> float:
        return auc(y, p @ (counts / counts.sum()))

    starts = [np.full(n_runs, units // n_runs, dtype=np.int64)]
    starts[0][: units - starts[0].sum()] += 1
    starts += [np.eye(n_runs, dtype=np.int64)[i] * units for i in range(n_runs)]
    best = max(starts, key=score)  # max keeps the first (equal weights) on ties
    best_score = score(best)
    improved = True
    while improved:
        improved = False
        for i, j in itertools.permutations(range(n_runs), 2):
            if best[j] == 0:
                continue
            trial = best.copy()
            trial[i] += 1
            trial[j] -= 1
            s = score(trial)
            if s > best_score + 1e-12:
                best, best_score, improved = trial, s, True
    return best / best.sum()


def oof_report(
    y: np.ndarray,
    predictions: np.ndarray,
    names: Sequence[str],
    method: str = "mean",
    weights: Sequence[float] | None = None,
) -> dict:
    """OOF AUC of each run and of the blend: ``{"runs": {name: auc}, "blend": auc, ...}``."""
    p = np.asarray(predictions, dtype=np.float64)
    w = _check_weights(np.ones(p.shape[1]) if weights is None else weights, p.shape[1])
    return {
        "runs": {name: auc(y, p[:, k]) for k, name in enumerate(names)},
        "blend": auc(y, blend(p, method, w)),
        "method": method,
        "weights": dict(zip(names, w.tolist())),
        "n": int(len(y)),
    }
