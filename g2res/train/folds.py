"""K-fold splits: scikit-learn ``StratifiedKFold``, saved as ``folds.csv`` (id,target,fold).

Every run of a study should train on the same split: a run writes its split once and
reuses it on ``--resume``; ``cv.folds_file`` makes a run adopt another run's split.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from g2res.utils import atomic_path

__all__ = ["make_folds", "read_folds", "write_folds", "check_folds"]

FOLD_COLUMNS = ["id", "target", "fold"]


def make_folds(ids, labels, n_folds: int, seed: int) -> pd.DataFrame:
    """Stratified ``n_folds``-fold split of ``ids`` (n,) with ``labels`` (n,) 0/1.

    Returns a table in the order of ``ids``: id, target, fold (0 .. n_folds-1).
    """
    ids = np.asarray(ids, dtype=str)
    labels = np.asarray(labels).astype(np.int64)
    if n_folds < 2:
        raise ValueError(f"cv.folds={n_folds}: K-fold training needs at least 2 folds")
    counts = np.bincount(labels, minlength=2)
    if counts.min() < n_folds:
        raise ValueError(
            f"cv.folds={n_folds} but the training set has only {counts.min()} samples of "
            f"class {int(np.argmin(counts))}; use fewer folds or more data"
        )
    fold = np.empty(len(ids), dtype=np.int64)
    skf = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for k, (_, val) in enumerate(skf.split(np.zeros(len(ids)), labels)):
        fold[val] = k
    return pd.DataFrame({"id": ids, "target": labels, "fold": fold})


def write_folds(folds: pd.DataFrame, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        folds[FOLD_COLUMNS].to_csv(tmp, index=False)


def read_folds(path: str | os.PathLike) -> pd.DataFrame:
    """A ``folds.csv`` with ids as strings; raises naming the file when malformed."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"folds file {path} does not exist")
    df = pd.read_csv(path, dtype={"id": str})
    missing = [c for c in FOLD_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; expected {FOLD_COLUMNS}")
    if df["id"].duplicated().any():
        raise ValueError(f"{path}: ids appear more than once")
    return df[FOLD_COLUMNS]


def check_folds(folds: pd.DataFrame, ids, labels, where: str = "folds") -> np.ndarray:
    """Fold of each of ``ids`` (n,) from ``folds``; the ids and targets must match."""
    ids = pd.Index(np.asarray(ids, dtype=str))
    table = folds.set_index("id")
    missing = ids.difference(table.index)
    extra = table.index.difference(ids)
    if len(missing) or len(extra):
        raise ValueError(
            f"{where} does not split this training set: {len(missing)} training id(s) "
            f"missing (e.g. {list(missing[:3])}), {len(extra)} unknown id(s) "
            f"(e.g. {list(extra[:3])})"
        )
    table = table.loc[ids]
    if not np.array_equal(table["target"].to_numpy(np.int64), np.asarray(labels, np.int64)):
        raise ValueError(f"{where} holds other targets than the cache for some ids")
    return table["fold"].to_numpy(np.int64)
