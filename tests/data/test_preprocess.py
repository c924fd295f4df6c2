"""``g2res preprocess``: cache contents, physics of the output, resume, --force, CLI."""

import hashlib
import io
import json
import zlib

import numpy as np
import pytest
import torch
from noise_data import FS, noise_psd, write_noise_dataset

from g2res.cli import main
from g2res.config import PreprocessConfig
from g2res.data.cache import Cache, CacheDataset
from g2res.data.layout import sample_path
from g2res.data.preprocess import OUTPUTS, preprocess
from g2res.signal import welch
from g2res.signal.reference import welch_reference, whiten_reference

CFG = PreprocessConfig(batch_size=8, workers=2)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """40 train (1 in 4 labelled 1, noise only) + 12 test samples of coloured noise."""
    root = tmp_path_factory.mktemp("g2net") / "data"
    rng = np.random.default_rng(3)
    n_train, n_test = 40, 12
    labels = (np.arange(n_train) % 4 == 0).astype(int)
    write_noise_dataset(root, rng, n_train, n_test, labels)
    return root


@pytest.fixture(scope="module")
def cache_dir(data_dir, tmp_path_factory):
    return preprocess(data_dir, tmp_path_factory.mktemp("c") / "cache", CFG, progress=False)


def snapshot(path):
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def test_cache_contents(data_dir, cache_dir):
    cache = Cache(cache_dir)
    m = cache.manifest
    assert m["sample_rate"] == FS and m["data_dir"] == str(data_dir.resolve())
    assert m["counts"]["train"] == 40 and m["counts"]["test"] == 12 and m["counts"]["bad"] == 0
    assert m["counts"]["train_positive"] == 10
    assert m["psd"]["n_samples"] == 30  # label-0 samples only
    assert len(m["checksums"]["training_labels.csv"]) == 64
    assert m["settings"]["fmin"] == 20.0 and m["version"]
    x = cache.array("train")
    assert isinstance(x, np.memmap) and x.shape == (40, 3, 4096) and x.dtype == np.float32
    rows = (data_dir / "training_labels.csv").read_text().split()[1:]
    assert cache.ids("train") == [r.split(",")[0] for r in rows]
    assert cache.labels().dtype == np.int8 and cache.labels().sum() == 10
    assert cache.psd["psd"].shape == (3, 513) and float(cache.psd["sample_rate"]) == FS
    ds = CacheDataset(cache_dir, "test")
    xb, yb = ds[3]
    assert xb.shape == (3, 4096) and xb.dtype == torch.float32 and torch.isnan(yb)
    assert not (cache_dir / ".partial").exists()


def test_psd_and_output_physics(data_dir, cache_dir):
    """The stored PSD recovers the noise PSD; each sample equals the numpy reference."""
    cache = Cache(cache_dir)
    f, psd = cache.psd["frequencies"], cache.psd["psd"]
    band = (f >= 20) & (f <= 500)
    ratio = psd[:, band].mean(0) / noise_psd(f[band])
    assert np.abs(ratio - 1).max() < 0.25 and abs(ratio.mean() - 1) < 0.05
    sample_id = cache.ids("test")[5]
    raw = np.load(sample_path(data_dir, "test", sample_id))
    ref = whiten_reference(raw, f, psd, FS, CFG.window_alpha, CFG.fmin, CFG.fmax, CFG.filter_order)
    assert np.abs(cache.array("test")[5] - ref).max() < 1e-4 * np.abs(ref).max()
    # Whitened, bandpassed noise: flat in band at the white level 2 / sample_rate.
    x = torch.from_numpy(np.asarray(cache.array("train"))[..., 600:-600].astype(np.float64))
    fw, pw = welch(x, FS, average="mean")
    level = pw.mean((0, 1)) * FS / 2
    passband = (fw >= 40) & (fw <= 400)
    assert torch.all((level[passband] - 1).abs() < 0.2)


def test_interrupt_and_resume_is_byte_identical(data_dir, cache_dir, tmp_path):
    out = tmp_path / "cache"
    with pytest.raises(KeyboardInterrupt):
        preprocess(data_dir, out, CFG, progress=False, _interrupt_after=3)
    assert (out / ".partial" / "state.json").is_file() and not (out / "manifest.json").exists()
    state = json.loads((out / ".partial" / "state.json").read_text())
    assert state["done"] == {"train": 24, "test": 0}
    with pytest.raises(KeyboardInterrupt):  # second interruption, in the test split
        preprocess(data_dir, out, CFG, progress=False, _interrupt_after=3)
    preprocess(data_dir, out, CFG, progress=False)
    assert snapshot(out) == snapshot(cache_dir)


def test_existing_outputs(data_dir, cache_dir, tmp_path, capsys):
    assert preprocess(data_dir, cache_dir, CFG, progress=True) == cache_dir
    assert "already complete" in capsys.readouterr().out
    with pytest.raises(FileExistsError, match="other data or settings"):
        preprocess(data_dir, cache_dir, PreprocessConfig(fmin=30.0), progress=False)
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="did not write"):
        preprocess(data_dir, user, CFG, progress=False)
    # An interrupted run with other settings is not silently mixed in.
    out = tmp_path / "c2"
    with pytest.raises(KeyboardInterrupt):
        preprocess(data_dir, out, CFG, progress=False, _interrupt_after=1)
    with pytest.raises(FileExistsError, match="interrupted run"):
        preprocess(data_dir, out, PreprocessConfig(batch_size=8, fmax=400.0), progress=False)
    forced = preprocess(
        data_dir, out, PreprocessConfig(batch_size=8, fmax=400.0, dtype="float16"), force=True
    )
    assert Cache(forced).manifest["settings"]["fmax"] == 400.0
    assert np.load(forced / "train.npy", mmap_mode="r").dtype == np.float16
    assert set(p.name for p in forced.iterdir()) <= set(OUTPUTS)


