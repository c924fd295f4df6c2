"""Submission validation: every malformed file is refused before anything is written."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from g2res.ensemble.submission import (
    SubmissionError,
    make_submission,
    read_sample_submission,
    read_submission,
    validate_submission,
    write_submission,
)


@pytest.fixture
def sample(rng) -> pd.DataFrame:
    # Leading zeros on purpose: ids must stay strings through every read.
    ids = ["00" + f"{v:08x}" for v in rng.choice(2**32, size=20, replace=False)]
    return pd.DataFrame({"id": ids, "target": 0.5})


@pytest.fixture
def good(sample, rng) -> pd.DataFrame:
    return pd.DataFrame({"id": sample["id"], "target": rng.uniform(0, 1, len(sample))})


def test_valid_submission_round_trips_with_full_precision(sample, good, tmp_path):
    validate_submission(good, sample)
    sample.to_csv(tmp_path / "sample.csv", index=False)
    sample_back = read_sample_submission(tmp_path / "sample.csv")
    assert list(sample_back["id"]) == list(sample["id"])  # leading zeros kept
    out = write_submission(good, tmp_path / "sub.csv", sample_back)
    back = read_submission(out, sample_back)
    assert list(back["id"]) == list(sample["id"])
    np.testing.assert_array_equal(back["target"].to_numpy(), good["target"].to_numpy())
    assert not list(tmp_path.glob(".*.tmp")), "temporary file left behind"


def _drop(df):
    return df.iloc[1:].reset_index(drop=True)


def _extra(df):
    return pd.concat([df, pd.DataFrame({"id": ["fffffffff0"], "target": [0.3]})], ignore_index=True)


def _nan(df):
    df = df.copy()
    df.loc[3, "target"] = np.nan
    return df


def _inf(df):
    df = df.copy()
    df.loc[4, "target"] = np.inf
    return df


def _order(df):
    return df.iloc[[1, 0, *range(2, len(df))]].reset_index(drop=True)


def _dup(df):
    df = df.copy()
    df.loc[5, "id"] = df.loc[6, "id"]
    return df


def _above(df):
    df = df.copy()
    df.loc[2, "target"] = 1.5
    return df


def _below(df):
    df = df.copy()
    df.loc[2, "target"] = -0.01
    return df


def _columns(df):
    return df.rename(columns={"target": "prediction"})


def _extra_column(df):
    return df.assign(fold=0)


def _text(df):
    df = df.astype({"target": object})
    df.loc[7, "target"] = "high"
    return df


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (_drop, "missing"),
        (_extra, "not in the sample submission"),
        (_nan, "not finite"),
        (_inf, "not finite"),
        (_text, "not finite"),
        (_order, "order"),
        (_dup, "duplicate"),
        (_above, r"outside \[0, 1\]"),
        (_below, r"outside \[0, 1\]"),
        (_columns, "columns"),
        (_extra_column, "columns"),
    ],
)
def test_malformed_submission_is_refused_and_nothing_written(
    corrupt, message, sample, good, tmp_path
):
    bad = corrupt(good)
    with pytest.raises(SubmissionError, match=message):
        validate_submission(bad, sample)
    out = tmp_path / "sub.csv"
    with pytest.raises(SubmissionError, match=message) as info:
        write_submission(bad, out, sample)
    assert str(out) in str(info.value), "the message must name the file"
    assert not out.exists()
    assert not list(tmp_path.iterdir())


def test_message_names_the_offending_ids(sample, good):
    with pytest.raises(SubmissionError) as info:
        validate_submission(_drop(good), sample)
    assert sample["id"][0] in str(info.value)
    assert "1 id(s)" in str(info.value)


def test_existing_file_needs_force(sample, good, tmp_path):
    out = tmp_path / "sub.csv"
    out.write_text("user's file\n")
    with pytest.raises(FileExistsError, match="--force"):
        write_submission(good, out, sample)
    assert out.read_text() == "user's file\n"
    write_submission(good, out, sample, force=True)
    assert read_submission(out, sample)["id"].tolist() == sample["id"].tolist()


def test_make_submission_reorders_and_fills_only_when_asked(sample, rng):
    ids = list(sample["id"])
    prob = rng.uniform(0, 1, len(ids))
    perm = rng.permutation(len(ids))
    df = make_submission([ids[i] for i in perm], prob[perm], sample)
    np.testing.assert_array_equal(df["target"].to_numpy(), prob)
    validate_submission(df, sample)

    keep = perm[3:]  # three test files dropped by preprocess --skip-bad
    with pytest.raises(SubmissionError, match="3 id.*--fill-missing"):
        make_submission([ids[i] for i in keep], prob[keep], sample)
    filled = make_submission([ids[i] for i in keep], prob[keep], sample, fill_missing=0.5)
    validate_submission(filled, sample)
    dropped = np.sort(perm[:3])
    np.testing.assert_array_equal(filled["target"].to_numpy()[dropped], 0.5)
    with pytest.raises(SubmissionError, match=r"\[0, 1\]"):
        make_submission([ids[i] for i in keep], prob[keep], sample, fill_missing=2.0)

    with pytest.raises(SubmissionError, match="not in the sample"):
        make_submission([*ids, "abcdef0123"], np.r_[prob, 0.1], sample)


def test_sample_submission_with_duplicates_is_refused(sample, tmp_path):
    bad = pd.concat([sample, sample.iloc[:2]], ignore_index=True)
    bad.to_csv(tmp_path / "sample.csv", index=False)
    with pytest.raises(SubmissionError, match="repeats 2"):
        read_sample_submission(tmp_path / "sample.csv")
    (tmp_path / "noid.csv").write_text("name,target\na,0\n")
    with pytest.raises(SubmissionError, match="no 'id' column"):
        read_sample_submission(tmp_path / "noid.csv")
