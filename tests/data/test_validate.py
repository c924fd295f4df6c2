"""Every kind of bad input is caught with the right message, stop or --skip-bad."""

import csv
import pickle
import zlib

import numpy as np
import pytest

from g2res.config import PreprocessConfig
from g2res.data.layout import sample_path
from g2res.data.preprocess import preprocess
from g2res.data.validate import (
    BadInputError,
    check_array,
    read_file,
    read_sample,
    read_split_csv,
)
from g2res.signal.reference import coloured_noise, whiten_reference

FS = 2048.0


def noise_psd(f):
    f = np.maximum(f, 10.0)
    return 1e-46 * ((f / 40.0) ** -4 + 1 + (f / 300.0) ** 2)


def write_dataset(root, n_train=24, n_test=8, seed=0):
    """A small G2Net-layout data set of coloured noise (float64) made with numpy."""
    rng = np.random.default_rng(seed)
    ids = [f"{i:03x}{rng.integers(16**7):07x}" for i in range(n_train + n_test)]
    labels = (np.arange(n_train) % 3 == 0).astype(int)
    data = coloured_noise(rng, noise_psd, (n_train + n_test, 3, 4096), FS)
    for k, sample_id in enumerate(ids):
        split = "train" if k < n_train else "test"
        path = sample_path(root, split, sample_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, data[k])
    with open(root / "training_labels.csv", "w") as fh:
        fh.write("id,target\n" + "".join(f"{i},{t}\n" for i, t in zip(ids[:n_train], labels)))
    with open(root / "sample_submission.csv", "w") as fh:
        fh.write("id,target\n" + "".join(f"{i},0.5\n" for i in ids[n_train:]))
    return ids[:n_train], ids[n_train:]


@pytest.fixture
def dataset(tmp_path):
    root = tmp_path / "data"
    train, test = write_dataset(root)
    return root, train, test


