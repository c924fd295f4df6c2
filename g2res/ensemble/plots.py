"""Plots of a run and of a submission (PNG, matplotlib without a display).

Every function takes plain arrays or tables and an output path, writes the figure
atomically and returns the path.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from g2res.utils import atomic_path

__all__ = [
    "training_curves",
    "roc_curve_plot",
    "confusion_plot",
    "efficiency_plot",
    "evaluation_plots",
    "regression_scatter",
]


def _figure(ncols: int = 1, width: float = 5.0, height: float = 4.0):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return fig, axes[0]


def _save(fig, path: str | os.PathLike) -> Path:
    import matplotlib.pyplot as plt

    path = Path(path)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


def training_curves(histories: Mapping[str, pd.DataFrame], path: str | os.PathLike) -> Path:
    """Loss (train and validation) and validation AUC (R² for regression) per epoch, one
    line per fold.

    ``histories``: label -> table with columns epoch, train_loss, val_loss, val_auc or val_r2.
    """
    score = "val_auc"
    fig, (ax_loss, ax_auc) = _figure(2)
    for i, (label, h) in enumerate(histories.items()):
        color = f"C{i % 10}"
        ax_loss.plot(h["epoch"], h["train_loss"], color=color, ls="--", label=f"{label} train")
        ax_loss.plot(h["epoch"], h["val_loss"], color=color, label=f"{label} val")
        score = "val_auc" if "val_auc" in h else "val_r2"
        ax_auc.plot(h["epoch"], h[score], color=color, marker="o", ms=3, label=label)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss", yscale="log")
    if score == "val_auc":
        ax_auc.set(xlabel="epoch", ylabel="ROC AUC", title="validation AUC")
    else:
        ax_auc.set(xlabel="epoch", ylabel="R²", title="validation R² (mean over targets)")
    ax_loss.legend(fontsize="x-small", ncol=2)
    ax_auc.legend(fontsize="x-small")
    for ax in (ax_loss, ax_auc):
        ax.grid(alpha=0.3)
    return _save(fig, path)


def roc_curve_plot(y_true, y_prob, path: str | os.PathLike, label: str = "model") -> Path:
    """ROC curve (linear and log false-positive axis) with the AUC in the legend."""
    from sklearn.metrics import roc_auc_score, roc_curve

    fpr, tpr, _ = roc_curve(y_true, y_prob)
    auc = roc_auc_score(y_true, y_prob)
    fig, (ax_lin, ax_log) = _figure(2)
    for ax in (ax_lin, ax_log):
        ax.plot(fpr, tpr, label=f"{label} (AUC {auc:.4f})")
        ax.plot([0, 1], [0, 1], color="grey", ls=":", label="chance")
        ax.set(xlabel="false-positive rate", ylabel="true-positive rate")
        ax.grid(alpha=0.3)
    ax_lin.set_title("ROC")
    ax_log.set_xscale("log")
    ax_log.set_xlim(max(1.0 / max(len(y_true), 1), 1e-4), 1)
    ax_log.set_title("ROC, log false-positive rate")
    ax_lin.legend(loc="lower right")
    return _save(fig, path)


def confusion_plot(matrix, path: str | os.PathLike, title: str = "threshold 0.5") -> Path:
    """2 x 2 confusion matrix (rows true 0/1, columns predicted 0/1) with counts."""
    m = np.asarray(matrix)
    fig, (ax,) = _figure(1, 4.0, 3.6)
    ax.imshow(m, cmap="Blues")
    for (i, j), v in np.ndenumerate(m):
        ax.text(j, i, str(v), ha="center", va="center",
                color="white" if v > m.max() / 2 else "black")  # fmt: skip
    ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=["noise", "signal"],
           yticklabels=["noise", "signal"], xlabel="predicted", ylabel="true",
           title=f"confusion matrix ({title})")  # fmt: skip
    return _save(fig, path)


def efficiency_plot(
    tables: Mapping[str, pd.DataFrame] | pd.DataFrame, path: str | os.PathLike
) -> Path:
    """Efficiency vs network SNR (tables of :func:`g2res.ensemble.metrics.efficiency_vs_snr`),
    one line per label."""
    if isinstance(tables, pd.DataFrame):
        tables = {"model": tables}
    fig, (ax,) = _figure(1, 5.5, 4.0)
    fpr = None
    for label, t in tables.items():
        if len(t) == 0:
            continue
        hi = np.where(np.isfinite(t["snr_high"]), t["snr_high"], t["snr_low"] + 4)
        centre = 0.5 * (t["snr_low"] + hi)
        ax.errorbar(centre, t["efficiency"], xerr=0.5 * (hi - t["snr_low"]), marker="o",
                    capsize=2, label=label)  # fmt: skip
        fpr = float(t["fpr"].iloc[0])
    ax.set(xlabel="network SNR", ylabel="efficiency", ylim=(-0.02, 1.02),
           title=f"detection efficiency at false-positive rate {fpr}")  # fmt: skip
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def evaluation_plots(
    out: str | os.PathLike, y_true, y_prob, snr=None, fpr: float = 0.01, label: str = "model"
) -> list[Path]:
    """ROC, confusion matrix and (with ``snr``) efficiency vs SNR into directory ``out``."""
    from g2res.ensemble.metrics import classification_metrics, efficiency_vs_snr

    out = Path(out)
    y = np.asarray(y_true)
    paths = []
    if 0 < y.sum() < len(y):
        paths.append(roc_curve_plot(y, y_prob, out / "roc.png", label=label))
    metrics = classification_metrics(y, y_prob)
    paths.append(confusion_plot(metrics["confusion_matrix"], out / "confusion.png"))
    if snr is not None and (y == 0).any() and (y == 1).any():
        table = efficiency_vs_snr(y, y_prob, snr, fpr=fpr)
        if len(table):
            paths.append(efficiency_plot({label: table}, out / "efficiency.png"))
    return paths


def regression_scatter(oof: pd.DataFrame, names, path: str | os.PathLike) -> Path:
    """Predicted vs true value of each regression target (columns ``<name>`` and
    ``<name>_pred`` of an ``oof.csv``), with the identity line and R² in the title."""
    from sklearn.metrics import r2_score

    names = list(names)
    fig, axes = _figure(len(names), 4.2, 4.0)
    for ax, name in zip(axes, names):
        t, p = oof[name].to_numpy(float), oof[f"{name}_pred"].to_numpy(float)
        ok = np.isfinite(t) & np.isfinite(p)
        ax.scatter(t[ok], p[ok], s=6, alpha=0.5)
        if ok.sum() > 1:
            lo, hi = np.nanmin(t[ok]), np.nanmax(t[ok])
            ax.plot([lo, hi], [lo, hi], color="grey", ls=":")
            ax.set_title(f"{name}: R² {r2_score(t[ok], p[ok]):.3f}")
        ax.set(xlabel=f"true {name}", ylabel=f"predicted {name}")
        ax.grid(alpha=0.3)
    return _save(fig, path)
