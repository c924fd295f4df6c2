"""Stacking: a scikit-learn classifier on the runs' out-of-fold predictions.

The stacker's inputs are, per training sample, the logit of each run's OOF
probability (``oof.csv``) and, optionally, other statistics given as CSVs of
``id,score`` for the train and the test split (e.g. the network SNR of
``g2res baseline matched-filter``). It is

- ``logistic`` (default): ``StandardScaler`` + ``LogisticRegression``, i.e. a
  weighted sum of logits; its coefficients are saved as JSON;
- ``hgb``: ``HistGradientBoostingClassifier`` with fixed settings and the seed.

Leak-free: the stacker is cross-validated over the SAME folds the runs used
(``fold`` of their ``oof.csv``, as ``folds.csv`` split them): the rows of fold k
are predicted by a stacker fitted on the other folds' rows only, and these
predictions give the stacker's own AUC and efficiency at a false-alarm
probability, printed next to each input's. The stacker is then refitted on
every OOF row and applied to the runs' test predictions (each the mean of the
run's fold models) and to the statistics' test scores.

Fold scaling (``fold_scale``, ``g2res submit --stack`` does it by default): the fold
models of one run can differ in calibration by far more than in ranking (a fold whose
best epoch came late puts the median logit of its validation rows at +7 where another
puts it at -1), and pooled OOF logits of such folds rank worse than each fold does, so a
stacker fitted on them under-weights the run. With it, each run's logits are standardised
per fold model by the median and interquartile range of that fold's OOF logits (labels
unused, so still leak-free): OOF row of fold k -> ``(logit - median_k) / iqr_k``; a test
sample -> the mean over fold models k of the same of fold model k's probability.

The fitted stacker is saved beside the submission (``NAME.stack.json``): inputs,
settings, cross-validated metrics and, for ``logistic``, the coefficients and
intercept on the raw features (no pickle). ``hgb`` is refitted from the same
inputs with the same seed to reproduce it (its fit is deterministic).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from g2res.ensemble.blend import auc
from g2res.ensemble.metrics import efficiency_at_fpr
from g2res.ensemble.stack_inputs import (  # noqa: F401 (parse_named_files: the CLI's)
    Statistic,
    align_runs,
    parse_named_files,
    read_statistics,
)
from g2res.utils import write_json

STACKERS = ("logistic", "hgb")
FAP = 1e-2  # false-alarm probability at which efficiencies are reported
LOGIT_EPS = 1e-7  # probabilities are clipped to [eps, 1 - eps] before the logit
HGB_SETTINGS = {
    "max_iter": 200,
    "learning_rate": 0.05,
    "max_leaf_nodes": 15,
    "min_samples_leaf": 20,
    "l2_regularization": 1.0,
    "early_stopping": False,
}
LOGISTIC_SETTINGS = {"C": 1.0, "max_iter": 1000}


def stack_path(out: str | os.PathLike) -> Path:
    """``name.stack.json`` beside a submission ``name.csv``: the fitted stacker."""
    out = Path(out)
    return out.with_name(f"{out.stem}.stack.json")


def logit(p: np.ndarray) -> np.ndarray:
    """``log(p / (1 - p))`` of probabilities clipped to ``[LOGIT_EPS, 1 - LOGIT_EPS]``."""
    p = np.clip(np.asarray(p, dtype=np.float64), LOGIT_EPS, 1 - LOGIT_EPS)
    return np.log(p) - np.log1p(-p)


def _standardise(p: np.ndarray, median: float, iqr: float) -> np.ndarray:
    return (logit(p) - median) / iqr


def _scaled(p: np.ndarray, scale: Mapping[int, tuple[float, float]], folds: np.ndarray):
    """OOF probabilities ``p`` ``(n,)`` -> logits standardised by each row's fold scale."""
    out = np.empty(len(p))
    for k, (median, iqr) in scale.items():
        rows = folds == k
        out[rows] = _standardise(p[rows], median, iqr)
    return out