def test_psd_from_file_and_test_only(data_dir, cache_dir, tmp_path):
    """A test-only data set with --psd-source from a cache's psd.npz gives identical test data."""
    only = tmp_path / "only_test"
    only.mkdir()
    (only / "sample_submission.csv").write_text((data_dir / "sample_submission.csv").read_text())
    (only / "test").symlink_to(data_dir / "test")
    cfg = PreprocessConfig(batch_size=8, psd_source=str(cache_dir / "psd.npz"))
    out = preprocess(only, tmp_path / "cache", cfg, progress=False)
    assert (out / "test.npy").read_bytes() == (cache_dir / "test.npy").read_bytes()
    assert not (out / "train.npy").exists()
    with pytest.raises(FileNotFoundError, match="needs training samples"):
        preprocess(only, tmp_path / "c3", PreprocessConfig(), progress=False)


def test_cli(data_dir, cache_dir, tmp_path, capsys):
    out = tmp_path / "cli_cache"
    assert main(["preprocess", str(data_dir), "--out", str(out), "--batch-size", "8", "-q"]) == 0
    assert snapshot(out) == snapshot(cache_dir)
    bad = main(["preprocess", str(tmp_path / "nowhere"), "--out", str(out), "-q"])
    assert bad == 1 and "does not exist" in capsys.readouterr().err


def test_psd_is_scipy_welch_of_the_noise_rows(data_dir, cache_dir):
    """float32 Welch (power-of-two scaled) averaged over label-0 rows == scipy in float64."""
    rows = [r.split(",") for r in (data_dir / "training_labels.csv").read_text().split()[1:]]
    noise = np.stack([np.load(sample_path(data_dir, "train", i)) for i, t in rows if t == "0"])
    f, ref = welch_reference(noise, FS)
    cache = Cache(cache_dir)
    np.testing.assert_allclose(cache.psd["frequencies"], f)
    np.testing.assert_allclose(cache.psd["psd"], ref.mean(0), rtol=1e-5)
    assert cache.manifest["psd"]["n_samples"] == len(noise) == 30


def test_file_checksums_in_manifest(data_dir, cache_dir):
    m = Cache(cache_dir).manifest
    for split, csv_name in (("train", "training_labels.csv"), ("test", "sample_submission.csv")):
        ids = [r.split(",")[0] for r in (data_dir / csv_name).read_text().split()[1:]]
        lines = "".join(
            f"{i} {zlib.crc32(sample_path(data_dir, split, i).read_bytes()):08x}\n" for i in ids
        )
        assert m["checksums"][f"{split}_files"] == hashlib.sha256(lines.encode()).hexdigest()
    assert "crc32" in m["checksum_methods"]["<split>_files"]
    assert (
        m["checksums"]["training_labels.csv"]
        == hashlib.sha256((data_dir / "training_labels.csv").read_bytes()).hexdigest()
    )


def test_arrays_are_what_np_save_writes(cache_dir):
    for split in ("train", "test"):
        raw = (cache_dir / f"{split}.npy").read_bytes()
        buf = io.BytesIO()
        np.save(buf, np.load(cache_dir / f"{split}.npy"))
        assert raw == buf.getvalue()


@pytest.mark.parametrize("batch_size, workers", [(5, 1), (64, 3)])  # 64: several chunks
def test_same_bytes_for_any_batch_size_and_workers(
    data_dir, cache_dir, tmp_path, batch_size, workers
):
    threads = torch.get_num_threads()
    cfg = PreprocessConfig(batch_size=batch_size, workers=workers)
    out = preprocess(data_dir, tmp_path / "c", cfg, progress=False)
    for name in ("train.npy", "test.npy", "psd.npz", "train_ids.txt", "train_labels.npy"):
        assert (out / name).read_bytes() == (cache_dir / name).read_bytes(), name
    assert torch.get_num_threads() == threads  # the workers' single-thread setting is undone


def test_default_taper_leaves_the_merger_window_untouched():
    """A merger-like burst (sine-Gaussian, 150 Hz, 20 ms) anywhere in 1.5-1.9 s keeps its
    whitened SNR under the default conditioning: the Tukey ramps stay outside the window
    where mergers sit (a 0.2-s taper would cut a burst at 1.9 s to about half)."""
    from g2res.signal import WhitenBandpass

    n = 4096
    t = np.arange(n) / FS
    freqs = np.fft.rfftfreq(n, 1 / FS)
    psd = np.ones((3, freqs.size))
    kw = dict(fmin=CFG.fmin, fmax=CFG.fmax, order=CFG.filter_order, window=CFG.window)
    default = WhitenBandpass(freqs, psd, FS, n, window_alpha=CFG.window_alpha, **kw)
    open_window = WhitenBandpass(freqs, psd, FS, n, window_alpha=0.0, **kw)
    wide = WhitenBandpass(freqs, psd, FS, n, window_alpha=0.2, **kw)
    for t0 in (1.5, 1.7, 1.9):
        burst = np.exp(-(((t - t0) / 0.02) ** 2)) * np.sin(2 * np.pi * 150 * t)
        x = torch.from_numpy(np.tile(burst, (1, 3, 1)))
        snr = {k: float(m(x).square().sum().sqrt()) for k, m in
               (("default", default), ("open", open_window), ("wide", wide))}  # fmt: skip
        assert snr["default"] == pytest.approx(snr["open"], rel=0.02), (t0, snr)
    assert snr["wide"] < 0.7 * snr["open"]  # t0 = 1.9 s under a 0.2-s taper
