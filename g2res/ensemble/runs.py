"""A table of training runs: ``g2res runs DIR...``.

A run is a folder holding ``config.yaml`` and ``fold<k>/`` folders (``g2res cv-train``) or
a ``metrics.json`` (``g2res pretrain``); folders below a run are not searched further.
Each run becomes one row (:data:`COLUMNS`), read from its files without building a model:

- ``auc_mean``, ``auc_std``: mean and spread (population std) of the per-fold validation
  AUCs (``metrics.json``; for an unfinished run, each fold's best ``val_auc`` in its
  ``history.csv``); ``oof_auc``: ROC AUC of the pooled out-of-fold predictions;
- ``eff_fap_1e-2``: the share of the out-of-fold signals (label 1 in ``oof.csv``) scored
  above the threshold that 1 % of the out-of-fold noise exceeds;
- ``params``: number of model weights, from ``metrics.json`` (``n_params``) when stored,
  else the tensor sizes of a checkpoint's ``model`` state dict (BatchNorm statistics left
  out; fixed buffers such as a CQT kernel count);
- ``epochs``: the most epochs a fold ran (a pretraining run: its optimiser steps);
  ``wall_s``: seconds of the whole run (``metrics.json``, else the histories' sum);
  ``date``: UTC time of the newest of ``metrics.json`` and the checkpoints;
- ``state``: ``complete``; ``resumable`` (interrupted: a fold without ``best.pt`` or no
  ``metrics.json``, but a ``last.pt`` to continue from with ``--resume``); ``broken``
  (a corrupt ``metrics.json`` or ``config.yaml``, or nothing to resume from), with a
  short ``reason``.

A broken run is a row, never an exception.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from g2res.ensemble.metrics import efficiency_at_fpr

__all__ = [
    "COLUMNS",
    "SCORES",
    "find_runs",
    "run_summary",
    "runs_table",
    "sort_runs",
    "format_table",
]

COLUMNS = ["run", "recipe", "model", "params", "folds", "auc_mean", "auc_std", "oof_auc",
           "eff_fap_1e-2", "epochs", "wall_s", "date", "state", "reason"]  # fmt: skip
SCORES = ("auc_mean", "oof_auc", "eff_fap_1e-2")  # sorted best (highest) first
_BN_STATS = ("running_mean", "running_var", "num_batches_tracked")


def _is_run(path: Path) -> bool:
    if not (path / "config.yaml").is_file():
        return False
    return (path / "metrics.json").exists() or any(
        p.is_dir() and p.name[4:].isdigit() for p in path.glob("fold*")
    )


def find_runs(dirs: Iterable[str | os.PathLike]) -> list[Path]:
    """Every run folder at or below ``dirs`` (sorted, each once)."""
    found: list[Path] = []
    for d in dirs:
        d = Path(d)
        if not d.is_dir():
            raise FileNotFoundError(f"{d}: no such folder")
        for root, subdirs, _files in os.walk(d):
            if _is_run(Path(root)):
                found.append(Path(root))
                subdirs[:] = []  # a run's own folders (fold*, tb, plots) are not runs
            else:
                subdirs.sort()
    seen, out = set(), []
    for p in found:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def _params(run: Path, metrics: dict, ckpts: list[Path]) -> int | None:
    n = metrics.get("n_params")
    if isinstance(n, int):
        return n
    import torch

    for f in ckpts:
        try:
            state = torch.load(f, map_location="cpu", weights_only=True, mmap=True)
            model = state["model"]
            return int(sum(t.numel() for k, t in model.items()
                           if hasattr(t, "numel") and not k.endswith(_BN_STATS)))  # fmt: skip
        except Exception:  # an unreadable checkpoint: try the next one
            continue
    return None


def _fold_dirs(run: Path) -> dict[int, Path]:
    return {int(p.name[4:]): p for p in run.glob("fold*") if p.is_dir() and p.name[4:].isdigit()}


def _history_aucs(folds: dict[int, Path]) -> tuple[list[float], int]:
    aucs, epochs = [], 0
    for _k, p in sorted(folds.items()):
        f = p / "history.csv"
        if f.is_file():
            h = pd.read_csv(f)
            if "val_auc" in h and h["val_auc"].notna().any():
                aucs.append(float(h["val_auc"].max()))
            epochs = max(epochs, len(h))
    return aucs, epochs


def _date(paths: list[Path]) -> str:
    times = [p.stat().st_mtime for p in paths if p.exists()]
    if not times:
        return ""
    t = _dt.datetime.fromtimestamp(max(times), tz=_dt.timezone.utc)
    return t.strftime("%Y-%m-%d %H:%M")


def _model_name(cfg: dict) -> str:
    model = cfg.get("model") or {}
    backbone = (model.get("backbone") or {}).get("name", "?")
    frontend = (model.get("frontend") or {}).get("name")
    return f"{frontend}/{backbone}" if frontend and frontend != "identity" else str(backbone)


def run_summary(run: str | os.PathLike, name: str | None = None) -> dict:
    """One row of the runs table (keys :data:`COLUMNS`) for the run folder ``run``."""
    run = Path(run)
    row = dict.fromkeys(COLUMNS)
    row.update(run=name or str(run), state="broken", reason="")
    try:
        _fill(run, row)
    except Exception as exc:  # a broken run is a row, never a traceback
        row["state"] = "broken"
        row["reason"] = row["reason"] or f"{type(exc).__name__}: {exc}"[:120]
    return row


def _fill(run: Path, row: dict) -> None:
    try:
        cfg = yaml.safe_load((run / "config.yaml").read_text()) or {}
        if not isinstance(cfg, dict):
            raise ValueError("not a mapping")
    except Exception as exc:
        row["reason"] = f"config.yaml unreadable ({type(exc).__name__})"
        raise
    row["recipe"] = cfg.get("name")
    row["model"] = _model_name(cfg)
    folds = _fold_dirs(run)
    n_folds = int((cfg.get("cv") or {}).get("folds") or 0)
    metrics, problem = {}, ""
    mpath = run / "metrics.json"
    if mpath.is_file():
        try:
            metrics = json.loads(mpath.read_text())
            if not isinstance(metrics, dict):
                raise ValueError("not an object")
        except (ValueError, UnicodeDecodeError) as exc:
            metrics, problem = {}, f"metrics.json is not valid JSON ({str(exc)[:60]})"
    pretrain = not folds
    if pretrain:  # g2res pretrain: RUN/best.pt, RUN/last.pt, metrics.json
        ckpts = [run / "best.pt", run / "last.pt"]
        row["epochs"] = metrics.get("steps")
        auc = metrics.get("best_val_auc")
        row["auc_mean"] = float(auc) if isinstance(auc, (int, float)) else None
        row["folds"] = "-"
        done = bool(metrics) and (run / "best.pt").is_file()
    else:
        ckpts = [folds[k] / n for k in sorted(folds) for n in ("best.pt", "last.pt")]
        wanted = range(n_folds) if n_folds else sorted(folds)
        missing = [k for k in wanted if not (run / f"fold{k}" / "best.pt").is_file()]
        trained = metrics.get("folds_trained", [k for k in wanted if k not in missing])
        row["folds"] = f"{len(trained)}/{n_folds or len(folds)}"
        per_fold = metrics.get("folds") or {}
        aucs = [v.get("auc") for v in per_fold.values() if isinstance(v, dict)]
        aucs = [float(a) for a in aucs if isinstance(a, (int, float)) and math.isfinite(a)]
        epochs = [v.get("epochs_run") for v in per_fold.values() if isinstance(v, dict)]
        hist_aucs, hist_epochs = _history_aucs(folds)
        if not aucs:
            aucs = hist_aucs
        if aucs:
            row["auc_mean"], row["auc_std"] = float(np.mean(aucs)), float(np.std(aucs))
        row["epochs"] = max([e for e in epochs if isinstance(e, int)], default=hist_epochs)
        row["epochs"] = row["epochs"] or None
        done = bool(metrics) and not missing
        if metrics and missing:
            problem = problem or f"fold(s) {missing} have no best.pt"
        elif not metrics and not problem:
            problem = "no metrics.json"
        oof = run / "oof.csv"
        if metrics and oof.is_file():
            df = pd.read_csv(oof, usecols=["target", "prediction"])
            if np.isfinite(df["prediction"].to_numpy(dtype=np.float64)).all():
                row["eff_fap_1e-2"] = efficiency_at_fpr(df["target"], df["prediction"], 1e-2)
    auc = metrics.get("auc")
    row["oof_auc"] = float(auc) if isinstance(auc, (int, float)) and not pretrain else None
    secs = metrics.get("seconds")
    if secs is None and metrics:
        secs = sum(v for k, v in metrics.items() if k.startswith("seconds_"))
    if secs is None and not pretrain:
        secs = 0.0
        for p in folds.values():
            if (p / "history.csv").is_file():
                h = pd.read_csv(p / "history.csv")
                secs += float(h["seconds"].sum()) if "seconds" in h else 0.0
    row["wall_s"] = round(float(secs), 1) if secs else None
    row["params"] = _params(run, metrics, [c for c in ckpts if c.is_file()])
    row["date"] = _date([mpath, *ckpts])
    if done and not problem:
        row["state"] = "complete"
    elif problem.startswith("metrics.json"):  # written, then damaged: not an interruption
        row["state"], row["reason"] = "broken", problem
    elif any(c.name == "last.pt" and c.is_file() for c in ckpts):
        row["state"], row["reason"] = "resumable", problem or "unfinished"
    else:
        row["state"], row["reason"] = "broken", problem or "no checkpoint to resume from"


def runs_table(dirs: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """One row per run found under ``dirs`` (:func:`find_runs`), columns :data:`COLUMNS`;
    ``run`` is the run folder's path (below the given folder, as given)."""
    rows = [run_summary(run) for run in find_runs(dirs)]
    return pd.DataFrame(rows, columns=COLUMNS)


