"""The sensitivity table shared by benchmarks/sensitivity.py and sensitivity_injection.py.

One row per method (a submission-format ``id,target`` CSV scored on the simulated test
split): ROC AUC overall, AUC per network-SNR bin (all noise samples vs the bin's
signals) and detection efficiency at 1% false-positive rate per bin, all from
``g2res.train.metrics``; then each AUC over the oracle's.
"""

from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd

from g2res.ensemble.evaluate import align_labels, read_snr
from g2res.train import metrics as m

SNR_EDGES = (4.0, 6.0, 8.0, 10.0, 12.0, 16.0)  # the bins of issue 7
FPR = 0.01
GOAL_RATIO = 0.97


def bin_name(lo: float, hi: float) -> str:
    return f"{lo:g}-{hi:g}"


BIN_NAMES = [bin_name(lo, hi) for lo, hi in zip(SNR_EDGES[:-1], SNR_EDGES[1:])]


def cpu_seconds() -> float:
    """CPU seconds of this process and its finished child processes (workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class Timer:
    """Wall and CPU seconds (this process + its workers) of named steps; ``timer(name, fn)``
    runs ``fn()``."""

    def __init__(self, path: str | os.PathLike | None = None):
        """``path``: JSON file keeping the times of steps done by earlier calls (a reused
        WORKDIR), so the totals stay those of the whole benchmark."""
        self.path = Path(path) if path else None
        saved = json.loads(self.path.read_text()) if self.path and self.path.is_file() else {}
        self.wall: dict[str, float] = saved.get("wall", {})
        self.cpu: dict[str, float] = saved.get("cpu", {})

    def __call__(self, name: str, fn):
        w0, c0 = time.perf_counter(), cpu_seconds()
        out = fn()
        self.wall[name] = round(time.perf_counter() - w0, 1)
        self.cpu[name] = round(cpu_seconds() - c0, 1)
        print(f"[{name}] {self.wall[name]:.0f} s wall, {self.cpu[name]:.0f} s CPU", flush=True)
        if self.path:
            from g2res.utils import write_json

            write_json(self.path, {"wall": self.wall, "cpu": self.cpu})
        return out


def load_scores(submission: str | os.PathLike, data_dir: str | os.PathLike):
    """Labels, scores and network SNRs (each (n,), in the order of the test labels) of the
    submission CSV ``submission`` of the simulated data set ``data_dir``."""
    truth = Path(data_dir) / "truth"
    labels = pd.read_csv(truth / "test_labels.csv")
    sub = pd.read_csv(submission)
    align_labels(sub, labels, name=str(submission))  # same unique ids, valid targets
    p = sub.set_index("id")["target"].loc[labels["id"]].to_numpy(np.float64)
    y = labels["target"].to_numpy(np.int64)
    return y, p, read_snr(truth / "injections.csv", labels["id"])


def score(name: str, submission: str | os.PathLike, data_dir: str | os.PathLike) -> dict:
    """Row of the table for the submission CSV ``submission`` of the test split of the
    simulated data set ``data_dir`` (labels and network SNRs from ``data_dir/truth``)."""
    y, p, snr = load_scores(submission, data_dir)
    row: dict = {"method": name, "n": int(len(y)), "n_signals": int(y.sum())}
    row["auc"] = m.classification_metrics(y, p)["auc"]
    auc = m.auc_by_snr(y, p, snr, bins=SNR_EDGES)
    eff = m.efficiency_vs_snr(y, p, snr, fpr=FPR, bins=SNR_EDGES)
    row["efficiency_all"] = float((p[y == 1] > m.threshold_at_fpr(y, p, FPR)).mean())
    for col, frame, key in (("auc", auc, "auc"), ("eff", eff, "efficiency")):
        got = {bin_name(a, b): v for a, b, v in zip(frame.snr_low, frame.snr_high, frame[key])}
        row[col + "_bins"] = {b: (float(got[b]) if b in got else None) for b in BIN_NAMES}
    row["n_bins"] = {
        bin_name(a, b): int(n) for a, b, n in zip(auc.snr_low, auc.snr_high, auc.n_signals)
    }
    return row


def add_ratios(table: list[dict], reference: str = "oracle") -> float | None:
    """Set ``auc_over_oracle`` on every row; returns the reference AUC (None if absent)."""
    ref = next((r["auc"] for r in table if r["method"] == reference), None)
    for r in table:
        r["auc_over_oracle"] = r["auc"] / ref if ref else None
    return ref


def compare(a: float, b: float, tol: float = 5e-4) -> str:
    """'better', 'tied' (within ``tol``, e.g. both AUC 1.000) or 'worse'."""
    return "tied" if abs(a - b) <= tol else ("better" if a > b else "worse")


def beats(a: dict, b: dict) -> dict:
    """Row ``a`` against row ``b``: AUC overall and per SNR bin compared with
    :func:`compare`; ``every_bin`` when no bin is worse and at least one better."""
    bins = {
        k: compare(a["auc_bins"][k], b["auc_bins"][k])
        for k in BIN_NAMES
        if a["auc_bins"][k] is not None and b["auc_bins"][k] is not None
    }
    every = "worse" not in bins.values() and "better" in bins.values()
    return {"overall": compare(a["auc"], b["auc"]), "bins": bins, "every_bin": every}


def paired_bins(
    sub_a: str | os.PathLike,
    sub_b: str | os.PathLike,
    data_dir: str | os.PathLike,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict:
    """AUC of submission ``sub_a`` minus that of ``sub_b``, overall and per SNR bin (all
    noise vs the bin's signals), each with the 95% paired bootstrap interval of
    :func:`g2res.train.metrics.paired_auc_difference`; with ~80 signals per bin a
    difference of 0.01 is often within the noise of the test set."""
    y, pa, snr = load_scores(sub_a, data_dir)
    _, pb, _ = load_scores(sub_b, data_dir)
    out = {"overall": m.paired_auc_difference(y, pa, pb, n_boot=n_boot, seed=seed)}
    per_bin = m.paired_auc_by_snr(y, pa, pb, snr, bins=SNR_EDGES, n_boot=n_boot, seed=seed)
    for row in per_bin.to_dict(orient="records"):
        lo, hi = row.pop("snr_low"), row.pop("snr_high")
        out[bin_name(lo, hi)] = row
    return out


def format_paired(paired: dict) -> str:
    """One line per entry of :func:`paired_bins`: difference and its 95% interval."""
    return "\n".join(
        f"  {k:>8}: {d['diff']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]"
        f"  P(a better) {d['p_a_better']:.2f}"
        + ("" if d["verdict"] == "not resolved" else "  (interval excludes 0)")
        for k, d in paired.items()
    )


def result_fields(table: list[dict], verdict, timer: Timer) -> dict:
    """The fields every sensitivity result JSON ends with: table, goal, times, machine."""
    import platform

    return {
        "fpr": FPR,
        "snr_bins": BIN_NAMES,
        "table": table,
        "goal": verdict,
        "seconds_wall": timer.wall,
        "seconds_cpu": timer.cpu,
        "total_seconds": {"wall": sum(timer.wall.values()), "cpu": sum(timer.cpu.values())},
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
    }


def format_table(table: list[dict]) -> str:
    """Plain-text table: AUC overall and per bin, efficiency at 1% FPR per bin, /oracle."""

    def f(v):
        return f"{v:6.3f}" if v is not None else f"{'-':>6s}"

    width = max(len(r["method"]) for r in table) + 1
    head = (
        f"{'method':{width}s}   AUC | "
        + " ".join(f"{b:>6s}" for b in BIN_NAMES)
        + " | eff@1%: "
        + " ".join(f"{b:>6s}" for b in BIN_NAMES)
        + " | /oracle"
    )
    lines = [head, "-" * len(head)]
    for r in table:
        lines.append(
            f"{r['method']:{width}s}{f(r['auc'])} | "
            + " ".join(f(r["auc_bins"][b]) for b in BIN_NAMES)
            + " |         "
            + " ".join(f(r["eff_bins"][b]) for b in BIN_NAMES)
            + " | "
            + f(r.get("auc_over_oracle"))
        )
    n = table[0]["n_bins"]
    lines.append(f"signals per bin: {', '.join(f'{b}: {n.get(b, 0)}' for b in BIN_NAMES)}")
    return "\n".join(lines)


def markdown_table(table: list[dict]) -> str:
    """The same table in Markdown, for benchmarks/README.md."""

    def f(v):
        return f"{v:.3f}" if v is not None else "-"

    head = ["method", "AUC", *BIN_NAMES, *(f"eff. {b}" for b in BIN_NAMES), "/oracle"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in table:
        vals = [r["auc"], *(r["auc_bins"][b] for b in BIN_NAMES)]
        vals += [*(r["eff_bins"][b] for b in BIN_NAMES), r.get("auc_over_oracle")]
        lines.append("| " + " | ".join([r["method"], *map(f, vals)]) + " |")
    return "\n".join(lines)


def plot(table: list[dict], path: str | os.PathLike, title: str = "") -> Path:
    """AUC and efficiency at 1% FPR per SNR bin, one line per method; written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from g2res.utils import atomic_path

    centres = [(a + b) / 2 for a, b in zip(SNR_EDGES[:-1], SNR_EDGES[1:])]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for r in table:
        for ax, key in zip(axes, ("auc_bins", "eff_bins")):
            ys = [r[key][b] if r[key][b] is not None else np.nan for b in BIN_NAMES]
            ax.plot(centres, ys, "o-", label=f"{r['method']} (AUC {r['auc']:.3f})")
    axes[0].set_ylabel("ROC AUC (noise vs the bin's signals)")
    axes[1].set_ylabel(f"efficiency at {FPR:.0%} false-positive rate")
    for ax in axes:
        ax.set_xlabel("network optimal SNR (bin centre)")
        ax.set_xticks(centres, BIN_NAMES)
        ax.grid(alpha=0.3)
    axes[1].set_ylim(-0.02, 1.02)
    axes[0].legend(fontsize=8, loc="lower right")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path
