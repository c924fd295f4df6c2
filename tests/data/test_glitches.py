"""Glitches and PSD drift: SNR by an independent inner product, one detector only, the
parameters drawn as documented, and drift recovered by Welch (scipy) on long noise."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.signal import welch

from g2res.config import SimulateConfig
from g2res.data.glitches import (
    GLITCH_KINDS,
    Glitch,
    draw_drift,
    draw_glitch,
    drift_factor,
    glitch_waveform,
    make_glitch,
)
from g2res.data.noise import ColoredNoise, design_psd
from g2res.data.simulate import Simulator, sample_generators

FS = 2048.0
N = 4096
FREQS = np.fft.rfftfreq(N, 1 / FS)


@pytest.fixture(scope="module")
def psd() -> np.ndarray:
    return design_psd(FREQS)


def inner_snr(h: np.ndarray, psd: np.ndarray, fmin: float = 20.0) -> np.ndarray:
    """sqrt(<h, h>) with <a, b> = 4 Re sum a~ b~* / S df, written out here (f >= fmin)."""
    dt, df = 1 / FS, FS / h.shape[-1]
    hf = np.fft.rfft(h, axis=-1) * dt
    band = np.fft.rfftfreq(h.shape[-1], dt) >= fmin
    return np.sqrt(4 * df * np.sum((hf * hf.conj()).real[..., band] / psd[..., band], axis=-1))


def whiten(x: np.ndarray, psd: np.ndarray) -> np.ndarray:
    """Unit-variance whitening (20 Hz highpass): white noise of PSD ``psd`` -> N(0, 1)."""
    xf = np.fft.rfft(x, axis=-1) / np.sqrt(psd * FS / 2)
    xf[..., FREQS < 20.0] = 0
    return np.fft.irfft(xf, n=x.shape[-1], axis=-1)


def matched_filter(data_w: np.ndarray, template_w: np.ndarray) -> float:
    """Zero-lag SNR of whitened data against a whitened template (known phase and time)."""
    return float(data_w @ template_w / np.linalg.norm(template_w))


@pytest.mark.parametrize("kind", GLITCH_KINDS)
def test_glitch_has_requested_snr(kind, psd, rng):
    for _ in range(20):
        series, g = make_glitch(rng, psd[1], FS, N, kinds=[kind], snr_range=(8.0, 50.0))
        assert g.kind == kind and 8 <= g.snr <= 50
        np.testing.assert_allclose(inner_snr(series, psd[1]), g.snr, rtol=0.05)
        # An arbitrary-amplitude shape really is what got scaled: same waveform, one factor.
        shape = glitch_waveform(g, FS, N)
        big = np.abs(shape) > 0.1 * np.abs(shape).max()
        ratio = series[big] / shape[big]
        np.testing.assert_allclose(ratio, ratio[0], rtol=1e-9)


def test_parameters_follow_the_documented_ranges(rng):
    draws = [draw_glitch(rng) for _ in range(600)]
    kinds = [g.kind for g in draws]
    for kind in GLITCH_KINDS:
        assert 150 < kinds.count(kind) < 250  # equal odds (expected 200, sigma ~12)
    sg = [g for g in draws if g.kind == "sine_gaussian"]
    assert min(g.f0 for g in sg) >= 30 and max(g.f0 for g in sg) <= 500
    assert min(g.Q for g in sg) >= 2 and max(g.Q for g in sg) <= 20
    # tau = Q / (sqrt(2) pi f0), duration = 2 tau.
    for g in sg:
        assert g.duration == pytest.approx(2 * g.Q / (math.sqrt(2) * math.pi * g.f0))
    blips = [g for g in draws if g.kind == "blip"]
    assert all(40 <= g.f0 <= 250 and g.Q == pytest.approx(math.sqrt(2)) for g in blips)
    assert all(g.duration < 0.02 for g in blips)  # short: under 20 ms
    arches = [g for g in draws if g.kind == "scattered_light"]
    assert all(30 <= g.f0 <= 90 and 0.2 <= g.duration <= 1 and math.isnan(g.Q) for g in arches)
    assert all(0.1 <= g.time <= 1.9 for g in draws)


def test_sine_gaussian_peaks_at_f0_and_blip_is_broadband():
    sg = glitch_waveform(Glitch("sine_gaussian", 1.0, 150.0, 10.0, 0.0, 0.0, 10.0), FS, N)
    spectrum = np.abs(np.fft.rfft(sg))
    assert abs(FREQS[spectrum.argmax()] - 150.0) <= 1.0
    # Bandwidth of a sine-Gaussian ~ f0 / Q: the half-power width.
    above = FREQS[spectrum**2 > spectrum.max() ** 2 / 2]
    assert 0.5 * 15 < above.max() - above.min() < 2 * 15
    blip = glitch_waveform(Glitch("blip", 1.0, 100.0, math.sqrt(2), 0.0, 0.0, 10.0), FS, N)
    spectrum = np.abs(np.fft.rfft(blip))
    assert abs(FREQS[spectrum.argmax()] - 100.0) <= 2.0  # f^2 exp(-f^2/f0^2) peaks at f0
    above = FREQS[spectrum**2 > spectrum.max() ** 2 / 2]
    assert above.max() / above.min() > 2  # broadband: half power over more than an octave
    arch = glitch_waveform(Glitch("scattered_light", 1.0, 60.0, math.nan, 0.5, 0.0, 10.0), FS, N)
    spectrum = np.abs(np.fft.rfft(arch))
    assert spectrum[FREQS > 70].max() < 0.05 * spectrum.max()  # nothing above the arch top
    assert np.all(arch[np.abs(np.arange(N) / FS - 1.0) >= 0.25] == 0)  # one arch, 0.5 s


GLITCHY = SimulateConfig(
    n_train=0, n_test=1, approximant="IMRPhenomD", glitch_rate=2.0, glitch_snr=(40.0, 50.0),
    psd_drift=0.2,
)  # fmt: skip


@pytest.fixture(scope="module")
def simulator() -> Simulator:
    return Simulator(GLITCHY)


def test_simulated_glitch_in_its_detector_only(simulator):
    """Each glitch: its SNR in its detector by an inner product with that sample's (drifted)
    PSD and, in noise samples, by a matched filter on the data; the other detectors hold
    exactly noise + signal."""
    checked, filtered, n_quiet = set(), 0, 0
    for index in range(16):
        target = index % 2
        rng, drift_rng, glitch_rng = sample_generators(11, index)
        sample = simulator.make_sample(rng, target, drift_rng, glitch_rng)
        assert sample.drift is not None
        psd = simulator.psd * drift_factor(FREQS, *sample.drift)
        data_w = whiten(sample.data, psd)
        dets = [d for d, _ in sample.glitches]
        for det, g in sample.glitches:
            checked.add(g.kind)
            if dets.count(det) > 1:
                continue  # two glitches share that row
            np.testing.assert_allclose(inner_snr(sample.glitch[det], psd[det]), g.snr, rtol=0.05)
            # Away from the window's edges (whitening without a taper wraps there).
            inside = 0.25 + g.duration / 2 < g.time < 1.75 - g.duration / 2
            if not target and inside:
                mf = matched_filter(data_w[det], whiten(glitch_waveform(g, FS, N), psd[det]))
                assert abs(abs(mf) - g.snr) < 4.5  # noise: N(0, 1) at zero lag
                filtered += 1
        quiet = sorted(set(range(3)) - set(dets))
        if sample.glitch is not None:
            assert np.all(sample.glitch[quiet] == 0)
            n_quiet += len(quiet)
        clean = sample.noise + sample.signal
        np.testing.assert_array_equal(sample.data[quiet], clean[quiet])
    assert checked == set(GLITCH_KINDS) and filtered >= 5 and n_quiet >= 8


def test_drift_recovered_by_welch_on_long_noise(simulator):
    """64 s of noise made by the simulator's noise function with a sample's drift: Welch /
    design PSD is scale * (f / 100 Hz)^tilt within 10% across 20-500 Hz."""
    seconds = 64
    long = ColoredNoise(design_psd, FS, int(seconds * FS), segment_duration=seconds + 8)
    for index in range(3):
        _, drift_rng, _ = sample_generators(11, index)
        scale, tilt = draw_drift(drift_rng, GLITCHY.psd_drift, 3)
        noise = long(
            np.random.default_rng(index), psd_factor=drift_factor(long.frequencies, scale, tilt)
        )
        f, p = welch(noise, fs=FS, nperseg=int(FS), axis=-1)
        band = (f >= 20) & (f <= 500)
        ratio = p[:, band] / design_psd(f[band])
        # 16-Hz blocks: 16 bins x 127 half-overlapping 1-s segments, ~3% scatter each.
        n = (band.sum() // 16) * 16
        blocks = ratio[:, :n].reshape(3, -1, 16).mean(-1)
        fb = f[band][:n].reshape(-1, 16).mean(-1)
        expected = drift_factor(fb, scale, tilt)
        np.testing.assert_allclose(blocks, expected, rtol=0.10)
        # Fitting log(ratio) = log(scale) + tilt log(f / 100) recovers both.
        design = np.stack([np.ones_like(fb), np.log(fb / 100.0)], axis=1)
        fit = np.linalg.lstsq(design, np.log(blocks).T, rcond=None)[0]
        np.testing.assert_allclose(np.exp(fit[0]), scale, rtol=0.03)
        np.testing.assert_allclose(fit[1], tilt, atol=0.03)  # t_max = 0.113 at X = 0.2
        assert np.all((0.8 <= scale) & (scale <= 1.2))
        assert np.all(np.abs(tilt) <= math.log(1.2) / math.log(5.0) + 1e-12)


def test_drift_edges():
    f = np.array([20.0, 100.0, 500.0])
    factor = drift_factor(f, np.array([1.0]), np.array([math.log(1.2) / math.log(5)]))
    np.testing.assert_allclose(factor[0], [1 / 1.2, 1.0, 1.2])
    with pytest.raises(ValueError, match="psd drift"):
        draw_drift(np.random.default_rng(0), 1.5, 3)


def test_bad_kind_is_named(rng):
    with pytest.raises(ValueError, match="koi_fish"):
        draw_glitch(rng, kinds=["koi_fish"])
