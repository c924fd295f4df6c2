"""Autogating (g2res.signal.gate): a loud sine-Gaussian in H1 is gated and the other
detectors are untouched; whitened BBH chirps of network SNR 12 never are; the gated
fraction is the window's; the module follows .to() and agrees with a numpy reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from g2res.data.glitches import Glitch, glitch_waveform, scale_to_snr
from g2res.signal.gate import GATE_TAPER, GATE_THRESHOLD, GATE_WINDOW, Gate, gate, noise_level
from g2res.signal.reference import gate_reference

RATE = 2048.0
N = 4096
WHITE = np.full(N // 2 + 1, 2.0 / RATE)  # one-sided PSD of unit-variance white noise


def sine_gaussian(snr: float, f0: float = 150.0, q: float = 8.0, t0: float = 1.0) -> np.ndarray:
    """A whitened sine-Gaussian glitch (N,) of optimal SNR ``snr`` (g2res.data.glitches)."""
    tau = q / (np.sqrt(2) * np.pi * f0)
    g = Glitch("sine_gaussian", t0, f0, q, 2 * tau, 0.3, snr)
    return scale_to_snr(glitch_waveform(g, RATE, N), WHITE, snr, RATE)


def whitened_chirps(rng, n: int, network_snr: float) -> np.ndarray:
    """``n`` BBH chirps (n, 3, N) whitened by the design PSDs and bandpassed 20-500 Hz,
    masses 7-50 Msun, mergers at 1.5-1.9 s, the network SNR split at random."""
    from g2res.baselines.bank import template_waveform
    from g2res.data.noise import design_psd

    freqs = np.fft.rfftfreq(N, 1 / RATE)
    band = (freqs >= 20) & (freqs <= 500)
    asd = np.sqrt(design_psd(freqs))
    out = np.zeros((n, 3, N))
    for i in range(n):
        m1, m2 = rng.uniform(7, 50, size=2)
        h = np.roll(template_waveform(max(m1, m2), min(m1, m2)), int(rng.uniform(1.5, 1.9) * RATE))
        share = rng.dirichlet(np.ones(3))
        for det in range(3):
            w = np.fft.irfft(np.fft.rfft(h) / asd[det] * band, n=N)
            out[i, det] = w / np.linalg.norm(w) * network_snr * np.sqrt(share[det])
    return out


def test_loud_sine_gaussian_in_h1_is_gated_and_others_untouched(rng):
    noise = rng.normal(size=(3, N))
    glitch = sine_gaussian(50.0)
    assert np.linalg.norm(glitch) == pytest.approx(50.0, rel=1e-3)  # whitened norm = SNR
    data = noise.copy()
    data[0] += glitch
    x = torch.as_tensor(data, dtype=torch.float32)[None]
    out, frac = gate(x, return_fraction=True)
    med, sigma = noise_level(x)
    assert float(((out[0, 0] - med[0, 0]).abs() / sigma[0, 0]).max()) < GATE_THRESHOLD
    assert float(((x[0, 0] - med[0, 0]).abs() / sigma[0, 0]).max()) > 1.5 * GATE_THRESHOLD
    weight = (out[0, 0] / x[0, 0]).double().numpy()  # x * weight, x != 0
    residual = np.linalg.norm(weight * glitch)
    assert residual < 0.1 * 50.0
    assert torch.equal(out[0, 1:], x[0, 1:])  # L1, V1 bit for bit
    assert frac[0, 1:].tolist() == [0.0, 0.0]
    assert 0.1 < float(frac[0, 0]) < 0.3  # one gate: (2 * 0.1 + 0.05) s of 2 s plus the cluster


def test_whitened_chirps_of_network_snr_12_are_never_gated(rng):
    chirps = whitened_chirps(rng, 100, 12.0)
    noise = rng.normal(size=chirps.shape) * 0.62  # bandpassed whitened noise level
    x = torch.as_tensor(noise + chirps, dtype=torch.float32)
    out, frac = gate(x, return_fraction=True)
    assert torch.equal(out, x)
    assert float(frac.max()) == 0.0
    # ... while the same chirps at SNR 60 (a loud merger is gateable) are, so the test can fail.
    loud = torch.as_tensor(noise + 5 * chirps, dtype=torch.float32)
    assert float((gate(loud, return_fraction=True)[1] > 0).any(-1).float().mean()) > 0.5


def test_gated_fraction_is_the_window(rng):
    x = rng.normal(size=(1, 3, N))
    x[0, 1, N // 2] = 40.0  # one excursion in L1, mid-window
    x[0, 2, 100] = 40.0  # one in V1 near the start: its gate is cut at sample 0
    out, frac = gate(torch.as_tensor(x), return_fraction=True)
    expected = (2 * GATE_WINDOW + GATE_TAPER) * RATE  # samples removed, tapers count half
    assert float(frac[0, 0]) == 0.0
    assert float(frac[0, 1]) * N == pytest.approx(expected, abs=1.5)
    w_n, t_n = GATE_WINDOW * RATE, GATE_TAPER * RATE
    start_cut = 100 + 0.5 + w_n + t_n / 2  # all 100 samples before it, one side after
    assert float(frac[0, 2]) * N == pytest.approx(start_cut, abs=1.5)
    zeroed = np.flatnonzero(out[0, 1].numpy() == 0)
    assert zeroed.min() == N // 2 - int(w_n) and zeroed.max() == N // 2 + int(w_n)
    # two excursions 1 s apart: twice the fraction; 0.1 s apart: one merged gate
    far, near = x.copy(), x.copy()
    far[0, 1, N // 2 - 1024] = near[0, 1, N // 2 - 205] = 40.0
    f_far = float(gate(torch.as_tensor(far), return_fraction=True)[1][0, 1]) * N
    f_near = float(gate(torch.as_tensor(near), return_fraction=True)[1][0, 1]) * N
    assert f_far == pytest.approx(2 * expected, abs=3)
    assert f_near == pytest.approx(expected + 205, abs=3)


def test_module_follows_to_and_agrees_with_numpy_reference(rng):
    x = rng.normal(size=(4, 3, N))
    for i in range(4):  # glitches of SNR 15-60 in random detectors, some in the tapers
        x[i, i % 3] += sine_gaussian(15.0 + 15 * i, f0=60.0 + 50 * i, t0=0.05 + 0.6 * i)
    x[3, 1] = 0.0  # a zeroed detector (sigma 0) is left alone
    module = Gate(threshold=6.0, window=0.08, taper=0.03).to("cpu")
    assert list(module.state_dict()) == []  # no weights: checkpoints are unchanged
    xt = torch.as_tensor(x, dtype=torch.float32)
    out = module(xt)
    assert out.dtype == torch.float32 and out.device == xt.device
    assert module.last_fraction.shape == (4, 3)
    n_gated = 0
    for i in range(4):
        for d in range(3):
            ref, ref_frac = gate_reference(xt[i, d].double().numpy(), 6.0, 0.08, 0.03, RATE)
            np.testing.assert_allclose(out[i, d].numpy(), ref, atol=2e-6)
            assert float(module.last_fraction[i, d]) == pytest.approx(ref_frac, abs=1e-6)
            n_gated += ref_frac > 0
    assert n_gated >= 3
    out64 = Gate(6.0, 0.08, 0.03).to(torch.float64)(torch.as_tensor(x))
    assert out64.dtype == torch.float64
    np.testing.assert_allclose(out64.numpy(), out.double().numpy(), atol=2e-6)


@pytest.mark.gpu
def test_gate_on_cuda_equals_cpu(rng):
    x = torch.as_tensor(rng.normal(size=(2, 3, N)), dtype=torch.float32)
    x[0, 0, 1000] = 30.0
    module = Gate().to("cuda")
    torch.testing.assert_close(module(x.cuda()).cpu(), Gate()(x), atol=1e-6, rtol=0)


def test_bad_settings_raise():
    with pytest.raises(ValueError, match="threshold"):
        Gate(threshold=0.0)
    with pytest.raises(ValueError, match="window"):
        gate(torch.zeros(1, 3, 8), window=-1.0)
