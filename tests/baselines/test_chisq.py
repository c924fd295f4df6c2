"""The Allen chi-squared veto: its definition, ~1 per degree of freedom for a matching signal in
Gaussian noise, far above for a sine-Gaussian glitch of the same SNR; newSNR as PyCBC; and
``g2res baseline matched-filter --chisq`` on a tiny hand-made data set."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from g2res.baselines.bank import TemplateBank, template_waveform
from g2res.baselines.chisq import (
    chisq_bin_index,
    chisq_dof,
    newsnr,
    power_chisq,
    power_chisq_series,
)
from g2res.baselines.matched_filter import MatchedFilter, companion_path

RATE = 2048.0
N = 4096
WHITE_PSD = np.full((3, N // 2 + 1), 2.0 / RATE)  # one-sided PSD of unit-variance white noise
MERGER = 1.5  # s, merger time of the injections
SNR = 15.0  # per detector


def sine_gaussian(f0: float = 150.0, q: float = 8.0, t0: float = 1.0) -> np.ndarray:
    """A sine-Gaussian blip (N,) at ``t0`` s: cos(2 pi f0 t) exp(-(2 pi f0 t / Q)^2 / 2)."""
    t = np.arange(N) / RATE - t0
    return np.cos(2 * np.pi * f0 * t) * np.exp(-0.5 * (2 * np.pi * f0 * t / q) ** 2)


@pytest.fixture(scope="module")
def setup():
    """A white-noise matched filter, a 30+25 Msun template, the signal (merger at 1.5 s,
    SNR 15 in each detector) and an H1 sine-Gaussian of the same matched-filter SNR."""
    mf = MatchedFilter(WHITE_PSD, taper_alpha=0.1)
    h = template_waveform(30.0, 25.0)
    u, sigma = mf.template_spectra(h)
    signal = np.roll(h, int(MERGER * RATE)) * SNR / sigma[0]
    blip = sine_gaussian()
    peak = mf.filter(np.stack([blip, 0 * blip, 0 * blip])[None], u[None])["snr_H1"][0]
    glitch = np.zeros((3, N))
    glitch[0] = blip * SNR / peak
    return mf, u, signal, glitch


def test_chisq_follows_its_definition(rng):
    """Against sum_i |z_i - P_i z|^2 / P_i written out with numpy, at given lags and at all
    lags; with exactly equal bins (template 0: flat |u|) that is PyCBC's p sum |z_i - z/p|^2."""
    n_freq, p, length = 256, 8, 512
    d = rng.normal(size=(2, 3, n_freq)) + 1j * rng.normal(size=(2, 3, n_freq))
    u = rng.normal(size=(4, 3, n_freq)) * np.exp(-np.linspace(0, 2, n_freq)) + 0j
    u[0] = np.exp(2j * np.pi * rng.uniform(size=(3, n_freq)))  # 32 frequencies per bin
    u = u / np.linalg.norm(u, axis=-1, keepdims=True)
    dt, ut = torch.as_tensor(d), torch.as_tensor(u)
    bins = chisq_bin_index(ut, p).numpy()
    power = np.abs(u) ** 2
    share = np.stack([np.where(bins == b, power, 0).sum(-1) for b in range(p)], -1)
    assert np.all(np.abs(share - 1 / p) <= power.max(-1, keepdims=True))  # up to one frequency
    np.testing.assert_allclose(share[0], 1 / p)
    lags = rng.integers(0, length, size=(2, 4, 3))
    ours = power_chisq(dt, ut, torch.as_tensor(lags), length, p).numpy()
    series = power_chisq_series(dt, ut, length, p).numpy()
    k = np.arange(n_freq)
    for i, t, j in np.ndindex(2, 4, 3):
        terms = d[i, j] * np.conj(u[t, j]) * np.exp(2j * np.pi * k * lags[i, t, j] / length)
        zi = np.array([terms[bins[t, j] == b].sum() for b in range(p)])
        z, w = zi.sum(), share[t, j]
        expected = np.sum(np.abs(zi - w * z) ** 2 / w)
        assert ours[i, t, j] == pytest.approx(expected, rel=1e-9)
        assert series[i, t, j, lags[i, t, j]] == pytest.approx(expected, rel=1e-6)
        if t == 0:
            assert ours[i, t, j] == pytest.approx(p * np.sum(np.abs(zi - z / p) ** 2), rel=1e-9)
    assert chisq_dof(p) == 14
    with pytest.raises(ValueError, match="at least 2 bins"):
        chisq_dof(1)


