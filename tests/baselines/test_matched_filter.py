"""Matched filter: exact templates recover an injection's SNR and time; the oracle is
near-perfect on loud signals; the command writes a valid submission."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from g2res.baselines.bank import template_waveform
from g2res.baselines.matched_filter import (
    DETECTORS,
    MatchedFilter,
    Oracle,
    companion_path,
    load_filter_psd,
    marginal_statistic,
    rank_probability,
)
from g2res.data.noise import ColoredNoise, design_psd, rfft_frequencies
from g2res.data.waveforms import Injector

SNR = 12.0


@pytest.fixture(scope="module")
def injection(binary):
    """An aligned-spin IMRPhenomD signal (3, 4096) at network SNR 12, merger 1.85 s."""
    psd = design_psd(rfft_frequencies())
    params = binary(1.85, SNR)
    signal, info = Injector(psd, approximant="IMRPhenomD").render(params)
    return psd, params, signal, info


def test_noiseless_exact_template_gives_optimal_snr_at_injection(injection):
    psd, _, signal, info = injection
    mf = MatchedFilter(psd, taper_alpha=0.0)
    u, sigma = mf.template_spectra(signal)
    res = mf.filter(signal[None], u[None, None])
    # A's optimal_snr is an independent computation of the same integral.
    np.testing.assert_allclose(sigma, [info[f"snr_{d}"] for d in DETECTORS], rtol=1e-6)
    assert res["snr"][0] == pytest.approx(SNR, rel=0.01)
    assert res["time"][0] == 0.0  # template in place: peak at lag 0
    for d in DETECTORS:
        assert res[f"snr_{d}"][0] == pytest.approx(info[f"snr_{d}"], rel=0.01)


def test_noiseless_bank_template_finds_merger_time(injection):
    psd, p, signal, info = injection
    mf = MatchedFilter(psd, taper_alpha=0.1)
    h = template_waveform(p.mass1, p.mass2, p.spin1z, p.spin2z, "IMRPhenomD")
    u, _ = mf.template_spectra(h)
    res = mf.filter(signal[None], u[None])
    assert res["snr"][0] == pytest.approx(SNR, rel=0.04)
    assert res["time"][0] == pytest.approx(info["t_H1"], abs=1.5e-3)
    # L1's and V1's peaks lie in their coincidence windows, so their SNRs are recovered.
    for d in DETECTORS:
        assert res[f"snr_{d}"][0] == pytest.approx(info[f"snr_{d}"], rel=0.06, abs=0.2)


def test_snr_in_coloured_noise(injection, rng):
    psd, p, signal, info = injection
    noise = ColoredNoise(design_psd)(rng, batch=12)
    mf = MatchedFilter(psd, taper_alpha=0.1)
    h = template_waveform(p.mass1, p.mass2, p.spin1z, p.spin2z, "IMRPhenomD")
    u, _ = mf.template_spectra(h)
    res = mf.filter(noise + signal, u[None])
    # Noise adds ~1 in quadrature per quadrature and detector: a few % on average.
    assert np.mean(res["snr"]) == pytest.approx(SNR, rel=0.06)
    assert np.all(np.abs(res["time"] - info["t_H1"]) < 5e-3)  # within a cycle at ~200 Hz
    pure = mf.filter(noise, u[None])
    assert np.all(pure["snr"] < 6.5)  # max over 4096 lags of 3 detectors in pure noise


def test_noise_snr_variance_is_taper_power(rng):
    """Re z and Im z of Gaussian noise have variance mean(taper^2) (1 without the taper,
    which a 2-s cut of steep coloured noise cannot do without leaking: V1 then fails)."""
    psd = design_psd(rfft_frequencies())
    noise = ColoredNoise(design_psd)(rng, batch=8)
    mf = MatchedFilter(psd, taper_alpha=0.1)
    u, _ = mf.template_spectra(template_waveform(30.0, 20.0))
    z = mf.snr_series(mf.data_spectra(noise), u[None]).numpy()
    expected = np.mean(mf.taper**2)
    np.testing.assert_allclose(np.var(z.real, axis=(0, 1, 3)), expected, rtol=0.06)
    np.testing.assert_allclose(np.var(z.imag, axis=(0, 1, 3)), expected, rtol=0.06)


@pytest.mark.parametrize("upsample", [1, 2])
def test_batched_core_equals_the_reference_filter(injection, rng, upsample):
    """The batched core gives the old filter's network SNR, template and lag (it leaves
    out the DC and Nyquist bins, which whitened data hardly weigh): a bank of templates
    on noise with and without the signal, chunks smaller than the bank."""
    from g2res.baselines.reference import reference_filter, reference_snr_series

    psd, p, signal, _ = injection
    noise = ColoredNoise(design_psd)(rng, batch=6)
    x = noise + signal * np.array([0, 0, 0, 0.5, 1, 1])[:, None, None]
    mf = MatchedFilter(psd, taper_alpha=0.1, upsample=upsample)
    masses = [(p.mass1, p.mass2), (30.0, 20.0), (12.0, 9.0), (45.0, 40.0), (20.0, 19.0)]
    u, _ = mf.template_spectra(np.stack([template_waveform(m1, m2) for m1, m2 in masses]))
    new, old = mf.filter(x, u, template_batch=2), reference_filter(mf, x, u, template_batch=64)
    for key in ("snr", "snr_H1", "snr_L1", "snr_V1"):
        np.testing.assert_allclose(new[key], old[key], rtol=2e-4, err_msg=key)
    np.testing.assert_array_equal(new["template"], old["template"])
    np.testing.assert_array_equal(new["time"], old["time"])
    assert new["snr"][-1] > 10  # the loud ones are found, so this compares real peaks
    d = mf.data_spectra(x)
    z_new, z_old = mf.snr_series(d, u).numpy(), reference_snr_series(mf, d, u).numpy()
    assert np.abs(z_new - z_old).max() < 1e-3 * np.abs(z_old).max()


def test_rank_probability_is_monotone():
    stat = np.array([3.0, 1.0, 2.0, 2.0])
    p = rank_probability(stat)
    assert np.all((p > 0) & (p < 1))
    assert p[1] < p[2] == p[3] < p[0]


def test_psd_file_errors(tmp_path):
    bad = tmp_path / "psd.npz"
    np.savez(bad, frequencies=np.linspace(0, 100, 51), psd=np.ones((3, 51)), sample_rate=2048.0)
    with pytest.raises(ValueError, match="covers"):
        load_filter_psd(bad)


@pytest.mark.slow
def test_oracle_regenerates_injections_and_is_near_perfect(tiny_dataset, tmp_path):
    from g2res.cli import main

    psd_file = tiny_dataset / "truth" / "psd.npy"
    oracle = Oracle(tiny_dataset)
    table = oracle.table
    signals = table[(table.split == "test") & (table.target == 1)].head(4)
    mf = MatchedFilter(load_filter_psd(psd_file), taper_alpha=0.0)
    waves = np.stack([oracle.signal(i) for i in signals.index])
    u, _ = mf.template_spectra(waves)
    res = mf.filter(waves, u[:, None])
    np.testing.assert_allclose(res["snr"], signals["snr_network"], rtol=0.01)

    out = tmp_path / "oracle.csv"
    args = ["baseline", "matched-filter", str(tiny_dataset), "--psd", str(psd_file)]
    args += ["--out", str(out), "--oracle", "-q"]
    assert main(args) == 0
    assert main(args) == 1  # refuses to overwrite without --force
    sub = pd.read_csv(out, dtype={"id": str})
    sample = pd.read_csv(tiny_dataset / "sample_submission.csv", dtype={"id": str})
    assert list(sub["id"]) == list(sample["id"])
    truth = pd.read_csv(tiny_dataset / "truth" / "test_labels.csv", dtype={"id": str})
    y = truth.set_index("id").loc[sub["id"], "target"].to_numpy()
    assert roc_auc_score(y, sub["target"]) > 0.95
    raw = pd.read_csv(companion_path(out), dtype={"id": str})
    assert roc_auc_score(y, raw["snr"]) == pytest.approx(roc_auc_score(y, sub["target"]))


def test_a_bank_of_three_templates_is_not_read_as_one_per_detector(injection, rng):
    """(3, n) is ambiguous: three templates or one per detector. A bank says which, and
    three templates give the first three of a four-template bank's per-template SNRs."""
    psd, p, signal, _ = injection
    x = ColoredNoise(design_psd)(rng, batch=2) + signal
    mf = MatchedFilter(psd, taper_alpha=0.1)
    masses = [(p.mass1, p.mass2), (30.0, 20.0), (12.0, 9.0), (45.0, 40.0)]
    waves = np.stack([template_waveform(m1, m2) for m1, m2 in masses])
    u3, sigma3 = mf.template_spectra(waves[:3], per_detector=False)
    u4, _ = mf.template_spectra(waves, per_detector=False)
    assert u3.shape[:2] == (3, 3) and sigma3.shape == (3, 3)
    d = mf.data_spectra(x)
    z3, z4 = mf.snr_series(d, u3), mf.snr_series(d, u4)
    np.testing.assert_allclose(z3.abs().numpy(), z4[:, :3].abs().numpy(), rtol=1e-5, atol=1e-5)
    # Inferred from the shape, (3, n) would be one template per detector: a different filter.
    u_guess, _ = mf.template_spectra(waves[:3])
    assert u_guess.shape[0] == len(waves[:3]) and u_guess.ndim == 2
    with pytest.raises(ValueError, match="per-detector templates need shape"):
        mf.template_spectra(waves[0], per_detector=True)


