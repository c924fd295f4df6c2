"""Helpers of benchmarks/glitches.py: scores of a method on a test split (a submission's
target, or a column of the matched filter's .raw.csv), and the false-alarm probability on
glitchy noise at the threshold of FAP 1e-2 on clean noise, with 95% intervals."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

FAP = 1e-2  # the clean-noise false-alarm probability whose threshold is carried over
N_BOOT = 2000


def labels_of(data_dir: str | os.PathLike) -> pd.DataFrame:
    return pd.read_csv(Path(data_dir) / "truth" / "test_labels.csv", dtype={"id": str})


def scores(path: str | os.PathLike, data_dir: str | os.PathLike, column: str = "target"):
    """Labels (n,) and scores (n,) in the order of ``data_dir``'s test labels: ``column``
    of the CSV ``path`` (a submission's ``target``, a .raw.csv's ``snr`` or ``newsnr``)."""
    labels = labels_of(data_dir)
    frame = pd.read_csv(path, dtype={"id": str}).set_index("id")
    if column not in frame.columns:
        raise SystemExit(f"{path}: no column {column!r} (columns: {list(frame.columns)})")
    missing = set(labels.id) - set(frame.index)
    if missing:
        raise SystemExit(f"{path}: {len(missing)} test ids of {data_dir} missing")
    return labels.target.to_numpy(np.int64), frame[column].loc[labels.id].to_numpy(np.float64)


def write_statistic(raw_csv: str | os.PathLike, column: str, out: str | os.PathLike) -> Path:
    """``id,score`` CSV ``out`` of ``column`` of a .raw.csv (the stacker reads ``score``)."""
    from g2res.utils import atomic_open

    frame = pd.read_csv(raw_csv, dtype={"id": str})
    with atomic_open(out, "w", newline="") as fh:
        frame[["id", column]].rename(columns={column: "score"}).to_csv(fh, index=False)
    return Path(out)


def glitched_mask(data_dir: str | os.PathLike) -> np.ndarray:
    """(n,) bool: test samples of ``data_dir`` holding at least one glitch."""
    hit = set(pd.read_csv(Path(data_dir) / "truth" / "glitches.csv", dtype={"id": str}).id)
    return labels_of(data_dir).id.isin(hit).to_numpy()


def _rate(k: int, n: int) -> dict:
    """k / n with its 95% Clopper-Pearson interval (the threshold held fixed)."""
    from scipy.stats import binomtest

    ci = binomtest(int(k), int(n)).proportion_ci(0.95) if n else None
    return {
        "fap": k / n if n else None,
        "k": int(k),
        "n": int(n),
        "binomial_low": float(ci.low) if ci else None,
        "binomial_high": float(ci.high) if ci else None,
    }


def fap_at_clean_threshold(
    clean_noise: np.ndarray,
    glitchy_noise: np.ndarray,
    glitched: np.ndarray,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> dict:
    """FAP on glitchy noise (all, and the glitched samples only) at the clean-noise FAP 1e-2
    threshold (:func:`g2res.ensemble.far.threshold_at_fap`: at or above it counts).

    Two 95% intervals: ``binomial_*`` (Clopper-Pearson, the threshold held fixed) and
    ``boot_*`` (percentile bootstrap resampling the clean noise, so the threshold moves,
    and the glitchy noise; ``n_boot`` draws from ``seed``).
    """
    from g2res.ensemble.far import threshold_at_fap

    threshold = threshold_at_fap(clean_noise, FAP)
    out = {"threshold": threshold, "fap_clean": float((clean_noise >= threshold).mean())}
    rng = np.random.default_rng(seed)
    n0, n1 = len(clean_noise), len(glitchy_noise)
    idx0 = rng.integers(n0, size=(n_boot, n0))
    idx1 = rng.integers(n1, size=(n_boot, n1))
    k = int(np.floor(FAP * n0 + 1e-9))
    boot_thr = np.nextafter(np.partition(clean_noise[idx0], n0 - 1 - k, axis=1)[:, n0 - 1 - k],
                            np.inf)  # fmt: skip
    for key, mask in (("all", np.ones(n1, bool)), ("glitched", glitched)):
        above = glitchy_noise[mask] >= threshold
        row = _rate(int(above.sum()), int(mask.sum()))
        if mask.any():
            hits = (glitchy_noise[idx1] >= boot_thr[:, None]) & mask[idx1]
            frac = hits.sum(1) / np.maximum(mask[idx1].sum(1), 1)
            row["boot_low"], row["boot_high"] = (
                float(q) for q in np.quantile(frac, [0.025, 0.975])
            )
        out[key] = row
    return out


def format_fap_rows(rows: dict) -> str:
    """One line per method: FAP on glitchy noise at its clean 1e-2 threshold, intervals."""
    lines = []
    width = max([len(k) for k in rows] + [6]) + 1
    head = (f"{'method':{width}s} {'FAP all':>8s} {'binomial 95%':>17s} {'bootstrap 95%':>17s}"
            f" {'glitched':>9s} {'binomial 95%':>17s}")  # fmt: skip
    lines += [head, "-" * len(head)]
    for name, r in rows.items():
        a, g = r["all"], r["glitched"]
        gl = (f"{g['fap']:9.4f} [{g['binomial_low']:.4f}-{g['binomial_high']:.4f}]"
              if g["n"] else f"{'-':>9s}")  # fmt: skip
        lines.append(
            f"{name:{width}s} {a['fap']:8.4f} [{a['binomial_low']:.4f}-{a['binomial_high']:.4f}]"
            f"   [{a['boot_low']:.4f}-{a['boot_high']:.4f}] {gl}"
        )
    return "\n".join(lines)


def where_lost(y0, p0, y1, p1, glitched) -> dict:
    """Where a method loses AUC between the clean (``y0``, ``p0``) and the glitchy
    (``y1``, ``p1``) test splits, which share ids, labels and order (n,); ``glitched`` (n,)
    marks the glitchy split's samples with a glitch. AUC of:

    - ``clean, unglitched ids``: the clean split, on the ids unglitched in the other;
    - ``unglitched``: the glitchy split without its glitched samples (the drift's cost);
    - ``+ glitched signals``: all signals vs the unglitched noise;
    - ``+ glitched noise``: the unglitched signals vs all noise;
    - ``all``: the whole glitchy split.
    """
    from sklearn.metrics import roc_auc_score

    y0, y1 = np.asarray(y0), np.asarray(y1)
    if not np.array_equal(y0, y1):
        raise ValueError("the clean and glitchy test splits must share labels and order")
    keep = ~np.asarray(glitched, bool)
    parts = {
        "clean, unglitched ids": (y0, p0, keep),
        "unglitched": (y1, p1, keep),
        "+ glitched signals": (y1, p1, keep | (y1 == 1)),
        "+ glitched noise": (y1, p1, keep | (y1 == 0)),
        "all": (y1, p1, np.ones_like(keep)),
    }
    return {k: float(roc_auc_score(y[m], p[m])) for k, (y, p, m) in parts.items()}


def format_where_lost(rows: dict) -> str:
    """One line per method of :func:`where_lost`."""
    cols = list(next(iter(rows.values())))
    width = max([len(k) for k in rows] + [6]) + 1
    lines = [f"{'method':{width}s} " + " ".join(f"{c:>21s}" for c in cols)]
    for name, r in rows.items():
        lines.append(f"{name:{width}s} " + " ".join(f"{r[c]:21.4f}" for c in cols))
    return "\n".join(lines)
