"""Submission files: ``id,target`` with exactly the ids of ``sample_submission.csv``.

A submission is checked against the sample before anything is written: the same
ids in the same order, no duplicates, columns ``id,target``, every target a
finite probability in [0, 1]. Any other file is refused with a
:class:`SubmissionError` naming the problem and the first offending ids.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from g2res.utils import atomic_open

COLUMNS = ["id", "target"]
_SHOW = 5  # offending ids quoted in an error message


class SubmissionError(ValueError):
    """A submission (or sample submission) that does not have the required form."""


def _first(values, n: int = _SHOW) -> str:
    values = list(values)
    shown = ", ".join(repr(str(v)) for v in values[:n])
    return shown + (", ..." if len(values) > n else "")


def read_csv_ids(path: str | os.PathLike, what: str = "submission") -> pd.DataFrame:
    """Read an ``id,...`` CSV keeping ids as strings (``"0012"`` must not become 12)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    try:
        df = pd.read_csv(path, dtype={"id": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise SubmissionError(f"{what} {path} is not a readable CSV file: {exc}") from exc
    if "id" not in df.columns:
        raise SubmissionError(f"{what} {path} has no 'id' column (columns: {list(df.columns)})")
    return df


def read_sample_submission(path: str | os.PathLike) -> pd.DataFrame:
    """``sample_submission.csv`` as a DataFrame; its ids must be present and unique."""
    df = read_csv_ids(path, "sample submission")
    ids = df["id"]
    if ids.isna().any():
        raise SubmissionError(f"sample submission {path} has empty ids")
    dup = ids[ids.duplicated()]
    if len(dup):
        raise SubmissionError(
            f"sample submission {path} repeats {len(dup)} id(s): {_first(dup.unique())}"
        )
    return df


def validate_submission(df: pd.DataFrame, sample: pd.DataFrame, name: str = "submission") -> None:
    """Raise :class:`SubmissionError` unless ``df`` is a valid submission for ``sample``.

    Checks, in order: columns exactly ``id,target``; no duplicate ids; no id missing
    from or foreign to the sample; the sample's order; numeric, finite targets in
    [0, 1]. ``name`` (e.g. the file path) is quoted in the messages.
    """
    if list(df.columns) != COLUMNS:
        raise SubmissionError(
            f"{name}: columns must be exactly {COLUMNS}, got {[str(c) for c in df.columns]}"
        )
    ids = df["id"].astype(str)
    expected = sample["id"].astype(str)
    dup = ids[ids.duplicated()]
    if len(dup):
        raise SubmissionError(f"{name}: {len(dup)} duplicate id(s): {_first(dup.unique())}")
    have, want = set(ids), set(expected)
    missing = [i for i in expected if i not in have]
    if missing:
        raise SubmissionError(
            f"{name}: {len(missing)} id(s) of the sample submission are missing: {_first(missing)}"
        )
    extra = [i for i in ids if i not in want]
    if extra:
        raise SubmissionError(
            f"{name}: {len(extra)} id(s) are not in the sample submission: {_first(extra)}"
        )
    if not np.array_equal(ids.to_numpy(), expected.to_numpy()):
        pos = int(np.flatnonzero(ids.to_numpy() != expected.to_numpy())[0])
        raise SubmissionError(
            f"{name}: ids are not in the sample submission's order (row {pos + 1} is "
            f"{ids.iloc[pos]!r}, expected {expected.iloc[pos]!r})"
        )
    target = pd.to_numeric(df["target"], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(target)
    if bad.any():
        raise SubmissionError(
            f"{name}: {int(bad.sum())} target(s) are not finite numbers (ids "
            f"{_first(ids[bad])}; values {_first(df['target'][bad])})"
        )
    out = (target < 0.0) | (target > 1.0)
    if out.any():
        raise SubmissionError(
            f"{name}: {int(out.sum())} target(s) outside [0, 1] (ids {_first(ids[out])}; "
            f"values {_first(target[out])})"
        )


def make_submission(
    ids: Sequence[str],
    probabilities: np.ndarray,
    sample: pd.DataFrame,
    fill_missing: float | None = None,
) -> pd.DataFrame:
    """Arrange predictions in the sample submission's order.

    ``ids``/``probabilities`` (n,) are the predicted test samples (e.g. a cache's
    test split). Sample ids without a prediction (files dropped by
    ``preprocess --skip-bad``) are an error unless ``fill_missing`` gives the
    probability to write for them. Predicted ids absent from the sample are an error.
    """
    ids = [str(i) for i in ids]
    probabilities = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    if len(ids) != len(probabilities):
        raise ValueError(f"{len(ids)} ids but {len(probabilities)} predictions")
    pred = pd.Series(probabilities, index=pd.Index(ids, name="id"))
    if pred.index.has_duplicates:
        dup = pred.index[pred.index.duplicated()].unique()
        raise SubmissionError(f"predictions repeat {len(dup)} id(s): {_first(dup)}")
    expected = sample["id"].astype(str)
    extra = pred.index.difference(pd.Index(expected))
    if len(extra):
        raise SubmissionError(
            f"{len(extra)} predicted id(s) are not in the sample submission: {_first(extra)}; "
            "was the cache made from another data set?"
        )
    target = pred.reindex(expected.to_numpy())
    missing = expected[target.isna().to_numpy()]
    if len(missing):
        if fill_missing is None:
            raise SubmissionError(
                f"{len(missing)} id(s) of the sample submission have no prediction "
                f"(not in the cache, e.g. dropped by preprocess --skip-bad): {_first(missing)}; "
                "pass --fill-missing VALUE (e.g. 0.5) to write VALUE for them"
            )
        if not 0.0 <= float(fill_missing) <= 1.0:
            raise SubmissionError(
                f"fill_missing must be a probability in [0, 1], got {fill_missing}"
            )
        target = target.fillna(float(fill_missing))
    return pd.DataFrame({"id": expected.to_numpy(), "target": target.to_numpy()})


def write_submission(
    df: pd.DataFrame,
    path: str | os.PathLike,
    sample: pd.DataFrame,
    force: bool = False,
) -> Path:
    """Validate ``df`` against ``sample`` and write it to ``path`` atomically.

    An existing ``path`` is refused unless ``force``. Nothing is written when the
    submission is invalid.
    """
    path = Path(path)
    if path.exists() and not force:
        raise FileExistsError(f"{path} already exists; pass --force to overwrite it")
    validate_submission(df, sample, name=str(path))
    with atomic_open(path, "w", newline="") as fh:
        # Full float precision: rounding would create ties and change the AUC.
        df.to_csv(fh, index=False)
    return path


def read_submission(path: str | os.PathLike, sample: pd.DataFrame | None = None) -> pd.DataFrame:
    """Read a submission file; validate it against ``sample`` when given."""
    df = read_csv_ids(path, "submission")
    if sample is not None:
        validate_submission(df, sample, name=str(path))
    return df
