"""Welch PSD: equals scipy, recovers a known PSD from coloured noise, PSD files."""

import lalsimulation
import numpy as np
import pytest
import torch

from g2res.signal import Welch, load_psd, median_bias, welch
from g2res.signal.psd import _median
from g2res.signal.reference import coloured_noise, welch_reference

FS = 2048.0


def aligo_psd(f):
    """aLIGO design PSD (strain^2/Hz), held flat below 10 Hz."""
    f = np.maximum(np.asarray(f, dtype=float), 10.0)
    grid = np.unique(f)
    values = np.array([lalsimulation.SimNoisePSDaLIGOZeroDetHighPower(float(v)) for v in grid])
    return np.interp(f, grid, values)


@pytest.mark.parametrize("average", ["median", "mean"])
@pytest.mark.parametrize("segment", [0.5, 0.25])
def test_welch_matches_scipy(rng, average, segment):
    x = rng.standard_normal((4, 3, 4096)) * 1e-21
    f, p = welch(torch.from_numpy(x), FS, segment_duration=segment, average=average)
    fr, pr = welch_reference(x, FS, segment_duration=segment, average=average)
    np.testing.assert_allclose(f.numpy(), fr)
    np.testing.assert_allclose(p.numpy(), pr, rtol=1e-9)


@pytest.mark.parametrize("n", [1, 2, 7, 8, 12, 13, 20])  # network up to 12, torch.sort above
def test_median_of_segments_equals_numpy(rng, n):
    power = rng.random((4, 3, n, 33))
    power[0, 0, :, 0] = 1.0  # ties
    expected = np.median(power, axis=-2)
    np.testing.assert_array_equal(_median(torch.from_numpy(power)).numpy(), expected)


def test_median_bias_matches_scipy():
    from scipy.signal._spectral_py import _median_bias

    for n in (1, 2, 3, 7, 8, 15):
        assert median_bias(n) == pytest.approx(_median_bias(n), rel=1e-12)


def test_welch_recovers_known_psd(rng):
    x = coloured_noise(rng, aligo_psd, (96, 3, 4096), FS)
    f, p = welch(torch.from_numpy(x), FS)
    est = p.mean(0).numpy()  # (3, f) average over samples, as preprocess does
    band = (f.numpy() >= 20) & (f.numpy() <= 500)
    ratio = est[:, band] / aligo_psd(f.numpy()[band])
    # Each bin is an average of 96 x 3 medians: ~3% scatter; leakage near 20 Hz adds a few %.
    assert np.all(np.abs(ratio.mean(0) - 1) < 0.12), np.abs(ratio.mean(0) - 1).max()
    assert abs(ratio.mean() - 1) < 0.02


def test_white_noise_level(rng):
    sigma = 3.0
    x = sigma * rng.standard_normal((64, 4096))
    _, p = welch(x, FS, average="mean")
    assert p[:, 1:-1].mean().item() == pytest.approx(2 * sigma**2 / FS, rel=0.02)


def test_module_matches_function(rng):
    x = torch.from_numpy(rng.standard_normal((2, 3, 4096)))
    mod = Welch(FS, 4096)
    f, p = welch(x, FS)
    torch.testing.assert_close(mod(x), p)
    torch.testing.assert_close(mod.frequencies, f)


def test_welch_rejects_bad_arguments():
    with pytest.raises(ValueError, match="longer than the data"):
        welch(torch.zeros(1, 100), FS, segment_duration=0.5)
    with pytest.raises(ValueError, match="average"):
        welch(torch.zeros(1, 4096), FS, average="mode")


def test_load_psd_formats(tmp_path):
    f = np.linspace(0, 1024, 513)
    psd = np.vstack([aligo_psd(f) * k for k in (1, 2, 3)])
    np.savez(tmp_path / "psd.npz", frequencies=f, psd=psd, sample_rate=FS)
    got_f, got_p, sr = load_psd(tmp_path / "psd.npz")
    np.testing.assert_array_equal(got_p, psd)
    assert sr == FS
    np.savetxt(tmp_path / "one.txt", np.column_stack([f, psd[0]]))
    _, p1, sr1 = load_psd(tmp_path / "one.txt")
    assert p1.shape == (3, 513) and sr1 is None
    np.testing.assert_allclose(p1[2], psd[0])
    np.save(tmp_path / "three.npy", np.column_stack([f, psd.T]))
    np.testing.assert_allclose(load_psd(tmp_path / "three.npy")[1], psd)


@pytest.mark.parametrize(
    "content, message",
    [
        (np.column_stack([np.linspace(0, 1, 5), np.ones((5, 2))]), "1 or 3 PSD columns"),
        (np.column_stack([np.linspace(1, 0, 5), np.ones(5)]), "increase"),
        (np.column_stack([np.linspace(0, 1, 5), -np.ones(5)]), "non-negative"),
    ],
)
def test_load_psd_errors(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    np.savetxt(path, content)
    with pytest.raises(ValueError, match=message):
        load_psd(path)
    with pytest.raises(ValueError, match="does not exist"):
        load_psd(tmp_path / "nope.txt")
