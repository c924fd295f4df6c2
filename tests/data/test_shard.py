"""Sharded preprocessing: shards I/N merged give the same bytes as one run."""

import csv
import io
import json

import numpy as np
import pytest
from noise_data import write_noise_dataset

from g2res.cli import main
from g2res.config import PreprocessConfig
from g2res.data.cache import Cache
from g2res.data.layout import sample_path
from g2res.data.preprocess import merge_shards, preprocess

CFG = PreprocessConfig(batch_size=8, workers=2)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """37 train + 13 test samples; 3 bad files (2 train, 1 test) and 1 bad CSV row."""
    root = tmp_path_factory.mktemp("g2net") / "data"
    rng = np.random.default_rng(8)
    n_train, n_test = 37, 13
    labels = rng.integers(0, 2, n_train)
    ids = write_noise_dataset(root, rng, n_train, n_test, labels)
    sample_path(root, "train", ids[5]).unlink()  # missing, in the first half
    np.save(sample_path(root, "train", ids[30]), np.zeros((3, 4096)))  # second half
    sample_path(root, "test", ids[n_train + 9]).write_bytes(b"junk")
    with open(root / "training_labels.csv", "a") as fh:
        fh.write(f"{ids[2]},7\n")
    return root


@pytest.fixture(scope="module")
def single(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("single") / "cache"
    return preprocess(data_dir, out, CFG, seed=4, skip_bad=True, progress=False)


def snapshot(path):
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def test_two_shards_merge_to_the_same_bytes(data_dir, single, tmp_path):
    shards = [tmp_path / f"shard{i}" for i in range(2)]
    # Shard 1 first and interrupted once: order and resuming must not matter.
    with pytest.raises(KeyboardInterrupt):
        preprocess(
            data_dir, shards[1], CFG, 4, skip_bad=True, progress=False, shard=(1, 2),
            _interrupt_after=1,
        )  # fmt: skip
    for i in (1, 0):
        preprocess(data_dir, shards[i], CFG, 4, skip_bad=True, progress=False, shard=(i, 2))
    m0, m1 = (json.loads((s / "manifest.json").read_text()) for s in shards)
    assert m0["rows"] == {"train": [0, 18], "test": [0, 6]}
    assert m1["rows"] == {"train": [18, 37], "test": [6, 13]}
    assert (m0["counts"]["train"], m1["counts"]["train"]) == (17, 18)
    assert (m0["counts"]["test"], m1["counts"]["test"]) == (6, 6)
    merged = merge_shards(shards[::-1], tmp_path / "merged", progress=False)
    want, got = snapshot(single), snapshot(merged)
    assert sorted(got) == sorted(want)
    for name in want:
        assert got[name] == want[name], name
    # The arrays are exactly what np.save writes; nothing bad got in.
    for split in ("train", "test"):
        raw = (merged / f"{split}.npy").read_bytes()
        buf = io.BytesIO()
        np.save(buf, np.load(merged / f"{split}.npy"))
        assert raw == buf.getvalue()
    cache = Cache(merged)
    assert cache.array("train").shape == (35, 3, 4096) and cache.manifest["counts"]["bad"] == 4
    assert np.isfinite(cache.array("train")).all() and np.abs(cache.array("train")).max() > 0
    with open(merged / "bad_files.csv") as fh:
        problems = [r["problem"] for r in csv.DictReader(fh)]
    assert len(problems) == 4 and "label '7'" in problems[0]
    assert problems[1:] == ["missing", "all zeros", "unreadable: not a .npy file"]
    # A finished merge is recognised as the cache of this data by preprocess itself.
    assert preprocess(data_dir, merged, CFG, 4, skip_bad=True, progress=False) == merged


def test_cli_three_shards(data_dir, single, tmp_path, capsys):
    args = ["--batch-size", "8", "--seed", "4", "--skip-bad", "-q"]
    shards = [str(tmp_path / f"s{i}") for i in range(3)]
    for i, d in enumerate(shards):
        assert main(["preprocess", str(data_dir), "--out", d, "--shard", f"{i}/3", *args]) == 0
    out = tmp_path / "cache"
    assert main(["preprocess", "--merge", *shards, "--out", str(out), "-q"]) == 0
    assert snapshot(out) == snapshot(single)
    capsys.readouterr()
    assert main(["preprocess", str(data_dir), "--out", str(out), "--shard", "3/3"]) == 1
    assert "--shard '3/3' must be I/N" in capsys.readouterr().err
    assert main(["preprocess", "--merge", *shards[:2], "--out", str(tmp_path / "x")]) == 1
    assert "each of the shards 0..2 of 3 once" in capsys.readouterr().err


def test_merge_refuses_mismatched_shards(data_dir, tmp_path):
    a = preprocess(data_dir, tmp_path / "a", CFG, 4, skip_bad=True, progress=False, shard=(0, 2))
    other = PreprocessConfig(batch_size=8, fmax=400.0)
    b = preprocess(data_dir, tmp_path / "b", other, 4, skip_bad=True, progress=False, shard=(1, 2))
    with pytest.raises(ValueError, match="other data or settings"):
        merge_shards([a, b], tmp_path / "m", progress=False)
    with pytest.raises(ValueError, match="once"):
        merge_shards([a, a], tmp_path / "m", progress=False)
    with pytest.raises(FileNotFoundError, match="not a finished preprocess shard"):
        merge_shards([tmp_path / "nowhere"], tmp_path / "m", progress=False)
    # A shard's PSD is the single run's PSD: estimated from the same seeded rows.
    single = preprocess(data_dir, tmp_path / "c", CFG, 4, skip_bad=True, progress=False)
    assert (a / "psd.npz").read_bytes() == (single / "psd.npz").read_bytes()
