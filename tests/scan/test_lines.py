"""Spectral lines in long strain: the scan's PSD estimate follows them, so the whitened windows
the models see carry no residual line power (the long-strain data hold 60, 120, 180 and an
off-grid 331.3 Hz line, see conftest.LINES)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import GPS0, LINES

from g2res import SAMPLE_RATE
from g2res.data.noise import design_psd
from g2res.scan import Conditioning, ScanSettings, Scorer, Strain, condition_windows, scan_strain

FLAT = slice(600, 3500)  # samples: the flat part of the Tukey taper


def line_power(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean periodogram of whitened windows ``x`` (n, 3, 4096) over their flat part, in units
    of its median over 40-400 Hz: (max within +/- 1 Hz of each line, mean within +/- 3 Hz)."""
    p = (np.abs(np.fft.rfft(x[..., FLAT], axis=-1)) ** 2).mean((0, 1))
    f = np.fft.rfftfreq(FLAT.stop - FLAT.start, 1.0 / SAMPLE_RATE)
    p = p / np.median(p[(f > 40) & (f < 400)])
    peak = [p[np.abs(f - f0) <= 1.0].max() for f0, _ in LINES]
    near = [p[np.abs(f - f0) <= 3.0].mean() for f0, _ in LINES]
    return np.array(peak), np.array(near)


def scanned_windows(data, settings) -> np.ndarray:
    """The conditioned windows a scorer receives in ``scan_strain``: (n, 3, 4096)."""
    seen = []

    def record(x):
        seen.append(x.numpy().copy())
        return np.zeros(len(x))

    scan_strain(Strain(data, GPS0, SAMPLE_RATE), Scorer(record), settings, progress=False)
    return np.concatenate(seen)


@pytest.fixture(scope="module")
def noise_only(long_strain):
    return long_strain["clean"][:, : int(20 * SAMPLE_RATE)]  # before the first injection


def test_whitening_with_the_true_smooth_psd_leaves_the_lines(noise_only):
    """The check can fail: whitened by the line-free design PSD the lines stand out."""
    starts = np.arange(0, noise_only.shape[1] - 4096, 1024)
    freqs = np.fft.rfftfreq(4096, 1 / SAMPLE_RATE)
    psd = np.array(np.broadcast_to(design_psd(freqs), (3, freqs.size)))
    peak, _ = line_power(condition_windows(noise_only, starts, freqs, psd, Conditioning()).numpy())
    assert np.all(peak > 50.0)


def test_scan_psd_follows_the_lines(noise_only):
    settings = ScanSettings(stride=0.5, psd_length=20.0)
    peak, near = line_power(scanned_windows(noise_only, settings))
    # The run's 0.5-s Welch segments (2-Hz resolution): the lines are followed, a residual
    # peak of a few noise levels remains and the noise beside them is over-whitened.
    assert np.all(peak < 5.0)
    assert np.all(near < 0.8)
    # Welch segments of the window length: the PSD resolves the lines on the windows' grid.
    fine = ScanSettings(stride=0.5, psd_length=20.0, psd_segment=2.0)
    peak, near = line_power(scanned_windows(noise_only, fine))
    assert np.all(peak < 2.0)
    np.testing.assert_allclose(near, 1.0, atol=0.25)
    with pytest.raises(ValueError, match="psd_segment 30.0 s must be"):
        ScanSettings(psd_length=20.0, psd_segment=30.0).check()
