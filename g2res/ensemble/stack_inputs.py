"""Inputs of the stacker: the runs' out-of-fold and test predictions, and id,score
statistics for the train and test split, read and checked against each other.

Every mismatch is a ``ValueError`` naming the file and the problem: ids that do not
match the OOF or the sample submission, a statistic given for one split only, NaN or
infinite scores, runs that were not split into the same folds.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from g2res.ensemble.blend import read_oof
from g2res.ensemble.submission import _first, read_csv_ids

# Columns tried, in order, for a statistic's score: the ranked statistic of the matched
# filter's .raw.csv companion (network, re-weighted or coherent SNR), its network SNR
# (older companions), a generic score, a submission's target.
STAT_COLUMNS = ("stat", "snr", "score", "target")


def parse_named_files(items: Sequence[str] | None, option: str) -> dict[str, str]:
    """``["NAME=FILE", ...]`` (a repeated command-line ``option``) -> ``{NAME: FILE}``."""
    named: dict[str, str] = {}
    for item in items or []:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"{option} {item!r}: expected NAME=FILE")
        if name in named:
            raise ValueError(f"{option}: statistic {name!r} given twice")
        named[name] = path
    return named


def read_statistic(
    path: str | os.PathLike, name: str, split: str, column: str | None = None
) -> tuple[pd.Series, str]:
    """Scores of statistic ``name`` on ``split`` from an ``id,score`` CSV -> (scores by id, column).

    The score column is ``column`` or the first of :data:`STAT_COLUMNS` present
    (or the only column beside ``id``). Duplicate ids and scores that are not
    finite numbers are errors naming the file.
    """
    path = Path(path)
    what = f"statistic {name} ({split})"
    df = read_csv_ids(path, what)
    if column is None:
        present = [c for c in STAT_COLUMNS if c in df.columns]
        others = [c for c in df.columns if c != "id"]
        column = present[0] if present else (others[0] if len(others) == 1 else None)
        if column is None:
            raise ValueError(
                f"{what} {path}: no score column; expected id and one of {list(STAT_COLUMNS)} "
                f"(columns: {list(df.columns)})"
            )
    elif column not in df.columns:
        raise ValueError(f"{what} {path}: no column {column!r} (columns: {list(df.columns)})")
    ids = df["id"]
    if ids.isna().any():
        raise ValueError(f"{what} {path}: {int(ids.isna().sum())} rows have no id")
    dup = ids[ids.duplicated()]
    if len(dup):
        raise ValueError(f"{what} {path}: {len(dup)} id(s) repeated: {_first(dup.unique())}")
    score = pd.to_numeric(df[column], errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(score)
    if bad.any():
        raise ValueError(
            f"{what} {path}: {int(bad.sum())} score(s) in column {column!r} are NaN, infinite "
            f"or not numbers (ids {_first(ids[bad])})"
        )
    return pd.Series(score, index=pd.Index(ids.astype(str), name="id")), column


def _id_mismatch(what: str, have: pd.Index, want: pd.Index, want_what: str) -> str:
    missing, extra = want.difference(have), have.difference(want)
    parts = []
    if len(missing):
        parts.append(f"lacks {len(missing)} id(s) of {want_what} ({_first(missing)})")
    if len(extra):
        parts.append(f"has {len(extra)} id(s) not in {want_what} ({_first(extra)})")
    return f"{what} " + " and ".join(parts)


def align_runs(
    oof_paths: Sequence[str | os.PathLike], names: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The runs' OOF tables aligned by id -> ``(ids, y, folds, probabilities (n, runs))``.

    Every run must hold the same ids, targets and folds (a stacker cross-validated
    over folds the runs did not share would see labels the runs trained on). A
    ``folds.csv`` beside an ``oof.csv`` must agree with its ``fold`` column.
    """
    ref = None
    cols = []
    for path, name in zip(oof_paths, names):
        path = Path(path)
        df = read_oof(path).set_index("id").sort_index()
        if (df["fold"] < 0).any():
            raise ValueError(f"{path}: out-of-fold predictions with a negative fold")
        folds_csv = path.parent / "folds.csv"
        if folds_csv.is_file():
            split = read_csv_ids(folds_csv, "folds file")
            if "fold" not in split.columns:
                raise ValueError(f"{folds_csv}: no 'fold' column (columns: {list(split.columns)})")
            split = split.drop_duplicates("id").set_index("id")["fold"]
            known = df.index.intersection(split.index)
            if len(known) < len(df) or not np.array_equal(
                split.loc[df.index].to_numpy(np.int64), df["fold"].to_numpy(np.int64)
            ):
                raise ValueError(
                    f"{path} and {folds_csv} disagree on the fold of some ids; "
                    "is the oof.csv from another training?"
                )
        if ref is None:
            ref, ref_path = df, path
        else:
            if not ref.index.equals(df.index):
                raise ValueError(
                    _id_mismatch(f"{path} (run {name})", df.index, ref.index, str(ref_path))
                    + "; stacking needs runs trained on the same cache"
                )
            if not np.array_equal(ref["target"].to_numpy(), df["target"].to_numpy()):
                raise ValueError(f"{path} and {ref_path} disagree on the targets of some ids")
            if not np.array_equal(ref["fold"].to_numpy(), df["fold"].to_numpy()):
                n = int((ref["fold"].to_numpy() != df["fold"].to_numpy()).sum())
                raise ValueError(
                    f"{path} and {ref_path} used different folds ({n} ids differ): stacking "
                    "cross-validates over the runs' folds, so every run must share one split "
                    "(same cv.folds and seed, or cv.folds_file)"
                )
        cols.append(df["prediction"].to_numpy(np.float64))
    ids = ref.index.to_numpy(dtype=str)
    return ids, ref["target"].to_numpy(np.int64), ref["fold"].to_numpy(np.int64), np.stack(cols, 1)


