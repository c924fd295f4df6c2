"""The stacking rows of the sensitivity benchmarks (issue 17): a bank front-end run on the
same folds, the template bank's statistic on the train split, and logistic stacks of the
runs with that statistic, each scored next to the others in one table.

Used by ``benchmarks/sensitivity_injection.py --stack``; every step is reused when its
output exists in WORKDIR.
"""

from __future__ import annotations

from pathlib import Path

import _sensitivity_table as st
from sensitivity import run_name, train_and_submit

ROOT = Path(__file__).resolve().parents[1]
FRONTEND_RECIPE = ROOT / "pipelines" / "bank-resnet1d.yaml"
# bank-resnet1d cut for 2 CPU cores (85 s for 2 folds of 2,000 samples in its first run).
FRONTEND_CPU = [
    "model.backbone.base_width=16",
    "train.epochs=4",
    "train.ema=null",
    "train.patience=null",
]


def add_stack_args(p) -> None:
    """--stack, --frontend-recipe, --frontend-override of the stacking rows."""
    p.add_argument(
        "--stack",
        action="store_true",
        help="also train the bank front-end recipe on the same folds, filter the train split "
        "with the template bank, and add logistic stacks of the runs with the bank SNR",
    )
    p.add_argument("--frontend-recipe", default=str(FRONTEND_RECIPE))
    p.add_argument(
        "--frontend-override",
        action="append",
        default=None,
        metavar="KEY=VALUE",
        help="override of the front-end recipe (repeatable; default: "
        + " ".join(FRONTEND_CPU)
        + ")",
    )
    p.add_argument(
        "--coherent",
        type=int,
        default=0,
        metavar="K",
        help="with --stack: also the bank's coherent SNR of each sample's K best templates "
        "(g2res baseline matched-filter --coherent K) as a row and in the stacks",
    )
    p.add_argument(
        "--time-window",
        action="store_true",
        help="with --stack: also the bank with a merger-time window estimated from the train "
        "split's bank statistics (g2res baseline matched-filter --time-window-from) as a row "
        "and in the stacks",
    )
    p.add_argument(
        "--marginal",
        action="store_true",
        help="with --stack: also the bank-marginalised log likelihood ratio (the bank "
        "companions' marginal column; g2res baseline matched-filter --marginal) as a row "
        "and in the stacks",
    )


def bank_on_train(data: Path, cache: Path, work: Path, bank: Path, seed: int, timer) -> Path:
    """The template bank's raw statistics (network SNR) on the train split, for the stacker:
    WORKDIR/train_bank.raw.csv."""
    from g2res.baselines.matched_filter import companion_path, matched_filter

    out = work / "train_bank.csv"
    if not companion_path(out).is_file():
        timer(
            "template bank, train split",
            lambda: matched_filter(
                data, cache / "psd.npz", out, split="train", bank=bank, seed=seed
            ),
        )
    return companion_path(out)


def coherent_companion(
    data: Path, cache: Path, out: Path, bank, k: int, seed: int, timer, split: str = "test"
) -> Path:
    """``g2res baseline matched-filter --coherent K`` of ``split`` into ``out`` (kept when
    its companion exists) -> the ``.raw.csv`` companion (``stat`` = coherent SNR)."""
    from g2res.baselines.matched_filter import companion_path, matched_filter

    if not companion_path(out).is_file():
        timer(
            f"coherent bank, {split} split",
            lambda: matched_filter(
                data, cache / "psd.npz", out, split=split, bank=bank, seed=seed, coherent=k
            ),
        )
    return companion_path(out)


def marginal_statistics(work: Path, test_raw: Path, train_raw: Path) -> tuple[Path, Path, Path]:
    """The bank-marginalised statistic from the bank's companions -> (test submission,
    test id,marginal CSV, train id,marginal CSV) in WORKDIR/bank_marginal*.csv."""
    import pandas as pd

    from g2res.baselines.matched_filter import rank_probability

    frames = {}
    for split, raw in (("test", test_raw), ("train", train_raw)):
        frame = pd.read_csv(raw, dtype={"id": str})
        if "marginal" not in frame.columns:
            raise SystemExit(
                f"--marginal: {raw} has no marginal column (made before the statistic "
                f"existed); delete it and {raw.name.replace('.raw', '')} to filter again"
            )
        frames[split] = frame[["id", "marginal"]]
    out = (work / "bank_marginal.csv", work / "bank_marginal.stat.csv")
    train_out = work / "train_bank_marginal.stat.csv"
    test = frames["test"]
    pd.DataFrame({"id": test["id"], "target": rank_probability(test["marginal"])}).to_csv(
        out[0], index=False
    )
    test.to_csv(out[1], index=False)
    frames["train"].to_csv(train_out, index=False)
    return out[0], out[1], train_out


