"""BBH signals: priors, antenna patterns, light-travel delays, arrival times, optimal SNR."""

from __future__ import annotations

import lal
import numpy as np
import pytest
from scipy.signal import hilbert
from scipy.stats import kstest

from g2res.data.noise import design_psd, rfft_frequencies
from g2res.data.waveforms import (
    GPS_REFERENCE,
    Injector,
    Projector,
    draw_parameters,
    is_precessing,
    optimal_snr,
    polarizations,
)

FS = 2048.0
C = lal.C_SI


def light_time(a: str, b: str) -> float:
    """Straight-line light travel time between two detectors, s."""
    ra, rb = (lal.cached_detector_by_prefix[d].location for d in (a, b))
    return float(np.linalg.norm(ra - rb) / C)


def test_optimal_snr_of_a_sinusoid_is_analytic():
    """h = A sin(2 pi f0 t), white one-sided PSD S0: rho^2 = A^2 T / S0."""
    n, f0, amp, s0 = 4096, 100.0, 1e-22, 1e-46
    t = np.arange(n) / FS
    h = amp * np.sin(2 * np.pi * f0 * t)
    psd = np.full(n // 2 + 1, s0)
    expected = np.sqrt(amp**2 * (n / FS) / s0)
    np.testing.assert_allclose(optimal_snr(h, psd, FS), expected, rtol=1e-9)
    # Out of band: nothing.
    assert optimal_snr(h, psd, FS, fmin=200.0) < 1e-6 * expected
    # Batched over detectors, doubling the PSD divides the SNR by sqrt(2).
    both = optimal_snr(np.stack([h, h]), np.stack([psd, 2 * psd]), FS)
    np.testing.assert_allclose(both[1] / both[0], 1 / np.sqrt(2))
    with pytest.raises(ValueError, match="frequencies"):
        optimal_snr(h, psd[:-1], FS)


def test_sky_averaged_antenna_response_is_two_fifths(rng):
    """<F+^2 + Fx^2> over an isotropic sky = 2/5 for interferometers with 90 degree arms."""
    proj = Projector()
    n = 3000
    ra = rng.uniform(0, 2 * np.pi, n)
    dec = np.arcsin(rng.uniform(-1, 1, n))
    psi = rng.uniform(0, np.pi, n)
    total = np.zeros(3)
    for i in range(n):
        fp, fc = proj.antenna_patterns(ra[i], dec[i], psi[i], GPS_REFERENCE)
        assert np.all(fp**2 + fc**2 <= 1 + 1e-12)
        total += fp**2 + fc**2
    np.testing.assert_allclose(total / n, 0.4, rtol=0.04)


def test_source_at_zenith_of_h1():
    """Overhead a detector: full response (F+^2 + Fx^2 = 1, any psi), arrival |r|/c earlier
    than at the geocentre."""
    proj = Projector()
    loc = lal.cached_detector_by_prefix["H1"].location
    gmst = lal.GreenwichMeanSiderealTime(lal.LIGOTimeGPS(GPS_REFERENCE))
    ra = np.arctan2(loc[1], loc[0]) + gmst
    dec = np.arcsin(loc[2] / np.linalg.norm(loc))
    for psi in (0.0, 0.4, 1.3):
        fp, fc = proj.antenna_patterns(ra, dec, psi, GPS_REFERENCE)
        np.testing.assert_allclose(fp[0] ** 2 + fc[0] ** 2, 1.0, rtol=1e-3)
    delay = proj.time_delays(ra, dec, GPS_REFERENCE)[0]
    np.testing.assert_allclose(delay, -np.linalg.norm(loc) / C, rtol=1e-3)


def test_h1_l1_delay_never_exceeds_light_travel_time(rng):
    proj = Projector()
    limit = light_time("H1", "L1")
    assert 0.0099 < limit < 0.0101  # about 3000 km
    diffs = []
    for _ in range(2000):
        ra, dec = rng.uniform(0, 2 * np.pi), np.arcsin(rng.uniform(-1, 1))
        tau = proj.time_delays(ra, dec, GPS_REFERENCE)
        diffs.append(tau[0] - tau[1])
    diffs = np.abs(diffs)
    assert diffs.max() <= limit + 1e-9
    assert diffs.max() > 0.97 * limit  # the bound is reached near the H1-L1 axis


def test_priors(rng):
    draws = [draw_parameters(rng, (10.0, 40.0), (1.5, 1.9), (4.0, 16.0)) for _ in range(2000)]
    m1 = np.array([p.mass1 for p in draws])
    m2 = np.array([p.mass2 for p in draws])
    assert np.all(m1 >= m2) and m2.min() >= 10.0 and m1.max() <= 40.0
    # max and min of two uniforms: CDFs u^2 and 1 - (1 - u)^2
    u1, u2 = (m1 - 10) / 30, (m2 - 10) / 30
    assert kstest(u1, lambda u: u**2).pvalue > 1e-3
    assert kstest(u2, lambda u: 1 - (1 - u) ** 2).pvalue > 1e-3
    spins = np.array([[p.spin1x, p.spin1y, p.spin1z] for p in draws])
    assert np.linalg.norm(spins, axis=1).max() <= 0.99
    assert kstest(spins[:, 2] / np.linalg.norm(spins, axis=1), "uniform", (-1, 2)).pvalue > 1e-3
    cosi = np.cos([p.inclination for p in draws])
    assert kstest(cosi, "uniform", (-1, 2)).pvalue > 1e-3
    assert kstest(np.sin([p.dec for p in draws]), "uniform", (-1, 2)).pvalue > 1e-3
    assert kstest([p.merger_time for p in draws], "uniform", (1.5, 0.4)).pvalue > 1e-3
    assert kstest([p.snr for p in draws], "uniform", (4.0, 12.0)).pvalue > 1e-3
    aligned = draw_parameters(np.random.default_rng(1), precessing=False)
    assert aligned.spin1x == aligned.spin1y == aligned.spin2x == aligned.spin2y == 0.0


def test_loguniform_mass_prior(rng):
    """log m of the heavier / lighter component follow the max / min of two uniforms in
    [log 5, log 100]; the rest of the draws line up with the uniform prior's."""
    lo, hi = 5.0, 100.0
    draws = [draw_parameters(rng, (lo, hi), mass_prior="loguniform") for _ in range(2000)]
    m1 = np.array([p.mass1 for p in draws])
    m2 = np.array([p.mass2 for p in draws])
    assert np.all(m1 >= m2) and m2.min() >= lo and m1.max() <= hi
    u1, u2 = ((np.log(m) - np.log(lo)) / np.log(hi / lo) for m in (m1, m2))
    assert kstest(u1, lambda u: u**2).pvalue > 1e-3
    assert kstest(u2, lambda u: 1 - (1 - u) ** 2).pvalue > 1e-3
    # A flat prior puts the median total mass near 105 Msun; log-uniform near 57.
    assert 50 < np.median(m1 + m2) < 65
    a = draw_parameters(np.random.default_rng(3), (lo, hi), mass_prior="loguniform")
    b = draw_parameters(np.random.default_rng(3), (lo, hi))
    assert a.inclination == b.inclination and a.snr == b.snr  # same number of draws
    with pytest.raises(ValueError, match="mass_prior"):
        draw_parameters(rng, mass_prior="flat")


def test_precession_support():
    assert is_precessing("IMRPhenomXPHM") and not is_precessing("IMRPhenomD")
    with pytest.raises(ValueError, match="unknown lalsimulation approximant 'NoSuchWave'"):
        is_precessing("NoSuchWave")
    with pytest.raises(ValueError, match="time-domain"):
        Injector(np.ones((3, 2049)), approximant="TaylorF2")


def _peak_errors(approximant: str, n: int, seed: int) -> np.ndarray:
    """Envelope peak of each detector's signal minus its recorded arrival time, (n, 3) s."""
    rng = np.random.default_rng(seed)
    inj = Injector(design_psd(rfft_frequencies()), approximant=approximant)
    errors = []
    for _ in range(n):
        params = inj.draw(rng)
        signal, info = inj.render(params)
        assert signal.shape == (3, 4096) and np.all(np.isfinite(signal))
        np.testing.assert_allclose(
            np.sqrt(sum(info[f"snr_{d}"] ** 2 for d in ("H1", "L1", "V1"))), params.snr
        )
        peak = np.abs(hilbert(signal, axis=-1)).argmax(axis=-1) / FS
        arrival = np.array([info[f"t_{d}"] for d in ("H1", "L1", "V1")])
        assert abs(arrival[0] - arrival[1]) <= light_time("H1", "L1")
        errors.append(peak - arrival)
    return np.array(errors)


def test_peak_at_arrival_time_aligned_spins():
    """22-mode, aligned spins: each detector's envelope peaks at merger + its delay."""
    errors = _peak_errors("IMRPhenomD", 25, seed=3)
    assert np.abs(errors).max() < 1e-3, errors


def test_peak_at_arrival_time_precessing():
    """With precession and higher modes the peak seen by a detector can move a little
    from lalsimulation's t = 0 (most in a detector near a null); typically < 3 ms."""
    errors = _peak_errors("IMRPhenomXPHM", 20, seed=4)
    assert np.median(np.abs(errors)) < 3e-3, errors


def test_shift_by_one_sample_is_a_roll():
    params = draw_parameters(np.random.default_rng(7), (20.0, 30.0), precessing=False)
    hp, hc, t0 = polarizations(params, "IMRPhenomD")
    proj = Projector()
    a, ta = proj.project(hp, hc, t0, params)
    params.merger_time += 1 / FS
    b, tb = proj.project(hp, hc, t0, params)
    # The Earth turns in 0.5 ms: the delays change by ~1e-10 s.
    np.testing.assert_allclose(tb - ta, 1 / FS, rtol=0, atol=1e-9)
    scale = np.abs(a).max()
    assert np.abs(b[:, 1:] - a[:, :-1]).max() < 1e-5 * scale
    # Half a sample twice is one sample: the fractional shift is exact.
    params.merger_time -= 0.5 / FS
    c, _ = proj.project(hp, hc, t0, params)
    params.merger_time -= 0.5 / FS
    d, _ = proj.project(hp, hc, t0, params)
    assert np.abs(d - a).max() < 1e-6 * scale
    assert np.abs(c - a).max() > 1e-2 * scale


def test_late_start_frequency_does_not_change_the_window():
    """Light binaries last ~15 s from 20 Hz; starting later only drops what never reaches
    the window."""
    params = draw_parameters(np.random.default_rng(5), (7.0, 7.5), precessing=False)
    proj = Projector()
    full, _ = proj.project(*polarizations(params, "IMRPhenomD"), params)
    short_wf = polarizations(params, "IMRPhenomD", duration_needed=params.merger_time + 1.1)
    assert short_wf[0].size < 0.5 * polarizations(params, "IMRPhenomD")[0].size
    short, _ = proj.project(*short_wf, params)
    assert np.abs(full[:, :50]).max() > 0.05 * np.abs(full).max()  # signal fills the window
    assert np.abs(short - full).max() < 1e-3 * np.abs(full).max()


def test_failed_waveform_names_parameters():
    params = draw_parameters(np.random.default_rng(0), (7.0, 7.0), precessing=False)
    with pytest.raises(RuntimeError, match="SEOBNRv4 failed for m1=7.00"):
        polarizations(params, "SEOBNRv4")
