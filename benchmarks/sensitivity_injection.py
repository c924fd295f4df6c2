"""Sensitivity with injection pretraining: plain recipe vs pretrained + fine-tuned vs the
template bank and the oracle, on a data set the pool was not made for.

The data set is simulated with an aligned-spin approximant (IMRPhenomD) and a PSD file
(aLIGO/AdV O3low curves, LIGO-T1800545; L1 scaled by 1.3) while the pool uses its
defaults (IMRPhenomXPHM, precessing, 5-100 Msun) and the injections are whitened with the
PSD the cache estimated. Steps (each skipped when its output exists in WORKDIR):

1. simulate -> data/, preprocess -> cache/, g2res waveforms -> pool/;
2. plain: cv-train of the recipe from random weights -> runs/plain, submit;
3. pretrain on injections -> runs/pre; cv-train from runs/pre/best.pt -> runs/ft, submit;
   also runs/pre alone (no fine-tuning) on the test split;
4. matched-filter template bank and oracle (g2res baseline matched-filter);
5. one table: test AUC overall and per network-SNR bin (noise vs signals in the bin),
   efficiency at 1% false-positive rate per bin, ratio to the oracle AUC.

Writes benchmarks/results/sensitivity_injection.json.

    python benchmarks/sensitivity_injection.py --workdir /tmp/si --n-train 2000 --n-test 1000 \\
        --pool-size 20000 --pretrain-steps 1500 --epochs 4 --folds 3
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

RESULTS = Path(__file__).parent / "results" / "sensitivity_injection.json"
BINS = [(4, 6), (6, 8), (8, 10), (10, 12), (12, 16)]
ROOT = Path(__file__).resolve().parents[1]


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


def scores(name: str, pred: pd.DataFrame, truth: pd.DataFrame, fpr: float = 0.01) -> dict:
    """AUC overall and per SNR bin (noise vs the bin's signals), efficiency at ``fpr``."""
    df = truth.merge(pred, on="id", how="left", validate="one_to_one")
    if df["prediction"].isna().any():
        raise ValueError(f"{name}: predictions missing for {int(df.prediction.isna().sum())} ids")
    y, p, snr = df.target.to_numpy(), df.prediction.to_numpy(), df.snr_network.to_numpy()
    noise = p[y == 0]
    threshold = np.quantile(noise, 1 - fpr)
    row = {"method": name, "auc": float(roc_auc_score(y, p))}
    for lo, hi in BINS:
        sig = (y == 1) & (snr >= lo) & (snr < hi)
        key = f"{lo}-{hi}"
        if sig.sum() == 0:
            row[f"auc_{key}"] = row[f"eff_{key}"] = None
            continue
        yy = np.r_[np.zeros(noise.size), np.ones(int(sig.sum()))]
        row[f"auc_{key}"] = float(roc_auc_score(yy, np.r_[noise, p[sig]]))
        row[f"eff_{key}"] = float((p[sig] > threshold).mean())
    return row


def reference_cnn(width: int = 16):
    """The "plain 1D CNN" of the issue: 7 conv blocks (BN, SiLU, max-pooling) on the
    whitened (3, 4096) strain, global max pooling, a linear logit. Used by --standalone
    when g2res.models.build_model is not available; ~160k parameters at width 16."""
    from torch import nn

    def block(i, o, k, pool):
        layers = [nn.Conv1d(i, o, k, padding=k // 2), nn.BatchNorm1d(o), nn.SiLU()]
        return layers + ([nn.MaxPool1d(pool)] if pool > 1 else [])

    w = width
    return nn.Sequential(
        *block(3, w, 63, 4), *block(w, w, 31, 1), *block(w, 2 * w, 31, 4),
        *block(2 * w, 2 * w, 15, 1), *block(2 * w, 4 * w, 15, 4), *block(4 * w, 4 * w, 7, 2),
        *block(4 * w, 8 * w, 7, 1),
        nn.AdaptiveMaxPool1d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(8 * w, 1),
    )  # fmt: skip


def standalone(cfg, work: Path, pool: Path, args, timed) -> dict:
    """Plain, pretrained-only and pretrained + fine-tuned models trained by the pretrain
    loop (one stratified held-out split picks the best step) and scored on the test split;
    for when cv-train is not available. Returns {name: predictions DataFrame}."""
    import torch

    from g2res.data.cache import Cache
    from g2res.ensemble.predict import predict_array
    from g2res.train.pretrain import pretrain

    try:
        from g2res.models import build_model

        def make():
            return build_model(cfg.model)
    except ImportError:

        def make():
            return reference_cnn(args.width)

    runs = work / "runs_standalone"
    curriculum = args.pretrain_steps // 2  # anneal loud -> faint over the first half
    stages = {
        "plain (labelled only)": ("plain", {"injection.mode": "off",
                                             "injection.steps": args.plain_steps}),
        "injection-pretrained only": ("pre", {"injection.mode": "pretrain",
                                              "injection.pool": str(pool),
                                              "injection.steps": args.pretrain_steps,
                                              "injection.curriculum_steps": curriculum}),
        "injection-pretrained + fine-tuned": ("ft", {
            "injection.mode": "off", "injection.steps": args.finetune_steps,
            "injection.lr": args.finetune_lr, "train.init_from": str(runs / "pre" / "best.pt"),
        }),
    }  # fmt: skip
    cache = Cache(cfg.cache)
    ids = cache.ids("test")
    preds, info = {}, {}
    for name, (run, over) in stages.items():
        if not (runs / run / "metrics.json").is_file():
            torch.manual_seed(args.seed)
            every = max(1, over["injection.steps"] // 8)
            stage_cfg = cfg.replace({**over, "injection.eval_every": every})
            info[run] = timed(name, lambda c=stage_cfg, r=run: pretrain(
                c, runs / r, resume=True, progress=False, model=make()))  # fmt: skip
        else:
            info[run] = json.loads((runs / run / "metrics.json").read_text())
        model = make()
        state = torch.load(runs / run / "best.pt", map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        prob = predict_array([model], cache.array("test"), device="cpu", progress=False)[0]
        preds[name] = pd.DataFrame({"id": ids, "prediction": prob})
    return preds, info


def cross_validated(cfg, work: Path, pool: Path, args, timed) -> dict:
    """Plain and pretrained + fine-tuned recipes through cv-train and submit."""
    from g2res.ensemble.submit import submit
    from g2res.train.cv import cv_train
    from g2res.train.pretrain import pretrain

    runs = work / "runs"
    plain = cfg.replace({"injection.mode": "off", "name": "plain"})
    pre = cfg.replace(
        {
            "injection.pool": str(pool),
            "injection.steps": args.pretrain_steps,
            "injection.curriculum_steps": args.pretrain_steps // 2,
            "injection.eval_every": max(1, args.pretrain_steps // 8),
        }
    )
    ft = cfg.replace({"injection.mode": "off", "train.init_from": str(runs / "pre" / "best.pt")})
    if not (runs / "plain" / "metrics.json").is_file():
        timed("cv-train plain", lambda: cv_train(plain, runs / "plain", force=True))
    if not (runs / "pre" / "metrics.json").is_file():
        timed("pretrain", lambda: pretrain(pre, runs / "pre", resume=True))
    if not (runs / "ft" / "metrics.json").is_file():
        timed("cv-train fine-tune", lambda: cv_train(ft, runs / "ft", force=True))
    preds = {}
    for name, run in (("plain", "plain"), ("pretrained + fine-tuned", "ft")):
        csv = work / f"submission_{run}.csv"
        if not csv.is_file():
            timed(f"submit {run}", lambda run=run, csv=csv: submit([runs / run], cfg.cache, csv))
        preds[name] = pd.read_csv(csv).rename(columns={"target": "prediction"})
    return preds


def main(argv=None) -> dict:
    from g2res.config import SimulateConfig, load_config
    from g2res.data.pool import PoolConfig, make_pool
    from g2res.data.preprocess import preprocess
    from g2res.data.simulate import simulate

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--workdir", required=True)
    p.add_argument("--recipe", default=str(ROOT / "pipelines" / "inject-pretrain-resnet1d.yaml"))
    p.add_argument("--n-train", type=int, default=4000)
    p.add_argument("--n-test", type=int, default=2000)
    p.add_argument("--pool-size", type=int, default=200_000)
    p.add_argument("--pretrain-steps", type=int, default=100_000)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("overrides", nargs="*", help="recipe overrides key=value")
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument(
        "--standalone",
        action="store_true",
        help="train plain / pretrained / fine-tuned with the pretrain loop on one held-out "
        "split instead of cv-train + submit",
    )
    p.add_argument("--plain-steps", type=int, default=500)
    p.add_argument("--finetune-steps", type=int, default=300)
    p.add_argument("--finetune-lr", type=float, default=3e-4)
    p.add_argument("--width", type=int, default=16, help="reference CNN width (--standalone)")
    args = p.parse_args(argv)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}

    def timed(name, fn):
        t0 = time.perf_counter()
        out = fn()
        seconds[name] = round(time.perf_counter() - t0, 1)
        print(f"[{name}] {seconds[name]:.0f} s")
        return out

    data, cache, pool = work / "data", work / "cache", work / "pool"
    sim = SimulateConfig(
        n_train=args.n_train, n_test=args.n_test, snr=(4.0, 16.0), approximant="IMRPhenomD",
        psd=str(o3low_psd_file(work / "psd_o3low.txt")), workers=args.workers,
    )  # fmt: skip
    if not (data / "sample_submission.csv").is_file():
        timed("simulate", lambda: simulate(data, sim, seed=args.seed, force=True))
    if not (cache / "manifest.json").is_file():
        timed("preprocess", lambda: preprocess(data, cache, seed=args.seed))
    if not (pool / "manifest.json").is_file():
        pool_cfg = PoolConfig(n=args.pool_size, workers=args.workers)
        timed("waveforms", lambda: make_pool(pool, pool_cfg, seed=args.seed))

    base = {"cache": str(cache), "seed": args.seed, "cv.folds": args.folds}
    if args.epochs is not None:
        base["train.epochs"] = args.epochs
    cfg = load_config(args.recipe, args.overrides).replace(base)
    if args.standalone:
        preds, info = standalone(cfg, work, pool, args, timed)
    else:
        preds, info = cross_validated(cfg, work, pool, args, timed), {}
    from g2res.cli import main as g2res

    for name, extra in (("template bank", []), ("oracle", ["--oracle"])):
        csv = work / f"{name.replace(' ', '_')}.csv"
        if not csv.is_file():
            argv = ["baseline", "matched-filter", str(data), "--psd", str(cache / "psd.npz"),
                    "--out", str(csv), "--seed", str(args.seed), *extra]  # fmt: skip
            try:
                timed(name, lambda argv=argv: g2res(argv))
            except SystemExit:  # the baseline command is not in this checkout
                print(f"[{name}] g2res baseline matched-filter is not available: row skipped")
        if csv.is_file():
            preds[name] = pd.read_csv(csv).rename(columns={"target": "prediction"})

    labels = pd.read_csv(data / "truth" / "test_labels.csv")
    inj = pd.read_csv(data / "truth" / "injections.csv")[["id", "snr_network"]]
    truth = labels.merge(inj, on="id", how="left").fillna({"snr_network": 0.0})
    table = [scores(name, pr[["id", "prediction"]], truth) for name, pr in preds.items()]
    oracle = next((r["auc"] for r in table if r["method"] == "oracle"), None)
    for r in table:
        r["auc_over_oracle"] = r["auc"] / oracle if oracle else None
    cols = ["auc"] + [f"auc_{lo}-{hi}" for lo, hi in BINS]
    print(f"{'method':36s} " + " ".join(f"{c:>10s}" for c in cols) + "   /oracle")
    for r in table:
        vals = " ".join(f"{r[c]:10.3f}" if r[c] is not None else f"{'-':>10s}" for c in cols)
        ratio = f"{r['auc_over_oracle']:.3f}" if r["auc_over_oracle"] else "-"
        print(f"{r['method']:36s} {vals}   {ratio}")
    result = dict(
        n_train=args.n_train, n_test=args.n_test, pool_size=args.pool_size,
        pretrain_steps=args.pretrain_steps, folds=args.folds, epochs=cfg.train.epochs,
        recipe=args.recipe, overrides=args.overrides, seconds=seconds, table=table,
        standalone=args.standalone, runs=info,
        data="IMRPhenomD, O3low PSD file; pool IMRPhenomXPHM 5-100 Msun",
    )  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