def windowed_bank(
    data: Path, cache: Path, work: Path, bank: Path, train_raw: Path, seed: int, timer
) -> tuple[dict[str, Path], tuple[float, float]]:
    """The bank with the merger-time window that the train split's bank statistics give
    (``train_raw``, the unwindowed companion) on both splits, and the oracle with the same
    window on the test split -> ({"test", "train", "oracle"}: submission CSVs (their
    ``.raw.csv`` companions beside them), window (s)) in WORKDIR/*bank_window.csv and
    WORKDIR/oracle_window.csv."""
    from g2res.baselines.matched_filter import companion_path, matched_filter
    from g2res.baselines.time_window import data_time_window

    window = data_time_window(train_raw, data)
    print(f"merger-time window from the train split: {window[0]:.3f}-{window[1]:.3f} s")
    outs = {
        "test": work / "bank_window.csv",
        "train": work / "train_bank_window.csv",
        "oracle": work / "oracle_window.csv",
    }
    for name, out in outs.items():
        kw = {"oracle": True} if name == "oracle" else {"bank": bank}
        if not companion_path(out).is_file():
            timer(
                f"merger-time window, {name}",
                lambda out=out, name=name, kw=kw: matched_filter(
                    data, cache / "psd.npz", out, split="train" if name == "train" else "test",
                    seed=seed, time_window=window, **kw,
                ),
            )  # fmt: skip
    return outs, window


def coherent_bank(
    data: Path, cache: Path, work: Path, bank: Path, k: int, seed: int, timer
) -> tuple[Path, Path, Path]:
    """The bank's coherent SNR (K best templates) on both splits -> (test submission, test
    companion, train companion) in WORKDIR/coherent_bank_K.csv, train_coherent_bank_K.csv."""
    test = work / f"coherent_bank_{k}.csv"
    test_raw = coherent_companion(data, cache, test, bank, k, seed, timer)
    train = work / f"train_coherent_bank_{k}.csv"
    return test, test_raw, coherent_companion(data, cache, train, bank, k, seed, timer, "train")


def stack_rows(
    args, cfg, folds_overrides: list[str], runs: dict[str, Path], work: Path, timer
) -> tuple[dict[str, Path], dict[str, Path]]:
    """Train the front-end run and write the stacks -> ({method: submission csv},
    {method: run dir} of the front-end run).

    ``runs``: {label: run dir} of the runs already trained (stacked with the front-end
    run and the bank statistic); ``folds_overrides``: the cv.folds and seed overrides, so
    every run shares one split (stacking cross-validates over it); ``cfg``: the main
    recipe's config (its cache and data directory).
    """
    from g2res.baselines.matched_filter import companion_path
    from g2res.config import load_config
    from g2res.ensemble.submit import submit

    data, cache = Path(cfg.data_dir), Path(cfg.cache)
    bank = Path(args.bank) if args.bank else work / "bank.npz"
    test_stat = companion_path(work / "template_bank.csv")
    if not bank.is_file() or not test_stat.is_file():
        raise SystemExit(f"--stack needs the template bank row ({bank}, {test_stat})")
    fe_over = [*(args.frontend_override or FRONTEND_CPU), *folds_overrides]
    fe = load_config(args.frontend_recipe, fe_over)
    fe = fe.replace({"cache": str(cache), "data_dir": str(data)})
    fe_dir = work / "runs" / run_name(fe.name, fe_over)
    fe_label = f"bank front-end {fe.name} ({fe.cv.folds} folds)"
    subs = {fe_label: train_and_submit(fe, fe_dir, work / f"{fe_dir.name}.csv", timer, fe.name)}
    train_stat = bank_on_train(data, cache, work, bank, args.seed, timer)

    stats = {"stat_train": {"bank": train_stat}, "stat_test": {"bank": test_stat}}
    groups = {f"stack: {label} + bank SNR": [d] for label, d in runs.items()}
    groups[f"stack: {fe_label} + bank SNR"] = [fe_dir]
    both = " + ".join([*runs, "front-end"])
    groups[f"stack: {both} + bank SNR"] = [*runs.values(), fe_dir]
    named_stats = {label: stats for label in groups}
    if args.coherent:
        coh_csv, coh_test, coh_train = coherent_bank(
            data, cache, work, bank, args.coherent, args.seed, timer
        )
        subs[COHERENT] = coh_csv
        coh = {"stat_train": {"coherent": coh_train}, "stat_test": {"coherent": coh_test}}
        for label, dirs in list(groups.items()):
            new = label.replace("+ bank SNR", "+ coherent SNR")
            groups[new], named_stats[new] = dirs, coh
        new = f"stack: {both} + bank SNR + coherent SNR"
        groups[new] = groups[f"stack: {both} + bank SNR"]
        named_stats[new] = {key: {**stats[key], **coh[key]} for key in ("stat_train", "stat_test")}
    variants = []  # (row, stat name, label in the stacks, test submission, test, train)
    if args.marginal:
        marg_csv, marg_test, marg_train = marginal_statistics(work, test_stat, train_stat)
        variants.append((MARGINAL, "marginal", "bank marginal", marg_csv, marg_test, marg_train))
    if args.time_window:
        win, _ = windowed_bank(data, cache, work, bank, train_stat, args.seed, timer)
        raw = {k: companion_path(v) for k, v in win.items()}
        row = (WINDOWED, "bank_window", "windowed bank SNR", win["test"], raw["test"], raw["train"])
        variants.append(row)
        subs[WINDOWED_ORACLE] = win["oracle"]
    for row, name, short, csv, test_raw, train_raw in variants:
        subs[row] = csv
        new_stats = {"stat_train": {name: train_raw}, "stat_test": {name: test_raw}}
        for label, dirs in [(k, v) for k, v in groups.items() if k.endswith("+ bank SNR")]:
            new = label.replace("+ bank SNR", f"+ {short}")
            groups[new], named_stats[new] = dirs, new_stats
        new = f"stack: {both} + bank SNR + {short}"
        groups[new] = groups[f"stack: {both} + bank SNR"]
        named_stats[new] = {key: {**stats[key], **new_stats[key]} for key in new_stats}
    for label, dirs in groups.items():
        stat_names = sorted(named_stats[label]["stat_train"])
        key = [str(d) for d in dirs] + ([] if stat_names == ["bank"] else stat_names)
        csv = work / (run_name("stack", key) + ".csv")
        if not csv.is_file():
            timer(
                label,
                lambda csv=csv, dirs=dirs, kw=named_stats[label]: submit(
                    dirs, cache, csv, stack="logistic", seed=args.seed, **kw
                ),
            )
        subs[label] = csv
    return subs, {fe_label: fe_dir}


