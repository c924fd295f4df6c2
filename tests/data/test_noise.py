"""Coloured Gaussian noise: the PSD recovered by Welch (scipy) is the PSD put in."""

from __future__ import annotations

import lalsimulation
import numpy as np
import pytest
from scipy.integrate import trapezoid
from scipy.signal import welch

from g2res.data.noise import (
    ColoredNoise,
    design_psd,
    interpolate_psd,
    load_psd_file,
    psd_function,
)

FS = 2048.0


def welch_blocks(x: np.ndarray, block: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Mean Welch PSD (1-s Hann segments) of (batch, 3, n), averaged over ``block``-Hz bands."""
    f, p = welch(x, fs=FS, nperseg=2048, noverlap=1024, window="hann", axis=-1)
    p = p.mean(axis=0)
    n = (f.size // block) * block
    return f[:n].reshape(-1, block).mean(-1), p[:, :n].reshape(3, -1, block).mean(-1)


def assert_psd_matches(estimate, reference, freqs, rtol=0.10):
    band = (freqs >= 20) & (freqs <= 500)
    ratio = estimate[:, band] / reference[:, band]
    worst = np.abs(ratio - 1).max(axis=1)
    assert np.all(worst < rtol), f"Welch/input PSD off by {worst} (H1, L1, V1)"


def test_design_psd_is_lalsimulation_curves():
    f = np.array([5.0, 10.0, 20.0, 100.0, 1000.0])
    psd = design_psd(f)
    assert psd.shape == (3, 5)
    for j, x in enumerate(f):
        x = max(x, 10.0)  # held flat below 10 Hz
        assert psd[0, j] == lalsimulation.SimNoisePSDaLIGOZeroDetHighPower(x)
        assert psd[1, j] == psd[0, j]
        assert psd[2, j] == lalsimulation.SimNoisePSDAdvVirgo(x)
    # Sanity of the physics: aLIGO design ASD near 4e-24 /sqrt(Hz) around 200 Hz.
    asd = np.sqrt(design_psd(np.array([200.0]))[0, 0])
    assert 2e-24 < asd < 8e-24


def test_noise_psd_matches_design(rng):
    noise = ColoredNoise()
    x = noise(rng, batch=600)
    assert x.shape == (600, 3, 4096) and x.dtype == np.float64
    f, p = welch_blocks(x)
    on_bins = design_psd(np.arange(f.size * 4, dtype=float)).reshape(3, -1, 4).mean(-1)
    assert_psd_matches(p, on_bins, f)


def test_noise_variance_is_psd_integral(rng):
    """Parseval: the variance of the noise is the integral of the one-sided PSD."""
    noise = ColoredNoise()
    x = noise(rng, batch=300)
    f = noise.frequencies
    expected = trapezoid(design_psd(f), f, axis=-1)
    measured = x.var(axis=(0, 2))
    # Low frequencies dominate the variance and have few independent cycles per window.
    np.testing.assert_allclose(measured, expected, rtol=0.15)


def test_noise_psd_matches_user_file(tmp_path, rng):
    """A user PSD unlike the design curves, three different columns, text format."""
    f = np.arange(0, 1024.25, 0.25)
    fs = np.maximum(f, 1.0)
    h1 = 4e-46 * (1 + 0.5 * np.sin(2 * np.pi * fs / 160.0)) * (1 + (30 / fs) ** 4)
    l1 = 1e-46 * (100 / fs) ** 2 + 2e-47
    v1 = np.full_like(f, 3e-46)
    path = tmp_path / "my_psd.txt"
    np.savetxt(path, np.column_stack([f, h1, l1, v1]), header="f PSD_H1 PSD_L1 PSD_V1")
    noise = ColoredNoise(psd_function(path))
    x = noise(rng, batch=600)
    fb, p = welch_blocks(x)
    table = np.stack([h1, l1, v1])
    # Reference straight from the file rows (the 1-Hz Welch bins are file rows).
    on_bins = table[:, ::4][:, : fb.size * 4].reshape(3, -1, 4).mean(-1)
    assert_psd_matches(p, on_bins, fb)


def test_colouring_without_wraparound(rng):
    """First and last samples are 2 s apart: uncorrelated. A 2-s circular segment would make
    them neighbours (low-frequency noise: correlation near 1), so this test can fail."""
    x = ColoredNoise()(rng, batch=400)
    r = [np.corrcoef(x[:, d, 0], x[:, d, -1])[0, 1] for d in range(3)]
    assert np.all(np.abs(r) < 0.2), r
    wrapped = ColoredNoise(segment_duration=2.0)(rng, batch=400)
    r_wrapped = [np.corrcoef(wrapped[:, d, 0], wrapped[:, d, -1])[0, 1] for d in range(3)]
    assert np.all(np.array(r_wrapped) > 0.7), r_wrapped


def test_same_generator_same_noise():
    a = ColoredNoise()(np.random.default_rng(5))
    b = ColoredNoise()(np.random.default_rng(5))
    c = ColoredNoise()(np.random.default_rng(6))
    assert np.array_equal(a, b) and not np.allclose(a, c, rtol=1e-3, atol=0)


def test_load_psd_file_formats(tmp_path):
    f = np.linspace(0, 1024, 200)
    one = 1e-46 * (1 + f / 100)
    np.save(tmp_path / "one.npy", np.column_stack([f, one]))
    freqs, psd = load_psd_file(tmp_path / "one.npy")
    assert psd.shape == (3, 199) and np.array_equal(freqs, f[1:])  # 0-Hz row dropped
    assert np.array_equal(psd[0], one[1:]) and np.array_equal(psd[2], one[1:])
    np.savetxt(tmp_path / "comma.csv", np.column_stack([f, one, 2 * one, 3 * one]), delimiter=",")
    freqs, psd = load_psd_file(tmp_path / "comma.csv")
    np.testing.assert_allclose(psd[2] / psd[0], 3.0)
    # Interpolation is exact on the file's own grid and log-log in between.
    np.testing.assert_allclose(interpolate_psd(freqs, psd, freqs), psd)
    mid = np.sqrt(freqs[10] * freqs[11])
    expected = np.sqrt(psd[0, 10] * psd[0, 11])
    np.testing.assert_allclose(interpolate_psd(freqs, psd, np.array([mid]))[0, 0], expected)


@pytest.mark.parametrize(
    "content, message",
    [
        ("1 2 3\n4 5 6\n", "shape"),
        ("10 1e-46\n5 1e-46\n", "strictly increase"),
        ("10 1e-46\n20 -1e-46\n", "positive"),
        ("10 1e-46\n20 nan\n", "NaN"),
        ("hello world\n", "could not be read"),
    ],
)
def test_load_psd_file_errors_name_the_file(tmp_path, content, message):
    path = tmp_path / "bad_psd.txt"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as info:
        load_psd_file(path)
    assert "bad_psd.txt" in str(info.value)


def test_missing_psd_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        psd_function(tmp_path / "nope.txt")
