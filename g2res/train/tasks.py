"""What a run learns: detection (``task: classification``), source parameters
(``task: regression``) or both with one backbone (``task: multitask``).

Regression targets are columns of the data set's ``truth/injections.csv`` or quantities
derived from them (:data:`DERIVED`). They are standardised with the mean and standard
deviation of the fold's training rows; a target that is undefined for a sample (a noise
sample's chirp mass; every target of noise samples with ``regression.samples:
positives``) is NaN and masked out of the loss and the metrics.

Model outputs ``(batch, n_outputs)``: column 0 is the detection logit for classification
and multitask, then one column per regression target.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from g2res.config import Config
from g2res.models.classifier import TASKS, _n_outputs, task_model_config

__all__ = ["TASKS", "DERIVED", "Task", "task_model_config", "regression_targets"]


def _chirp_mass(t: pd.DataFrame) -> pd.Series:
    m1, m2 = t["mass1"], t["mass2"]
    return (m1 * m2) ** 0.6 / (m1 + m2) ** 0.2


DERIVED = {
    "chirp_mass": _chirp_mass,  # Msun, detector frame
    "total_mass": lambda t: t["mass1"] + t["mass2"],  # Msun
    "mass_ratio": lambda t: np.minimum(t["mass1"], t["mass2"]) / np.maximum(t["mass1"], t["mass2"]),
    "network_snr": lambda t: t["snr_network"],
}


def regression_targets(cfg: Config, cache, ids) -> np.ndarray:
    """``(len(ids), len(cfg.targets))`` float64 targets of ``ids`` (NaN: undefined)."""
    from g2res.ensemble.submission import read_csv_ids

    table_path = Path(cfg.regression.table) if cfg.regression.table else None
    if table_path is None:
        data = cache.data_dir
        table_path = data / "truth" / "injections.csv" if data else None
    if table_path is None or not table_path.is_file():
        raise FileNotFoundError(
            f"task={cfg.task} needs the injections table ({table_path or 'DATA/truth/'}"
            "injections.csv); set regression.table=PATH"
        )
    table = read_csv_ids(table_path, "injections table").drop_duplicates("id").set_index("id")
    missing = pd.Index(ids).difference(table.index)
    if len(missing):
        raise ValueError(f"{table_path}: {len(missing)} training id(s) missing, e.g. {missing[0]}")
    table = table.loc[list(ids)]
    cols = []
    for name in cfg.targets:
        if name in DERIVED:
            try:
                col = DERIVED[name](table)
            except KeyError as exc:
                raise ValueError(f"{table_path}: target {name} needs column {exc}") from None
        elif name in table.columns:
            col = table[name]
        else:
            raise ValueError(
                f"target {name!r} is neither a column of {table_path} nor one of {sorted(DERIVED)}"
            )
        cols.append(pd.to_numeric(col, errors="coerce").to_numpy(np.float64))
    y = np.stack(cols, axis=1)
    if cfg.regression.samples == "positives":
        y[table["target"].to_numpy() != 1] = np.nan
    elif cfg.regression.samples != "all":
        raise ValueError(f"regression.samples={cfg.regression.samples!r}: positives or all")
    return y


class Task:
    """Targets, loss and validation metrics of ``cfg.task`` for one fold.

    ``targets(labels, reg)`` -> ``(n, n_y)`` float32 training targets: the label (0/1,
    or a soft pseudo-label) then the standardised regression targets. Standardisation
    uses ``fit(reg[train_rows])``.
    """

    def __init__(self, cfg: Config):
        self.kind = cfg.task
        self.n_outputs = _n_outputs(cfg)
        self.names = list(cfg.targets) if self.kind != "classification" else []
        self.detect = self.kind != "regression"
        self.weight = float(cfg.regression.weight)
        loss = cfg.regression.loss
        if loss not in ("mse", "huber"):
            raise ValueError(f"regression.loss={loss!r}: mse or huber")
        self._reg_loss = (
            nn.HuberLoss(reduction="none") if loss == "huber" else nn.MSELoss(reduction="none")
        )
        self.mean = np.zeros(len(self.names))
        self.std = np.ones(len(self.names))

    def fit(self, reg: np.ndarray) -> None:
        if not self.names:
            return
        for j, name in enumerate(self.names):
            v = reg[:, j][np.isfinite(reg[:, j])]
            if v.size < 2:
                raise ValueError(f"target {name}: fewer than 2 training samples define it")
            self.mean[j], self.std[j] = v.mean(), max(v.std(), 1e-12)

    def targets(self, labels: np.ndarray, reg: np.ndarray | None) -> np.ndarray:
        cols = [labels.reshape(-1, 1)] if self.detect else []
        if self.names:
            cols.append((reg - self.mean) / self.std)
        return np.concatenate(cols, axis=1).astype(np.float32)

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``out`` (b, n_outputs), ``y`` (b, n_y) -> scalar loss (NaN targets masked)."""
        out, y = out.reshape(out.shape[0], -1), y.reshape(y.shape[0], -1)
        total = out.new_zeros(())
        j = 0
        if self.detect:
            total = nn.functional.binary_cross_entropy_with_logits(out[:, 0], y[:, 0])
            j = 1
        if self.names:
            pred, true = out[:, j:], y[:, j:]
            mask = torch.isfinite(true)
            err = self._reg_loss(pred, torch.where(mask, true, pred.detach()))
            reg = (err * mask).sum() / mask.sum().clamp(min=1)
            total = total + (self.weight if self.detect else 1.0) * reg
        return total

    def predictions(self, out: np.ndarray) -> dict[str, np.ndarray]:
        """Columns of ``oof.csv`` from model outputs ``(n, n_outputs)``: ``prediction`` (the
        detection probability; NaN for pure regression) and ``<target>_pred`` in the
        targets' units."""
        out = out.reshape(out.shape[0], -1).astype(np.float64)
        cols = {"prediction": 1 / (1 + np.exp(-out[:, 0])) if self.detect else np.full(
            out.shape[0], np.nan)}  # fmt: skip
        j = 1 if self.detect else 0
        for k, name in enumerate(self.names):
            cols[f"{name}_pred"] = out[:, j + k] * self.std[k] + self.mean[k]
        return cols

    def evaluate(self, out: np.ndarray, labels: np.ndarray, reg: np.ndarray | None) -> dict:
        """Validation metrics; ``score`` (higher is better) picks the best epoch: the AUC
        when detecting, else the mean R² of the targets."""
        from sklearn.metrics import r2_score, roc_auc_score

        out = out.reshape(out.shape[0], -1)
        y = torch.from_numpy(self.targets(labels, reg))
        m = {"val_loss": float(self.loss(torch.from_numpy(out.astype(np.float32)), y))}
        preds = self.predictions(out)
        if self.detect:
            both = 0 < labels.sum() < labels.size
            # On the probabilities written to oof.csv (float64): saturated ones tie there,
            # and the best epoch must be the best of what is kept.
            auc = roc_auc_score(labels, preds["prediction"]) if both else math.nan
            m["val_auc"] = float(auc)
        r2s = []
        for k, name in enumerate(self.names):
            ok = np.isfinite(reg[:, k])
            pred = preds[f"{name}_pred"]
            r2 = float(r2_score(reg[ok, k], pred[ok])) if ok.sum() > 1 else math.nan
            m[f"val_r2_{name}"] = r2
            r2s.append(r2)
        if self.names:
            m["val_r2"] = float(np.mean(r2s))
        m["score"] = m["val_auc"] if self.detect else m["val_r2"]
        return m

    def state(self) -> dict:
        return {"kind": self.kind, "names": self.names, "mean": self.mean.tolist(),
                "std": self.std.tolist()}  # fmt: skip

    def load_state(self, state: dict) -> None:
        self.mean, self.std = np.asarray(state["mean"]), np.asarray(state["std"])