# The bank's coherent SNR is a classical statistic: a baseline row, never "the best g2res".
COHERENT = "template bank, coherent SNR"
MARGINAL = "template bank, marginalised over templates"
WINDOWED = "template bank, merger-time window"
# The oracle with the same prior: what the ratio to the oracle is worth once the bank has it.
WINDOWED_ORACLE = "oracle, merger-time window"
BASELINES = ("oracle", "template bank", COHERENT, MARGINAL, WINDOWED, WINDOWED_ORACLE)


def best_g2res(table: list[dict], baselines=BASELINES) -> str:
    """The method of the highest-AUC row that is not a baseline."""
    rows = [r for r in table if r["method"] not in baselines]
    return max(rows, key=lambda r: r["auc"])["method"]


def paired_summary(subs: dict, data: Path, baseline: str = "template bank") -> list[dict]:
    """Every g2res row minus the baseline: AUC overall and efficiency at each FAP overall
    with their paired intervals, and the bins where the baseline is better beyond the
    noise (AUC and efficiency at FAP 1e-2)."""
    out = []
    for name, csv in subs.items():
        if name == baseline or name.startswith("oracle"):
            continue
        auc = st.paired_bins(csv, subs[baseline], data)
        eff = st.paired_efficiency(csv, subs[baseline], data)
        row = {"method": name, "auc": auc["overall"]}
        for fap, rows in eff.items():
            if "skipped" in rows:  # too few noise samples for this FAP
                row[f"eff_{fap}"], row[f"bins_worse_eff_{fap}"] = None, []
                continue
            row[f"eff_{fap}"] = rows.get("all")
            row[f"bins_worse_eff_{fap}"] = [
                k for k, d in rows.items() if k != "all" and d and d.get("verdict") == "worse"
            ]
        row["bins_worse_auc"] = [
            k for k, d in auc.items() if k != "overall" and d["verdict"] == "worse"
        ]
        out.append(row)
    return out


def format_summary(rows: list[dict], baseline: str = "template bank") -> str:
    """One line per g2res row: difference from the baseline with interval and verdict."""

    def cell(d):
        if not d:
            return "-"
        return f"{d['diff']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}] {d['verdict']}"

    keys = [k for k in rows[0] if k.startswith("eff_")] if rows else []
    if not rows:
        return f"minus {baseline}: no rows"
    lines = [f"minus {baseline}: AUC | " + " | ".join(f"efficiency {k[4:]}" for k in keys)]
    for r in rows:
        bad = set(r["bins_worse_auc"]) | {b for k in keys for b in r[f"bins_worse_{k}"]}
        worse = [b for b in st.BIN_NAMES if b in bad]
        lines.append(
            f"  {r['method']}: {cell(r['auc'])} | "
            + " | ".join(cell(r[k]) for k in keys)
            + f" | bins worse: {', '.join(worse) if worse else 'none'}"
        )
    return "\n".join(lines)
