"""Noise PSDs of injected samples: the default is today's path, noise coloured by a PSD file
has that file's spectrum (Welch), injected signals have the drawn SNR against their own
noise's PSD, tilts stay in their bound and vary per sample and detector, devices, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import signal as sps
from torch import nn

from g2res.data.cache import Cache
from g2res.data.glitches import drift_tilt_max
from g2res.data.noise import design_psd
from g2res.data.pool import PoolConfig, WaveformPool, make_pool
from g2res.signal import WhitenBandpass, welch
from g2res.transforms.inject import InjectionBatches, SNRSchedule
from g2res.transforms.inject_noise import GaussianNoise
from g2res.transforms.inject_psd import InjectionPSDs, parse_psd_sources

FS = 2048.0


def tilted(f: np.ndarray) -> np.ndarray:
    """Another noise curve (3, f): the design curves x (f / 100 Hz)^0.8, H1 x 2, V1 x 0.5."""
    f = np.asarray(f, dtype=float)
    shape = np.where(f > 0, f, 100.0) / 100.0
    return design_psd(f) * shape**0.8 * np.array([2.0, 1.0, 0.5])[:, None]


@pytest.fixture(scope="module")
def psd_file(tmp_path_factory):
    """A PSD text file as `g2res simulate --psd` reads it: f, H1, L1, V1 (0.25 Hz grid)."""
    f = np.arange(1.0, 1024.25, 0.25)
    path = tmp_path_factory.mktemp("psd") / "tilted.txt"
    np.savetxt(path, np.column_stack([f, tilted(f).T]), header="f H1 L1 V1")
    return path


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    path = tmp_path_factory.mktemp("inject_psd") / "pool"
    cfg = PoolConfig(n=8, approximant="IMRPhenomD", mass_range=(10.0, 60.0))
    return WaveformPool(make_pool(path, cfg, seed=3, progress=False))


def test_default_sources_are_the_current_path(pool, tiny_cache):
    """["cache"] and tilt 0 draw nothing and give the bytes of a source without them; the
    PSD machinery forced on with a unit ratio changes nothing beyond rounding."""
    for noise in ("cache", "gaussian"):
        kwargs = dict(noise=noise, rate=0.5, snr=SNRSchedule((8.0, 12.0)), seed=5)
        plain = InjectionBatches(pool, tiny_cache, **kwargs)
        same = InjectionBatches(pool, tiny_cache, psd_sources=["cache"], psd_tilt=0.0, **kwargs)
        assert not same.psds.active
        x0, y0, d0 = plain.batch(2, 24)
        x1, y1, d1 = same.batch(2, 24)
        assert torch.equal(x0, x1) and torch.equal(y0, y1)
        assert set(d0) == set(d1) and "psd_scale" not in d1
        same.psds.active = True  # ratio exactly 1 through recolouring and SNR
        x2, y2, d2 = same.batch(2, 24)
        assert torch.equal(y0, y2) and np.all(d2["psd_scale"] == 1)
        torch.testing.assert_close(x2, x0, rtol=0, atol=1e-4 * float(x0.abs().max()))


def test_file_psd_colours_gaussian_noise_like_the_file(psd_file):
    """Raw Gaussian noise drawn with the file's PSD (cache PSD: the design curves) has the
    file's Welch PSD within 10% over 30-500 Hz, every detector."""
    f = np.fft.rfftfreq(int(FS), 1 / FS)
    cache_psd = design_psd(f)
    psds = InjectionPSDs(f, cache_psd, ["file:" + str(psd_file)], sample_rate=FS)
    assert psds.active
    noise = GaussianNoise(f, cache_psd, nn.Identity(), FS, 4096)
    n = 64
    draws = psds.draw(np.random.default_rng(0), n)
    ratio = psds.ratio(*draws.values(), noise.n_segment)
    x = noise(n, torch.Generator().manual_seed(1), ratio).double().numpy()
    fw, pw = sps.welch(x, fs=FS, nperseg=1024, axis=-1)
    band = (fw >= 30) & (fw <= 500)
    rel = pw.mean(0)[:, band] / tilted(fw[band])
    assert np.all(np.abs(rel.mean(-1) - 1) < 0.05), rel.mean(-1)
    assert np.all(np.abs(rel - 1) < 0.3)  # every bin (64 x 7 segments: ~5% noise)
    # The cache's own PSD would not pass: the file differs by a factor >= 2 somewhere.
    in_band = (f >= 30) & (f <= 500)
    assert np.abs(cache_psd[:, in_band] / tilted(f[in_band]) - 1).max() > 1


