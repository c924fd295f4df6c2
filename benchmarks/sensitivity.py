"""How sensitive is g2res next to a matched-filter search? (issue 7)

On one simulated data set (default 2,000 train / 7,000 test = 5,000 noise + 2,000 signals,
enough noise for false-alarm probability 1e-3; network SNR 4-16, the simulator's
precessing IMRPhenomXPHM signals) this

1. simulates -> WORKDIR/data and preprocesses -> WORKDIR/cache;
2. trains one recipe with cv-train -> WORKDIR/runs/<name> and ensembles its folds with
   submit -> WORKDIR/submission_g2res.csv;
3. runs the aligned-spin template bank and the exact-template oracle
   (g2res.baselines.matched_filter) on the same test split;
4. prints one table -- test AUC overall and per network-SNR bin (4-6, ..., 12-16; all
   noise vs the bin's signals), efficiency at 1% false-positive rate per bin, each AUC
   over the oracle's -- and whether the goals hold (ensemble AUC >= 0.97 x oracle; the
   ensemble beats the bank, which does not model precession); then the efficiency at
   false-alarm probabilities 1e-2 and 1e-3 overall and per bin with 95% bootstrap
   intervals, and its paired difference from the bank with verdicts;
5. writes benchmarks/results/sensitivity.json and sensitivity.png.

Every step whose output exists in WORKDIR is reused (an interrupted cv-train resumes),
so a second call only redoes what is missing; delete WORKDIR/<step> to redo a step.
The default overrides size the recipe for 2 shared CPU cores (~15-25 min with a bank file
given); on a GPU pass ``--cpu-overrides none`` to train the recipe as written.

    python benchmarks/sensitivity.py --workdir /tmp/g2res-sens
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _sensitivity_table as st  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
# cqt-resnet18 cut to fit ~15 min on 2 shared CPU cores: a quarter-width ResNet-18 (base
# width 16: 0.78 M parameters) on a CQT with half the time frames (hop 64), 4 epochs, no
# EMA (a 0.999 average over ~100 optimiser steps would still be the initial weights).
CPU_OVERRIDES = [
    "model.backbone.base_width=16",
    "model.frontend.hop_length=64",
    "train.epochs=4",
    "train.ema=null",
    "train.patience=null",
]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--workdir", required=True, help="data, cache, runs and submissions")
    p.add_argument("--recipe", default=str(ROOT / "pipelines" / "cqt-resnet18.yaml"))
    p.add_argument("--n-train", type=int, default=2000)
    add_test_size_args(p)
    p.add_argument("--snr", type=float, nargs=2, default=(4.0, 16.0), metavar=("LO", "HI"))
    p.add_argument("--approximant", default="IMRPhenomXPHM", help="of the simulated signals")
    p.add_argument("--folds", type=int, default=3)
    p.add_argument(
        "--bank",
        default=None,
        help="template bank .npz to reuse (placing one for 7-50 Msun at minimal match 0.95 "
        "takes ~10 min on 2 cores); default: WORKDIR/bank.npz, placed when missing",
    )
    p.add_argument(
        "--cpu-overrides",
        default="default",
        help="'default': " + " ".join(CPU_OVERRIDES) + "; 'none': the recipe as written",
    )
    p.add_argument(
        "--no-bank",
        action="store_true",
        help="leave the template bank row out (filtering 1,000 samples with 570 templates "
        "takes 6-40 min on 2 shared cores)",
    )
    p.add_argument("--workers", type=int, default=2, help="simulation processes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(RESULTS / "sensitivity.json"))
    p.add_argument("--plot", default=str(RESULTS / "sensitivity.png"))
    p.add_argument("overrides", nargs="*", help="further recipe overrides key=value")
    return p.parse_args(argv)


def add_test_size_args(p: argparse.ArgumentParser) -> None:
    """--n-test-noise / --n-test-signals: the test split (FAP 1e-3 needs >= 1,000 noise)."""
    p.add_argument(
        "--n-test-noise",
        type=int,
        default=st.N_TEST_NOISE,
        help="noise-only test samples (the efficiency at FAP P needs >= 1/P of them)",
    )
    p.add_argument("--n-test-signals", type=int, default=st.N_TEST_SIGNALS, help="test signals")
    p.add_argument(
        "--n-test",
        type=int,
        default=None,
        help="the earlier runs' test split: N samples, half signals (sets both options above)",
    )


def test_split(args) -> dict:
    """SimulateConfig fields of the test split of ``args`` (see add_test_size_args); sets
    args.n_test_noise and args.n_test_signals from --n-test when given."""
    if args.n_test is not None:  # as make_targets splits it
        args.n_test_signals = int(round(0.5 * args.n_test))
        args.n_test_noise = args.n_test - args.n_test_signals
    n_test = args.n_test_noise + args.n_test_signals
    if args.n_test_noise < 1 or args.n_test_signals < 1:
        raise SystemExit("--n-test-noise and --n-test-signals: need at least 1 each")
    return {"n_test": n_test, "test_signal_fraction": args.n_test_signals / n_test}


def run_name(name: str, overrides: list[str]) -> str:
    """``name-<8 hex>``: one run directory per recipe and override list, so a reused
    WORKDIR never scores a run trained with other settings. ``submit.*`` overrides do not
    change training and are left out (the submission file names its TTA instead)."""
    kept = [o for o in overrides if not o.startswith("submit.")]
    digest = hashlib.sha1("\n".join(kept).encode()).hexdigest()[:8]
    return f"{name}-{digest}"


def prepare_data(work: Path, sim, pre, seed: int, timer: st.Timer) -> tuple[Path, Path]:
    """WORKDIR/data (simulated) and WORKDIR/cache, each made only when missing."""
    from g2res.data.preprocess import preprocess
    from g2res.data.simulate import simulate

    data, cache = work / "data", work / "cache"
    if not (data / "sample_submission.csv").is_file():
        timer("simulate", lambda: simulate(data, sim, seed=seed, force=True))
    import pandas as pd

    test = pd.read_csv(data / "truth" / "test_labels.csv")
    want = round(sim.n_test * sim.test_signal_fraction) if sim.test_signal_fraction else None
    if len(test) != sim.n_test or (want is not None and int(test["target"].sum()) != want):
        raise SystemExit(
            f"{data}: its test split holds {len(test)} samples ({int(test['target'].sum())} "
            f"signals), not the {sim.n_test} asked; use another --workdir or delete {data}"
        )
    if not (cache / "manifest.json").is_file():
        timer("preprocess", lambda: preprocess(data, cache, pre, seed=seed))
    return data, cache


def train_and_submit(cfg, run: Path, csv: Path, timer: st.Timer, label: str) -> Path:
    """cv-train ``cfg`` into ``run`` (resuming a partial run) and submit its folds; with
    test-time augmentation (``submit.tta``) the file name ends ``-tta-<names>``."""
    from g2res.ensemble.submit import submit
    from g2res.train.cv import cv_train

    if not (run / "metrics.json").is_file():
        resume = (run / "config.yaml").is_file()
        timer(f"cv-train {label}", lambda: cv_train(cfg, run, resume=resume))
    if cfg.submit.tta:
        csv = csv.with_name(f"{csv.stem}-tta-{'+'.join(cfg.submit.tta)}.csv")
    if not csv.is_file():
        timer(f"submit {label}", lambda: submit([run], cfg.cache, csv, tta=cfg.submit.tta))
    return csv


def baselines(
    data: Path,
    cache: Path,
    work: Path,
    seed: int,
    timer: st.Timer,
    bank: str | None = None,
    use_bank: bool = True,
) -> dict:
    """Template bank (unless not ``use_bank``) and oracle submissions on the test split:
    {name: csv}. The bank is ``bank``, else WORKDIR/bank.npz (placed for the cache's PSD
    when missing)."""
    from g2res.baselines.matched_filter import matched_filter

    saved = Path(bank) if bank else work / "bank.npz"
    psd = cache / "psd.npz"
    out = {}
    methods = [("template bank", {"save_bank": saved})] if use_bank else []
    for name, kw in (*methods, ("oracle", {"oracle": True})):
        csv = work / f"{name.replace(' ', '_')}.csv"
        if not csv.is_file():
            if name == "template bank" and saved.is_file():
                kw = {"bank": saved}
            timer(name, lambda csv=csv, kw=kw: matched_filter(data, psd, csv, seed=seed, **kw))
        out[name] = csv
    return out


def report(
    table: list[dict],
    model: str,
    baseline: str = "template bank",
    subs: dict | None = None,
    data: Path | None = None,
    goal_ratio: float = st.GOAL_RATIO,
) -> dict:
    """Print the table and the goals; returns the verdict. With the submissions ``subs``
    (method -> CSV) and the data set ``data``, also the paired bootstrap intervals of the
    model-minus-baseline AUC differences (:func:`_sensitivity_table.paired_bins`);
    ``goal_ratio``: the AUC over the oracle's the model must reach."""
    oracle_auc = st.add_ratios(table)
    print()
    print(st.format_table(table))
    row = next(r for r in table if r["method"] == model)
    verdict: dict = {"model": model}
    if oracle_auc:
        ratio = row["auc_over_oracle"]
        verdict.update(ratio=ratio, ratio_goal=goal_ratio, ratio_met=ratio >= goal_ratio)
        need = goal_ratio * oracle_auc - row["auc"]
        print(
            f"\n{model}: AUC {row['auc']:.4f} = {ratio:.3f} x oracle {oracle_auc:.4f} -> goal "
            f">= {goal_ratio} {'MET' if ratio >= goal_ratio else 'NOT MET'}"
            + (f" (short by {need:.4f} AUC)" if need > 0 else "")
        )
    bank = next((r for r in table if r["method"] == baseline), None)
    if bank is not None:
        b = st.beats(row, bank)
        verdict["beats_bank"] = b
        bins = ", ".join(f"{k}: {v}" for k, v in b["bins"].items())
        print(f"{model} vs {baseline}: AUC overall {b['overall']}; per SNR bin {bins}")
        if subs and data is not None:
            paired = st.paired_bins(subs[model], subs[baseline], data)
            verdict["paired_vs_bank"] = paired
            worse = [k for k, d in paired.items() if k != "overall" and d["verdict"] == "worse"]
            verdict["bins_resolved_worse"] = worse
            print(f"AUC difference ({model} - {baseline}), 95% paired bootstrap interval:")
            print(st.format_paired(paired))
            print(
                f"bins where the {baseline} is better beyond the test set's noise: "
                + (", ".join(worse) if worse else "none")
            )
            eff = st.paired_efficiency(subs[model], subs[baseline], data)
            verdict["paired_eff_vs_bank"] = eff
            worse_eff = {
                fap: [k for k, d in rows.items() if k != "all" and d and d["verdict"] == "worse"]
                for fap, rows in eff.items()
                if "skipped" not in rows
            }
            verdict["bins_resolved_worse_eff"] = worse_eff
            print(f"efficiency difference ({model} - {baseline}), 95% paired bootstrap interval:")
            print(st.format_paired_efficiency(eff))
            for fap, bins in worse_eff.items():
                print(
                    f"FAP {fap}: bins where the {baseline} finds more beyond the noise: "
                    + (", ".join(bins) if bins else "none")
                )
    return verdict


