"""The sensitivity table shared by benchmarks/sensitivity.py and sensitivity_injection.py.

One row per method (a submission-format ``id,target`` CSV scored on the simulated test
split): ROC AUC overall, AUC per network-SNR bin (all noise samples vs the bin's
signals) and detection efficiency at 1% false-positive rate per bin, all from
``g2res.train.metrics``; then each AUC over the oracle's. Beside it, the low false-alarm
table: efficiency at each false-alarm probability of ``FAPS`` overall and per bin with
95% bootstrap intervals (noise and signals resampled), and the paired differences of
efficiencies against the bank with their verdicts (:mod:`g2res.ensemble.far`).
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
FAPS = (1e-2, 1e-3)  # false-alarm probabilities of the efficiency report
N_BOOT = 2000
GOAL_RATIO = 0.97
# test split sizes of the low-FAP report: FAP 1e-3 needs >= 1,000 noise samples, and
# >= 5 noise samples above the threshold keep its bootstrap interval meaningful
N_TEST_NOISE, N_TEST_SIGNALS = 5000, 2000


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
    row["n_noise"] = int((y == 0).sum())
    row["eff_fap"] = fap_efficiencies(y, p, snr)
    return row


def fap_key(fap: float) -> str:
    return f"{fap:g}"


def _by_bin(report: dict, fields) -> dict:
    """{"all": row, "<lo>-<hi>": row or None per bin of BIN_NAMES} of a far report."""
    got = {bin_name(r["snr_low"], r["snr_high"]): r for r in report["by_snr"] or []}
    keep = lambda r: {k: r[k] for k in fields}  # noqa: E731
    return {"all": keep(report["overall"])} | {
        b: (keep(got[b]) if b in got else None) for b in BIN_NAMES
    }


def fap_efficiencies(y, p, snr, n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """{fap: {"threshold", "fap_achieved", "all": {...}, "<bin>": {...}}} with
    efficiency, low, high, n_signals per entry; {"skipped": reason} for a FAP the noise
    cannot resolve."""
    from g2res.ensemble.far_report import fap_report

    out = {}
    for r in fap_report(y, p, snr, faps=FAPS, bins=SNR_EDGES, n_boot=n_boot, seed=seed) or []:
        if "skipped" in r:
            out[fap_key(r["fap"])] = {"skipped": r["skipped"]}
            continue
        fields = ("efficiency", "low", "high", "n_signals")
        head = {"threshold": r["threshold"], "fap_achieved": r["fap_achieved"]}
        out[fap_key(r["fap"])] = head | _by_bin(r, fields)
    return out


def paired_efficiency(
    sub_a: str | os.PathLike,
    sub_b: str | os.PathLike,
    data_dir: str | os.PathLike,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> dict:
    """Efficiency at each FAP of ``FAPS`` of submission ``sub_a`` minus that of ``sub_b``,
    overall ("all") and per SNR bin, each with its 95% paired bootstrap interval and
    verdict (:func:`g2res.ensemble.far.paired_efficiency_difference`): {fap: {bin: row}}."""
    from g2res.ensemble.far_report import paired_fap_report

    y, pa, snr = load_scores(sub_a, data_dir)
    _, pb, _ = load_scores(sub_b, data_dir)
    reports = paired_fap_report(y, pa, pb, snr, FAPS, SNR_EDGES, n_boot=n_boot, seed=seed)
    fields = ("efficiency_a", "efficiency_b", "diff", "low", "high", "p_a_better", "verdict")
    return {
        fap_key(r["fap"]): ({"skipped": r["skipped"]} if "skipped" in r else _by_bin(r, fields))
        for r in reports or []
    }


def format_paired_efficiency(paired: dict) -> str:
    """Lines of :func:`paired_efficiency`: per FAP and bin, a vs b, difference, interval."""
    lines = []
    for fap, rows in paired.items():
        if "skipped" in rows:
            lines.append(f"  FAP {fap}: not reported ({rows['skipped']})")
            continue
        for k, d in rows.items():
            if d is not None:
                lines.append(
                    f"  FAP {fap:>6} {k:>8}: {d['efficiency_a']:.3f} vs {d['efficiency_b']:.3f}"
                    f"  {d['diff']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]  {d['verdict']}"
                )
    return "\n".join(lines)


def format_fap_table(table: list[dict]) -> str:
    """Efficiency at each FAP, overall and per bin, as 'eff [low-high]' cells."""

    def cell(d):
        return (
            f"{'-':>17s}"
            if d is None
            else f"{d['efficiency']:.3f} [{d['low']:.2f}-{d['high']:.2f}]"
        )

    width = max(len(r["method"]) for r in table) + 1
    cols = ["all", *BIN_NAMES]
    head = f"{'method':{width}s}{'FAP':>7s} " + " ".join(f"{c:>17s}" for c in cols)
    lines = [head, "-" * len(head)]
    for r in table:
        for fap, rows in r["eff_fap"].items():
            body = (
                f"not reported: {rows['skipped']}"
                if "skipped" in rows
                else " ".join(cell(rows[c]) for c in cols)
            )
            lines.append(f"{r['method']:{width}s}{fap:>7s} {body}")
    return "\n".join(lines)


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
        "faps": list(FAPS),
        "n_boot": N_BOOT,
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
    if table[0].get("n_noise") is not None:
        lines.append(f"noise samples: {table[0]['n_noise']}")
    if all("eff_fap" in r for r in table):
        lines += ["", "efficiency at false-alarm probability (95% bootstrap interval):"]
        lines.append(format_fap_table(table))
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


def markdown_fap_table(table: list[dict]) -> str:
    """The efficiency at each FAP with its 95% interval, in Markdown, for the notes."""

    def cell(d):
        return "-" if d is None else f"{d['efficiency']:.3f} [{d['low']:.3f}, {d['high']:.3f}]"

    cols = ["all", *BIN_NAMES]
    lines = ["| method | FAP | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 2)]
    for r in table:
        for fap, rows in r.get("eff_fap", {}).items():
            cells = (
                ["not reported"] * len(cols)
                if "skipped" in rows
                else map(cell, map(rows.get, cols))
            )
            lines.append(f"| {r['method']} | {fap} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(table: list[dict], path: str | os.PathLike, title: str = "") -> Path:
    """AUC and efficiency at each FAP of ``FAPS`` (with its 95% band) per SNR bin, one line
    per method; written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from g2res.utils import atomic_path

    centres = [(a + b) / 2 for a, b in zip(SNR_EDGES[:-1], SNR_EDGES[1:])]
    # Many rows: one legend below the panels (in the panels it would hide the curves) and
    # 20 colours, so that no two rows share one.
    many = len(table) > 6
    rows_below = -(-len(table) // 2) if many else 0
    fig, axes = plt.subplots(
        1, 1 + len(FAPS), figsize=(5.5 * (1 + len(FAPS)), 4.2 + 0.2 * rows_below)
    )
    for i, r in enumerate(table):
        color = plt.cm.tab20(i % 20) if len(table) > 10 else f"C{i % 10}"
        ys = [r["auc_bins"][b] if r["auc_bins"][b] is not None else np.nan for b in BIN_NAMES]
        axes[0].plot(centres, ys, "o-", color=color, label=f"{r['method']} (AUC {r['auc']:.3f})")
        for ax, fap in zip(axes[1:], FAPS):
            rows = r.get("eff_fap", {}).get(fap_key(fap))
            if not rows or "skipped" in rows:
                continue
            cells = [rows[b] or {"efficiency": np.nan, "low": np.nan, "high": np.nan}
                     for b in BIN_NAMES]  # fmt: skip
            eff, low, high = (
                np.array([c[k] for c in cells], float) for k in ("efficiency", "low", "high")
            )
            ax.fill_between(centres, low, high, color=color, alpha=0.2, lw=0)
            ax.plot(centres, eff, "o-", color=color,
                    label=f"{r['method']} (all {rows['all']['efficiency']:.3f})")  # fmt: skip
    axes[0].set_ylabel("ROC AUC (noise vs the bin's signals)")
    for ax, fap in zip(axes[1:], FAPS):
        ax.set_ylabel(f"efficiency at false-alarm probability {fap:g} (95% band)")
        ax.set_ylim(-0.02, 1.02)
        if ax.lines and not many:
            ax.legend(fontsize=7, loc="lower right")
        elif not ax.lines:  # too few noise samples for this FAP
            ax.text(0.5, 0.5, f"FAP {fap:g}: too few noise samples", ha="center",
                    transform=ax.transAxes)  # fmt: skip
            ax.set_xlim(SNR_EDGES[0], SNR_EDGES[-1])
    for ax in axes:
        ax.set_xlabel("network optimal SNR (bin centre)")
        ax.set_xticks(centres, BIN_NAMES)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    if many:
        effs = [r.get("eff_fap", {}).get(fap_key(FAPS[0])) or {} for r in table]
        labels = [
            f"{r['method']} (AUC {r['auc']:.3f}"
            + (f", eff@{FAPS[0]:g} {e['all']['efficiency']:.3f})" if "all" in e else ")")
            for r, e in zip(table, effs)
        ]
        fig.legend(axes[0].lines, labels, loc="lower center", ncol=2, fontsize=8, frameon=False)
        fig.tight_layout(rect=(0, rows_below * 0.2 / fig.get_figheight(), 1, 1))
    else:
        axes[0].legend(fontsize=8, loc="lower right")
        fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path