def sort_runs(table: pd.DataFrame, key: str) -> pd.DataFrame:
    """``table`` sorted by column ``key``: scores (:data:`SCORES`) highest first, other
    columns ascending; empty values last."""
    if key not in table.columns:
        raise ValueError(f"--sort {key}: not a column; use one of {', '.join(COLUMNS)}")
    values = table[key]
    if key in SCORES or key in ("params", "epochs", "wall_s"):
        values = pd.to_numeric(values, errors="coerce")
    return table.assign(_k=values).sort_values(
        "_k", ascending=key not in SCORES, na_position="last", kind="stable"
    ).drop(columns="_k").reset_index(drop=True)  # fmt: skip


def _cell(v, col: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if col in SCORES or col == "auc_std":
        return f"{float(v):.4f}"
    if col == "params":
        return f"{int(v):,}"
    if col == "wall_s":
        return f"{float(v):.0f}"
    if col == "epochs":
        return str(int(v))
    return str(v)


def format_table(table: pd.DataFrame, style: str = "text") -> str:
    """``table`` as aligned text (``text``), CSV (``csv``, raw values) or a Markdown pipe
    table (``markdown``)."""
    if style == "csv":
        return table.to_csv(index=False)
    cells = [[_cell(v, c) for c, v in zip(table.columns, r)] for r in table.itertuples(False)]
    head = list(table.columns)
    if style == "markdown":
        esc = [[c.replace("|", "\\|") for c in r] for r in cells]
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in esc]) + "\n"
    if style != "text":
        raise ValueError(f"style={style!r}: use text, csv or markdown")
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(head)]
    right = {"params", "auc_mean", "auc_std", "oof_auc", "eff_fap_1e-2", "epochs", "wall_s"}

    def line(r):
        return "  ".join(
            c.rjust(w) if h in right else c.ljust(w) for c, w, h in zip(r, widths, head)
        ).rstrip()

    return "\n".join([line(head), *(line(r) for r in cells)]) + "\n"