@pytest.mark.parametrize("noise", ["cache", "gaussian"])
def test_whitened_noise_carries_the_file_over_cache_ratio(pool, tiny_cache, psd_file, noise):
    """Batches whose noise has the file's PSD, whitened by the cache's, have the spectrum of
    the plain batches times S_file / S_cache (Welch, 40-450 Hz, within 10%)."""
    kwargs = dict(noise=noise, rate=0.0, seed=1)
    plain = InjectionBatches(pool, tiny_cache, **kwargs).batch(0, 96)[0]
    filed = InjectionBatches(pool, tiny_cache, psd_sources=["file:" + str(psd_file)], **kwargs)
    x = filed.batch(0, 96)[0]
    f, p_file = welch(x.double(), FS)
    _, p_plain = welch(plain.double(), FS)
    band = (f > 40) & (f < 450)
    cache = Cache(tiny_cache).psd
    expect = tilted(f[band].numpy()) / np.stack(
        [np.interp(f[band].numpy(), cache["frequencies"], row) for row in cache["psd"]]
    )
    rel = (p_file.mean(0)[:, band] / p_plain.mean(0)[:, band]).numpy() / expect
    assert np.all(np.abs(np.median(rel, -1) - 1) < 0.1), np.median(rel, -1)


def test_signal_snr_is_against_its_own_psd(pool, tiny_cache, psd_file):
    """Each injected signal, whitened by its own sample's PSD (file or cache, tilted) with
    the cache's taper and bandpass, has the drawn network SNR; whitened by the cache's PSD
    (what the model sees) it does not, in general."""
    source = InjectionBatches(
        pool, tiny_cache, noise="gaussian", rate=1.0, snr=SNRSchedule((10.0, 10.0)), seed=4,
        psd_sources=["cache", "file:" + str(psd_file)], psd_tilt=0.3,
    )  # fmt: skip
    _, _, d = source.batch(0, 12)
    assert 0 < d["psd_source"].sum() < 12
    inj, psds, c = source.injector, source.psds, Cache(tiny_cache).conditioning
    waves = torch.from_numpy(pool.batch(d["index"]))
    args = [torch.from_numpy(d[k]) for k in ("ra", "dec", "psi", "merger_time")]
    strain, _ = inj.project(waves, *args)
    seen = inj(waves, *args, torch.from_numpy(d["snr"]),
               psds.ratio(d["psd_source"], d["psd_scale"], d["psd_alpha"], 4096))  # fmt: skip
    own_psd = psds(d["psd_source"], d["psd_scale"], d["psd_alpha"])
    off = []
    for j in range(12):
        own = WhitenBandpass(
            psds.frequencies, own_psd[j], FS, 4096, fmin=c["fmin"], fmax=c["fmax"],
            order=c["filter_order"], window=c["window"], window_alpha=c["window_alpha"],
        )  # fmt: skip
        y = own(strain[j : j + 1].double())
        scale = float(seen[j].norm() / inj.conditioner(strain[j : j + 1]).norm())
        assert float((y * scale).norm()) == pytest.approx(10.0, rel=0.01)
        off.append(float(seen[j].norm()))
    assert np.std(off) > 0.05 * np.mean(off)


