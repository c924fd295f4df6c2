"""On-the-fly injection: geometry against lal, projection against the simulator's numpy
Projector, SNR of injected signals (alone and measured in noise), delays within the light
travel time, time-slid cached noise uncorrelated across detectors, reproducibility."""

from __future__ import annotations

import lal
import numpy as np
import pytest
import torch
from scipy import stats

from g2res.data.cache import Cache
from g2res.data.pool import PoolConfig, WaveformPool, make_pool
from g2res.data.waveforms import (
    GPS_REFERENCE,
    BBHParameters,
    Projector,
    optimal_snr,
    polarizations,
)
from g2res.signal import interpolate_psd, window_array
from g2res.transforms.inject import (
    MAX_DELAY,
    CacheNoise,
    DetectorProjection,
    InjectionBatches,
    SignalInjector,
    SNRSchedule,
)

FS = 2048.0


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    path = tmp_path_factory.mktemp("inject") / "pool"
    return WaveformPool(make_pool(path, PoolConfig(n=12, workers=2), seed=11, progress=False))


@pytest.fixture(scope="module")
def batches(pool, tiny_cache):
    return InjectionBatches(pool, tiny_cache, rate=1.0, snr=SNRSchedule((8.0, 8.0)), seed=3)


def light_time(a: str, b: str) -> float:
    ra, rb = (lal.cached_detector_by_prefix[d].location for d in (a, b))
    return float(np.linalg.norm(ra - rb) / lal.C_SI)


def test_antenna_patterns_and_delays_equal_lal(rng):
    n = 200
    ra, psi = rng.uniform(0, 2 * np.pi, n), rng.uniform(0, np.pi, n)
    dec = np.arcsin(rng.uniform(-1, 1, n))
    gps = GPS_REFERENCE + 1234.5
    gmst = lal.GreenwichMeanSiderealTime(lal.LIGOTimeGPS(gps))
    proj = DetectorProjection()
    fp, fc = proj.antenna_patterns(ra, dec, psi, gmst)
    delays = proj.time_delays(ra, dec, gmst)
    for i in range(0, n, 7):
        for j, det in enumerate(lal.cached_detector_by_prefix[d] for d in ("H1", "L1", "V1")):
            ref = lal.ComputeDetAMResponse(det.response, ra[i], dec[i], psi[i], gmst)
            assert fp[i, j] == pytest.approx(ref[0], abs=1e-12)
            assert fc[i, j] == pytest.approx(ref[1], abs=1e-12)
            ref_t = lal.TimeDelayFromEarthCenter(det.location, ra[i], dec[i], gps)
            assert delays[i, j] == pytest.approx(ref_t, abs=1e-12)
    # Differences between detectors never exceed the light travel time between them.
    assert (delays[:, 0] - delays[:, 1]).abs().max() <= light_time("H1", "L1") + 1e-12
    assert (delays[:, 0] - delays[:, 2]).abs().max() <= light_time("H1", "V1") + 1e-12
    assert delays.abs().max() <= MAX_DELAY


def test_projection_equals_the_simulator_projector(pool, batches, rng):
    """Same source, sky, polarisation and merger time: torch frequency-domain projection
    of the pool equals numpy Projector.project of freshly generated polarisations."""
    inj, m = batches.injector, pool.manifest
    numpy_proj = Projector()
    for k in range(3):
        row = pool.params.iloc[k]
        ra, dec = rng.uniform(0, 2 * np.pi), np.arcsin(rng.uniform(-1, 1))
        psi, t_merger = rng.uniform(0, np.pi), rng.uniform(1.45, 1.95)
        params = BBHParameters(
            row.mass1, row.mass2, row.spin1x, row.spin1y, row.spin1z,
            row.spin2x, row.spin2y, row.spin2z, ra, dec, psi, row.inclination,
            row.coa_phase, t_merger, 0.0, m["reference_distance"],
        )  # fmt: skip
        hp, hc, t_first = polarizations(params, m["approximant"], FS, duration_needed=2.35)
        ref, arrival_ref = numpy_proj.project(hp, hc, t_first, params)
        wave = torch.from_numpy(pool.batch([k]))
        got, arrival = inj.project(wave, *(torch.tensor([v]) for v in (ra, dec, psi, t_merger)))
        scale = np.abs(ref).max()
        np.testing.assert_allclose(got[0].numpy(), ref, atol=2e-4 * scale)
        np.testing.assert_allclose(arrival[0].numpy(), arrival_ref, atol=1e-9)


