"""STFT front-end against a numpy reference; noise normalisation; identity front-end."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import torch

from g2res.transforms import create_frontend, list_frontends
from g2res.transforms.stft import Spectrogram

SR = 2048.0
N = 4096


def _reference_power(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Centred frames (reflect padding), periodic Hann (scipy), |rfft|^2: (freq, frames)."""
    padded = np.pad(x, n_fft // 2, mode="reflect")
    win = scipy.signal.get_window("hann", n_fft, fftbins=True)
    starts = np.arange(0, len(padded) - n_fft + 1, hop)
    frames = np.stack([padded[s : s + n_fft] * win for s in starts], axis=1)
    return np.abs(np.fft.rfft(frames, axis=0)) ** 2


@pytest.mark.parametrize("n_fft, hop", [(256, 32), (128, 64)])
def test_matches_numpy_reference(n_fft, hop, rng):
    x = rng.standard_normal((2, 3, N))
    spec = Spectrogram(SR, n_fft=n_fft, hop_length=hop, scale="power", norm="none")
    got = spec(torch.tensor(x, dtype=torch.float32)).numpy()
    freqs = np.fft.rfftfreq(n_fft, 1 / SR)
    keep = (freqs >= 20) & (freqs <= 500)
    np.testing.assert_allclose(spec.frequencies, freqs[keep])
    ref = _reference_power(x[1, 2], n_fft, hop)[keep]
    assert got.shape == (2, 3, keep.sum(), N // hop + 1)
    np.testing.assert_allclose(got[1, 2], ref, rtol=2e-3, atol=1e-3 * ref.mean())


def test_white_noise_gives_unit_power(rng):
    x = torch.tensor(rng.standard_normal((64, 3, N)), dtype=torch.float32)
    power = Spectrogram(SR, scale="power", norm="noise")(x)
    np.testing.assert_allclose(power.mean(dim=(0, 1, 3)).numpy(), 1.0, atol=0.08)


def test_tone_peaks_at_its_frequency():
    f0 = 123.0
    t = np.arange(N) / SR
    x = torch.tensor(np.sin(2 * np.pi * f0 * t), dtype=torch.float32).expand(1, 3, N)
    spec = Spectrogram(SR)
    peak = spec.frequencies[spec(x)[0, 0].mean(-1).argmax()]
    assert abs(peak - f0) <= SR / spec.n_fft / 2


def test_identity_front_end_passes_strain_through(rng):
    x = torch.tensor(rng.standard_normal((2, 3, 64)), dtype=torch.float32)
    ident = create_frontend("identity")
    assert not ident.is_2d and torch.equal(ident(x), x)
    assert sorted(list_frontends()) == ["bank", "cqt", "identity", "stft"]


def test_unknown_front_end_and_bad_window_raise():
    with pytest.raises(ValueError, match="unknown front-end 'mel'"):
        create_frontend("mel")
    with pytest.raises(ValueError, match="window"):
        Spectrogram(SR, window="kaiser")
    with pytest.raises(ValueError, match="no frequency bin"):
        Spectrogram(SR, n_fft=8, fmin=20, fmax=100)