def test_matching_signal_has_one_per_degree_of_freedom(setup, rng):
    """300 Gaussian-noise realisations of an SNR-15 signal: chisq_r ~ chi2(30)/30 at the peak."""
    mf, u, signal, _ = setup
    x = rng.normal(size=(300, 3, N)) + signal
    res = mf.filter(x, u[None], chisq_bins=16)
    chisq_r = np.stack([res[f"chisq_r_{d}"] for d in ("H1", "L1", "V1")])
    assert np.all(np.abs(res["time"] - MERGER) < 2e-3)  # the peak is the signal's
    assert chisq_r.mean() == pytest.approx(1.0, abs=0.04)  # standard error 0.009
    assert chisq_r.var() == pytest.approx(2.0 / 30, rel=0.25)  # chi2 variance 2 dof / dof^2
    # Below chisq_r = 1 newSNR is the SNR; above it a matching signal loses little.
    snr = np.stack([res[f"snr_{d}"] for d in ("H1", "L1", "V1")])
    rho_hat = np.stack([res[f"newsnr_{d}"] for d in ("H1", "L1", "V1")])
    low = chisq_r <= 1
    np.testing.assert_allclose(rho_hat[low], snr[low], rtol=1e-6)
    assert np.all(rho_hat[~low] < snr[~low]) and np.mean(rho_hat / snr) > 0.97
    np.testing.assert_allclose(res["newsnr"], np.sqrt((rho_hat**2).sum(0)), rtol=1e-6)


def test_glitch_of_the_same_snr_is_vetoed(setup, rng):
    mf, u, signal, glitch = setup
    noise = rng.normal(size=(20, 3, N))
    blips = mf.filter(noise + glitch, u[None], chisq_bins=16)
    chirps = mf.filter(noise + signal, u[None], chisq_bins=16)
    # The same SNR in H1 (the matched filter alone cannot tell them apart) ...
    assert np.median(blips["snr_H1"]) == pytest.approx(np.median(chirps["snr_H1"]), rel=0.1)
    # ... but the blip's power sits in a few bins: chisq_r ~ (p - 1) rho^2 / (2p - 2).
    assert np.all(blips["chisq_r_H1"] > 5.0)
    assert np.median(blips["chisq_r_H1"]) > 50.0
    assert np.all(blips["newsnr_H1"] < 0.3 * blips["snr_H1"])
    assert blips["newsnr"].max() < chirps["newsnr"].min()


def test_newsnr_is_pycbc_reweighting():
    snr = torch.full((5,), 10.0, dtype=torch.float64)
    chisq_r = torch.tensor([0.2, 1.0, 1.5, 4.0, 50.0], dtype=torch.float64)
    out = newsnr(snr, chisq_r).numpy()
    assert out[0] == out[1] == 10.0
    expected = 10.0 / ((1 + chisq_r[2:].numpy() ** 3) / 2) ** (1 / 6)
    np.testing.assert_allclose(out[2:], expected)
    assert np.all(np.diff(out[1:]) < 0)
    assert out[-1] == pytest.approx(10.0 * 2 ** (1 / 6) / 50.0**0.5, rel=1e-4)  # rho / chisq_r^0.5


def test_cli_chisq_ranks_signals_above_glitches(setup, tmp_path, rng):
    """Six samples (2 noise, 2 signals, 2 H1 glitches) and a two-template bank: without the
    veto the glitches outrank the noise, with it they fall to the noise."""
    from g2res.cli import main
    from g2res.data.layout import sample_path

    _, _, signal, glitch = setup
    data = tmp_path / "data"
    ids = [f"{k:03x}" * 3 for k in range(6)]
    kinds = ["noise", "noise", "signal", "signal", "glitch", "glitch"]
    add = {"noise": 0.0, "signal": signal, "glitch": 2 * glitch}
    for i, kind in zip(ids, kinds):
        path = sample_path(data, "test", i)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, rng.normal(size=(3, N)) + add[kind])
    pd.DataFrame({"id": ids, "target": 0.5}).to_csv(data / "sample_submission.csv", index=False)
    freqs = np.fft.rfftfreq(N, 1 / RATE)
    np.savez(tmp_path / "psd.npz", frequencies=freqs, psd=WHITE_PSD, sample_rate=RATE)
    TemplateBank(np.array([30.0, 12.0]), np.array([25.0, 10.0]), np.zeros(2), np.zeros(2)).save(
        tmp_path / "bank.npz"
    )
    base = ["baseline", "matched-filter", str(data), "--psd", str(tmp_path / "psd.npz")]
    base += ["--bank", str(tmp_path / "bank.npz"), "-q"]
    assert main([*base, "--out", str(tmp_path / "plain.csv")]) == 0
    assert main([*base, "--out", str(tmp_path / "veto.csv"), "--chisq", "--chisq-bins", "8"]) == 0
    plain = pd.read_csv(companion_path(tmp_path / "plain.csv"))
    veto = pd.read_csv(companion_path(tmp_path / "veto.csv"))
    assert "newsnr" not in plain.columns
    assert {"newsnr", "chisq_r_H1", "newsnr_V1"} <= set(veto.columns)
    glitches, signals, noise = [4, 5], [2, 3], [0, 1]
    assert plain["snr"][glitches].min() > plain["snr"][noise].max()
    assert veto["newsnr"][glitches].max() < veto["newsnr"][signals].min()
    assert veto["chisq_r_H1"][glitches].min() > 5.0
    sub = pd.read_csv(tmp_path / "veto.csv")
    assert sub["target"].rank().tolist() == veto["newsnr"].rank().tolist()
    assert main([*base, "--out", str(tmp_path / "bad.csv"), "--chisq", "--chisq-bins", "1"]) == 1
