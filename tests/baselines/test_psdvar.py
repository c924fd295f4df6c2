"""PSD variation: a drifted detector's noise level and tilt are recovered per sample and
divided out, so the bank's noise SNRs are those of undrifted noise and a signal's SNR is
kept."""

from __future__ import annotations

import numpy as np
import pytest

from g2res.baselines.bank import template_waveform
from g2res.baselines.matched_filter import MatchedFilter
from g2res.baselines.psdvar import PsdVariation
from g2res.data.noise import ColoredNoise, design_psd, rfft_frequencies
from g2res.data.waveforms import Injector

SCALE, TILT, F_REF = 1.6, 0.4, 100.0  # H1's noise power 1.6x the filter PSD's at 100 Hz


def drifted(f: np.ndarray) -> np.ndarray:
    """The design PSD with H1 scaled and tilted by (f / F_REF)^TILT; L1, V1 unchanged."""
    psd = design_psd(f)
    psd[0] = psd[0] * SCALE * (np.maximum(f, 1.0) / F_REF) ** TILT
    return psd


def band_power(mf: MatchedFilter, x: np.ndarray) -> np.ndarray:
    """Mean |d~|^2 (batch, 3) of the whitened spectra in the band: 2 for noise of the PSD."""
    band = mf.weight[0] != 0
    d = mf.data_spectra(x).numpy()
    return (np.abs(d[..., band]) ** 2).mean(-1)


def test_drifted_noise_is_white_again_and_its_variation_recovered(rng):
    psd = design_psd(rfft_frequencies())
    noise = ColoredNoise(drifted)(rng, batch=24)
    plain, fixed = MatchedFilter(psd), MatchedFilter(psd, psd_var=True)
    before, after = band_power(plain, noise), band_power(fixed, noise)
    # The taper keeps mean(taper^2) of the power; compare with the undrifted detectors.
    ref = before[:, 1:].mean()
    assert before[:, 0].mean() / ref > 1.5  # uncorrected: H1 far above the others
    np.testing.assert_allclose(after.mean(0) / ref, 1.0, atol=0.04)
    # variation: the geometric mean over the band of the true ratio, per sample within 10%
    band = plain.frequencies[plain.weight[0] != 0]
    truth = np.exp(np.log(SCALE * (band / F_REF) ** TILT).mean())
    np.testing.assert_allclose(fixed.variation[:, 0], truth, rtol=0.10)
    np.testing.assert_allclose(fixed.variation[:, 1:], 1.0, rtol=0.10)
    # and the corrected spectrum is white: the tilt is gone between low and high bands
    d = fixed.data_spectra(noise).numpy()[:, 0]
    f = fixed.frequencies
    low, high = (f > 30) & (f < 80), (f > 400) & (f < 900)
    ratio = (np.abs(d[:, high]) ** 2).mean() / (np.abs(d[:, low]) ** 2).mean()
    assert ratio == pytest.approx(1.0, abs=0.08)


def test_bank_noise_snrs_of_a_drifted_detector_are_undrifted_ones(rng):
    psd = design_psd(rfft_frequencies())
    h = template_waveform(30.0, 25.0, 0.0, 0.0, "IMRPhenomD")
    plain, fixed = MatchedFilter(psd), MatchedFilter(psd, psd_var=True)
    u, _ = plain.template_spectra(h)
    clean, drift = ColoredNoise(design_psd)(rng, batch=48), ColoredNoise(drifted)(rng, batch=48)
    # the network statistic: maximum over lags of the three detectors' |z|^2 (~ 30 in noise)
    snr = {
        "clean": plain.filter(clean, u[None])["snr"],
        "drift": plain.filter(drift, u[None])["snr"],
        "fixed": fixed.filter(drift, u[None])["snr"],
    }
    mean = {k: float(np.mean(v**2)) for k, v in snr.items()}
    assert mean["drift"] / mean["clean"] > 1.1  # the drift inflates the noise SNRs
    assert mean["fixed"] / mean["clean"] == pytest.approx(1.0, abs=0.06)


def test_signal_snr_is_kept_in_undrifted_noise(rng, binary):
    psd = design_psd(rfft_frequencies())
    params = binary(1.85, 15.0)
    signal, _ = Injector(psd, approximant="IMRPhenomD").render(params)
    noise = ColoredNoise(design_psd)(rng, batch=12)
    plain, fixed = MatchedFilter(psd), MatchedFilter(psd, psd_var=True)
    u, _ = plain.template_spectra(signal)
    a = plain.filter(noise + signal, u[None, None])["snr"]
    b = fixed.filter(noise + signal, u[None, None])["snr"]
    # The chirp sits in a few of the fit's segments: the medians barely move.
    np.testing.assert_allclose(b, a, rtol=0.05)
    assert np.mean(b) == pytest.approx(15.0, rel=0.06)


def test_band_must_be_a_mask_of_the_grid():
    with pytest.raises(ValueError, match="non-empty"):
        PsdVariation(np.zeros(2049, bool), 2048.0, 4096, 0.1)


def test_psd_var_command_writes_the_variation_and_keeps_the_ranking(tiny_dataset, tmp_path):
    """``--psd-var``: the .raw.csv gains psd_var_<det> near 1 (the tiny set's noise has the
    PSD the filter is given) and the submission still separates its signals."""
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from g2res.baselines.bank import TemplateBank
    from g2res.baselines.matched_filter import companion_path
    from g2res.cli import main

    masses = np.array([(45.0, 35.0), (30.0, 25.0), (20.0, 15.0)])
    TemplateBank(masses[:, 0], masses[:, 1], np.zeros(3), np.zeros(3)).save(tmp_path / "b.npz")
    out = tmp_path / "mf.csv"
    psd, bank = tiny_dataset / "truth" / "psd.npy", tmp_path / "b.npz"
    args = ["baseline", "matched-filter", str(tiny_dataset), "-q", "--bank", str(bank),
            "--psd", str(psd), "--out", str(out), "--psd-var"]  # fmt: skip
    assert main(args) == 0
    table = pd.read_csv(companion_path(out), dtype={"id": str})
    for det in ("H1", "L1", "V1"):
        assert np.median(table[f"psd_var_{det}"]) == pytest.approx(1.0, abs=0.1)
    truth = pd.read_csv(tiny_dataset / "truth" / "test_labels.csv", dtype={"id": str})
    y = truth.set_index("id").loc[table["id"], "target"].to_numpy()
    assert roc_auc_score(y, table["stat"]) > 0.8