def fold_scales(p: np.ndarray, folds: np.ndarray) -> dict[int, tuple[float, float]]:
    """``{fold: (median, iqr)}`` of the logits of one run's OOF probabilities ``p`` (n,)
    per fold ``folds`` (n,); an IQR of 0 (a fold that outputs one value) becomes 1."""
    out = {}
    for k in np.unique(folds):
        z = logit(p[folds == k])
        q1, med, q3 = np.percentile(z, [25, 50, 75])
        out[int(k)] = (float(med), float(q3 - q1) if q3 > q1 else 1.0)
    return out


def make_stacker(kind: str = "logistic", seed: int = 0):
    """An unfitted stacker: ``logistic`` (scaled logistic regression) or ``hgb``."""
    if kind == "logistic":
        return make_pipeline(StandardScaler(), LogisticRegression(**LOGISTIC_SETTINGS))
    if kind == "hgb":
        return HistGradientBoostingClassifier(**HGB_SETTINGS, random_state=seed)
    raise ValueError(f"unknown stacker {kind!r}; choose from {list(STACKERS)}")


def _train_rows(folds: np.ndarray, k: int) -> np.ndarray:
    """Rows a stacker predicting fold ``k`` is fitted on: every other fold's."""
    return folds != k


def cross_validate(
    features: np.ndarray, y: np.ndarray, folds: np.ndarray, kind: str = "logistic", seed: int = 0
) -> np.ndarray:
    """Out-of-fold stacker probabilities ``(n,)`` over the given ``folds`` ``(n,)``.

    ``features`` ``(n, inputs)``, ``y`` ``(n,)`` 0/1. The rows of fold k are
    predicted by a stacker fitted on the rows of the other folds only.
    """
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(y).astype(np.int64)
    folds = np.asarray(folds).astype(np.int64)
    labels = np.unique(folds)
    if labels.size < 2:
        raise ValueError(f"stacking needs out-of-fold predictions of >= 2 folds, got {labels}")
    out = np.full(len(y), np.nan)
    template = make_stacker(kind, seed)
    for k in labels:
        fit, held = _train_rows(folds, k), folds == k
        if np.unique(y[fit]).size < 2:
            raise ValueError(f"the folds other than {k} hold a single class: cannot fit a stacker")
        model = clone(template).fit(x[fit], y[fit])
        out[held] = model.predict_proba(x[held])[:, 1]
    return out


def _feature(values: np.ndarray, transform: str) -> np.ndarray:
    return logit(values) if transform == "logit" else np.asarray(values, dtype=np.float64)


