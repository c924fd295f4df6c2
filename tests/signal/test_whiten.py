"""Whitening: unit variance and flat PSD, SNR of an injection, numpy reference, torch paths."""

import lalsimulation
import numpy as np
import pytest
import torch

from g2res import TAPER_ALPHA
from g2res.signal import (
    Bandpass,
    Whiten,
    WhitenBandpass,
    interpolate_psd,
    inverse_asd,
    welch,
    whiten,
)
from g2res.signal.reference import coloured_noise, whiten_reference

FS = 2048.0
N = 4096
EDGE = 600  # samples kept away from the 0.2-s Tukey tapers (410 samples) and filter tails


def aligo_psd(f):
    f = np.maximum(np.asarray(f, dtype=float), 10.0)
    grid = np.unique(f)
    values = np.array([lalsimulation.SimNoisePSDaLIGOZeroDetHighPower(float(v)) for v in grid])
    return np.interp(f, grid, values)


@pytest.fixture(scope="module")
def noise_and_psd():
    rng = np.random.default_rng(7)
    x = coloured_noise(rng, aligo_psd, (128, 3, N), FS)
    f, p = welch(torch.from_numpy(x), FS)
    return x, f.numpy(), p.mean(0).numpy()


def sine_gaussian(f0=120.0, q=9.0, t0=1.6, amplitude=1e-21):
    t = np.arange(N) / FS
    tau = q / (np.sqrt(2) * np.pi * f0)
    return amplitude * np.exp(-(((t - t0) / tau) ** 2)) * np.sin(2 * np.pi * f0 * (t - t0))


def test_whitened_noise_is_unit_variance_and_flat(noise_and_psd):
    x, f, psd = noise_and_psd
    y = whiten(torch.from_numpy(x), f, psd, FS)[..., EDGE:-EDGE]
    assert y.var().item() == pytest.approx(1.0, rel=0.02)
    assert y.var(dim=(0, 2)).numpy() == pytest.approx(np.ones(3), rel=0.03)
    fw, pw = welch(y, FS, average="mean")
    band = (fw >= 20) & (fw <= 500)
    level = pw.mean((0, 1))[band] * FS / 2  # one-sided white PSD is 2 / sample_rate
    assert torch.all((level - 1).abs() < 0.10), (level - 1).abs().max()


def test_bandpassed_whitened_noise_is_flat_in_band(noise_and_psd):
    x, f, psd = noise_and_psd
    y = WhitenBandpass(f, psd, FS, N, 20, 500)(torch.from_numpy(x))[..., EDGE:-EDGE]
    fw, pw = welch(y, FS, average="mean")
    level = pw.mean((0, 1)) * FS / 2
    passband = (fw >= 40) & (fw <= 400)
    assert torch.all((level[passband] - 1).abs() < 0.10)
    assert torch.all(level[(fw >= 4) & (fw <= 10)] < 1e-3)  # -30 dB below the corner
    assert torch.all(level[fw >= 800] < 1e-3)
    # Variance = fraction of the band passed: integral of |H|^2 over 0..Nyquist.
    fr = np.fft.rfftfreq(N, 1 / FS)
    h2 = (1 / (1 + (20 / np.maximum(fr, 1e-9)) ** 16) / (1 + (fr / 500) ** 16)) ** 2
    assert y.var().item() == pytest.approx(h2.mean(), rel=0.03)


def test_injection_snr(noise_and_psd):
    """Squared norm of a whitened noise-free signal = its optimal SNR^2 from the true PSD."""
    _, f, psd = noise_and_psd
    h = sine_gaussian()
    fr = np.fft.rfftfreq(N, 1 / FS)
    hf = np.fft.rfft(h) / FS
    snr_true = np.sqrt(4 * np.sum(np.abs(hf[1:]) ** 2 / aligo_psd(fr[1:])) / (N / FS))
    y = whiten(torch.from_numpy(np.tile(h, (1, 3, 1))), f, psd, FS)
    snr = np.sqrt((y[0, 0].numpy() ** 2).sum())
    assert snr == pytest.approx(snr_true, rel=0.05)
    assert 5 < snr_true < 500  # a meaningful, non-degenerate injection


