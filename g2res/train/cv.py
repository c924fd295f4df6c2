"""``g2res cv-train``: K-fold training of one recipe on a preprocessed cache.

Run directory::

    config.yaml          the resolved recipe
    folds.csv            id, target, fold (StratifiedKFold with the run's seed)
    fold<k>/best.pt      weights of the best validation AUC (+ training state)
    fold<k>/last.pt      state after the last finished epoch (resume)
    fold<k>/history.csv  epoch, lr, train_loss, val_loss, val_auc, seconds, ...
    fold<k>/oof.csv      the fold's validation predictions at its best epoch
    oof.csv              id, target, prediction, fold (every trained fold)
    metrics.json         per fold and overall: ROC AUC, accuracy, precision, recall, F1 at
                         0.5 and at the best-F1 threshold, confusion matrices; efficiency
                         vs network SNR when the data set's truth is known
    plots/               curves.png, roc.png, confusion.png, efficiency.png
    tb/fold<k>/          TensorBoard event files (with g2res[tracking] installed)

A pseudo-labelled cache (``g2res pseudo-label``) carries its own ``folds.csv`` (the split
of the run that labelled it; pseudo-labelled rows have fold -1: training data of every
fold, never validation) and ``train_pseudo.npy`` (n_train, folds) float32: the target of
each pseudo-labelled row when training fold k (NaN for labelled rows), made by fold k's
own model, so no fold's validation labels leak into its training data.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from g2res.config import Config, load_config
from g2res.train.folds import check_folds, make_folds, read_folds, write_folds
from g2res.train.loop import FoldResult, FoldTrainer
from g2res.utils import atomic_path, seed_everything, write_json

__all__ = ["cv_train", "collect_oof", "RUN_FILES"]

CONFIG, FOLDS, OOF, METRICS, PLOTS = "config.yaml", "folds.csv", "oof.csv", "metrics.json", "plots"
TB = "tb"  # TensorBoard event files, tb/fold<k>/ (g2res.train.tracking)
PSEUDO_TARGETS = "train_pseudo.npy"
BANK = "bank.npz"  # g2res.transforms.bank.BANK_FILE: the bank front-end's templates
RUN_FILES = (CONFIG, FOLDS, OOF, METRICS, PLOTS, BANK, TB)
# Settings that may change between an interrupted run and its --resume.
_RESUME_FREE = {"device", "cv.fold", "train.num_workers", "train.eval_batch_size", "cache"}


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        out.update(_flat(v, key + ".") if isinstance(v, dict) and k != "model" else {key: v})
    return out


def _check_resume_config(cfg: Config, saved_path: Path) -> None:
    saved = _flat(load_config(saved_path).to_dict())
    now = _flat(cfg.to_dict())
    diff = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
    diff = [k for k in diff if k not in _RESUME_FREE]
    if diff:
        shown = ", ".join(f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in diff[:5])
        raise ValueError(
            f"--resume: the recipe differs from the run's {saved_path} ({shown}); resume with "
            "the same recipe, or start a new run (--out elsewhere, or --force)"
        )


def _prepare_out(out: Path, cfg: Config, resume: bool, force: bool) -> bool:
    """Check/clean the run directory; returns whether to resume."""
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"run directory {out} exists and is not a directory")
    contents = list(out.iterdir()) if out.is_dir() else []
    if resume and (out / CONFIG).is_file():
        _check_resume_config(cfg, out / CONFIG)
        return True
    if contents and not force and not resume:
        raise FileExistsError(
            f"run directory {out} is not empty; continue it with --resume, or pass --force "
            "to train it again from scratch"
        )
    if contents and not (out / CONFIG).is_file() and not force:
        raise FileExistsError(f"{out} is not empty and is not a g2res run (no {CONFIG})")
    for item in contents:  # only what cv-train itself writes
        if item.name in RUN_FILES or (item.name.startswith("fold") and item.is_dir()):
            shutil.rmtree(item) if item.is_dir() else item.unlink()
    return False


def _folds(cfg: Config, out: Path, ids, labels, resume: bool, cache) -> np.ndarray:
    source = cfg.cv.folds_file or (
        cache.path / FOLDS if (cache.path / FOLDS).is_file() else None
    )  # a pseudo-labelled cache brings the split its labels were made with
    if source:
        table = read_folds(source)
        where = str(source)
    elif resume and (out / FOLDS).is_file():
        table, where = read_folds(out / FOLDS), str(out / FOLDS)
    else:
        table, where = make_folds(ids, labels, cfg.cv.folds, cfg.seed), "the split"
    fold = check_folds(table, ids, labels, where)
    if (fold < 0).any() and not (cache.path / PSEUDO_TARGETS).is_file():
        raise ValueError(f"{where}: fold -1 (training only) is meant for pseudo-labelled caches")
    n = int(fold.max()) + 1
    if n != cfg.cv.folds:
        raise ValueError(f"{where} has {n} folds but the recipe asks for cv.folds={cfg.cv.folds}")
    write_folds(pd.DataFrame({"id": ids, "target": labels, "fold": fold}), out / FOLDS)
    return fold


def _fold_targets(cache, labels: np.ndarray, fold: int) -> np.ndarray | None:
    """Training targets of fold ``fold``: pseudo-labels where the cache has them."""
    f = cache.path / PSEUDO_TARGETS
    if not f.is_file():
        return None
    pseudo = np.load(f, mmap_mode="r", allow_pickle=False)
    if pseudo.ndim != 2 or pseudo.shape[0] != labels.size or fold >= pseudo.shape[1]:
        raise ValueError(f"{f}: expected (n_train={labels.size}, folds) pseudo-labels, "
                         f"got {pseudo.shape}")  # fmt: skip
    col = np.asarray(pseudo[:, fold], dtype=np.float32)
    return np.where(np.isfinite(col), col, labels.astype(np.float32))


def collect_oof(run: str | os.PathLike) -> pd.DataFrame:
    """The out-of-fold predictions of every trained fold of ``run`` (id order of folds.csv)."""
    run = Path(run)
    folds = read_folds(run / FOLDS)
    parts = [pd.read_csv(f, dtype={"id": str}) for f in sorted(run.glob("fold*/oof.csv"))]
    if not parts:
        raise FileNotFoundError(f"run {run} has no trained fold (no fold<k>/oof.csv)")
    oof = pd.concat(parts).set_index("id")
    order = folds["id"][folds["id"].isin(oof.index)]
    oof = oof.loc[order].reset_index()
    first = ["id", "target", "prediction", "fold"]
    return oof[first + [c for c in oof.columns if c not in first]]


def _summaries(results: dict[int, FoldResult], oof: pd.DataFrame, snr, names) -> dict:
    from g2res.ensemble.metrics import classification_metrics, efficiency_vs_snr, regression_metrics

    detect = bool(oof["prediction"].notna().all())

    def scores(part: pd.DataFrame) -> dict:
        m = classification_metrics(part["target"], part["prediction"]) if detect else {}
        if names:
            m["regression"] = {n: regression_metrics(part[n], part[f"{n}_pred"]) for n in names}
        return m

    per_fold = {}
    for k, r in sorted(results.items()):
        part = oof[oof["fold"] == k]
        per_fold[str(k)] = {
            **scores(part),
            "best_epoch": r.best_epoch,
            "epochs_run": r.epochs_run,
            "stopped_early": r.stopped_early,
            "seconds": round(r.seconds, 1),
        }
    aucs = [v["auc"] for v in per_fold.values() if not math.isnan(v.get("auc", math.nan))]
    overall = scores(oof)
    eff = None
    if snr is not None and detect:
        table = efficiency_vs_snr(oof["target"], oof["prediction"], snr, fpr=0.01)
        eff = table.to_dict(orient="records")
    return {
        "auc": overall.get("auc", float("nan")),
        "auc_folds_mean": float(np.mean(aucs)) if aucs else float("nan"),
        "auc_folds_std": float(np.std(aucs)) if aucs else float("nan"),
        "overall": overall,
        "folds": per_fold,
        "efficiency_fpr_0.01": eff,
    }


def _train_snr(cache, ids: pd.Series, log) -> np.ndarray | None:
    """Network SNR of training ids from the data set's truth table, when there is one."""
    data = cache.data_dir
    table = data / "truth" / "injections.csv" if data else None
    if table is None or not table.is_file():
        return None
    from g2res.ensemble.evaluate import read_snr

    try:
        return read_snr(table, ids)
    except ValueError as exc:  # a truth table of another data set: skip the SNR plots
        log(f"not plotting efficiency vs SNR: {exc}")
        return None


