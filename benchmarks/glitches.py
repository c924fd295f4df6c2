"""Does g2res hold its sensitivity in glitchy, drifting noise? (issue 18)

Two simulated data sets from one seed share their noise draws, signals and labels:

- ``clean``: stationary Gaussian noise of the design PSDs (as benchmarks/sensitivity.py);
- ``glitchy``: the same with ``--psd-drift`` (default 0.2) and glitches in a share
  (default 30%) of the noise and of the signal samples (Poisson rate -ln(1 - share) per
  sample, SNR 8-50, one detector each; ``g2res simulate --glitch-rate``).

Each is preprocessed with the same settings. Then on the glitchy set (test split):

1. the recipe trained on the glitchy training split without glitch augmentation;
2. the same recipe with ``augment.glitch`` (default 0.3, SNR 8-50);
3. both again with the autogate ``model.gate.threshold=--gate`` (default 7 sigma;
   ``--gate 0`` leaves these rows out);
4. the template bank without and with the chi-squared veto (``--chisq-bins``), with the
   autogate (``--gate``) and with both, and the exact-template oracle (``--no-bank``:
   only the oracle); with ``--bank-psd-var`` every bank row divides each sample's own PSD
   variation out first (``matched-filter --psd-var``), and with ``--bank-time-window``
   every bank row keeps to the merger-time window the glitchy training split gives
   (``matched-filter --time-window-from``);
5. a logistic stack (``g2res submit --stack``) of the network row of best AUC (or
   ``--stack-network``) with the vetoed bank statistic (newSNR of ``--stack-bank``: the
   plain or the gated vetoed bank; the bank also filters the glitchy training split for
   it; ``--no-stack`` leaves it out);

``--networks`` trains a subset of the glitchy-set network rows (``augment.glitch`` always).
``--seeds N`` trains every network (the clean reference too) with N seeds on the first
seed's folds: its row is their mean blend and the stack takes each seed as an input (one
run scores differently from the next by about as much as the goal, so the loss of one
pair of runs says little).

and, for reference, the recipe trained and scored on the clean set. The tables give AUC
overall and per network-SNR bin, efficiency at 1% false-positive rate per bin, efficiency
at FAP 1e-2 and 1e-3 with 95% bootstrap intervals (benchmarks/_sensitivity_table.py), and
for every method the FAP on glitchy noise at its own clean-noise 1e-2 threshold (each
method also scores the clean test split; the bank by its raw statistic) with 95%
binomial and bootstrap intervals (benchmarks/_glitch_report.py).
Goals (issue 18): with augmentation g2res loses at most 0.01 AUC against the clean
run (the loss is printed with its 95% paired bootstrap interval, both test splits sharing
ids and signals: ``met`` when the whole interval is at most 0.01); its false-alarm
probability on glitchy noise at its own clean-noise 1e-2 threshold stays below 2e-2; and
it is not worse than the vetoed bank beyond the test set's noise (95% paired bootstrap, AUC
and efficiency at FAP 1e-2) in any bin.
Writes benchmarks/results/glitches.json. Steps whose outputs exist in WORKDIR are reused.

    python benchmarks/glitches.py --workdir /tmp/g2res-glitch
    python benchmarks/glitches.py --workdir /tmp/g2res-glitch-tiny --n-train 64 --n-test 32 \\
        --folds 2 --no-bank train.epochs=1          # a smoke run, minutes
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _glitch_report as gr  # noqa: E402
import _sensitivity_table as st  # noqa: E402
import sensitivity as sens  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
GOAL_AUC_LOSS = 0.01
GOAL_FAP = 2e-2
CLEAN_STACK = "stack on clean data (reference)"
NETWORK_ROWS = ("no augmentation", "augment.glitch", "gate", "gate + augment.glitch")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--workdir", required=True, help="data sets, caches, runs and submissions")
    p.add_argument("--recipe", default=str(ROOT / "pipelines" / "cqt-resnet18.yaml"))
    p.add_argument("--n-train", type=int, default=2000)
    p.add_argument("--n-test", type=int, default=1000)
    p.add_argument("--snr", type=float, nargs=2, default=(4.0, 16.0), metavar=("LO", "HI"))
    p.add_argument("--approximant", default="IMRPhenomXPHM")
    p.add_argument("--folds", type=int, default=3)
    p.add_argument(
        "--glitch-share",
        type=float,
        default=0.3,
        help="fraction of samples (noise and signal) with at least one glitch",
    )
    p.add_argument("--glitch-snr", type=float, nargs=2, default=(8.0, 50.0), metavar=("LO", "HI"))
    p.add_argument("--psd-drift", type=float, default=0.2)
    p.add_argument(
        "--augment-glitch",
        type=float,
        default=0.3,
        help="augment.glitch probability of the augmented run",
    )
    p.add_argument("--chisq-bins", type=int, default=16, help="p of the vetoed bank")
    p.add_argument("--bank", default=None, help="template bank .npz to reuse")
    p.add_argument("--no-bank", action="store_true", help="leave the bank rows (and the stack) out")
    p.add_argument(
        "--bank-psd-var",
        action="store_true",
        help="every bank row corrects each sample for its own PSD variation (matched-filter "
        "--psd-var; the oracle stays as it is)",
    )
    p.add_argument(
        "--bank-time-window",
        action="store_true",
        help="every bank row only peaks at merger times within the window that the "
        "--stack-bank row's statistics of the glitchy training split give "
        "(matched-filter --time-window-from)",
    )
    p.add_argument("--no-stack", action="store_true", help="leave the stack row out")
    p.add_argument(
        "--networks",
        nargs="+",
        default=None,
        choices=NETWORK_ROWS,
        metavar="ROW",
        help="glitchy-set network rows to train (default: all; the gated ones need --gate)",
    )
    p.add_argument(
        "--stack-network",
        default=None,
        choices=NETWORK_ROWS,
        metavar="ROW",
        help="the network row in the stack (default: the one of best AUC)",
    )
    p.add_argument(
        "--stack-bank",
        default="template bank + chisq",
        choices=["template bank + chisq", "template bank + gate + chisq"],
        help="the bank row whose newSNR joins the stack (+ gate: needs --gate)",
    )
    p.add_argument(
        "--gate",
        type=float,
        default=7.0,
        help="model.gate.threshold and --gate of the gated rows (0: no gated rows)",
    )
    p.add_argument(
        "--cpu-overrides",
        default="default",
        help="'default': " + " ".join(sens.CPU_OVERRIDES) + "; 'none'",
    )
    p.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="train each network (and the clean reference) with seeds SEED..SEED+N-1 on the "
        "first seed's folds; its row is their mean blend, the stack takes every seed",
    )
    p.add_argument("--workers", type=int, default=2, help="simulation processes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(RESULTS / "glitches.json"))
    p.add_argument(
        "--plot",
        default=str(RESULTS / "glitches.png"),
        help="AUC and efficiency at FAP 1e-2 / 1e-3 (95%% bands) per SNR bin for every row",
    )
    p.add_argument("overrides", nargs="*", help="further recipe overrides key=value")
    return p.parse_args(argv)  # fmt: skip


def rate_for_share(share: float) -> float:
    """Poisson rate giving P(at least one glitch) = ``share``."""
    if not 0 <= share < 1:
        raise SystemExit(f"--glitch-share {share}: need a fraction in [0, 1)")
    return -math.log1p(-share)


def slug(name: str) -> str:
    return name.replace(" + ", "_plus_").replace(" ", "_").replace("+", "plus")


def bank_stem(name: str, args) -> str:
    """File stem of a bank row's outputs (``--bank-psd-var`` and ``--bank-time-window``
    ones apart)."""
    window = "_window" if args.bank_time_window else ""
    return slug(name) + ("_psdvar" if args.bank_psd_var else "") + window


def bank_methods(args) -> list[tuple[str, dict, str]]:
    """(row name, matched_filter keywords, .raw.csv column ranked) of the bank rows."""
    veto = {"chisq_bins": args.chisq_bins}
    rows = [("template bank", {}, "snr"), ("template bank + chisq", veto, "newsnr")]
    if args.gate > 0:
        gate = {"gate": args.gate}
        rows += [
            ("template bank + gate", gate, "snr"),
            ("template bank + gate + chisq", {**gate, **veto}, "newsnr"),
        ]
    if args.bank_psd_var:
        rows = [(n, {**kw, "psd_var": True}, c) for n, kw, c in rows]
    if getattr(args, "window", None) is not None:  # main() reads it off the train split
        rows = [(n, {**kw, "time_window": args.window}, c) for n, kw, c in rows]
    return rows


def estimate_window(glitchy: Path, cache: Path, saved: Path, work: Path, args, timer):
    """The merger-time window of ``--bank-time-window``, read off the glitchy training split
    by g2res.baselines.time_window.data_time_window from the ``--stack-bank`` row
    without a window: a glitch outdoes most signals in the bank's plain SNR, not in its
    gated or vetoed newSNR."""
    from g2res.baselines.matched_filter import companion_path
    from g2res.baselines.time_window import data_time_window

    kw = {n: kw for n, kw, _ in bank_methods(args)}[args.stack_bank]  # args.window unset
    csv = work / f"bank_{bank_stem(args.stack_bank, args)}_train_for_window.csv"
    run_bank(glitchy, cache, csv, kw, saved, args, timer, "bank train split (window)", "train")
    window = data_time_window(companion_path(csv), glitchy)
    print(f"merger-time window from the glitchy train split: {window[0]:.3f}-{window[1]:.3f} s")
    return window


def run_bank(data, cache, csv, kw, saved, args, timer, label, split="test") -> Path:
    """``matched_filter`` of ``split`` of ``data`` with the cache's PSD into ``csv`` (kept
    when it exists); the bank is ``saved`` (placed for the glitchy cache's PSD once)."""
    from g2res.baselines.matched_filter import matched_filter

    if not csv.is_file():
        kw = {**kw, **({"bank": saved} if saved.is_file() else {"save_bank": saved})}
        timer(
            label,
            lambda: matched_filter(data, cache / "psd.npz", csv, split=split, seed=args.seed, **kw),
        )
    return csv


def clean_stack(clean, cache, runs, bank_row, kw, test_raw, saved, work, args, timer) -> Path:
    """The clean run stacked with ``bank_row``'s newSNR, fitted on the clean training
    split and applied to the clean test split (``test_raw``) -> its submission CSV."""
    from g2res.baselines.matched_filter import companion_path
    from g2res.ensemble.submit import submit

    tag = bank_stem(bank_row, args)
    train = work / f"bank_{tag}_clean_train.csv"
    train_raw = companion_path(
        run_bank(
            clean,
            cache,
            train,
            kw,
            saved,
            args,
            timer,
            f"{bank_row}, clean train split",
            split="train",
        )  # fmt: skip
    )
    stat = {
        split: gr.write_statistic(raw, "newsnr", work / f"newsnr_{tag}_clean_{split}.csv")
        for split, raw in (("train", train_raw), ("test", test_raw))
    }
    out = work / f"stack-{ensemble_name(runs)}-{tag}.csv"
    if not out.is_file():
        timer(
            f"submit {out.stem}",
            lambda: submit(runs, cache, out, stack="logistic", seed=args.seed,
                           stat_train={"bank": stat["train"]}, stat_test={"bank": stat["test"]}),
        )  # fmt: skip
    return out


def ensemble_name(runs: list[Path]) -> str:
    """A file stem for one run (its name) or several seeds of it (``<first>-seeds<N>``)."""
    return runs[0].name if len(runs) == 1 else f"{runs[0].name}-seeds{len(runs)}"


def auc_loss(clean_csv, glitchy_csv, glitchy: Path, goal: float = GOAL_AUC_LOSS) -> dict:
    """AUC on clean minus AUC on glitchy data with its 95% paired bootstrap interval.

    Both test splits come from one seed and share ids, labels and injections, so the
    samples are resampled together. ``verdict``: ``met`` when the whole interval is at most
    ``goal``, ``not met`` when all of it is above, else ``not resolved``."""
    d = dict(st.paired_bins(clean_csv, glitchy_csv, glitchy)["overall"])
    d["goal"] = goal
    d["verdict"] = loss_verdict(d["low"], d["high"], goal)
    return d


def loss_verdict(low: float, high: float, goal: float) -> str:
    """``met`` (``high <= goal``), ``not met`` (``low > goal``) or ``not resolved``."""
    if low > high:
        raise ValueError(f"interval [{low}, {high}] is reversed")
    return "met" if high <= goal else "not met" if low > goal else "not resolved"


def compare_with(name: str, other: str, subs: dict, data: Path) -> dict:
    """Paired AUC (overall, per bin) and efficiency (per FAP and bin) of ``name`` minus
    ``other``, printed; the bins where ``other`` is better beyond the noise."""
    paired = st.paired_bins(subs[name], subs[other], data)
    eff = st.paired_efficiency(subs[name], subs[other], data)
    worse = [k for k, d in paired.items() if k != "overall" and d["verdict"] == "worse"]
    worse_eff = {
        fap: [k for k, d in rows.items() if k != "all" and d and d["verdict"] == "worse"]
        for fap, rows in eff.items()
        if "skipped" not in rows
    }
    print(f"\nAUC difference ({name} - {other}), 95% paired bootstrap:")
    print(st.format_paired(paired))
    print(f"efficiency difference ({name} - {other}), 95% paired bootstrap:")
    print(st.format_paired_efficiency(eff))
    print(
        f"bins where {other} is better beyond the noise: AUC "
        + (", ".join(worse) or "none")
        + "; "
        + "; ".join(f"FAP {f}: {', '.join(b) or 'none'}" for f, b in worse_eff.items())
    )
    return {
        "auc": paired,
        "efficiency": eff,
        "bins_worse_auc": worse,
        "bins_worse_eff": worse_eff,
        "met": not worse and not any(worse_eff.values()),
    }


def main(argv=None) -> dict:
    from g2res.baselines.matched_filter import companion_path, matched_filter
    from g2res.config import SimulateConfig, load_config
    from g2res.ensemble.submit import submit
    from g2res.utils import write_json

    args = parse_args(argv)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    timer = st.Timer(work / "timings.json")
    if args.cpu_overrides not in ("default", "none"):
        raise SystemExit(f"--cpu-overrides: 'default' or 'none', got {args.cpu_overrides!r}")
    cpu = sens.CPU_OVERRIDES if args.cpu_overrides == "default" else []
    overrides = [*cpu, f"cv.folds={args.folds}", f"seed={args.seed}", *args.overrides]
    cfg = load_config(args.recipe, overrides)
    rate = rate_for_share(args.glitch_share)
    base = dict(
        n_train=args.n_train,
        n_test=args.n_test,
        snr=tuple(args.snr),
        approximant=args.approximant,
        workers=args.workers,
    )
    sims = {
        "clean": SimulateConfig(**base),
        "glitchy": SimulateConfig(
            **base, glitch_rate=rate, glitch_snr=tuple(args.glitch_snr), psd_drift=args.psd_drift
        ),
    }
    sets = {}
    for name, sim in sims.items():
        sub = work / name
        sub.mkdir(exist_ok=True)
        sets[name] = sens.prepare_data(sub, sim, cfg.preprocess, args.seed, timer)
    (clean, clean_cache), (glitchy, glitchy_cache) = sets["clean"], sets["glitchy"]

    aug = [
        f"augment.glitch={args.augment_glitch}",
        f"augment.glitch_snr=[{args.glitch_snr[0]},{args.glitch_snr[1]}]",
    ]
    gate = [f"model.gate.threshold={args.gate}"] if args.gate > 0 else []
    extras = {"no augmentation": [], "augment.glitch": aug}
    if gate:
        extras.update({"gate": gate, "gate + augment.glitch": [*gate, *aug]})
    chosen = args.networks or list(extras)
    if lacking := [n for n in chosen if n not in extras]:
        raise SystemExit(f"--networks {', '.join(lacking)}: gated rows need --gate > 0")
    if "augment.glitch" not in chosen:
        raise SystemExit("--networks must include augment.glitch (the goals are read off it)")
    runs = {"clean": (clean, clean_cache, [])}
    runs.update({n: (glitchy, glitchy_cache, extras[n]) for n in chosen})
    if args.stack_bank not in [n for n, _, _ in bank_methods(args)]:
        raise SystemExit(f"--stack-bank {args.stack_bank!r} needs --gate > 0")
    subs: dict[str, Path] = {}
    # method -> (glitchy test CSV, clean test CSV, column): its FAP at its clean threshold
    sources: dict[str, tuple[Path, Path, str]] = {}
    if args.seeds < 1:
        raise SystemExit(f"--seeds {args.seeds}: need at least 1")
    run_dirs: dict[str, list[Path]] = {}
    seed_aucs: dict[str, list[float]] = {}  # row -> AUC of each seed alone
    for label, (data, cache, extra) in runs.items():
        run_dirs[label], seed_csvs = [], []
        for j in range(args.seeds):
            # Later seeds adopt the first seed's folds: one split, so they stack leak-free.
            again = [f"seed={args.seed + j}"] if j else []
            name = sens.run_name(f"{cfg.name}-{data.parent.name}", [*overrides, *extra, *again])
            if j:
                again.append(f"cv.folds_file={run_dirs[label][0] / 'folds.csv'}")
            c = cfg.replace([*extra, *again, f"cache={cache}", f"data_dir={data}"])
            run_dirs[label].append(work / "runs" / name)
            tag = label if not j else f"{label}, seed {args.seed + j}"
            seed_csvs.append(
                sens.train_and_submit(c, run_dirs[label][-1], work / f"{name}.csv", timer, tag)
            )
        stem = ensemble_name(run_dirs[label])
        csv = seed_csvs[0]
        if args.seeds > 1:  # the seeds' mean blend, each with its recipe's TTA
            csv = work / f"{stem}.csv"
            if not csv.is_file():
                timer(
                    f"submit {label}, {args.seeds} seeds",
                    lambda r=run_dirs[label], o=csv, c=cache: submit(r, c, o),
                )
            seed_aucs[label] = [st.score(label, f, data)["auc"] for f in seed_csvs]
        subs[f"g2res {label}"] = csv
        if label != "clean":  # the runs on the clean test split: their clean-noise threshold
            on_clean = work / f"{stem}_on_clean.csv"  # named by the runs: new runs miss it
            if not on_clean.is_file():
                timer(
                    f"submit {label} on clean",
                    lambda r=run_dirs[label], o=on_clean: submit(r, clean_cache, o),
                )
            sources[f"g2res {label}"] = (subs[f"g2res {label}"], on_clean, "target")
    for label, aucs in seed_aucs.items():
        print(f"{label}: AUC per seed " + ", ".join(f"{a:.4f}" for a in aucs))

    saved = Path(args.bank) if args.bank else work / "bank.npz"
    args.window = None
    if args.bank_time_window and not args.no_bank:
        args.window = estimate_window(glitchy, glitchy_cache, saved, work, args, timer)
    if not args.no_bank:
        for name, kw, column in bank_methods(args):
            csv = run_bank(
                glitchy,
                glitchy_cache,
                work / f"{bank_stem(name, args)}.csv",
                kw,
                saved,
                args,
                timer,
                name,
            )
            on_clean = run_bank(
                clean,
                clean_cache,
                work / f"{bank_stem(name, args)}_on_clean.csv",
                kw,
                saved,
                args,
                timer,
                f"{name} on clean",
            )
            subs[name] = csv
            sources[name] = (companion_path(csv), companion_path(on_clean), column)
    csv = work / "oracle.csv"
    if not csv.is_file():
        timer(
            "oracle",
            lambda: matched_filter(
                glitchy, glitchy_cache / "psd.npz", csv, oracle=True, seed=args.seed
            ),
        )
    subs["oracle"] = csv

    table = {
        n: st.score(n, csv, clean if n == "g2res clean" else glitchy) for n, csv in subs.items()
    }
    network = [n for n in subs if n.startswith("g2res ") and n != "g2res clean"]
    best = max(network, key=lambda n: table[n]["auc"])
    vetoed, gated = "template bank + chisq", "template bank + gate + chisq"
    stack_name = None
    if not args.no_bank and not args.no_stack:  # --- the best network row + the bank's newSNR
        sb = args.stack_bank
        veto_kw = {n: kw for n, kw, _ in bank_methods(args)}[sb]
        tag = bank_stem("chisq" if sb == vetoed else sb, args)
        train_raw = companion_path(
            run_bank(
                glitchy,
                glitchy_cache,
                work / f"bank_{tag}_train.csv",
                veto_kw,
                saved,
                args,
                timer,
                f"bank train split ({sb})",
                split="train",
            )
        )
        stat = {
            split: gr.write_statistic(raw, "newsnr", work / f"newsnr_{tag}_{split}.csv")
            for split, raw in (
                ("train", train_raw),
                ("test", sources[sb][0]),
                ("clean", sources[sb][1]),
            )
        }
        net = f"g2res {args.stack_network}" if args.stack_network else best
        if net not in subs:
            raise SystemExit(f"--stack-network {args.stack_network}: not among --networks")
        stack_name = f"stack: {net} + bank newSNR" + (" (gated)" if sb == gated else "")
        stacked = run_dirs[net.removeprefix("g2res ")]
        stem = f"stack-{ensemble_name(stacked)}-{tag}"
        for out, cache, test in (
            (work / f"{stem}.csv", glitchy_cache, stat["test"]),
            (work / f"{stem}_on_clean.csv", clean_cache, stat["clean"]),
        ):
            if not out.is_file():
                timer(
                    f"submit {out.stem}",
                    lambda o=out, c=cache, t=test: submit(
                        stacked,
                        c,
                        o,
                        stack="logistic",
                        stat_train={"bank": stat["train"]},
                        stat_test={"bank": t},
                        seed=args.seed,
                    ),
                )
        subs[stack_name] = work / f"{stem}.csv"
        sources[stack_name] = (work / f"{stem}.csv", work / f"{stem}_on_clean.csv", "target")
        table[stack_name] = st.score(stack_name, subs[stack_name], glitchy)
        # the same pipeline on the clean set: the AUC-loss reference of the stack
        ref = clean_stack(clean, clean_cache, run_dirs["clean"], sb, veto_kw, sources[sb][1],
                          saved, work, args, timer)  # fmt: skip
        table[CLEAN_STACK] = st.score(CLEAN_STACK, ref, clean)

    rows = list(table.values())
    order = {"oracle": 0, **{n: i + 1 for i, (n, _, _) in enumerate(bank_methods(args))}}
    rows.sort(key=lambda r: order.get(r["method"], 10))
    st.add_ratios(rows)
    print()
    print(st.format_table(rows))

    glitched = gr.glitched_mask(glitchy)
    faps, lost = {}, {}
    for name, (g_csv, c_csv, column) in sources.items():
        y0, p0 = gr.scores(c_csv, clean, column)
        y1, p1 = gr.scores(g_csv, glitchy, column)
        faps[name] = gr.fap_at_clean_threshold(
            p0[y0 == 0], p1[y1 == 0], glitched[y1 == 0], seed=args.seed
        )
        lost[name] = gr.where_lost(y0, p0, y1, p1, glitched)
    print(
        f"\nFAP on glitchy test noise at each method's clean-noise {gr.FAP:g} threshold "
        "(binomial: threshold fixed; bootstrap: clean and glitchy noise resampled):"
    )
    print(gr.format_fap_rows(faps))
    print("\nWhere the AUC goes (each method fitted on the glitchy set, scored on the same ids):")
    print(gr.format_where_lost(lost))

    loss = table["g2res clean"]["auc"] - table["g2res augment.glitch"]["auc"]
    fa = faps["g2res augment.glitch"]
    verdict = {
        "seeds": args.seeds,
        "auc_per_seed": seed_aucs,
        "auc_loss": loss,
        "auc_loss_goal": GOAL_AUC_LOSS,
        "auc_loss_met": loss <= GOAL_AUC_LOSS,
        "auc_loss_interval": auc_loss(subs["g2res clean"], subs["g2res augment.glitch"], glitchy),
        "best_network_row": best,
        "auc_loss_best": table["g2res clean"]["auc"] - table[best]["auc"],
        "false_alarms": faps,
        "where_lost": lost,
        "fap_goal": GOAL_FAP,
        "fap_met": fa["all"]["fap"] < GOAL_FAP,
        "fap_met_best": faps[best]["all"]["fap"] < GOAL_FAP,
    }
    if stack_name:  # the stack against the same pipeline on the clean set
        verdict["auc_loss_stack"] = table[CLEAN_STACK]["auc"] - table[stack_name]["auc"]
        verdict["auc_loss_stack_met"] = verdict["auc_loss_stack"] <= GOAL_AUC_LOSS
        sl = verdict["auc_loss_stack_interval"] = auc_loss(ref, subs[stack_name], glitchy)
        verdict["fap_met_stack"] = faps[stack_name]["all"]["fap"] < GOAL_FAP
        print(
            f"{stack_name}: AUC {table[stack_name]['auc']:.4f} vs {table[CLEAN_STACK]['auc']:.4f}"
            f" on clean data: loss {sl['diff']:+.4f} [{sl['low']:+.4f}, {sl['high']:+.4f}] "
            f"(goal <= {GOAL_AUC_LOSS}: {sl['verdict'].upper()}); FAP at its clean "
            f"threshold {faps[stack_name]['all']['fap']:.4f}"
        )
    li = verdict["auc_loss_interval"]
    print(
        f"\naugment.glitch: AUC {table['g2res augment.glitch']['auc']:.4f} vs clean "
        f"{table['g2res clean']['auc']:.4f}: loss {loss:+.4f} [{li['low']:+.4f}, "
        f"{li['high']:+.4f}] (goal <= {GOAL_AUC_LOSS}: {li['verdict'].upper()}); "
        f"best network row {best}: "
        f"loss {verdict['auc_loss_best']:+.4f}"
    )
    print(
        f"FAP on glitchy noise at the clean 1e-2 threshold (augment.glitch): "
        f"{fa['all']['fap']:.4f} [{fa['all']['boot_low']:.4f}, {fa['all']['boot_high']:.4f}] "
        f"-> goal < {GOAL_FAP} {'MET' if verdict['fap_met'] else 'NOT MET'}; {best}: "
        f"{faps[best]['all']['fap']:.4f}"
    )
    if vetoed in subs:
        verdict["vs_vetoed_bank"] = {
            n: compare_with(n, vetoed, subs, glitchy)
            for n in dict.fromkeys(["g2res augment.glitch", best, stack_name])
            if n
        }
    if gated in subs and stack_name:  # the strongest classical row, for the record
        versus = compare_with(stack_name, gated, subs, glitchy)
        verdict["vs_gated_vetoed_bank"] = {stack_name: versus}
    print(f"\nsteps (wall s): {timer.wall}\nsteps (CPU s):  {timer.cpu}")
    result = {
        "benchmark": "glitches",
        "data": {
            **{k: (list(v) if isinstance(v, tuple) else v) for k, v in base.items()},
            "glitch_share": args.glitch_share,
            "glitch_rate": rate,
            "glitch_snr": list(args.glitch_snr),
            "psd_drift": args.psd_drift,
            "seed": args.seed,
        },
        "recipe": os.path.relpath(args.recipe, ROOT),
        "overrides": overrides,
        "augment": aug,
        "gate": gate,
        "chisq_bins": args.chisq_bins,
        "bank_psd_var": args.bank_psd_var,
        "bank_time_window": args.window,
        "runs": {k: [str(r) for r in v] for k, v in run_dirs.items()},
        **st.result_fields(rows, verdict, timer),
    }
    write_json(args.out, result)
    title = (
        f"glitchy test split ({args.glitch_share:.0%} glitched, PSD drift {args.psd_drift:g}), "
        f"{args.approximant}; 'g2res clean' and the clean stack: the clean split"
    )
    st.plot(rows, args.plot, title=title)
    print(f"wrote {args.out} and {args.plot}")
    return result


if __name__ == "__main__":
    main()