def test_injected_snr_is_the_requested_one(pool, batches, rng):
    """The conditioned signal's whitened norm is the requested SNR, and agrees within a
    few % with the one-sided optimal SNR sqrt(4 df sum |h~|^2 / S) of the raw projected
    strain (tapered, 20-500 Hz) computed in numpy by g2res.data.waveforms.optimal_snr."""
    inj, cache = batches.injector, batches.cache
    n = 12
    draws = {k: torch.from_numpy(v) for k, v in _draws(rng, n).items()}
    waves = torch.from_numpy(pool.batch(np.arange(n)))
    snr = torch.from_numpy(rng.uniform(5, 25, n))
    sig = inj(waves, draws["ra"], draws["dec"], draws["psi"], draws["merger_time"], snr)
    measured = sig.double().square().sum((1, 2)).sqrt()
    np.testing.assert_allclose(measured.numpy(), snr.numpy(), rtol=1e-5)

    strain, _ = inj.project(waves, draws["ra"], draws["dec"], draws["psi"], draws["merger_time"])
    psd = interpolate_psd(cache.psd["frequencies"], cache.psd["psd"], 4096, FS).numpy()
    taper = window_array("tukey", 4096, cache.manifest["settings"]["window_alpha"])
    raw = optimal_snr(strain.double().numpy() * taper, psd, FS, fmin=20.0, fmax=500.0)
    unit = inj.conditioner(strain).double().square().sum(-1).sqrt().numpy()
    np.testing.assert_allclose(unit, raw, rtol=0.03)


def _draws(rng, n):
    return {
        "ra": rng.uniform(0, 2 * np.pi, n),
        "dec": np.arcsin(rng.uniform(-1, 1, n)),
        "psi": rng.uniform(0, np.pi, n),
        "merger_time": rng.uniform(1.4, 1.95, n),
    }


@pytest.mark.parametrize("noise", ["cache", "gaussian"])
def test_snr_measured_in_noise(pool, tiny_cache, noise):
    """Matched filter with the unit template in the injected data: mean = requested SNR,
    standard deviation ~1, so the signal is whitened exactly like the noise."""
    rho = 9.0
    source = InjectionBatches(
        pool, tiny_cache, noise=noise, rate=1.0, snr=SNRSchedule((rho, rho)), seed=4
    )
    x, y, draws = source.batch(0, 96)
    assert torch.all(y == 1)
    waves = torch.from_numpy(pool.batch(draws["index"]))
    args = [torch.from_numpy(draws[k]) for k in ("ra", "dec", "psi", "merger_time")]
    template = source.injector(waves, *args, torch.ones(96))  # unit norm
    stat = (x.double() * template.double()).sum((1, 2)).numpy()
    assert abs(stat.mean() - rho) < 4 * 1.1 / np.sqrt(96)
    assert 0.8 < stat.std() < 1.2


def test_arrivals_and_merger_window(pool, tiny_cache):
    """Peaks of the injected detector strain sit at merger_time + delay inside the window;
    pairwise arrival differences stay within the light travel time."""
    source = InjectionBatches(pool, tiny_cache, rate=1.0, merger_window=(1.5, 1.6), seed=7)
    _, _, draws = source.batch(0, 12)
    assert np.all((draws["merger_time"] >= 1.5) & (draws["merger_time"] <= 1.6))
    waves = torch.from_numpy(pool.batch(draws["index"]))
    args = [torch.from_numpy(draws[k]) for k in ("ra", "dec", "psi", "merger_time")]
    strain, arrival = source.injector.project(waves, *args)
    arrival = arrival.numpy()
    assert np.abs(arrival[:, 0] - arrival[:, 1]).max() <= light_time("H1", "L1")
    assert np.abs(arrival[:, 1] - arrival[:, 2]).max() <= light_time("L1", "V1")
    assert np.all(np.abs(arrival - draws["merger_time"][:, None]) <= MAX_DELAY)
    # Pool sources peak within ~30 ms of their merger sample; the window keeps that.
    peak = strain.abs().argmax(-1).numpy() / FS
    assert np.median(np.abs(peak - arrival)) < 0.01
    cache = Cache(tiny_cache)
    kwargs = dict(pool_n_time=pool.n_time, merger_index=pool.merger_index)
    SignalInjector(cache.psd["frequencies"], cache.psd["psd"], **kwargs,
                   valid_before_merger=1.95, merger_window=(1.5, 1.9))  # fmt: skip
    with pytest.raises(ValueError, match="pre-merger"):
        SignalInjector(cache.psd["frequencies"], cache.psd["psd"], **kwargs,
                       valid_before_merger=1.9, merger_window=(1.5, 1.9))  # fmt: skip


