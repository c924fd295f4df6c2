"""``g2res evaluate``: score a submission against known test labels.

Uses the metrics of ``g2res cv-train`` (:mod:`g2res.ensemble.metrics`) so the numbers
are comparable with the out-of-fold figures; adds detection efficiency versus
injected SNR when the simulator's ``truth/injections.csv`` is given.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from g2res.ensemble.submission import (
    COLUMNS,
    SubmissionError,
    read_csv_ids,
)

SNR_COLUMNS = ("snr_network", "snr")  # first one present is used
# Source parameters listed beside each signal of ``--misses`` (those the table has).
MISS_COLUMNS = ("mass1", "mass2", "spin1z", "spin2z", "merger_time", "snr_H1", "snr_L1", "snr_V1")


def align_labels(sub: pd.DataFrame, labels: pd.DataFrame, name: str = "submission") -> np.ndarray:
    """Targets of ``labels`` in the order of ``sub``; both must hold the same unique ids."""
    if list(sub.columns) != COLUMNS:
        raise SubmissionError(f"{name}: columns must be exactly {COLUMNS}, got {list(sub.columns)}")
    if "target" not in labels.columns:
        raise SubmissionError(f"labels have no 'target' column (columns: {list(labels.columns)})")
    for what, df in ((name, sub), ("labels", labels)):
        if df["id"].duplicated().any():
            raise SubmissionError(f"{what}: ids appear more than once")
    truth = labels.set_index("id")["target"]
    missing = sub.loc[~sub["id"].isin(truth.index), "id"]
    if len(missing):
        raise SubmissionError(
            f"{name}: {len(missing)} id(s) have no label, e.g. {missing.iloc[0]!r}; "
            "are these the labels of this test set?"
        )
    unscored = truth.index.difference(pd.Index(sub["id"]))
    if len(unscored):
        raise SubmissionError(
            f"{name}: {len(unscored)} labelled id(s) are not predicted, e.g. {unscored[0]!r}"
        )
    p = pd.to_numeric(sub["target"], errors="coerce").to_numpy(np.float64)
    if not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
        raise SubmissionError(f"{name}: targets must be finite numbers in [0, 1]")
    return truth.loc[sub["id"]].to_numpy()


def read_snr(injections: str | os.PathLike, ids: pd.Series) -> np.ndarray:
    """Network optimal SNR of each id in ``ids`` from an injections table (0 for noise)."""
    table = read_csv_ids(injections, "injections table")
    col = next((c for c in SNR_COLUMNS if c in table.columns), None)
    if col is None:
        raise ValueError(f"{injections}: no SNR column (looked for {list(SNR_COLUMNS)})")
    table = table.drop_duplicates("id").set_index("id")
    missing = ids[~ids.isin(table.index)]
    if len(missing):
        raise ValueError(f"{injections}: {len(missing)} id(s) missing, e.g. {missing.iloc[0]!r}")
    return table.loc[ids, col].fillna(0.0).to_numpy(np.float64)


def evaluate(
    submission: str | os.PathLike,
    labels: str | os.PathLike,
    injections: str | os.PathLike | None = None,
    plots: str | os.PathLike | None = None,
    fpr: float = 0.01,
    against: str | os.PathLike | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    misses: int = 0,
    misses_snr: tuple[float, float] | None = None,
) -> dict:
    """Metrics of ``submission`` against ``labels`` (id,target CSV).

    Returns ``{"n", "metrics": classification_metrics(...), "efficiency": table or
    None, "against": comparison or None, "plots": [paths]}``. ``efficiency`` is the
    fraction of signals above the threshold that gives false-positive rate ``fpr`` on the
    noise samples, per SNR bin. With ``against`` (another submission of the same ids),
    ``against`` holds the AUC of ``submission`` minus that of the other with a paired
    bootstrap interval (``n_boot`` resamples from ``seed``), overall and, with
    ``injections``, per SNR bin: is one run really better than another on this test set?
    ``misses`` > 0 lists that many signals in ``misses`` (:func:`worst_signals`, within
    ``misses_snr`` = (lo, hi) of network SNR, which needs ``injections``): which
    signals cost the AUC, and, with ``against``, which ones the other submission finds.
    """
    from g2res.ensemble import metrics as m

    sub = read_csv_ids(submission, "submission")
    truth = read_csv_ids(labels, "labels")
    y = align_labels(sub, truth, name=str(submission)).astype(np.int64)
    p = sub["target"].to_numpy(np.float64)
    result: dict = {"n": int(len(y)), "metrics": m.classification_metrics(y, p)}
    result["efficiency"] = None
    result["against"] = None
    result["misses"] = None
    snr = q = None
    if misses_snr is not None and injections is None:
        raise ValueError(
            "misses_snr (--misses-snr) picks signals by network SNR: "
            "give the injections table (--injections)"
        )
    if injections is not None:
        snr = read_snr(injections, sub["id"])
        eff = m.efficiency_vs_snr(y, p, snr, fpr=fpr)
        result["efficiency"] = _plain(eff)
    if against is not None:
        other = read_csv_ids(against, "submission")
        align_labels(other, truth, name=str(against))  # same ids, valid targets
        q = other.set_index("id")["target"].loc[sub["id"]].to_numpy(np.float64)
        result["against"] = {
            "submission": str(against),
            "overall": m.paired_auc_difference(y, p, q, n_boot=n_boot, seed=seed),
            "by_snr": None
            if snr is None
            else _plain(m.paired_auc_by_snr(y, p, q, snr, n_boot=n_boot, seed=seed)),
        }
    if misses:
        table = worst_signals(sub["id"], y, p, misses, snr, misses_snr, q, injections)
        result["misses"] = _plain(table)
    result["plots"] = []
    if plots is not None:
        result["plots"] = [str(f) for f in _make_plots(Path(plots), y, p, snr, fpr)]
    return result


def worst_signals(
    ids: pd.Series,
    y: np.ndarray,
    p: np.ndarray,
    n: int,
    snr: np.ndarray | None = None,
    snr_range: tuple[float, float] | None = None,
    other: np.ndarray | None = None,
    injections: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """The ``n`` signals that cost the scores ``p`` the most AUC, worst first.

    Columns: ``id``, ``cost`` (the fraction of the noise scored above the signal,
    :func:`g2res.ensemble.metrics.noise_outranking`), ``snr_network`` when ``snr`` is given,
    and with ``other`` (another submission's scores, same order) ``cost_other`` and
    ``cost_diff`` = cost - cost_other, which is then the ranking: the signals this
    submission misses and the other finds. ``snr_range`` = (lo, hi) keeps the signals of
    lo <= SNR < hi; ``injections`` adds that table's source parameters (:data:`MISS_COLUMNS`).
    """
    from g2res.ensemble.metrics import noise_outranking

    if n < 1:
        raise ValueError(f"n={n}: need at least one signal to list")
    signal = y == 1
    table = pd.DataFrame({"id": ids.to_numpy()[signal], "cost": noise_outranking(y, p)})
    if snr is not None:
        table["snr_network"] = snr[signal]
    if other is not None:
        table["cost_other"] = noise_outranking(y, other)
        table["cost_diff"] = table["cost"] - table["cost_other"]
    if snr_range is not None:
        lo, hi = snr_range
        table = table[(table["snr_network"] >= lo) & (table["snr_network"] < hi)]
    key = "cost_diff" if other is not None else "cost"
    table = table.sort_values(key, ascending=False, kind="stable").head(n)
    if injections is not None:
        params = read_csv_ids(injections, "injections table").drop_duplicates("id")
        cols = [c for c in MISS_COLUMNS if c in params.columns]
        table = table.merge(params[["id", *cols]], on="id", how="left")
    return table.reset_index(drop=True)


def _plain(obj):
    if isinstance(obj, pd.DataFrame):
        return obj.to_dict(orient="records")
    return obj


def _make_plots(out: Path, y, p, snr, fpr) -> list[Path]:
    from g2res.ensemble import plots as pl

    out.mkdir(parents=True, exist_ok=True)
    return list(pl.evaluation_plots(out, y, p, snr=snr, fpr=fpr))


def format_report(result: dict) -> str:
    """The result of :func:`evaluate` as a short text table."""
    lines = [f"{'samples':<24}{result['n']}"]
    for key, value in result["metrics"].items():
        if isinstance(value, (int, float)):
            lines.append(
                f"{key:<24}{value:.4f}" if isinstance(value, float) else f"{key:<24}{value}"
            )
    eff = result.get("efficiency")
    if eff:
        lines.append("efficiency vs network SNR:")
        rows = eff if isinstance(eff, list) else [eff]
        keys = list(rows[0])
        lines.append("  " + "  ".join(f"{k:>12}" for k in keys))
        for row in rows:
            lines.append(
                "  "
                + "  ".join(
                    f"{v:>12.3f}" if isinstance(v, float) else f"{v!s:>12}" for v in row.values()
                )
            )
    vs = result.get("against")
    if vs:
        lines.append(f"AUC minus that of {vs['submission']} (95% paired bootstrap interval):")
        rows = [("all", vs["overall"])] + [
            (f"SNR {r['snr_low']:g}-{r['snr_high']:g}", r) for r in vs["by_snr"] or []
        ]
        for name, d in rows:
            lines.append(
                f"  {name:<14}{d['diff']:+.4f}  [{d['low']:+.4f}, {d['high']:+.4f}]  {d['verdict']}"
            )
    worst = result.get("misses")
    if worst:
        other = ", cost_other: the same for --against" if "cost_other" in worst[0] else ""
        lines.append(
            f"signals that cost the most AUC (cost: share of the noise scored above it{other}):"
        )
        lines.extend(
            "  " + row
            for row in pd.DataFrame(worst)
            .to_string(index=False, float_format=lambda v: f"{v:.3f}")
            .splitlines()
        )
    for f in result.get("plots", []):
        lines.append(f"plot: {f}")
    return "\n".join(lines)