def _plots(out: Path, results: dict[int, FoldResult], oof: pd.DataFrame, snr, names):
    from g2res.ensemble import plots

    d = out / PLOTS
    paths = [plots.training_curves({f"fold {k}": r.history for k, r in results.items()},
                                   d / "curves.png")]  # fmt: skip
    if oof["prediction"].notna().all():
        y, p = oof["target"].to_numpy(), oof["prediction"].to_numpy()
        paths += plots.evaluation_plots(d, y, p, snr=snr, fpr=0.01, label="out-of-fold")
    if names:
        paths.append(plots.regression_scatter(oof, names, d / "regression.png"))
    return paths


def cv_train(
    cfg: Config,
    out_dir: str | os.PathLike,
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
) -> dict:
    """Train every fold of ``cfg.cv`` (or ``cfg.cv.fold``) into ``out_dir``; returns the
    contents of ``metrics.json``.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) every process calls this: each fold is trained
    data-parallel (DistributedDataParallel; each process takes every N-th sample of a
    global batch of ``train.batch_size``), or with ``cv.fold_parallel`` one fold per
    process. Only rank 0 writes files and logs.
    """
    from g2res.train import distributed

    d, device = distributed.setup(cfg.device)
    try:
        result = _cv_train(cfg, Path(out_dir), resume, force, progress, log, d, device)
        # Leave together: a gloo rank whose peer has already torn the group down can abort
        # at exit ("terminate called without an active exception") after a good run.
        d.barrier()
        return result
    finally:
        distributed.teardown(d)


