"""Coherent network SNR: lal's geometry, a signal's SNR recovered with an empty null
stream, chi-squared with 4 degrees of freedom in noise, and a sharper statistic than the
incoherent sum on weak signals at a fixed false-alarm rate."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from g2res.baselines.bank import template_waveform
from g2res.baselines.coherent import antenna_and_delays, coherent_snr, projections, sky_grid
from g2res.baselines.matched_filter import DETECTORS, MatchedFilter
from g2res.data.noise import ColoredNoise, design_psd, rfft_frequencies
from g2res.data.waveforms import BBHParameters, Injector


def test_antenna_patterns_and_delays_match_lal(rng):
    import lal

    ra, dec = rng.uniform(0, 2 * np.pi, 20), np.arcsin(rng.uniform(-1, 1, 20))
    gps = 1_234_567_890.0
    antenna, tau = antenna_and_delays(ra, dec, gps)
    gmst = lal.GreenwichMeanSiderealTime(lal.LIGOTimeGPS(gps))
    for i in range(20):
        for j, name in enumerate(DETECTORS):
            det = lal.cached_detector_by_prefix[name]
            fp, fx = lal.ComputeDetAMResponse(det.response, ra[i], dec[i], 0.0, gmst)
            np.testing.assert_allclose(antenna[i, j], [fp, fx], atol=1e-9)
            want = lal.TimeDelayFromEarthCenter(det.location, ra[i], dec[i], gps)
            assert tau[i, j] == pytest.approx(want, abs=1e-9)


def test_sky_grid_covers_the_delays_the_baselines_allow():
    import lal

    grid = sky_grid(2048.0)
    loc = {d: np.asarray(lal.cached_detector_by_prefix[d].location) for d in DETECTORS}
    for j, det in enumerate(("L1", "V1")):
        light = np.linalg.norm(loc[det] - loc["H1"]) / lal.C_SI * 2048.0
        assert np.abs(grid.lags[:, j]).max() <= np.ceil(light)
        # every lag of the baseline is reached (the grid is fine enough not to skip one)
        assert set(np.unique(grid.lags[:, j])) >= set(range(-int(light) + 1, int(light)))
    assert 2_000 < len(grid) < 20_000


def test_projector_keeps_the_signal_plane():
    grid = sky_grid(2048.0)
    sigma = torch.tensor([[1.0, 1.3, 0.5]])
    p = projections(sigma, torch.as_tensor(grid.antenna[:50], dtype=torch.float32))[0]
    m = sigma[0, None, :, None] * torch.as_tensor(grid.antenna[:50], dtype=torch.float32)
    torch.testing.assert_close(p @ m, m, atol=1e-4, rtol=1e-4)  # P M = M
    torch.testing.assert_close(p @ p, p, atol=1e-4, rtol=1e-4)  # idempotent
    torch.testing.assert_close(p.diagonal(dim1=-2, dim2=-1).sum(-1), torch.full((50,), 2.0))


@pytest.fixture(scope="module")
def setup():
    """Design PSD, its filter, one bank template (whitened spectra, sigmas) and a signal
    of that template at network SNR 10 from a direction lal projects."""
    psd = design_psd(rfft_frequencies())
    mf = MatchedFilter(psd, taper_alpha=0.1)
    params = BBHParameters(
        30.0, 25.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
        2.0, -0.6, 0.9, 0.4, 1.0, 1.5, 10.0,
    )  # fmt: skip
    signal, info = Injector(psd, approximant="IMRPhenomD").render(params)
    u, sigma = mf.template_spectra(template_waveform(30.0, 25.0)[None], per_detector=False)
    return psd, mf, u, sigma, signal, info


def test_signal_snr_is_coherent_and_its_null_stream_empty(setup, rng):
    _, mf, u, sigma, signal, info = setup
    noise = ColoredNoise(design_psd)(rng, batch=24)
    res = mf.filter(noise + signal, u, coherent=1, sigma=sigma)
    assert np.mean(res["coh_snr"]) == pytest.approx(10.0, rel=0.05)
    # The null stream holds noise only: chi-squared with 2 degrees of freedom (mean 2).
    assert np.mean(res["null_snr"] ** 2) < 3.5
    assert np.all(np.abs(res["coh_time"] - info["t_H1"]) < 3e-3)
    # Noiseless, the projection keeps all of the signal.
    clean = mf.filter(signal[None], u, coherent=1, sigma=sigma)
    assert clean["coh_snr"][0] == pytest.approx(10.0, rel=0.02)
    assert clean["null_snr"][0] < 0.5


def test_noise_is_chi_squared_with_four_degrees_of_freedom(rng):
    """At one fixed sky direction and lag, coh^2 of unit complex Gaussian SNRs has mean 4
    (2 complex dimensions) and null^2 mean 2; the sum is |z|^2 (mean 6)."""
    grid = sky_grid(2048.0)
    n = 4000
    z = torch.complex(torch.randn(n, 1, 3, 8), torch.randn(n, 1, 3, 8))
    sub = type(grid)(grid.lags[:1] * 0, grid.antenna[:1], grid.ra[:1], grid.dec[:1], grid.rate)
    res = coherent_snr(z, torch.zeros(n, 1, dtype=torch.long), torch.ones(n, 1, 3), sub, 0)
    assert res["coh"].mean().item() == pytest.approx(4.0, rel=0.05)
    assert res["null"].mean().item() == pytest.approx(2.0, rel=0.06)


def test_coherent_beats_incoherent_on_weak_signals_at_fixed_false_alarm(setup, rng):
    """400 noise samples and 100 signals of network SNR 7 from random directions: at the
    false-alarm probability 1/40 of each statistic's own noise, the coherent SNR finds
    more signals than the incoherent sum (it has 2 noise degrees of freedom fewer)."""
    psd, mf, u, sigma, _, _ = setup
    injector = Injector(psd, approximant="IMRPhenomD")
    gen = np.random.default_rng(3)
    signals = []
    for _ in range(100):
        p = injector.draw(gen)
        p = BBHParameters(**{**p.to_dict(), "mass1": 30.0, "mass2": 25.0, "spin1z": 0.0,
                             "spin2z": 0.0, "snr": 7.0})  # fmt: skip
        signals.append(injector.render(p)[0])
    noise = ColoredNoise(design_psd)(rng, batch=500)
    x = noise.copy()
    x[400:] += np.stack(signals)
    res = {}
    for s in range(0, 500, 50):
        part = mf.filter(x[s : s + 50], u, coherent=1, sigma=sigma)
        for key in ("snr", "coh_snr"):
            res.setdefault(key, []).append(part[key])
    found = {}
    for key in res:
        stat = np.concatenate(res[key])
        threshold = np.quantile(stat[:400], 1 - 1 / 40)
        found[key] = np.mean(stat[400:] > threshold)
    assert found["coh_snr"] > found["snr"] + 0.03, found


def test_cli_coherent_ranks_the_coherent_snr_and_stacks_it(setup, tmp_path, rng):
    """`--coherent 2` on 6 samples (3 noise, 3 signals) with a 2-template bank: the
    companion has coh_snr as its `stat`, the submission ranks it, the stacker reads it;
    --coherent with --chisq is a clear error."""
    import pandas as pd

    from g2res.baselines.bank import TemplateBank
    from g2res.baselines.matched_filter import companion_path
    from g2res.cli import main
    from g2res.data.layout import sample_path
    from g2res.ensemble.stack_inputs import read_statistic

    psd, mf, _, _, signal, _ = setup
    data = tmp_path / "data"
    ids = [f"{k:03x}" * 3 for k in range(6)]
    noise = ColoredNoise(design_psd)(rng, batch=6)
    for n, i in enumerate(ids):
        path = sample_path(data, "test", i)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, noise[n] + (signal if n >= 3 else 0.0))
    pd.DataFrame({"id": ids, "target": 0.5}).to_csv(data / "sample_submission.csv", index=False)
    np.savez(tmp_path / "psd.npz", frequencies=mf.frequencies, psd=psd, sample_rate=2048.0)
    bank = TemplateBank(np.array([30.0, 12.0]), np.array([25.0, 10.0]), np.zeros(2), np.zeros(2))
    bank.save(tmp_path / "bank.npz")
    base = ["baseline", "matched-filter", str(data), "--psd", str(tmp_path / "psd.npz")]
    base += ["--bank", str(tmp_path / "bank.npz"), "-q"]
    assert main([*base, "--out", str(tmp_path / "coh.csv"), "--coherent", "2"]) == 0
    raw = pd.read_csv(companion_path(tmp_path / "coh.csv"), dtype={"id": str})
    assert {"coh_snr", "null_snr", "coh_template", "coh_time", "stat"} <= set(raw.columns)
    np.testing.assert_array_equal(raw["stat"], raw["coh_snr"])
    assert raw["coh_snr"][3:].min() > raw["coh_snr"][:3].max()
    sub = pd.read_csv(tmp_path / "coh.csv", dtype={"id": str})
    assert sub["target"].rank().tolist() == raw["coh_snr"].rank().tolist()
    scores, column = read_statistic(companion_path(tmp_path / "coh.csv"), "bank", "test")
    assert column == "stat" and scores.loc[ids[3]] == raw["coh_snr"][3]
    bad = [*base, "--out", str(tmp_path / "bad.csv"), "--coherent", "2", "--chisq"]
    assert main(bad) == 1


@pytest.mark.gpu
def test_coherent_snr_on_cuda_matches_the_cpu(rng):
    grid = sky_grid(2048.0)
    z = torch.complex(torch.randn(4, 2, 3, 256), torch.randn(4, 2, 3, 256))
    peak = torch.randint(0, 256, (4, 2))
    sigma = torch.rand(4, 2, 3) + 0.5
    cpu = coherent_snr(z, peak, sigma, grid, 5)
    gpu = coherent_snr(z.cuda(), peak.cuda(), sigma.cuda(), grid, 5)
    torch.testing.assert_close(gpu["coh"].cpu(), cpu["coh"], rtol=1e-4, atol=1e-4)