# ------------------------------------------------------------------------------ the stacker
@dataclass
class Stack:
    """A stacker fitted on every OOF row, with its cross-validated report.

    ``predict(run_test (n_test, runs))`` applies it to the runs' test
    probabilities and the statistics' test scores (in the test ids' order).
    """

    kind: str
    seed: int
    run_names: list[str]
    run_paths: list[str]
    statistics: list[Statistic]
    model: object
    cv: dict
    n_train: int
    inputs: list[dict] = field(default_factory=list)
    # per run {fold: (median, iqr)} of its OOF logits when fold-scaled, else None
    fold_scales: list[dict[int, tuple[float, float]]] | None = None

    def features(
        self, run_probabilities: np.ndarray, split: str = "test", folds: np.ndarray | None = None
    ) -> np.ndarray:
        """``(n, runs)`` probabilities (+ the statistics of ``split``) -> ``(n, inputs)``.

        A fold-scaled stacker needs ``folds`` ``(n,)`` (each row's fold, OOF rows only);
        its test features come from :meth:`predict_folds`."""
        p = np.asarray(run_probabilities, dtype=np.float64).reshape(len(run_probabilities), -1)
        if p.shape[1] != len(self.run_names):
            raise ValueError(f"{p.shape[1]} runs' predictions for {len(self.run_names)} runs")
        if self.fold_scales is None:
            cols = [logit(p[:, k]) for k in range(p.shape[1])]
        elif folds is None:
            raise ValueError(
                "a fold-scaled stacker standardises each fold model's logits: give the OOF "
                "rows' folds, or each fold model's test probabilities to predict_folds"
            )
        else:
            cols = [_scaled(p[:, k], scale, folds) for k, scale in enumerate(self.fold_scales)]
        return self._with_statistics(cols, split, len(p))

    def _with_statistics(self, cols: list[np.ndarray], split: str, n: int) -> np.ndarray:
        """The runs' feature columns, then each statistic's of ``split`` -> ``(n, inputs)``."""
        for s in self.statistics:
            values = s.test if split == "test" else s.train
            if len(values) != n:
                raise ValueError(f"statistic {s.name}: {len(values)} {split} scores for {n}")
            cols.append(_feature(values, s.transform))
        return np.stack(cols, axis=1)

    def predict(self, run_probabilities: np.ndarray) -> np.ndarray:
        """Stacked probabilities ``(n_test,)`` in [0, 1] from the runs' mean test
        probabilities ``(n_test, runs)`` (not for a fold-scaled stacker)."""
        return self.model.predict_proba(self.features(run_probabilities))[:, 1]

    def predict_folds(self, fold_probabilities: Sequence[Mapping[int, np.ndarray]]) -> np.ndarray:
        """Stacked probabilities ``(n_test,)`` from each run's ``{fold: (n_test,)}`` test
        probabilities of its fold models (a fold-scaled stacker standardises each by its
        fold's OOF scale; otherwise the runs' mean probabilities are used)."""
        if len(fold_probabilities) != len(self.run_names):
            raise ValueError(
                f"{len(fold_probabilities)} runs' predictions for {len(self.run_names)} runs"
            )
        if self.fold_scales is None:
            mean = [np.mean([np.asarray(v, np.float64) for v in f.values()], axis=0)
                    for f in fold_probabilities]  # fmt: skip
            return self.predict(np.stack(mean, axis=1))
        cols = []
        for name, scale, folds in zip(self.run_names, self.fold_scales, fold_probabilities):
            if sorted(folds) != sorted(scale):
                raise ValueError(
                    f"run {name}: test predictions of folds {sorted(folds)} but its OOF rows "
                    f"come from folds {sorted(scale)}"
                )
            cols.append(np.mean([_standardise(folds[k], *scale[k]) for k in scale], axis=0))
        n = len(cols[0])
        x = self._with_statistics(cols, "test", n)
        return self.model.predict_proba(x)[:, 1]

    def coefficients(self) -> tuple[dict[str, float], float] | None:
        """Logistic only: weights and intercept on the raw features (logits, statistics)."""
        if self.kind != "logistic":
            return None
        scaler, lr = self.model[0], self.model[-1]
        w = lr.coef_[0] / scaler.scale_
        b = float(lr.intercept_[0] - np.sum(w * scaler.mean_))
        return dict(zip([i["name"] for i in self.inputs], w.tolist())), b

    def to_json(self) -> dict:
        doc = {
            "stacker": self.kind,
            "settings": dict(LOGISTIC_SETTINGS if self.kind == "logistic" else HGB_SETTINGS),
            "seed": self.seed,
            "logit_clip": LOGIT_EPS,
            "inputs": self.inputs,
            "n_train": self.n_train,
            "cv": self.cv,
        }
        coef = self.coefficients()
        if coef is not None:
            doc["coefficients"], doc["intercept"] = coef
            doc["formula"] = (
                "target = 1 / (1 + exp(-(intercept + sum of coefficients[name] * feature[name]))); "
                "feature: logit of the run's probability clipped to [logit_clip, 1 - logit_clip] "
                "(with fold_scale: the mean over the run's fold models k of (logit of fold "
                "model k's probability - median_k) / iqr_k), or the statistic's score "
                "(transform identity) or its logit (transform logit)"
            )
        else:
            doc["refit"] = (
                "HistGradientBoostingClassifier(**settings, random_state=seed) fitted on every "
                "out-of-fold row of the inputs (features as for logistic) reproduces this stacker"
            )
        return doc

    def save(self, path: str | os.PathLike, force: bool = False) -> Path:
        """Write :meth:`to_json` atomically; an existing ``path`` needs ``force``."""
        path = Path(path)
        if path.exists() and not force:
            raise FileExistsError(f"{path} already exists; pass --force to overwrite it")
        write_json(path, self.to_json())
        return path