def test_cached_noise_is_uncorrelated_across_detectors(rng):
    """Fully correlated input (H1 = L1 = V1 in each sample) comes out uncorrelated at every
    lag within the light travel time, while each row keeps the cache's taper profile."""
    n_rows, n_time = 40, 1024
    taper = window_array("tukey", n_time, 0.2)
    base = rng.standard_normal((n_rows, 1, n_time)) * taper
    array = np.repeat(base, 3, axis=1).astype(np.float32)
    noise = CacheNoise(array, device="cpu")
    x = noise.sample(rng, 400).double()
    lags = range(-25, 26, 5)
    corr = [
        np.corrcoef(
            x[:, 0].roll(lag, -1).flatten().numpy(), x[:, 1].flatten().numpy()
        )[0, 1]
        for lag in lags
    ]  # fmt: skip
    assert np.max(np.abs(corr)) < 0.05
    same = np.corrcoef(array[:, 0].ravel(), array[:, 1].ravel())[0, 1]
    assert same > 0.999
    # Tapers stay aligned: edge/centre rms ratio matches the input's.
    rms = x.square().mean((0, 1)).sqrt().numpy()
    assert rms[:10].mean() < 0.1 * rms[n_time // 2 - 50 : n_time // 2 + 50].mean()
    # Rows come from three distinct samples: decode them with a tagged array.
    tagged = np.broadcast_to(np.arange(n_rows, dtype=np.float32)[:, None, None] + 1, (40, 3, 8))
    ids = CacheNoise(np.ascontiguousarray(tagged), flip=False).sample(rng, 500)[..., 0].numpy()
    assert np.all(ids[:, 0] != ids[:, 1]) and np.all(ids[:, 1] != ids[:, 2])
    assert np.all(ids[:, 0] != ids[:, 2])
    lazy = CacheNoise(np.ascontiguousarray(tagged), np.arange(3, 40), flip=False, preload=False)
    ids = lazy.sample(rng, 200)[..., 0].numpy()
    assert ids.min() >= 4  # only the allowed rows (tags are index + 1)


def test_gaussian_noise_matches_the_cached_noise_spectrum(pool, tiny_cache):
    """Gaussian noise coloured by the cache's PSD and conditioned like the cache has the
    cache's label-0 spectrum (Welch, 20-500 Hz) within 10%."""
    from g2res.signal import welch

    gauss = InjectionBatches(pool, tiny_cache, noise="gaussian", rate=0.0, seed=1)
    x, y, _ = gauss.batch(0, 80)
    assert torch.all(y == 0)
    cache = Cache(tiny_cache)
    rows = np.asarray(cache.array("train")[cache.labels() == 0][:80], dtype=np.float64)
    f, p_gauss = welch(x.double(), FS)
    _, p_cache = welch(torch.from_numpy(rows), FS)
    band = (f > 40) & (f < 450)
    ratio = p_gauss.mean(0)[:, band] / p_cache.mean(0)[:, band]
    assert torch.all((ratio.mean(-1) - 1).abs() < 0.1)


def test_batches_are_reproducible_and_rate_is_respected(pool, tiny_cache):
    source = InjectionBatches(pool, tiny_cache, rate=0.3, seed=9)
    x1, y1, _ = source.batch(5, 64)
    x2, y2, _ = InjectionBatches(pool, tiny_cache, rate=0.3, seed=9).batch(5, 64)
    torch.testing.assert_close(x1, x2, rtol=0, atol=0)
    assert torch.equal(y1, y2)
    x3, _, _ = source.batch(6, 64)
    assert not torch.equal(x1, x3)
    targets = np.concatenate([source.batch(s, 64)[1].numpy() for s in range(8)])
    assert stats.binomtest(int(targets.sum()), targets.size, 0.3).pvalue > 1e-3


def test_snr_schedule_curriculum_and_distributions(rng):
    sched = SNRSchedule((4.0, 12.0), "volume", start=(20.0, 40.0), steps=100)
    assert sched.range_at(0) == (20.0, 40.0)
    assert sched.range_at(50) == pytest.approx((12.0, 26.0))
    assert sched.range_at(500) == (4.0, 12.0)
    late = sched.sample(rng, 4000, step=1000)
    # p ~ rho^-4 on [4, 12]: CDF (4^-3 - rho^-3) / (4^-3 - 12^-3).
    cdf = lambda r: (4.0**-3 - r**-3) / (4.0**-3 - 12.0**-3)  # noqa: E731
    assert stats.kstest(late, cdf).pvalue > 1e-3
    log = SNRSchedule((5.0, 50.0), "loguniform").sample(rng, 4000)
    assert stats.kstest(np.log(log), stats.uniform(np.log(5), np.log(10)).cdf).pvalue > 1e-3
    with pytest.raises(ValueError, match="distribution"):
        SNRSchedule(distribution="gamma")


@pytest.mark.gpu
def test_batches_on_cuda_equal_cpu(pool, tiny_cache):
    cpu = InjectionBatches(pool, tiny_cache, rate=1.0, seed=2).batch(0, 16)[0]
    gpu = InjectionBatches(pool, tiny_cache, rate=1.0, seed=2, device="cuda").batch(0, 16)[0]
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-3, atol=1e-3)