def corrupt(root, train, test):
    """Break files and rows in every way preprocess must catch; return {id: message}."""
    p = lambda i: sample_path(root, "train", i)  # noqa: E731
    p(train[0]).unlink()
    raw = p(train[1]).read_bytes()
    p(train[1]).write_bytes(raw[: len(raw) // 2])
    with open(p(train[2]), "wb") as fh:
        pickle.dump(np.zeros((3, 4096)), fh)
    np.save(p(train[3]), np.array([object(), None]), allow_pickle=True)
    np.save(p(train[4]), np.ones((3, 4000)))
    np.save(p(train[5]), np.ones((3, 4096), dtype=np.int64))
    bad = np.load(p(train[6])).copy()
    bad[1, 100] = np.nan
    np.save(p(train[6]), bad)
    np.save(p(train[7]), np.zeros((3, 4096)))
    bad = np.load(p(train[8])).copy()
    bad[2] = 0
    np.save(p(train[8]), bad)
    sample_path(root, "test", test[0]).write_bytes(b"not a numpy file at all")
    rows = (root / "training_labels.csv").read_text().splitlines()
    rows[10] = rows[10].split(",")[0] + ",2"
    rows[11] = rows[11].split(",")[0] + ",yes"
    rows.append(rows[12])  # duplicate id
    rows.append("XYZ-1,0")  # malformed id
    (root / "training_labels.csv").write_text("\n".join(rows) + "\n")
    return {
        train[0]: "missing",
        train[1]: "truncated",
        train[2]: "pickled",
        train[3]: "pickled",
        train[4]: "wrong shape (3, 4000)",
        train[5]: "wrong dtype int64",
        train[6]: "NaN/inf (detector L1)",
        train[7]: "all zeros",
        train[8]: "all zeros in detector V1",
        test[0]: "unreadable",
        train[9]: "label '2' is not 0 or 1",
        train[10]: "label 'yes' is not 0 or 1",
        train[11]: "duplicate id (first on line 13)",
        "XYZ-1": "malformed id 'XYZ-1'",
    }


def test_check_array_messages():
    good = np.ones((3, 4096))
    assert check_array(good) is None
    assert check_array(np.ones((3, 4096), np.float32)) is None
    assert "complex" in check_array(good.astype(complex))
    inf = good.copy()
    inf[0, 0] = np.inf
    assert check_array(inf) == "contains NaN/inf (detector H1)"


def test_every_problem_is_named(dataset, tmp_path):
    root, train, test = dataset
    expected = corrupt(root, train, test)
    with pytest.raises(BadInputError) as info:
        preprocess(root, tmp_path / "cache", progress=False)
    err = info.value
    assert f"{len(expected)} bad input" in str(err)
    assert "--skip-bad" in str(err) and str(tmp_path / "cache" / "bad_files.csv") in str(err)
    got = {p.id: p.problem for p in err.problems}
    assert set(got) == set(expected)
    for sample_id, message in expected.items():
        assert message in got[sample_id], (sample_id, got[sample_id])
    # Each file problem names the file's path in the message.
    assert str(sample_path(root, "train", train[4])) in str(err)
    # The report has them all; no cache was written.
    with open(tmp_path / "cache" / "bad_files.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["id"] for r in rows} == set(expected)
    assert set(rows[0]) == {"file", "id", "split", "problem"}
    assert not (tmp_path / "cache" / "manifest.json").exists()
    assert not (tmp_path / "cache" / "train.npy").exists()


def test_error_lists_first_20_then_a_count(tmp_path):
    root = tmp_path / "data"
    train, _ = write_dataset(root, n_train=30, n_test=0)
    for sample_id in train[:25]:
        sample_path(root, "train", sample_id).unlink()
    with pytest.raises(BadInputError, match=r"\.\.\. and 5 more") as info:
        preprocess(root, tmp_path / "cache", progress=False)
    assert str(info.value).count(": missing") == 20


def test_skip_bad_drops_and_reports(dataset, tmp_path, capsys):
    root, train, test = dataset
    expected = corrupt(root, train, test)
    out = preprocess(root, tmp_path / "cache", skip_bad=True, progress=False)
    assert f"excluding {len(expected)} bad" in capsys.readouterr().out
    kept = (out / "train_ids.txt").read_text().split()
    dropped = set(expected) - {train[11]}  # the duplicate's first row is kept
    assert not dropped & set(kept)
    assert train[11] in kept
    assert len(kept) == len(train) - 11
    assert np.load(out / "train.npy").shape == (len(kept), 3, 4096)
    assert (out / "test_ids.txt").read_text().split() == test[1:]
    with open(out / "bad_files.csv") as fh:
        assert len(list(csv.DictReader(fh))) == len(expected)
    # Bad rows are dropped from their chunks: every kept row is its own file, conditioned.
    d = PreprocessConfig()
    with np.load(out / "psd.npz") as z:
        f, psd = z["frequencies"], z["psd"]
    for split, ids in (("train", kept), ("test", test[1:])):
        cached = np.load(out / f"{split}.npy")
        for row, sample_id in enumerate(ids):
            raw = np.load(sample_path(root, split, sample_id))
            ref = whiten_reference(raw, f, psd, FS, d.window_alpha, d.fmin, d.fmax, d.filter_order)
            assert np.abs(cached[row] - ref).max() < 1e-4 * np.abs(ref).max(), (split, row)


def test_read_sample_and_csv(dataset):
    root, train, _ = dataset
    array, problem, digest = read_sample(root, "train", train[0])
    assert problem is None and array.shape == (3, 4096) and len(digest) == 64
    entries, problems = read_split_csv(root, "train")
    assert [e.id for e in entries] == train and not problems
    (root / "training_labels.csv").write_text("name,label\nabc,1\n")
    with pytest.raises(BadInputError, match="header 'id,target'"):
        read_split_csv(root, "train")


def test_bad_psd_source(dataset, tmp_path):
    root, _, _ = dataset
    with pytest.raises(FileNotFoundError, match="neither 'noise', 'all' nor a file"):
        preprocess(root, tmp_path / "c", PreprocessConfig(psd_source="nope.txt"), progress=False)


def test_read_file_fast_path_agrees_with_np_load(tmp_path, rng):
    """The header fast path and the general parser give np.load's array and crc32 of the bytes."""
    x = rng.standard_normal((3, 4096)) * 1e-21
    cancelling = np.ones((3, 4096))
    cancelling[:, ::2] = -1  # each row sums to exactly 0 but is not all zeros
    cases = {
        "f8": x,
        "f4": x.astype(np.float32),
        "big_endian": x.astype(">f8"),  # not a fast-path header
        "fortran": np.asfortranarray(x),
        "cancelling": cancelling,
    }
    for name, array in cases.items():
        path = tmp_path / f"{name}.npy"
        np.save(path, array)
        got, problem, crc = read_file(path)
        assert problem is None, (name, problem)
        np.testing.assert_array_equal(got, np.load(path))
        assert crc == zlib.crc32(path.read_bytes())
    bad = x.copy()
    bad[2, 7] = np.inf
    for array in (bad, bad.astype(np.float32), np.where(np.arange(3)[:, None] == 1, 0.0, x)):
        np.save(tmp_path / "bad.npy", array)
        got, problem, _ = read_file(tmp_path / "bad.npy")
        assert got is None and problem == check_array(array)
    assert read_file(tmp_path / "nowhere.npy") == (None, "missing", -1)