def main(argv=None) -> dict:
    from g2res.config import SimulateConfig, load_config
    from g2res.utils import write_json

    args = parse_args(argv)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    timer = st.Timer(work / "timings.json")
    cpu = CPU_OVERRIDES if args.cpu_overrides == "default" else []
    if args.cpu_overrides not in ("default", "none"):
        raise SystemExit(f"--cpu-overrides: 'default' or 'none', got {args.cpu_overrides!r}")
    overrides = [*cpu, f"cv.folds={args.folds}", f"seed={args.seed}", *args.overrides]
    cfg = load_config(args.recipe, overrides)
    sim = SimulateConfig(
        n_train=args.n_train,
        **test_split(args),
        snr=tuple(args.snr),
        approximant=args.approximant,
        workers=args.workers,
    )
    data, cache = prepare_data(work, sim, cfg.preprocess, args.seed, timer)
    cfg = cfg.replace({"cache": str(cache), "data_dir": str(data)})
    label = f"g2res {cfg.name} ({cfg.cv.folds} folds)"
    run = run_name(cfg.name, overrides)
    subs = {label: train_and_submit(cfg, work / "runs" / run, work / f"{run}.csv", timer, cfg.name)}
    subs.update(baselines(data, cache, work, args.seed, timer, args.bank, not args.no_bank))
    table = [st.score(name, csv, data) for name, csv in subs.items()]
    order = {"oracle": 0, "template bank": 1}
    table.sort(key=lambda r: order.get(r["method"], 2))
    verdict = report(table, label, subs=subs, data=data)
    print(f"\nsteps (wall s): {timer.wall}\nsteps (CPU s):  {timer.cpu}")
    result = {
        "benchmark": "sensitivity",
        "data": {
            "n_train": args.n_train,
            "n_test": args.n_test_noise + args.n_test_signals,
            "n_test_noise": args.n_test_noise,
            "n_test_signals": args.n_test_signals,
            "snr": list(args.snr),
            "approximant": args.approximant,
            "psd": "simulator design curves; filters and whitening use the cache's estimate",
            "seed": args.seed,
        },
        "recipe": os.path.relpath(args.recipe, ROOT),
        "overrides": overrides,
        "run": str(work / "runs" / run),
        **st.result_fields(table, verdict, timer),
    }
    write_json(args.out, result)
    title = f"{args.n_train} train / {args.n_test_noise} noise + {args.n_test_signals} signals test"
    st.plot(table, args.plot, title=f"{title}, {sim.approximant}")
    print(f"wrote {args.out} and {args.plot}")
    return result


if __name__ == "__main__":
    main()