def _on_main(d, fn):
    """Run ``fn`` on rank 0 and hand its result (or its error) to every rank."""
    result, error = None, None
    if d.is_main:
        try:
            result = fn()
        except Exception as exc:  # re-raised on every rank below
            error = exc
    result, error = d.broadcast((result, error))
    if error is not None:
        raise error
    return result


def _place_bank(cfg: Config, cache, out: Path, progress: bool) -> None:
    """Place the bank front-end's templates once for all folds (``out/bank.npz``), unless
    they come with the weights of ``train.init_from``."""
    from g2res.train.checkpoint import is_fold_checkpoint
    from g2res.transforms.bank import run_bank, uses_bank

    init = cfg.train.init_from
    if uses_bank(cfg.model) and not (init and is_fold_checkpoint(init)):
        run_bank(out, cache, cfg.model.bank, cfg.seed, progress=progress)


def _cv_train(cfg, out: Path, resume, force, progress, log, d, device) -> dict:
    from g2res.data.cache import Cache
    from g2res.models.checkpoint import load_checkpoint

    log = (log or (lambda _msg: None)) if d.is_main else (lambda _msg: None)
    if not cfg.cache:
        raise ValueError("the recipe has no cache: pass --cache CACHE (from g2res preprocess)")
    cache = Cache(cfg.cache)
    ids = np.asarray(cache.ids("train"))
    labels = cache.labels("train").astype(np.int64)

    def prepare():
        again = _prepare_out(out, cfg, resume, force)
        out.mkdir(parents=True, exist_ok=True)
        cfg.save(out / CONFIG)
        _place_bank(cfg, cache, out, progress)
        return again, _folds(cfg, out, ids, labels, again, cache)

    resume, fold_of = _on_main(d, prepare)
    seed_everything(cfg.seed)
    todo = list(range(cfg.cv.folds)) if cfg.cv.fold is None else sorted(set(cfg.cv.fold))
    bad = [k for k in todo if not 0 <= k < cfg.cv.folds]
    if bad:
        raise ValueError(f"cv.fold={bad}: folds are numbered 0..{cfg.cv.folds - 1}")
    parallel_folds = d.enabled and cfg.cv.fold_parallel
    how = ""
    if d.enabled:
        how = f", {d.world_size} processes ({'one fold each' if parallel_folds else 'DDP'})"
    log(f"cv-train {cfg.name}: {len(ids)} samples, folds {todo} of {cfg.cv.folds}, "
        f"model {cfg.model.backbone.get('name')}, device {device}{how} -> {out}")  # fmt: skip
    t0 = time.perf_counter()
    results: dict[int, FoldResult] = {}

    def trainer(k: int, **kw) -> FoldTrainer:
        train_rows, val_rows = np.flatnonzero(fold_of != k), np.flatnonzero(fold_of == k)
        targets = _fold_targets(cache, labels, k)
        return FoldTrainer(cfg, cache, train_rows, val_rows, k, out / f"fold{k}", device,
                           targets=targets, **kw)  # fmt: skip

    from g2res.train.tracking import TensorBoardCallback

    def board(k: int) -> tuple:  # TensorBoard events of fold k: RUN/tb/fold<k>/
        return (TensorBoardCallback(out / TB / f"fold{k}"),)

    from g2res.train.distributed import Dist

    mine = todo[d.rank :: d.world_size] if parallel_folds else todo
    for k in mine:
        if parallel_folds:  # this process alone trains fold k and writes its files
            r = trainer(k, progress=progress and d.is_main, dist=Dist(),
                        callbacks=board(k)).fit(resume=resume)  # fmt: skip
        else:
            r = trainer(k, progress=progress, log=log, dist=d, callbacks=board(k)).fit(
                resume=resume
            )
        results[k] = r
        what = "R²" if cfg.task == "regression" else "AUC"
        msg = (f"fold {k}: best val {what} {r.best_auc:.4f} at epoch {r.best_epoch}/"
               f"{r.epochs_run} ({r.seconds:.0f} s)")  # fmt: skip
        if parallel_folds:  # every process reports its own folds
            print(f"[rank {d.rank}] {msg}", flush=True)
        else:
            log(msg)
    d.barrier()
    if not d.is_main:
        return d.broadcast(None)
    # Folds trained by other processes or earlier invocations (--fold) count too.
    for f in sorted(out.glob("fold*/last.pt")):
        k = int(f.parent.name[4:])
        if k not in results and 0 <= k < cfg.cv.folds:
            ckpt = load_checkpoint(f)
            if ckpt.get("finished"):
                results[k] = trainer(k, progress=False).load_result(ckpt, ckpt["history"])
    oof = collect_oof(out)
    oof = oof[oof["fold"].isin(list(results))].reset_index(drop=True)
    with atomic_path(out / OOF) as tmp:
        oof.to_csv(tmp, index=False)
    snr = _train_snr(cache, oof["id"], log)
    names = list(cfg.targets) if cfg.task != "classification" else []
    metrics = {
        "name": cfg.name,
        "n_folds": cfg.cv.folds,
        "folds_trained": sorted(results),
        "device": str(device),
        "processes": d.world_size,
        "task": cfg.task,
        **_summaries(results, oof, snr, names),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    plotted = _plots(out, results, oof, snr, names)
    metrics["plots"] = [str(p.relative_to(out)) for p in plotted]
    write_json(out / METRICS, metrics)
    summary = []
    if cfg.task != "regression":
        spread = f"{metrics['auc_folds_mean']:.4f} ± {metrics['auc_folds_std']:.4f}"
        summary.append(f"out-of-fold AUC {metrics['auc']:.4f} (folds {spread})")
    for n in names:
        summary.append(f"{n} R² {metrics['overall']['regression'][n]['r2']:.3f}")
    log(f"cv-train {cfg.name}: {', '.join(summary)} -> {out}")
    return d.broadcast(metrics)
