"""The cells of benchmarks/generalise.py (issue 22): noise curves, per-cell seeds and data,
the runs' preprocessing, one cell's scores and verdicts, the worst cell, the matrix table
and its plot.

A cell is one (noise curve, approximant) pair: its own simulated test split (noise +
signals) and a small noise-only training split whose only use is the cache's PSD
estimate. Every method is scored on the cell's test split by
:func:`_sensitivity_table.score`; the runs are compared with the template bank by the
paired bootstraps of :func:`_sensitivity_table.paired_bins` (AUC) and
:func:`_sensitivity_table.paired_efficiency` (efficiency at FAP 1e-2, 1e-3).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import _sensitivity_table as st
import numpy as np

NOISE_CURVES = ("design", "o3low", "lines")
APPROXIMANTS = ("IMRPhenomD", "SEOBNRv4_opt", "IMRPhenomXPHM")
FAP = "0.01"  # the false-alarm probability of the matrix (a key of score()["eff_fap"])

# The `lines` curve: the design curves tilted by (f / 100 Hz)^TILT (quieter below 100 Hz,
# louder above: another slope than any design or O3 curve) times narrow lines, each a
# Gaussian of FWHM LINE_WIDTH Hz reaching `height` x the tilted floor at its centre.
TILT = 0.7
TILT_PIVOT = 100.0  # Hz
LINE_WIDTH = 1.0  # Hz, full width at half maximum
LIGO_LINES = (  # (Hz, height): calibration line, 60 Hz mains and harmonics, violin modes
    (35.0, 30.0),
    (60.0, 50.0),
    (120.0, 30.0),
    (180.0, 20.0),
    (500.0, 100.0),
    (505.0, 60.0),
)
VIRGO_LINES = ((35.0, 30.0), (50.0, 50.0), (100.0, 30.0), (150.0, 20.0), (445.0, 100.0))
LINES = {"H1": LIGO_LINES, "L1": LIGO_LINES, "V1": VIRGO_LINES}
LINES_DF = 0.125  # Hz, the file's grid: the simulator's 8-s noise segment resolves 0.125 Hz


def lines_factor(frequencies: np.ndarray, lines) -> np.ndarray:
    """Multiplier (f,) of a PSD at ``frequencies`` (f,) Hz: 1 + (height - 1) x a Gaussian
    of FWHM LINE_WIDTH Hz per (centre Hz, height) of ``lines``."""
    sigma = LINE_WIDTH / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    out = np.ones_like(frequencies, dtype=float)
    for f0, height in lines:
        out += (height - 1.0) * np.exp(-0.5 * ((frequencies - f0) / sigma) ** 2)
    return out


def lines_psd_file(path: str | os.PathLike) -> Path:
    """Write (once) the `lines` PSD text file: frequency (Hz) and H1, L1, V1 PSDs
    (strain^2/Hz) on a LINES_DF grid up to 1024 Hz; the design curves (held flat below
    10 Hz) x (f / TILT_PIVOT)^TILT x :func:`lines_factor` of LINES."""
    from g2res import DETECTORS
    from g2res.data.noise import design_psd
    from g2res.utils import atomic_open

    path = Path(path)
    if path.is_file():
        return path
    f = np.arange(1, int(1024.0 / LINES_DF) + 1) * LINES_DF
    tilt = (np.maximum(f, 10.0) / TILT_PIVOT) ** TILT
    psd = design_psd(f) * tilt
    psd = np.stack([row * lines_factor(f, LINES[d]) for row, d in zip(psd, DETECTORS)])
    with atomic_open(path, "w") as fh:
        fh.write(
            f"# design PSDs x (f / {TILT_PIVOT:g} Hz)^{TILT:g} with lines {json.dumps(LINES)}"
            f" (FWHM {LINE_WIDTH:g} Hz, height x floor)\n# frequency_Hz H1 L1 V1\n"
        )
        np.savetxt(fh, np.column_stack([f, *psd]), fmt="%.10g")
    return path


def noise_curve_files(names, folder: Path) -> dict[str, str | None]:
    """{name: PSD file or None (the simulator's design curves)} for the noise curves
    ``names`` (of NOISE_CURVES), the files written into ``folder`` once."""
    from sensitivity_injection import o3low_psd_file

    unknown = sorted(set(names) - set(NOISE_CURVES))
    if unknown:
        raise SystemExit(f"--noise-curves: unknown {unknown}; choose from {list(NOISE_CURVES)}")
    folder.mkdir(parents=True, exist_ok=True)
    make = {
        "design": lambda: None,
        "o3low": lambda: str(o3low_psd_file(folder / "psd_o3low.txt")),
        "lines": lambda: str(lines_psd_file(folder / "psd_lines.txt")),
    }
    return {name: make[name]() for name in names}


def cell_name(curve: str, approximant: str) -> str:
    return f"{curve}-{approximant}"


def cell_seed(seed: int, curve: str, approximant: str) -> int:
    """The seed of one cell: a hash of --seed, the noise curve and the approximant, so
    cells share no noise draws or sources and adding a cell changes no other."""
    key = f"{seed}/{curve}/{approximant}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "little") % (2**31 - 1)


def runs_preprocess(groups: dict[str, list[Path]]):
    """The PreprocessConfig every run of ``groups`` ({name: run dirs}) was trained on (from
    each RUN/config.yaml); SystemExit naming the runs when a file is missing or the runs
    disagree (one cache per cell conditions the data as all of them expect)."""
    from g2res.config import load_config

    found = {}
    for runs in groups.values():
        for run in runs:
            path = Path(run) / "config.yaml"
            if not (Path(run) / "metrics.json").is_file() or not path.is_file():
                raise SystemExit(f"--runs {run}: not a finished cv-train run (no metrics.json)")
            found[str(run)] = load_config(path).preprocess
    first_run, first = next(iter(found.items()))
    for run, pre in found.items():
        if _conditioning(pre) != _conditioning(first):
            raise SystemExit(
                f"--runs: {run} was trained on preprocess settings {pre} but {first_run} on "
                f"{first}; score runs of different preprocessing in separate --workdir calls"
            )
    if first.psd_source not in ("noise", "all"):
        print(
            f"warning: the runs whiten with the PSD file {first.psd_source} (preprocess."
            "psd_source), not a PSD estimated per cell: cells of other noise curves are "
            "whitened with the wrong PSD, as a user's data would be"
        )
    return first


UNCONDITIONED = ("workers", "batch_size")  # preprocess settings that do not change a cache


def _conditioning(pre) -> dict:
    return {k: v for k, v in vars(pre).items() if k not in UNCONDITIONED}


def check_cache(cache: Path, pre) -> None:
    """SystemExit when the reused cache ``cache`` was made with other preprocess settings
    than ``pre`` (the manifest's ``settings``)."""
    settings = json.loads((cache / "manifest.json").read_text()).get("settings", {})
    differ = {
        k: (settings[k], v)
        for k, v in _conditioning(pre).items()
        if k in settings and settings[k] != v
    }
    if differ:
        raise SystemExit(
            f"{cache}: made with other preprocess settings than the runs' ({differ}: cache, "
            f"runs); delete {cache} or use another --workdir"
        )


def score_cell(subs: dict[str, Path], groups: list[str], data: Path) -> dict:
    """Scores of one cell: ``subs`` {method: submission CSV} with "oracle" and, unless the
    bank is left out, "template bank"; ``groups`` the run-ensemble methods among them.

    Returns {"table": score rows (oracle, bank, groups), "ratio": {method: AUC / oracle
    AUC}, "vs_bank": {group: {"auc": paired_bins, "eff": paired_efficiency,
    "verdict": overall AUC verdict, "bank_better": {"auc": bins, "eff@<fap>": bins}}}}.
    """
    table = [st.score(name, csv, data) for name, csv in subs.items()]
    st.add_ratios(table)
    out: dict = {"table": table, "ratio": {r["method"]: r["auc_over_oracle"] for r in table}}
    out["vs_bank"] = {}
    if "template bank" not in subs:
        return out
    for g in groups:
        auc = st.paired_bins(subs[g], subs["template bank"], data)
        eff = st.paired_efficiency(subs[g], subs["template bank"], data)
        better = {"auc": [k for k, d in auc.items() if d["verdict"] == "worse"]}
        for fap, rows in eff.items():
            if "skipped" not in rows:
                better[f"eff@{fap}"] = [k for k, d in rows.items() if d and d["verdict"] == "worse"]
        out["vs_bank"][g] = {
            "auc": auc,
            "eff": eff,
            "verdict": auc["overall"]["verdict"],
            "bank_better": better,
        }
    return out


def not_below_bank(cell: dict, group: str) -> bool | None:
    """True when the bank is not better than ``group`` beyond the noise in ``cell``: no
    paired AUC interval (overall or any SNR bin) and no efficiency interval at FAP 1e-2
    lies below 0; None without a bank."""
    vs = cell["vs_bank"].get(group)
    if vs is None:
        return None
    return not vs["bank_better"]["auc"] and not vs["bank_better"].get(f"eff@{FAP}")


def worst_cell(cells: dict[str, dict], group: str) -> str:
    """Name of the cell of ``cells`` where ``group``'s AUC over the oracle's is lowest."""
    return min(cells, key=lambda c: cells[c]["ratio"][group])


def goal(cells: dict[str, dict], group: str) -> dict:
    """Issue 22's goal for ``group``: its worst cell >= GOAL_RATIO x that cell's oracle
    AUC and not below the bank beyond the noise (:func:`not_below_bank`)."""
    name = worst_cell(cells, group)
    ratio = cells[name]["ratio"][group]
    below = not_below_bank(cells[name], group)
    every = [not_below_bank(c, group) for c in cells.values()]
    return {
        "group": group,
        "worst_cell": name,
        "worst_ratio": ratio,
        "ratio_goal": st.GOAL_RATIO,
        "ratio_met": ratio >= st.GOAL_RATIO,
        "not_below_bank": below,
        "met": ratio >= st.GOAL_RATIO and below is not False,
        "cells_below_bank": [c for c, ok in zip(cells, every) if ok is False],
    }


def _eff(row: dict, key: str = "all") -> str:
    d = row["eff_fap"].get(FAP, {})
    if "skipped" in d or d.get(key) is None:
        return "-"
    c = d[key]
    return f"{c['efficiency']:.3f} [{c['low']:.2f},{c['high']:.2f}]"


def format_matrix(cells: dict[str, dict], groups: list[str]) -> str:
    """One line per cell and method: AUC, AUC / oracle, efficiency at FAP 1e-2 (all
    signals, 95% interval); per group the paired AUC difference from the bank with its
    verdict and the bins where the bank is better beyond the noise."""
    lines = []
    width = max(len(r["method"]) for c in cells.values() for r in c["table"]) + 1
    head = f"{'cell':32s}{'method':{width}s}   AUC /oracle  eff@FAP1e-2 (all) [95%]"
    lines += [head, "-" * len(head)]
    for name, c in cells.items():
        for r in c["table"]:
            lines.append(
                f"{name:32s}{r['method']:{width}s}{r['auc']:6.3f} {r['auc_over_oracle']:7.3f}"
                f"  {_eff(r)}"
            )
        for g, vs in c["vs_bank"].items():
            d = vs["auc"]["overall"]
            where = "; ".join(f"{k}: {', '.join(v)}" for k, v in vs["bank_better"].items() if v)
            lines.append(
                f"{'':32s}{g} - bank: AUC {d['diff']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]"
                f" {vs['verdict']}; bank better beyond the noise: {where or 'nowhere'}"
            )
    return "\n".join(lines)


def format_efficiency_bins(cells: dict[str, dict]) -> str:
    """Efficiency at FAP 1e-2 per network-SNR bin with 95% intervals, per cell and method."""
    width = max(len(r["method"]) for c in cells.values() for r in c["table"]) + 1
    head = f"{'cell':32s}{'method':{width}s}" + " ".join(f"{b:>22s}" for b in st.BIN_NAMES)
    lines = [head, "-" * len(head)]
    for name, c in cells.items():
        for r in c["table"]:
            cols = " ".join(f"{_eff(r, b):>22s}" for b in st.BIN_NAMES)
            lines.append(f"{name:32s}{r['method']:{width}s}{cols}")
    return "\n".join(lines)


def format_goal(g: dict) -> str:
    bank = {None: "no bank", True: "not below the bank", False: "BELOW the bank"}
    return (
        f"{g['group']}: worst cell {g['worst_cell']} at {g['worst_ratio']:.3f} x oracle (goal "
        f">= {g['ratio_goal']}), {bank[g['not_below_bank']]} beyond the noise -> "
        f"{'MET' if g['met'] else 'NOT MET'}; cells below the bank: "
        f"{', '.join(g['cells_below_bank']) or 'none'}"
    )


def markdown_matrix(cells: dict, curves: list[str], approximants: list[str], method: str) -> str:
    """``method``'s AUC / oracle AUC as a noise curve x approximant Markdown table."""
    lines = ["| noise \\ approximant | " + " | ".join(approximants) + " |"]
    lines.append("|" + "---|" * (len(approximants) + 1))
    for curve in curves:
        vals = [
            cells.get(cell_name(curve, a), {}).get("ratio", {}).get(method) for a in approximants
        ]
        lines.append(
            f"| {curve} | " + " | ".join("-" if v is None else f"{v:.3f}" for v in vals) + " |"
        )
    return "\n".join(lines)


def plot(
    cells: dict,
    curves: list[str],
    approximants: list[str],
    methods: list[str],
    path,
    worst: dict[str, str] | None = None,
):
    """Top row: AUC / oracle AUC of each of ``methods`` as a noise curve x approximant heat
    map with the numbers written in (``worst`` {method: cell} framed in red); below:
    efficiency at FAP 1e-2 vs network SNR (95% band) per cell, one line per method.
    Written atomically to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from g2res.utils import atomic_path

    na, nc = len(approximants), len(curves)
    worst = worst or {}
    ncols = max(len(methods), na)
    fig = plt.figure(figsize=(4.2 * ncols, 3.6 * (1 + nc)))
    grid = fig.add_gridspec(1 + nc, ncols)
    ratio = lambda c, a, m: cells.get(cell_name(c, a), {}).get("ratio", {}).get(m)  # noqa: E731
    ratios = [[[ratio(c, a, m) for a in approximants] for c in curves] for m in methods]
    finite = [v for m in ratios for row in m for v in row if v is not None]
    lo = min([*finite, st.GOAL_RATIO]) if finite else 0.9
    for k, m in enumerate(methods):
        ax = fig.add_subplot(grid[0, k])
        z = np.array([[np.nan if v is None else v for v in row] for row in ratios[k]], float)
        im = ax.imshow(z, vmin=lo, vmax=1.0, cmap="viridis", aspect="auto")
        for i in range(nc):
            for j in range(na):
                if np.isfinite(z[i, j]):
                    ax.text(j, i, f"{z[i, j]:.3f}", ha="center", va="center",
                            color="w" if z[i, j] < (lo + 1) / 2 else "k")  # fmt: skip
        if m in worst:  # the worst cell of a run group, framed in red
            i, j = (
                curves.index(cells[worst[m]]["noise_curve"]),
                approximants.index(cells[worst[m]]["approximant"]),
            )
            ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="r", lw=2.5))
        ax.set_xticks(range(na), approximants, fontsize=8, rotation=20, ha="right")
        ax.set_yticks(range(nc), curves)
        ax.set_title(f"{m}: AUC / oracle AUC", fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.046)
    centres = [(a + b) / 2 for a, b in zip(st.SNR_EDGES[:-1], st.SNR_EDGES[1:])]
    for i, c in enumerate(curves):
        for j, a in enumerate(approximants):
            ax = fig.add_subplot(grid[1 + i, j])
            cell = cells.get(cell_name(c, a))
            ax.set_title(cell_name(c, a), fontsize=9)
            for n, r in enumerate(cell["table"] if cell else []):
                rows = r["eff_fap"].get(FAP, {})
                if "skipped" in rows:
                    continue
                empty = {"efficiency": np.nan, "low": np.nan, "high": np.nan}
                cs = [rows.get(b) or empty for b in st.BIN_NAMES]
                e, lo_, hi_ = (np.array([x[k] for x in cs], float) for k in empty)
                ax.fill_between(centres, lo_, hi_, color=f"C{n}", alpha=0.2, lw=0)
                ax.plot(centres, e, "o-", color=f"C{n}", ms=3, label=r["method"])
            ax.set_ylim(-0.02, 1.02)
            ax.set_xticks(centres, st.BIN_NAMES, fontsize=7)
            ax.grid(alpha=0.3)
            if j == 0:
                ax.set_ylabel("efficiency at FAP 1e-2")
            if i == nc - 1:
                ax.set_xlabel("network optimal SNR")
            if i == 0 and j == 0 and ax.lines:
                ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path
