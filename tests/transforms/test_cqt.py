"""CQT front-end: shapes, frequency axis, noise normalisation, tones and chirps."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.signal
import scipy.stats
import torch

from g2res.transforms import create_frontend
from g2res.transforms.cqt import CQT

SR = 2048.0
N = 4096


@pytest.mark.parametrize(
    "fmin, fmax, hop, bpo", [(20.0, 500.0, 32, 8), (20.0, 500.0, 64, 12), (30.0, 1000.0, 16, 24)]
)
def test_shape_and_frequency_axis_match_settings(fmin, fmax, hop, bpo):
    cqt = CQT(SR, fmin=fmin, fmax=fmax, hop_length=hop, bins_per_octave=bpo, n_time=N)
    y = cqt(torch.zeros(2, 3, N))
    n_bins = math.floor(bpo * math.log2(fmax / fmin) + 1e-9) + 1
    assert y.shape == (2, 3, n_bins, N // hop + 1) == (2, *cqt.output_shape(N))
    expected = fmin * 2.0 ** (np.arange(n_bins) / bpo)
    np.testing.assert_allclose(cqt.frequencies, expected, rtol=1e-9)
    assert cqt.frequencies[-1] <= fmax < cqt.frequencies[-1] * 2 ** (1 / bpo)


def test_white_noise_gives_unit_power_in_every_bin():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, N, generator=gen)
    power = CQT(SR, scale="power", norm="noise")(x)
    # Away from the edges, unit-variance white noise has expected power 1 per bin.
    per_bin = power[..., 8:-8].mean(dim=(0, 1, 3))
    np.testing.assert_allclose(per_bin.numpy(), 1.0, atol=0.1)


@pytest.mark.parametrize("f0", [35.0, 100.0, 310.0])
def test_tone_peaks_in_its_bin(f0):
    cqt = CQT(SR, bins_per_octave=12)
    t = np.arange(N) / SR
    x = torch.tensor(np.sin(2 * np.pi * f0 * t), dtype=torch.float32).expand(1, 3, N)
    spectrum = cqt(x)[0, 0, :, 20:-20].mean(-1).numpy()
    nearest = np.argmin(np.abs(np.log2(cqt.frequencies / f0)))
    assert np.argmax(spectrum) == nearest


def test_chirp_in_noise_shows_rising_energy():
    """A 30->400 Hz chirp (amplitude 0.5) in unit white noise: the loudest bin of each
    frame follows the chirp's instantaneous frequency, which rises with time."""
    cqt = CQT(SR, bins_per_octave=12, hop_length=32)
    t = np.arange(N) / SR
    f_lo, f_hi, t1 = 30.0, 400.0, t[-1]
    chirp = 0.5 * scipy.signal.chirp(t, f0=f_lo, t1=t1, f1=f_hi, method="logarithmic")
    noise = np.random.default_rng(5).standard_normal((1, 3, N))
    x = torch.tensor(noise + chirp, dtype=torch.float32)
    image = cqt(x)[0].mean(0).numpy()  # (bins, frames)
    frames = np.arange(image.shape[1]) * cqt.hop_length / SR
    inner = (frames > 0.2) & (frames < t1 - 0.2)
    peak_f = cqt.frequencies[np.argmax(image[:, inner], axis=0)]
    f_inst = f_lo * (f_hi / f_lo) ** (frames[inner] / t1)
    # Within two bins (a 12th of an octave each) of the truth in >= 90 % of frames.
    err_bins = np.abs(np.log2(peak_f / f_inst)) * 12
    assert np.mean(err_bins <= 2) >= 0.9
    # The loudest bin rises with time; in the same noise without the chirp it does not.
    rho = scipy.stats.spearmanr(frames[inner], np.argmax(image[:, inner], axis=0))[0]
    quiet = cqt(torch.tensor(noise, dtype=torch.float32))[0].mean(0).numpy()
    rho0 = scipy.stats.spearmanr(frames[inner], np.argmax(quiet[:, inner], axis=0))[0]
    assert rho > 0.95 and abs(rho0) < 0.3


def test_image_norm_standardises_each_channel():
    x = 5.0 * torch.randn(2, 3, N, generator=torch.Generator().manual_seed(1)) + 1.0
    y = CQT(SR, norm="image", scale="log")(x)
    np.testing.assert_allclose(y.mean(dim=(-2, -1)).numpy(), 0.0, atol=1e-4)
    np.testing.assert_allclose(y.std(dim=(-2, -1)).numpy(), 1.0, atol=1e-3)


def test_scales_are_consistent():
    x = torch.randn(1, 3, N, generator=torch.Generator().manual_seed(2))
    power = CQT(SR, scale="power")(x)
    torch.testing.assert_close(CQT(SR, scale="magnitude")(x), power.sqrt())
    torch.testing.assert_close(CQT(SR, scale="log")(x), torch.log(power + 1e-6))


def test_gradient_flows_to_the_input():
    x = torch.randn(1, 3, N, requires_grad=True)
    CQT(SR)(x).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_registry_builds_cqt_with_sample_rate():
    cqt = create_frontend("cqt", sample_rate=4096.0, n_time=8192, fmax=1000.0)
    assert isinstance(cqt, CQT) and cqt.sample_rate == 4096.0 and cqt.is_2d


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(fmin=500.0, fmax=20.0), "fmin < fmax"),
        (dict(fmax=2000.0), "Nyquist"),
        (dict(scale="dB"), "scale"),
        (dict(norm="batch"), "norm"),
        (dict(hop_length=0), "hop_length"),
    ],
)
def test_bad_settings_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CQT(SR, **kwargs)


def test_too_short_input_for_lowest_kernel_raises():
    with pytest.raises(ValueError, match="n_time=512"):
        CQT(SR, fmin=10.0, n_time=512)
