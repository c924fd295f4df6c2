"""Stratified folds: balanced, seeded, saved and checked against the cache."""

import numpy as np
import pandas as pd
import pytest

from g2res.train.folds import check_folds, make_folds, read_folds, write_folds


def _data(rng, n=203, frac=0.3):
    ids = np.array([f"{v:010x}" for v in rng.choice(2**36, n, replace=False)])
    return ids, (rng.uniform(size=n) < frac).astype(int)


def test_folds_are_stratified_disjoint_and_seeded(rng):
    ids, y = _data(rng)
    folds = make_folds(ids, y, 5, seed=3)
    assert list(folds["id"]) == list(ids)
    assert sorted(folds["fold"].unique()) == [0, 1, 2, 3, 4]
    sizes = folds["fold"].value_counts()
    assert sizes.max() - sizes.min() <= 1
    # Every fold holds the overall positive fraction up to one sample.
    pos = folds.groupby("fold")["target"].sum()
    assert pos.max() - pos.min() <= 1
    pd.testing.assert_frame_equal(folds, make_folds(ids, y, 5, seed=3))
    assert not make_folds(ids, y, 5, seed=4)["fold"].equals(folds["fold"])


def test_folds_round_trip_and_mismatches_are_refused(rng, tmp_path):
    ids, y = _data(rng)
    folds = make_folds(ids, y, 3, seed=0)
    write_folds(folds, tmp_path / "folds.csv")
    back = read_folds(tmp_path / "folds.csv")
    np.testing.assert_array_equal(check_folds(back, ids, y), folds["fold"])
    with pytest.raises(ValueError, match="missing"):
        check_folds(back.iloc[1:], ids, y)
    with pytest.raises(ValueError, match="other targets"):
        check_folds(back, ids, 1 - y)
    with pytest.raises(ValueError, match="at least 2 folds"):
        make_folds(ids, y, 1, seed=0)
    with pytest.raises(ValueError, match="only 2 samples"):
        make_folds(ids[:10], np.r_[np.ones(2, int), np.zeros(8, int)], 3, seed=0)
    (tmp_path / "bad.csv").write_text("id,fold\na,0\n")
    with pytest.raises(ValueError, match="bad.csv.*missing column"):
        read_folds(tmp_path / "bad.csv")