@pytest.mark.parametrize("band", [(None, None), (20.0, 500.0)])
def test_matches_numpy_reference(noise_and_psd, band):
    x, f, psd = noise_and_psd
    sample = x[0] + np.tile(sine_gaussian(), (3, 1))
    ref = whiten_reference(sample, f, psd, FS, TAPER_ALPHA, *band)  # whiten()'s default
    ours = whiten(torch.from_numpy(sample[None]), f, psd, FS, fmin=band[0], fmax=band[1])[0]
    assert np.abs(ours.numpy() - ref).max() < 1e-10 * np.abs(ref).max()


def test_torch_paths_agree(noise_and_psd):
    """Module vs function, float32 vs float64, fused vs Whiten -> Bandpass."""
    x, f, psd = noise_and_psd
    x64 = torch.from_numpy(x[:8])
    fused = WhitenBandpass(f, psd, FS, N, 20, 500)
    ref = whiten(x64, f, psd, FS, fmin=20, fmax=500)
    torch.testing.assert_close(fused(x64), ref)
    out32 = fused(x64.float())
    assert out32.dtype == torch.float32
    assert (out32.double() - ref).abs().max() < 1e-4
    chained = torch.nn.Sequential(Whiten(f, psd, FS, N), Bandpass(FS, N, 20, 500))(x64)
    # Chained filtering is circular in time, so it differs only inside the tapers.
    torch.testing.assert_close(chained[..., EDGE:-EDGE], ref[..., EDGE:-EDGE], atol=1e-3, rtol=0)
    # One PSD row broadcasts to every detector.
    one = Whiten(f, psd[0], FS, N)(x64)
    torch.testing.assert_close(one[:, 0], Whiten(f, psd, FS, N)(x64)[:, 0])


def test_interpolation_edges_and_loglog():
    f = np.array([10.0, 20.0, 40.0])
    p = np.array([4.0, 1.0, 0.25])  # p ~ f^-2: log-log interpolation is exact
    got = interpolate_psd(f, p, 160, 16.0 * 10, method="loglog").numpy()
    fr = np.fft.rfftfreq(160, 1 / 160.0)
    inside = (fr >= 10) & (fr <= 40)
    np.testing.assert_allclose(got[inside], 400.0 / fr[inside] ** 2, rtol=1e-12)
    lin = interpolate_psd(f, p, 160, 160.0).numpy()
    np.testing.assert_allclose(lin, np.interp(fr, f, p))  # constant beyond the ends
    assert got[fr > 40].max() == pytest.approx(0.25)


def test_fduration_shortens_the_filter():
    """A narrow spectral line makes the whitening filter ring; fduration cuts that off."""
    f = np.fft.rfftfreq(N, 1 / FS)
    psd = aligo_psd(f) * (1 + 1e3 * np.exp(-(((f - 60) / 1.0) ** 2)))
    tail = slice(512, -512)  # beyond +-0.25 s
    energy = {}
    for fduration in (None, 0.5):
        inv = inverse_asd(f, psd, N, FS, fduration=fduration)
        q = torch.fft.irfft(inv, n=N).numpy()
        energy[fduration] = (q[tail] ** 2).sum() / (q**2).sum()
    assert energy[None] > 1e-5
    assert energy[0.5] < energy[None] / 50
    # Away from the line it still whitens to within 1 %.
    band = (f > 30) & (f < 500) & (np.abs(f - 60) > 10)
    ratio = inverse_asd(f, psd, N, FS, fduration=0.5)[band] / inverse_asd(f, psd, N, FS)[band]
    assert (ratio - 1).abs().max() < 0.01


def test_wrong_shapes_are_reported(noise_and_psd):
    _, f, psd = noise_and_psd
    with pytest.raises(ValueError, match="4096 samples"):
        Whiten(f, psd, FS, N)(torch.zeros(1, 3, 2048))
    with pytest.raises(ValueError, match="3 detectors"):
        Whiten(f, psd, FS, N)(torch.zeros(1, 2, N))
