"""Sensitivity with injection pretraining (issue 10): the plain recipe vs injection-pretrained
+ fine-tuned vs the template bank and the oracle, on a data set the pool was not made for.

The data set is simulated with an aligned-spin approximant (IMRPhenomD) and a PSD file
(aLIGO/AdV O3low curves, LIGO-T1800545; L1 scaled by 1.3) while the pool keeps its
defaults (IMRPhenomXPHM, precessing, 5-100 Msun log-uniform) and the injections are
whitened with the PSD the cache estimated. Steps (each reused when its output exists in
WORKDIR; an interrupted cv-train or pretrain resumes):

1. simulate -> data/, preprocess -> cache/, g2res waveforms -> pool/ (or --pool);
2. plain: cv-train of the recipe with injection.mode=off from random weights ->
   runs/plain, submit;
3. g2res pretrain on injections -> runs/pre; cv-train from runs/pre/best.pt
   (train.init_from) -> runs/ft, submit;
4. template bank and oracle (g2res.baselines.matched_filter) on the same test split;
5. the table of benchmarks/sensitivity.py (benchmarks/_sensitivity_table.py) and the
   goals: the pretrained ensemble beats the bank overall and in every SNR bin and
   reaches >= 0.97 of the oracle AUC.

Writes benchmarks/results/sensitivity_injection.json and sensitivity_injection.png.

    python benchmarks/sensitivity_injection.py --workdir /tmp/si --pool POOL \\
        --bank BANK.npz --pretrain-steps 300
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _sensitivity_table as st  # noqa: E402
import _stacking  # noqa: E402
from sensitivity import (  # noqa: E402
    add_test_size_args,
    baselines,
    prepare_data,
    report,
    run_name,
    test_split,
    train_and_submit,
)

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).resolve().parents[1]
# inject-pretrain-resnet1d cut for 2 shared CPU cores: a quarter-width 1D ResNet-18
# (base width 16: 0.55 M parameters), 3 folds of 3 epochs.
CPU_OVERRIDES = ["model.backbone.base_width=16", "train.epochs=3"]


def o3low_psd_file(path: Path) -> Path:
    """aLIGO O3low (H1; L1 x 1.3) and AdV O3low (V1) PSDs as a --psd text file."""
    import lal
    import lalsimulation as ls

    if path.is_file():
        return path
    df, n = 0.5, 2048
    f = np.arange(n) * df

    def curve(fn):
        s = lal.CreateREAL8FrequencySeries("psd", lal.LIGOTimeGPS(0), 0.0, df, lal.StrainUnit, n)
        fn(s, 10.0)
        out = s.data.data.copy()
        out[f < 10] = out[f >= 10][0]
        return out

    h, v = curve(ls.SimNoisePSDaLIGOO3LowT1800545), curve(ls.SimNoisePSDAdVO3LowT1800545)
    keep = (f > 0) & (h > 0) & (v > 0)
    np.savetxt(path, np.column_stack([f[keep], h[keep], 1.3 * h[keep], v[keep]]))
    return path


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--workdir", required=True)
    p.add_argument("--recipe", default=str(ROOT / "pipelines" / "inject-pretrain-resnet1d.yaml"))
    p.add_argument("--n-train", type=int, default=2000)
    add_test_size_args(p)
    p.add_argument("--pool", default=None, help="existing waveform pool (default WORKDIR/pool)")
    p.add_argument("--pool-size", type=int, default=20_000, help="sources when making the pool")
    p.add_argument("--pretrain-steps", type=int, default=300)
    p.add_argument(
        "--curriculum-fraction",
        type=float,
        default=0.5,
        help="share of the pretraining steps that anneal the SNR from loud to the target",
    )
    p.add_argument("--folds", type=int, default=3)
    p.add_argument(
        "--cpu-overrides",
        default="default",
        help="'default': " + " ".join(CPU_OVERRIDES) + "; 'none': the recipe as written",
    )
    p.add_argument("--bank", default=None, help="template bank .npz to reuse")
    p.add_argument("--no-bank", action="store_true", help="leave the template bank row out")
    p.add_argument(
        "--no-plain",
        action="store_true",
        help="leave out the plain recipe from random weights (the reference of issue 10)",
    )
    _stacking.add_stack_args(p)
    p.add_argument(
        "--goal-ratio",
        type=float,
        default=st.GOAL_RATIO,
        help="AUC over the oracle's the best g2res row must reach (issue 17: 0.99)",
    )
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", default=str(RESULTS / "sensitivity_injection.json"))
    p.add_argument("--plot", default=str(RESULTS / "sensitivity_injection.png"))
    p.add_argument("overrides", nargs="*", help="recipe overrides key=value")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    from g2res.config import SimulateConfig, load_config
    from g2res.data.pool import PoolConfig, make_pool
    from g2res.train.pretrain import pretrain
    from g2res.utils import write_json

    args = parse_args(argv)
    if args.cpu_overrides not in ("default", "none"):
        raise SystemExit(f"--cpu-overrides: 'default' or 'none', got {args.cpu_overrides!r}")
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    timer = st.Timer(work / "timings.json")
    sim = SimulateConfig(
        n_train=args.n_train,
        **test_split(args),
        snr=(4.0, 16.0),
        approximant="IMRPhenomD",
        psd=str(o3low_psd_file(work / "psd_o3low.txt")),
        workers=args.workers,
    )
    cpu = CPU_OVERRIDES if args.cpu_overrides == "default" else []
    overrides = [*cpu, f"cv.folds={args.folds}", f"seed={args.seed}", *args.overrides]
    cfg = load_config(args.recipe, overrides)
    data, cache = prepare_data(work, sim, cfg.preprocess, args.seed, timer)
    pool = Path(args.pool) if args.pool else work / "pool"
    if not (pool / "manifest.json").is_file():
        pool_cfg = PoolConfig(n=args.pool_size, workers=args.workers)
        timer("waveforms", lambda: make_pool(pool, pool_cfg, seed=args.seed))
    cfg = cfg.replace({"cache": str(cache), "data_dir": str(data)})

    runs = work / "runs"
    if not 0.0 <= args.curriculum_fraction <= 1.0:
        raise SystemExit(f"--curriculum-fraction: in [0, 1], got {args.curriculum_fraction}")
    pre_key = [*overrides, f"steps={args.pretrain_steps}", str(pool)]
    if args.curriculum_fraction != 0.5:  # keeps the names of runs made before the option
        pre_key.append(f"curriculum={args.curriculum_fraction:g}")
    pre_dir = runs / run_name("pre", pre_key)
    plain_dir, ft_dir = runs / run_name("plain", overrides), runs / f"ft-{pre_dir.name}"
    plain = cfg.replace({"injection.mode": "off", "train.init_from": None, "name": "plain"})
    pre = cfg.replace(
        {
            "injection.mode": "pretrain",
            "injection.pool": str(pool),
            "injection.steps": args.pretrain_steps,
            "injection.curriculum_steps": int(args.pretrain_steps * args.curriculum_fraction),
            "injection.eval_every": max(1, args.pretrain_steps // 6),
        }
    )
    ft = cfg.replace(
        {"injection.mode": "off", "train.init_from": str(pre_dir / "best.pt"), "name": "ft"}
    )
    n = cfg.cv.folds
    subs = {}
    if not args.no_plain:
        subs[f"plain {cfg.name} ({n} folds)"] = train_and_submit(
            plain, plain_dir, work / f"{plain_dir.name}.csv", timer, "plain"
        )
    if not (pre_dir / "metrics.json").is_file():
        timer("pretrain", lambda: pretrain(pre, pre_dir, resume=True))
    tta = f", TTA {'+'.join(cfg.submit.tta)}" if cfg.submit.tta else ""
    label = f"injection-pretrained + fine-tuned ({n} folds{tta})"
    subs[label] = train_and_submit(ft, ft_dir, work / f"{ft_dir.name}.csv", timer, "fine-tune")
    subs.update(baselines(data, cache, work, args.seed, timer, args.bank, not args.no_bank))
    run_dirs = [*([] if args.no_plain else [plain_dir]), pre_dir, ft_dir]
    if args.stack:
        split = [f"cv.folds={args.folds}", f"seed={args.seed}"]
        stacked, fe_runs = _stacking.stack_rows(
            args, cfg, split, {"ResNet-1D": ft_dir}, work, timer
        )
        subs.update(stacked)
        run_dirs += fe_runs.values()

    table = [st.score(name, csv, data) for name, csv in subs.items()]
    order = {"oracle": 0, "template bank": 1}
    order.update({name: 2 for name in _stacking.BASELINES[2:]})
    table.sort(key=lambda r: order.get(r["method"], 3))  # baselines first, stable
    best = _stacking.best_g2res(table) if args.stack else label
    verdict = report(table, best, subs=subs, data=data, goal_ratio=args.goal_ratio)
    windowed = {r["method"]: r["auc"] for r in table}.get(_stacking.WINDOWED_ORACLE)
    if windowed:
        best_auc = next(r["auc"] for r in table if r["method"] == best)
        verdict["auc_over_windowed_oracle"] = best_auc / windowed
        print(f"{best}: {best_auc / windowed:.3f} x the oracle with the same merger-time "
              f"window ({windowed:.4f})")  # fmt: skip
    if args.stack and not args.no_bank:
        verdict["all_vs_bank"] = _stacking.paired_summary(subs, data)
        print("\nevery g2res row against the template bank (95% paired bootstrap intervals):")
        print(_stacking.format_summary(verdict["all_vs_bank"]))
        if _stacking.WINDOWED in subs:  # the bank with the same prior as the best stacks
            w = _stacking.WINDOWED
            verdict["all_vs_windowed_bank"] = _stacking.paired_summary(subs, data, baseline=w)
            print(f"\nevery g2res row against the {w} (95% paired bootstrap intervals):")
            print(_stacking.format_summary(verdict["all_vs_windowed_bank"], baseline=w))
    print(f"\nsteps (wall s): {timer.wall}\nsteps (CPU s):  {timer.cpu}")
    manifest = json.loads((pool / "manifest.json").read_text())
    result = {
        "benchmark": "sensitivity_injection",
        "data": {
            "n_train": args.n_train,
            "n_test": args.n_test_noise + args.n_test_signals,
            "n_test_noise": args.n_test_noise,
            "n_test_signals": args.n_test_signals,
            "snr": [4.0, 16.0],
            "approximant": "IMRPhenomD",
            "psd": "O3low PSD file (aLIGO H1, x1.3 L1, AdV V1; LIGO-T1800545)",
            "seed": args.seed,
        },
        "pool": {"dir": str(pool), **{k: manifest.get(k) for k in ("n", "approximant", "priors")}},
        "recipe": os.path.relpath(args.recipe, ROOT),
        "overrides": overrides,
        "pretrain_steps": args.pretrain_steps,
        "curriculum_fraction": args.curriculum_fraction,
        "pretrain": json.loads((pre_dir / "metrics.json").read_text()),
        "runs": [str(d) for d in run_dirs],
        "submissions": {k: str(v) for k, v in subs.items()},
        **st.result_fields(table, verdict, timer),
    }
    write_json(args.out, result)
    st.plot(table, args.plot, title="IMRPhenomD + O3low PSD data; pool IMRPhenomXPHM")
    print(f"wrote {args.out} and {args.plot}")
    return result


if __name__ == "__main__":
    main()