def test_marginal_statistic_sums_the_evidence_of_every_template():
    """log((1/T) sum exp(rho^2 / 2)): scipy's logsumexp; one dominant template gives
    rho_max^2 / 2 - log T; T equal templates give rho^2 / 2 (the evidence adds up)."""
    from scipy.special import logsumexp

    rho2 = np.array([[1.0, 4.0, 9.0, 2.0], [100.0, 0.0, 0.0, 0.0], [50.0, 50.0, 50.0, 50.0]])
    got = marginal_statistic(rho2)
    np.testing.assert_allclose(got, logsumexp(rho2 / 2, axis=1) - np.log(4), rtol=1e-12)
    assert got[1] == pytest.approx(50.0 - np.log(4), abs=1e-9)
    assert got[2] == pytest.approx(25.0, abs=1e-9)
    with pytest.raises(ValueError, match="templates"):
        marginal_statistic(np.zeros((3, 0)))


@pytest.mark.parametrize("chisq_bins", [0, 4])
def test_filter_marginal_is_over_the_per_template_statistics(injection, rng, chisq_bins):
    """The filter's ``marginal`` column, accumulated over template chunks, is the
    marginal statistic of each template filtered alone (its network SNR, or newSNR
    with the veto), so no chunk is lost or counted twice."""
    psd, p, signal, _ = injection
    x = ColoredNoise(design_psd)(rng, batch=4) + signal * np.array([0, 0.4, 0.7, 1])[:, None, None]
    mf = MatchedFilter(psd, taper_alpha=0.1)
    masses = [(p.mass1, p.mass2), (30.0, 20.0), (12.0, 9.0), (45.0, 40.0), (20.0, 19.0)]
    u, _ = mf.template_spectra(np.stack([template_waveform(m1, m2) for m1, m2 in masses]))
    res = mf.filter(x, u, template_batch=2, chisq_bins=chisq_bins)
    key = "newsnr" if chisq_bins else "snr"
    alone = np.stack(
        [mf.filter(x, u[t : t + 1], chisq_bins=chisq_bins)[key] for t in range(len(masses))], 1
    )
    np.testing.assert_allclose(res["marginal"], marginal_statistic(alone**2), rtol=1e-4)
    np.testing.assert_allclose(res[key], alone.max(1), rtol=1e-5)
    # Louder injections, larger evidence: the statistic follows the signal.
    assert np.all(np.diff(res["marginal"][1:]) > 0) and res["marginal"][-1] > 30