def _scores(y: np.ndarray, s: np.ndarray, fap: float) -> dict:
    return {"auc": auc(y, s), "efficiency": efficiency_at_fpr(y, s, fap)}


def fit_stack(
    oof_paths: Sequence[str | os.PathLike],
    names: Sequence[str],
    kind: str = "logistic",
    stat_train: Mapping[str, str | os.PathLike] | None = None,
    stat_test: Mapping[str, str | os.PathLike] | None = None,
    test_ids: Sequence[str] = (),
    sample_ids: Sequence[str] | None = None,
    seed: int = 0,
    fap: float = FAP,
    fold_scale: bool = False,
) -> Stack:
    """Cross-validate a stacker over the runs' folds, then fit it on every OOF row.

    ``oof_paths``/``names``: one ``oof.csv`` per run; ``stat_train``/``stat_test``:
    ``{name: csv}`` of extra statistics (see :func:`read_statistics`);
    ``test_ids``: the ids whose test predictions the stacker will be applied to;
    ``sample_ids``: the sample submission's ids (default ``test_ids``). Every check
    runs here, before any test prediction. ``cv`` of the result holds the stacker's
    and each input's AUC and efficiency at ``fap`` on the OOF rows (the stacker's
    from :func:`cross_validate`). ``fold_scale``: standardise each run's logits per fold
    model (module docstring); the stacker then predicts with :meth:`Stack.predict_folds`.
    """
    if kind not in STACKERS:
        raise ValueError(f"unknown stacker {kind!r}; choose from {list(STACKERS)}")
    stat_train, stat_test = dict(stat_train or {}), dict(stat_test or {})
    clash = sorted(set(names) & (set(stat_train) | set(stat_test)))
    if clash:
        raise ValueError(f"statistic name {clash[0]!r} is also the name of a run; rename it")
    ids, y, folds, p = align_runs(oof_paths, names)
    stats = read_statistics(
        stat_train, stat_test, ids, test_ids, test_ids if sample_ids is None else sample_ids
    )
    scales = [fold_scales(p[:, k], folds) for k in range(p.shape[1])] if fold_scale else None
    inputs = [
        {"name": n, "kind": "run", "oof": str(o), "transform": "logit"}
        for n, o in zip(names, oof_paths)
    ]
    for i, scale in zip(inputs, scales or []):
        i["fold_scale"] = {str(k): {"median": m, "iqr": q} for k, (m, q) in scale.items()}
    inputs += [
        {
            "name": s.name,
            "kind": "statistic",
            "train": s.train_path,
            "test": s.test_path,
            "column": s.column,
            "transform": s.transform,
        }
        for s in stats
    ]
    stack = Stack(
        kind=kind,
        seed=seed,
        run_names=list(names),
        run_paths=[str(Path(o).parent) for o in oof_paths],
        statistics=stats,
        model=None,
        cv={},
        n_train=len(y),
        inputs=inputs,
        fold_scales=scales,
    )
    x = stack.features(p, split="train", folds=folds)
    cv_prob = cross_validate(x, y, folds, kind, seed)
    fold_labels = np.unique(folds)
    stack.cv = {
        "fap": fap,
        "n": int(len(y)),
        "n_noise": int((y == 0).sum()),
        "folds": fold_labels.tolist(),
        "inputs": {i["name"]: _scores(y, x[:, k], fap) for k, i in enumerate(inputs)},
        "stack": _scores(y, cv_prob, fap),
        "stack_per_fold_auc": [auc(y[folds == k], cv_prob[folds == k]) for k in fold_labels],
        "fold_scale": bool(fold_scale),
    }
    stack.model = make_stacker(kind, seed).fit(x, y)
    return stack