@dataclass
class Statistic:
    """One non-network input: its scores on the OOF ids and on the predicted test ids."""

    name: str
    train_path: str
    test_path: str
    column: str
    transform: str  # "logit" (scores in [0, 1] from a submission's target) or "identity"
    train: np.ndarray  # (n_oof,)
    test: np.ndarray  # (n_test,)


def read_statistics(
    stat_train: Mapping[str, str | os.PathLike],
    stat_test: Mapping[str, str | os.PathLike],
    oof_ids: Sequence[str],
    test_ids: Sequence[str],
    sample_ids: Sequence[str],
) -> list[Statistic]:
    """Read and align each statistic given for both splits.

    Train scores must cover exactly the OOF ids; test scores every predicted test
    id and none outside the sample submission. A statistic given for one split
    only is an error.
    """
    only_test = [n for n in stat_test if n not in stat_train]
    only_train = [n for n in stat_train if n not in stat_test]
    if only_test:
        raise ValueError(
            f"statistic {only_test[0]} has test scores ({stat_test[only_test[0]]}) but no "
            f"train scores: give --stat-train {only_test[0]}=FILE too (the stacker learns "
            "its weight on the training samples)"
        )
    if only_train:
        raise ValueError(
            f"statistic {only_train[0]} has train scores ({stat_train[only_train[0]]}) but no "
            f"test scores: give --stat-test {only_train[0]}=FILE too"
        )
    oof_index = pd.Index(np.asarray(oof_ids, dtype=str))
    test_index = pd.Index(np.asarray(test_ids, dtype=str))
    sample_index = pd.Index(np.asarray(sample_ids, dtype=str))
    out = []
    for name, train_path in stat_train.items():
        test_path = stat_test[name]
        train, column = read_statistic(train_path, name, "train")
        test, _ = read_statistic(test_path, name, "test", column=column)
        if not train.index.sort_values().equals(oof_index.sort_values()):
            raise ValueError(
                _id_mismatch(
                    f"statistic {name} (train) {train_path}",
                    train.index,
                    oof_index,
                    "the runs' out-of-fold predictions",
                )
            )
        foreign = test.index.difference(sample_index)
        if len(foreign):
            raise ValueError(
                f"statistic {name} (test) {test_path}: {len(foreign)} id(s) are not in the "
                f"sample submission ({_first(foreign)})"
            )
        lacking = test_index.difference(test.index)
        if len(lacking):
            raise ValueError(
                f"statistic {name} (test) {test_path}: lacks {len(lacking)} predicted test "
                f"id(s) of the sample submission ({_first(lacking)})"
            )
        a, b = train.to_numpy(), test.to_numpy()
        in_unit = all(((v >= 0) & (v <= 1)).all() for v in (a, b))
        transform = "logit" if column == "target" and in_unit else "identity"
        out.append(
            Statistic(
                name=name,
                train_path=str(train_path),
                test_path=str(test_path),
                column=column,
                transform=transform,
                train=train.loc[oof_index].to_numpy(),
                test=test.loc[test_index].to_numpy(),
            )
        )
    return out