def test_tilt_draws_stay_in_the_bound_and_vary(tiny_cache):
    psd = Cache(tiny_cache).psd
    psds = InjectionPSDs(psd["frequencies"], psd["psd"], ["cache"], tilt=0.2, sample_rate=FS)
    d = psds.draw(np.random.default_rng(3), 500)
    assert d["psd_scale"].shape == (500, 3) and np.all(d["psd_source"] == 0)
    assert d["psd_scale"].min() >= 0.8 and d["psd_scale"].max() <= 1.2
    assert np.abs(d["psd_alpha"]).max() <= drift_tilt_max(0.2)
    assert d["psd_scale"].min() < 0.82 and d["psd_scale"].max() > 1.18  # fills the range
    ratio = psds.ratio(*d.values(), 4096).numpy()  # (500, 3, 2049) on the 0.5 Hz grid
    f = np.fft.rfftfreq(4096, 1 / FS)
    for hz in (20.0, 100.0, 500.0):
        at = ratio[..., int(hz * 2)]
        assert at.min() >= 0.8 / 1.2 - 1e-9 and at.max() <= 1.2 * 1.2 + 1e-9
    np.testing.assert_allclose(ratio[..., 200], d["psd_scale"], rtol=1e-12)  # 100 Hz
    edge = ratio[..., f == 500.0][..., 0] / d["psd_scale"]
    assert edge.max() > 1.15 and edge.min() < 1 / 1.15  # tilts reach 1 +/- X at 500 Hz
    # Per sample and per detector: no two samples, nor two detectors, share a draw.
    assert np.unique(d["psd_scale"]).size == d["psd_scale"].size
    assert np.all(np.std(d["psd_alpha"], axis=1) > 0)


def test_module_buffers_follow_to(tiny_cache, psd_file):
    psd = Cache(tiny_cache).psd
    psds = InjectionPSDs(psd["frequencies"], psd["psd"], ["cache", f"file:{psd_file}"], 0.1)
    assert {"frequencies", "reference", "psds"} <= set(dict(psds.named_buffers()))
    assert psds.psds.shape == (2, 3, psds.frequencies.numel())
    moved = psds.to("cpu")
    d = moved.draw(np.random.default_rng(0), 4)
    assert moved(*d.values()).device == moved.psds.device
    if torch.cuda.is_available():
        gpu = InjectionPSDs(psd["frequencies"], psd["psd"], ["cache", f"file:{psd_file}"], 0.1)
        gpu = gpu.to("cuda")
        torch.testing.assert_close(
            gpu.ratio(*d.values(), 4096).cpu(), psds.ratio(*d.values(), 4096)
        )


@pytest.mark.gpu
def test_batches_with_psds_on_cuda_equal_cpu(pool, tiny_cache, psd_file):
    kw = dict(rate=1.0, seed=2, psd_sources=["cache", f"file:{psd_file}"], psd_tilt=0.2)
    cpu = InjectionBatches(pool, tiny_cache, **kw).batch(0, 16)[0]
    gpu = InjectionBatches(pool, tiny_cache, device="cuda", **kw).batch(0, 16)[0]
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-3, atol=1e-3)


def test_bad_sources_and_tilts_are_named(tiny_cache, tmp_path):
    psd = Cache(tiny_cache).psd
    make = lambda s, t=0.0: InjectionPSDs(psd["frequencies"], psd["psd"], s, t)  # noqa: E731
    with pytest.raises(ValueError, match="'gwosc'"):
        make(["cache", "gwosc"])
    with pytest.raises(ValueError, match="unknown kind"):
        make(["url:http://x"])
    with pytest.raises(ValueError, match="no path"):
        make(["file:"])
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        make([f"file:{tmp_path / 'nope.txt'}"])
    with pytest.raises(ValueError, match="psd_sources"):
        make([])
    with pytest.raises(ValueError, match="psd_sources"):
        make("cache")
    bad = tmp_path / "bad.txt"
    bad.write_text("1 2 3\n")
    with pytest.raises(ValueError, match="bad.txt"):
        make([f"file:{bad}"])
    for tilt in (-0.1, 1.0, float("nan")):
        with pytest.raises(ValueError, match=f"psd_tilt={tilt}"):
            make(["cache"], tilt)
    assert parse_psd_sources(["cache", f" file:{bad}"]) == [("cache", None), ("file", str(bad))]
