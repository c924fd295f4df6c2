"""Zero-phase Butterworth filters: scipy response, passband, stopband, zero phase."""

import numpy as np
import pytest
import scipy.signal
import torch

from g2res.signal import Bandpass, bandpass, butterworth_response, highpass, lowpass
from g2res.signal.reference import butterworth_response_reference

FS = 2048.0


def test_response_matches_scipy_analog_butterworth():
    f = np.fft.rfftfreq(4096, 1 / FS)
    for fmin, fmax, order in [(20, 500, 8), (30, None, 4), (None, 300, 6)]:
        ours = butterworth_response(torch.from_numpy(f), fmin, fmax, order).numpy()
        ref = butterworth_response_reference(f, fmin, fmax, order)
        np.testing.assert_allclose(ours, ref, atol=1e-12)


def test_sines_pass_or_are_suppressed():
    t = np.arange(4096) / FS
    x = torch.from_numpy(np.stack([np.sin(2 * np.pi * f0 * t) for f0 in (8, 100, 250, 900)]))
    y = bandpass(x, FS, 20, 500).numpy()
    gain = np.sqrt((y**2).mean(-1) / (x.numpy() ** 2).mean(-1))
    assert gain[1] == pytest.approx(1, abs=1e-6) and gain[2] == pytest.approx(1, abs=1e-4)
    assert gain[0] < 1e-5 and gain[3] < 1e-3


def test_zero_phase_and_matches_sosfiltfilt():
    """A pulse in a long zero-padded buffer: symmetric output, equal to scipy's filtfilt
    of a digital Butterworth away from the corners' bilinear warping."""
    n = 16384
    x = np.zeros(n)
    x[n // 2] = 1.0
    y = bandpass(torch.from_numpy(x), FS, 30, 300, order=4).numpy()
    np.testing.assert_allclose(y[n // 2 + 1 :], y[n // 2 - 1 :: -1][: n // 2 - 1], atol=1e-12)
    sos = scipy.signal.butter(4, [30, 300], btype="bandpass", fs=FS, output="sos")
    ref = scipy.signal.sosfiltfilt(sos, x)
    # Analog vs bilinear digital Butterworth differ slightly near the corners; their
    # impulse responses still agree to a few % of the peak.
    assert np.abs(y - ref).max() < 0.05 * np.abs(ref).max()
    assert np.corrcoef(y, ref)[0, 1] > 0.995


def test_module_and_functions_agree(rng):
    x = torch.from_numpy(rng.standard_normal((2, 3, 4096)))
    mod = Bandpass(FS, 4096, 20, 500)
    torch.testing.assert_close(mod(x), bandpass(x, FS, 20, 500))
    torch.testing.assert_close(mod(x.float()), bandpass(x, FS, 20, 500).float(), atol=1e-5, rtol=0)
    both = lowpass(highpass(x, FS, 20), FS, 500)
    torch.testing.assert_close(both, bandpass(x, FS, 20, 500))


def test_bad_corners():
    with pytest.raises(ValueError, match="Nyquist"):
        Bandpass(FS, 4096, 20, 1500)
    with pytest.raises(ValueError, match="fmin < fmax"):
        bandpass(torch.zeros(4096), FS, 500, 20)