def format_report(cv: dict, kind: str) -> str:
    """The OOF table: each input's AUC and efficiency at the FAP, then the stacker's."""
    head = f"{'input':<24} {'OOF AUC':>8} {'eff@FAP ' + format(cv['fap'], 'g'):>13}"
    lines = [head]
    for name, m in cv["inputs"].items():
        lines.append(f"{name:<24} {m['auc']:>8.4f} {m['efficiency']:>13.4f}")
    m = cv["stack"]
    label = f"stack ({kind}, CV)"
    lines.append(f"{label:<24} {m['auc']:>8.4f} {m['efficiency']:>13.4f}")
    lines.append(
        f"({cv['n']} OOF rows, {cv['n_noise']} noise; the stacker's figures are "
        f"cross-validated over the runs' {len(cv['folds'])} folds"
        + (
            "; the runs' rows are their logits standardised per fold"
            if cv.get("fold_scale")
            else ""
        )  # fmt: skip
        + ")"
    )
    return "\n".join(lines)


def apply_saved_stack(
    doc: Mapping | str | os.PathLike, features: Mapping[str, np.ndarray]
) -> np.ndarray:
    """A saved logistic stacker (``NAME.stack.json`` or its dict) applied to new data.

    ``features``: ``{input name: (n,) values}`` for every input of the stacker, the
    runs' probabilities and the statistics' raw scores (transformed here as when it was
    fitted); a fold-scaled run input takes ``{fold: (n,)}``, its fold models'
    probabilities. Returns stacked probabilities ``(n,)``. For a stacker fitted on one data set
    and scored on another (``benchmarks/generalise.py``); ``hgb`` stackers keep no
    coefficients and are refused.
    """
    import json

    if not isinstance(doc, Mapping):
        doc = json.loads(Path(doc).read_text())
    if doc.get("stacker") != "logistic" or "coefficients" not in doc:
        raise ValueError(
            f"only a saved logistic stacker can be applied (got {doc.get('stacker')!r}); "
            "an hgb stacker is refitted from its inputs"
        )
    names = [i["name"] for i in doc["inputs"]]
    missing = [n for n in names if n not in features]
    if missing:
        raise ValueError(f"the stacker needs inputs {names}; missing {missing}")
    columns = {}
    for i in doc["inputs"]:
        name, given = i["name"], features[i["name"]]
        if "fold_scale" in i:
            scale = {int(k): (v["median"], v["iqr"]) for k, v in i["fold_scale"].items()}
            given = {int(k): v for k, v in given.items()} if isinstance(given, Mapping) else None
            if given is None or sorted(given) != sorted(scale):
                raise ValueError(
                    f"input {name} is fold-scaled: give {{fold: probabilities}} of its fold "
                    f"models {sorted(scale)}"
                )
            parts = [np.asarray(given[k], dtype=np.float64) for k in scale]
            if not all(np.all(np.isfinite(v)) for v in parts):
                raise ValueError(f"input {name}: scores that are NaN or infinite")
            columns[name] = np.mean([_standardise(given[k], *scale[k]) for k in scale], axis=0)
            continue
        values = np.asarray(given, dtype=np.float64)
        if not np.all(np.isfinite(values)):
            raise ValueError(f"input {name}: scores that are NaN or infinite")
        columns[name] = _feature(values, i["transform"])
    sizes = {len(v) for v in columns.values()}
    if len(sizes) != 1:
        raise ValueError(f"inputs of different lengths {sorted(sizes)}")
    z = np.full(sizes.pop(), float(doc["intercept"]))
    for name, column in columns.items():
        z += doc["coefficients"][name] * column
    return 1.0 / (1.0 + np.exp(-z))
