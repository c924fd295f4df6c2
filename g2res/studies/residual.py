"""Residual vs plain networks (He et al. 2016, Sec. 4.1) on the strain at hand.

Each depth is trained twice with :class:`g2res.train.loop.FoldTrainer`: the recipe's
backbone with skip connections, and its plain twin (``residual: false``: the same blocks
and widths without the skip path or projection shortcuts). Both see the same fold of one
stratified split, the same batches and augmentations and the same initial-weight seed.
A :class:`g2res.train.callbacks.GradNormRecorder` records the mean gradient norm of
every weight layer per epoch.

Study directory::

    config.yaml, study.json    the recipe and the study's settings (kind, fold)
    folds.csv                  the split (id, target, fold); every variant uses ``fold``
    <variant>/                 best.pt, last.pt, history.csv, oof.csv, grad_norms.json
                               (variant: ``resnet34-residual``, ``resnet1d_18-plain``, ...)
    summary.json               per variant: parameters, best validation AUC, losses,
                               epoch times, gradient norms by layer and epoch, the ratio
                               first-layer / last-layer gradient norm
    plots/grad_norms.png       gradient norm by layer, every epoch, residual vs plain
    plots/curves.png           loss and validation AUC per epoch, one row per depth
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from g2res.config import Config, load_config
from g2res.train.callbacks import GradNormRecorder
from g2res.utils import atomic_path, resolve_device, seed_everything, write_json

__all__ = ["residual_vs_plain", "backbone_name", "variant_name", "variant_config"]

CONFIG, STUDY, FOLDS, SUMMARY, PLOTS = (
    "config.yaml",
    "study.json",
    "folds.csv",
    "summary.json",
    "plots",
)
GRADS = "grad_norms.json"
KINDS = ("2d", "1d")
# Settings that may change between an interrupted study and its resumption.
_RESUME_FREE = {"device", "cache", "train.num_workers", "train.eval_batch_size"}


def backbone_name(kind: str, depth: int) -> str:
    """Registered backbone of ``depth``: ``resnet<depth>`` (2d) or ``resnet1d_<depth>`` (1d)."""
    from g2res.models import is_model, list_models

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    name = f"resnet{depth}" if kind == "2d" else f"resnet1d_{depth}"
    if not is_model(name):
        prefix = "resnet" if kind == "2d" else "resnet1d_"
        have = sorted(
            int(n[len(prefix) :]) for n in list_models()
            if n.startswith(prefix) and n[len(prefix) :].isdigit()
        )  # fmt: skip
        raise ValueError(f"no {kind} ResNet of depth {depth}; depths available: {have}")
    return name


def variant_name(kind: str, depth: int, residual: bool) -> str:
    """``resnet34-residual``, ``resnet1d_18-plain``, ..."""
    return f"{backbone_name(kind, depth)}-{'residual' if residual else 'plain'}"


def variant_config(cfg: Config, kind: str, depth: int, residual: bool) -> Config:
    """The recipe with backbone ``depth`` of ``kind`` and the ``residual`` switch set; every
    other backbone setting (widths, pooling, ...) is kept."""
    backbone = {**cfg.model.backbone, "name": backbone_name(kind, depth), "residual": residual}
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, backbone=backbone))


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        out.update(_flat(v, key + ".") if isinstance(v, dict) else {key: v})
    return out


def _settings(cfg: Config, kind: str, fold: int) -> dict:
    return {"study": "residual_vs_plain", "kind": kind, "fold": fold, "n_folds": cfg.cv.folds}


def _prepare_out(out: Path, cfg: Config, settings: dict, resume: bool, force: bool) -> None:
    import json

    if out.exists() and not out.is_dir():
        raise FileExistsError(f"study directory {out} exists and is not a directory")
    contents = list(out.iterdir()) if out.is_dir() else []
    if not contents:
        return
    is_study = (out / STUDY).is_file() and (out / CONFIG).is_file()
    if resume and is_study:
        saved = json.loads((out / STUDY).read_text())
        if {k: saved.get(k) for k in settings} != settings:
            raise ValueError(f"--resume: {out / STUDY} was made with {saved}, not {settings}")
        before, now = _flat(load_config(out / CONFIG).to_dict()), _flat(cfg.to_dict())
        diff = [
            k for k in sorted(set(before) | set(now))
            if before.get(k) != now.get(k) and k not in _RESUME_FREE
        ]  # fmt: skip
        if diff:
            shown = ", ".join(f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in diff[:5])
            raise ValueError(
                f"--resume: the recipe differs from {out / CONFIG} ({shown}); resume with the "
                "same recipe, or start again with --force"
            )
        return
    if not force:
        hint = "continue it with --resume, or " if is_study else ""
        raise FileExistsError(
            f"study directory {out} is not empty; {hint}pass --force to run the study again "
            "from scratch"
        )
    for item in contents:  # only what this study writes
        ours = item.name in (CONFIG, STUDY, FOLDS, SUMMARY, PLOTS) or (
            item.is_dir() and item.name.endswith(("-residual", "-plain"))
        )
        if ours:
            shutil.rmtree(item) if item.is_dir() else item.unlink()


def _split(cfg: Config, cache, out: Path, resume: bool) -> np.ndarray:
    from g2res.train.folds import check_folds, make_folds, read_folds, write_folds

    ids = np.asarray(cache.ids("train"))
    labels = cache.labels("train").astype(np.int64)
    if cfg.cv.folds_file:
        table, where = read_folds(cfg.cv.folds_file), str(cfg.cv.folds_file)
    elif resume and (out / FOLDS).is_file():
        table, where = read_folds(out / FOLDS), str(out / FOLDS)
    else:
        table, where = make_folds(ids, labels, cfg.cv.folds, cfg.seed), "the split"
    fold_of = check_folds(table, ids, labels, where)
    write_folds(pd.DataFrame({"id": ids, "target": labels, "fold": fold_of}), out / FOLDS)
    return fold_of


def _n_params(module) -> int:
    return int(sum(p.numel() for p in module.parameters()))


def _shortcut_params(module) -> int:
    return int(
        sum(_n_params(m) for name, m in module.named_modules() if name.endswith("downsample"))
    )


def _variant_summary(name, depth, residual, backbone, trainer, result, rec) -> dict:
    h = result.history
    epochs = sorted(rec.epochs)
    body = rec.body_layers()
    ratios = []
    for e in epochs:
        first, last = rec.first_last(e)
        ratios.append(first / last if last > 0 else math.nan)
    groups: dict[str, list[float]] = {}
    for e in epochs:  # a block's norm: of all its weights together
        sq: dict[str, float] = {}
        for layer, g in rec.groups.items():
            sq[g] = sq.get(g, 0.0) + rec.epochs[e][layer] ** 2
        for g, v in sq.items():
            groups.setdefault(g, []).append(math.sqrt(v))
    history = {c: h[c].tolist() for c in ("epoch", "train_loss", "val_loss", "val_auc") if c in h}
    return {
        "variant": name,
        "depth": int(depth),
        "residual": bool(residual),
        "backbone": backbone,
        "params": _n_params(trainer.model),
        "backbone_params": _n_params(trainer.model.backbone),
        "shortcut_params": _shortcut_params(trainer.model.backbone),
        "weight_layers": len(body),
        "best_auc": float(result.best_auc),
        "best_epoch": int(result.best_epoch),
        "epochs_run": int(result.epochs_run),
        "final_train_loss": float(h["train_loss"].iloc[-1]),
        "final_val_loss": float(h["val_loss"].iloc[-1]) if "val_loss" in h else None,
        "epoch_seconds": [round(float(s), 2) for s in h["seconds"]],
        "seconds": round(float(result.seconds), 1),
        "history": history,
        "grad_ratio_first_last": ratios,
        "grad_ratio_final": ratios[-1] if ratios else math.nan,
        "grad_norms": {
            "layers": rec.layers,
            "body_layers": body,
            "by_epoch": {str(e): [rec.epochs[e][n] for n in rec.layers] for e in epochs},
            "by_group": groups,
        },
    }


def residual_vs_plain(
    cfg: Config,
    depths: Sequence[int],
    out_dir: str | os.PathLike,
    kind: str = "2d",
    fold: int | None = None,
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
) -> dict:
    """Train every depth of ``depths`` with and without skip connections; returns the
    contents of ``summary.json``.

    Args:
        cfg: the recipe (needs ``cfg.cache``); its backbone settings other than the name
            (e.g. ``base_width``) apply to every variant. ``kind="2d"`` needs a 2D
            front-end (cqt/stft), ``"1d"`` the identity front-end.
        depths: e.g. ``[18, 34, 50]``: ``resnet<d>`` (2d) or ``resnet1d_<d>`` (1d).
        out_dir: study directory (see the module docstring).
        fold: validation fold of ``cfg.cv.folds`` stratified folds (default
            ``cfg.cv.fold[0]`` if set, else 0); the others train.
        resume: continue a study in ``out_dir``: finished variants are skipped, an
            interrupted one continues from its last epoch.
        force: run again from scratch in a non-empty ``out_dir``.
    """
    from g2res.data.cache import Cache
    from g2res.train.loop import FoldTrainer

    log = log or (lambda _msg: None)
    out = Path(out_dir)
    depths = list(dict.fromkeys(int(d) for d in depths))
    if not depths:
        raise ValueError("residual_vs_plain: give at least one depth, e.g. 18 34 50")
    variants = [(d, r, variant_name(kind, d, r)) for d in depths for r in (True, False)]
    if not cfg.cache:
        raise ValueError("the recipe has no cache: pass --cache CACHE (from g2res preprocess)")
    if fold is None:
        fold = cfg.cv.fold[0] if cfg.cv.fold else 0
    if not 0 <= fold < cfg.cv.folds:
        raise ValueError(f"fold={fold}: folds are numbered 0..{cfg.cv.folds - 1}")
    from g2res.models import build_model

    for d, r, _ in variants:  # fail before any training on a recipe that cannot build
        build_model(variant_config(cfg, kind, d, r).model)
    cache = Cache(cfg.cache)
    settings = _settings(cfg, kind, fold)
    again = resume and (out / STUDY).is_file()
    _prepare_out(out, cfg, settings, resume, force)
    out.mkdir(parents=True, exist_ok=True)
    cfg.save(out / CONFIG)
    write_json(out / STUDY, {**settings, "depths": depths})
    fold_of = _split(cfg, cache, out, again)
    train_rows, val_rows = np.flatnonzero(fold_of != fold), np.flatnonzero(fold_of == fold)
    device = resolve_device(cfg.device)
    log(f"residual vs plain ({kind}): depths {depths}, {len(train_rows)} training / "
        f"{len(val_rows)} validation samples (fold {fold} of {cfg.cv.folds}), "
        f"{cfg.train.epochs} epochs, device {device} -> {out}")  # fmt: skip
    summary = {
        "study": "residual_vs_plain",
        "recipe": cfg.name,
        "kind": kind,
        "depths": depths,
        "fold": fold,
        "n_folds": cfg.cv.folds,
        "n_train": int(train_rows.size),
        "n_val": int(val_rows.size),
        "seed": cfg.seed,
        "epochs": cfg.train.epochs,
        "device": str(device),
        "backbone": {k: v for k, v in cfg.model.backbone.items() if k != "name"},
        "variants": {},
    }
    for depth, residual, name in variants:
        vdir = out / name
        rec = GradNormRecorder(vdir / GRADS)
        seed_everything(cfg.seed)
        trainer = FoldTrainer(variant_config(cfg, kind, depth, residual), cache, train_rows,
                              val_rows, fold, vdir, device, progress=progress, log=log,
                              callbacks=(rec,))  # fmt: skip
        done = _finished(vdir)
        if done:
            log(f"{name}: finished earlier, skipped")
        # The directory was cleaned unless resuming: fit(resume=True) starts fresh there.
        result = trainer.fit(resume=True)
        if not rec.epochs:
            raise ValueError(f"{vdir / GRADS}: no gradient norms recorded; rerun with --force")
        v = _variant_summary(name, depth, residual, backbone_name(kind, depth), trainer,
                             result, rec)  # fmt: skip
        summary["variants"][name] = v
        if not done:
            log(f"{name}: {v['params']:,} parameters, best val AUC {v['best_auc']:.4f} "
                f"(epoch {v['best_epoch']}), gradient norm first/last layer "
                f"{v['grad_ratio_final']:.3g} ({v['seconds']:.0f} s)")  # fmt: skip
    summary["pairs"] = {
        str(d): _pair(summary["variants"][variant_name(kind, d, True)],
                      summary["variants"][variant_name(kind, d, False)])
        for d in depths
    }  # fmt: skip
    plots = [
        grad_norm_plot(summary, out / PLOTS / "grad_norms.png"),
        curves_plot(summary, out / PLOTS / "curves.png"),
    ]
    summary["plots"] = [str(p.relative_to(out)) for p in plots]
    write_json(out / SUMMARY, summary)
    log(table(summary))
    return summary


def _finished(vdir: Path) -> bool:
    from g2res.models.checkpoint import load_checkpoint

    last = vdir / "last.pt"
    return last.is_file() and bool(load_checkpoint(last).get("finished"))


def _pair(res: dict, plain: dict) -> dict:
    return {
        "params_residual": res["params"],
        "params_plain": plain["params"],
        "best_auc_residual": res["best_auc"],
        "best_auc_plain": plain["best_auc"],
        "auc_gain": res["best_auc"] - plain["best_auc"],
        "grad_ratio_residual": res["grad_ratio_final"],
        "grad_ratio_plain": plain["grad_ratio_final"],
    }


def table(summary: dict) -> str:
    """A Markdown table of the study: one row per variant."""
    rows = [
        "| variant | params | weight layers | best val AUC | final train loss | "
        "grad first/last (last epoch) | s/epoch |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for v in summary["variants"].values():
        per_epoch = float(np.mean(v["epoch_seconds"])) if v["epoch_seconds"] else math.nan
        rows.append(
            f"| {v['variant']} | {v['params']:,} | {v['weight_layers']} | {v['best_auc']:.4f} | "
            f"{v['final_train_loss']:.4f} | {v['grad_ratio_final']:.3g} | {per_epoch:.1f} |"
        )
    return "\n".join(rows)


# ----------------------------------------------------------------------------- plots
def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


def grad_norm_plot(summary: dict, path: str | os.PathLike) -> Path:
    """Mean gradient norm (log scale) of each backbone weight layer on the main path (x:
    input side first), one line per epoch (light to dark), residual (blue) vs plain (red);
    one panel per depth."""
    plt = _pyplot()
    depths = summary["depths"]
    fig, axes = plt.subplots(1, len(depths), figsize=(5.5 * len(depths), 4.2), squeeze=False)
    for ax, d in zip(axes[0], depths, strict=True):
        for residual, cmap in ((True, plt.cm.Blues), (False, plt.cm.Reds)):
            v = summary["variants"][variant_name(summary["kind"], d, residual)]
            g = v["grad_norms"]
            idx = [g["layers"].index(n) for n in g["body_layers"]]
            epochs = sorted(g["by_epoch"], key=int)
            for j, e in enumerate(epochs):
                shade = 0.35 + 0.65 * (j + 1) / len(epochs)
                norms = np.asarray(g["by_epoch"][e])[idx]
                label = f"{'residual' if residual else 'plain'} epoch {e}"
                show = j in (0, len(epochs) - 1)
                ax.plot(np.arange(1, len(idx) + 1), norms, color=cmap(shade), lw=1.2,
                        marker=".", ms=3, label=label if show else None)  # fmt: skip
        ax.set(yscale="log", xlabel="weight layer (input side first)",
               ylabel="mean gradient L2 norm",
               title=f"{v['backbone']}: gradient norm by layer")  # fmt: skip
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize="x-small")
    return _save(fig, Path(path))


def curves_plot(summary: dict, path: str | os.PathLike) -> Path:
    """Per depth (rows): training/validation loss and validation AUC per epoch, residual
    (blue) and plain (red) side by side."""
    plt = _pyplot()
    depths = summary["depths"]
    fig, axes = plt.subplots(len(depths), 2, figsize=(10, 3.4 * len(depths)), squeeze=False)
    for row, d in zip(axes, depths, strict=True):
        ax_loss, ax_auc = row
        for residual, color in ((True, "C0"), (False, "C3")):
            v = summary["variants"][variant_name(summary["kind"], d, residual)]
            h, tag = v["history"], "residual" if residual else "plain"
            ax_loss.plot(h["epoch"], h["train_loss"], color=color, ls="--", label=f"{tag} train")
            if "val_loss" in h:
                ax_loss.plot(h["epoch"], h["val_loss"], color=color, label=f"{tag} val")
            if "val_auc" in h:
                ax_auc.plot(h["epoch"], h["val_auc"], color=color, marker="o", ms=3, label=tag)
        ax_loss.set(xlabel="epoch", ylabel="loss", title=f"{v['backbone']}: loss")
        ax_auc.set(xlabel="epoch", ylabel="ROC AUC", title=f"{v['backbone']}: validation AUC")
        for ax in row:
            ax.grid(alpha=0.3)
            ax.legend(fontsize="x-small")
    return _save(fig, Path(path))