def test_marginal_command_ranks_the_marginal_column(tiny_dataset, tmp_path, capsys):
    """``--marginal``: the submission ranks the companion's marginal column (stat), which
    separates the tiny set's signals; the oracle and --coherent refuse it."""
    from g2res.baselines.bank import TemplateBank
    from g2res.cli import main

    masses = np.array([(45.0, 35.0), (30.0, 25.0), (40.0, 20.0), (20.0, 15.0), (14.0, 10.0)])
    bank = TemplateBank(masses[:, 0], masses[:, 1], np.zeros(5), np.zeros(5))
    bank.save(tmp_path / "bank.npz")
    psd_file = tiny_dataset / "truth" / "psd.npy"
    out = tmp_path / "mf.csv"
    args = ["baseline", "matched-filter", str(tiny_dataset), "--psd", str(psd_file), "-q"]
    assert main([*args, "--out", str(out), "--bank", str(tmp_path / "bank.npz"), "--marginal"]) == 0
    table = pd.read_csv(companion_path(out), dtype={"id": str})
    np.testing.assert_array_equal(table["stat"], table["marginal"])
    sub = pd.read_csv(out, dtype={"id": str})
    np.testing.assert_allclose(sub["target"], rank_probability(table["marginal"]))
    truth = pd.read_csv(tiny_dataset / "truth" / "test_labels.csv", dtype={"id": str})
    y = truth.set_index("id").loc[sub["id"], "target"].to_numpy()
    assert roc_auc_score(y, sub["target"]) > 0.8
    for extra in (["--oracle"], ["--coherent", "2"]):
        capsys.readouterr()
        assert main([*args, "--out", str(tmp_path / "x.csv"), "--marginal", *extra]) == 1
        assert "--marginal averages over a template bank" in capsys.readouterr().err
