"""A merger-time window for the bank: noise loses the loudest of the lags outside it, a
signal inside keeps its SNR, and the window is read back from labelled training data."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import torch

from g2res.baselines.bank import template_waveform
from g2res.baselines.matched_filter import MatchedFilter
from g2res.baselines.time_window import estimate_time_window, lag_mask
from g2res.cli import main
from g2res.data.noise import ColoredNoise, design_psd, rfft_frequencies
from g2res.data.waveforms import Injector

WINDOW = (1.5, 1.9)  # s, a fifth of the 2-s lags


@pytest.fixture(scope="module")
def setup(binary):
    """Design PSD, a 24 + 17 Msun IMRPhenomD template and its signal at network SNR 8
    merging at 1.7 s (geocentre)."""
    psd = design_psd(rfft_frequencies())
    params = binary(1.7, 8.0)
    signal, info = Injector(psd, approximant="IMRPhenomD").render(params)
    h = template_waveform(params.mass1, params.mass2, params.spin1z, params.spin2z, "IMRPhenomD")
    return psd, h, signal, info


def test_lag_mask_keeps_the_lags_of_the_window():
    mask = lag_mask(WINDOW, 4096, 2048.0)
    t = np.arange(4096) / 2048.0
    assert mask.dtype == torch.bool
    np.testing.assert_array_equal(mask.numpy(), (t >= 1.5) & (t <= 1.9))
    for bad in [(1.9, 1.5), (-0.1, 1.0), (1.0, 2.5), ("a", 1.0), (1.0,)]:
        with pytest.raises(ValueError, match="time window"):
            lag_mask(bad, 4096, 2048.0)


def test_noise_statistic_drops_and_a_signal_inside_keeps_its_snr(setup, rng):
    psd, h, signal, info = setup
    full, windowed = MatchedFilter(psd), MatchedFilter(psd, time_window=WINDOW)
    u, _ = full.template_spectra(h)
    noise = ColoredNoise(design_psd)(rng, batch=64)
    a, b = full.filter(noise, u[None]), windowed.filter(noise, u[None])
    # the window's maximum is one of the full maximum's candidates: never above it
    assert np.all(b["snr"] <= a["snr"] + 1e-6)
    assert np.all((b["time"] >= WINDOW[0]) & (b["time"] <= WINDOW[1]))
    # a fifth of the lags: noise's network SNR^2 falls by about 2 ln 5 = 3.2 on average
    drop = np.mean(a["snr"] ** 2) - np.mean(b["snr"] ** 2)
    assert 1.5 < drop < 5.0
    # the signal merges at 1.7 s: inside, the window finds it as the full search does
    data = signal[None] + noise[:8]
    a, b = full.filter(data, u[None]), windowed.filter(data, u[None])
    np.testing.assert_allclose(b["snr"], a["snr"], rtol=1e-6)
    np.testing.assert_allclose(b["time"], info["t_H1"], atol=3e-3)
    # outside (a window of 0.2-0.6 s), it is not found: noise-level SNRs only
    early = MatchedFilter(psd, time_window=(0.2, 0.6)).filter(data, u[None])
    assert np.all(early["snr"] < 6.5) and early["snr"].mean() < a["snr"].mean() - 2.5


def synthetic_companion(rng, tmp_path, n_noise=600, n_signal=400, window=(1.52, 1.88)):
    """A train-split .raw.csv and its labels: noise peaks anywhere in 0.1-1.9 s with stat
    ~ 8; signals at stat 8-20 peaking uniformly in ``window``; returns both paths."""
    ids = [f"{i:06x}" for i in range(n_noise + n_signal)]
    target = np.r_[np.zeros(n_noise, int), np.ones(n_signal, int)]
    time = np.r_[rng.uniform(0.1, 1.9, n_noise), rng.uniform(*window, n_signal)]
    stat = np.r_[8.0 + rng.normal(0, 0.6, n_noise), rng.uniform(8.0, 20.0, n_signal)]
    raw, labels = tmp_path / "train_bank.raw.csv", tmp_path / "training_labels.csv"
    pd.DataFrame({"id": ids, "stat": stat, "time": time}).to_csv(raw, index=False)
    pd.DataFrame({"id": ids, "target": target}).to_csv(labels, index=False)
    return raw, labels


def test_window_is_estimated_from_the_found_training_signals(rng, tmp_path):
    raw, labels = synthetic_companion(rng, tmp_path)
    start, end = estimate_time_window(raw, labels, duration=2.0)
    # the signals span 1.52-1.88 s; the estimate covers it, with at most the margin more
    assert 1.52 - 0.035 < start < 1.52
    assert 1.88 < end < 1.88 + 0.035
    # the noise's own times (anywhere) do not widen it
    wide = estimate_time_window(raw, labels, margin=0.0, coverage=1.0)
    assert 1.5 < wide[0] and wide[1] < 1.9


def test_a_few_loud_glitches_neither_block_nor_widen_the_estimate(rng, tmp_path):
    raw, labels = synthetic_companion(rng, tmp_path)
    table = pd.read_csv(raw, dtype={"id": str})
    target = pd.read_csv(labels, dtype={"id": str})["target"].to_numpy()
    # glitches at SNR ~45 anywhere in 0.1-1.9 s: in 0.5% of the noise (louder than every
    # signal) and in 0.5% of the signal samples (their peak is the glitch's, not the merger's)
    for label in (0, 1):
        rows = rng.choice(np.flatnonzero(target == label), 3, replace=False)
        table.loc[rows, "stat"] = rng.uniform(40.0, 50.0, 3)
        table.loc[rows, "time"] = [0.3, 0.7, 1.05][: len(rows)]
    table.to_csv(raw, index=False)
    start, end = estimate_time_window(raw, labels, duration=2.0)
    assert 1.52 - 0.035 < start < 1.52 and 1.88 < end < 1.88 + 0.035


def test_estimate_errors_name_the_file_and_the_problem(rng, tmp_path):
    raw, labels = synthetic_companion(rng, tmp_path, n_signal=10)
    with pytest.raises(ValueError, match=r"only \d+ training signals.*--time-window"):
        estimate_time_window(raw, labels)
    pd.read_csv(raw).drop(columns="time").to_csv(tmp_path / "no_time.csv", index=False)
    with pytest.raises(ValueError, match="no_time.csv.*'time'"):
        estimate_time_window(tmp_path / "no_time.csv", labels)
    frame = pd.read_csv(labels, dtype={"id": str})
    frame.iloc[5:].to_csv(tmp_path / "few_labels.csv", index=False)
    with pytest.raises(ValueError, match="without a label"):
        estimate_time_window(raw, tmp_path / "few_labels.csv")


def test_cli_time_window_estimated_from_the_train_split(tiny_dataset, tiny_cache, tmp_path, capsys):
    psd = str(tiny_cache / "psd.npz")
    base = ["baseline", "matched-filter", str(tiny_dataset), "--psd", psd, "-q"]
    bank = ["--mass-range", "20", "30", "--minimal-match", "0.8", "--save-bank"]
    train = tmp_path / "train.csv"
    assert (
        main([*base, "--split", "train", "--out", str(train), *bank, str(tmp_path / "b.npz")]) == 0
    )
    out = tmp_path / "w.csv"
    from_train = ["--time-window-from", str(train.with_name("train.raw.csv"))]
    assert main([*base, "--out", str(out), "--bank", str(tmp_path / "b.npz"), *from_train]) == 0
    # the data set's mergers (geocentre 1.5-1.9 s, H1 within 21 ms of it): the window
    # estimated from its loud training signals covers them, and little else
    found = re.search(r"window from .*: ([\d.]+)-([\d.]+) s", capsys.readouterr().out)
    start, end = float(found[1]), float(found[2])
    assert 1.40 < start < 1.50 and 1.90 < end < 2.0
    raw = pd.read_csv(out.with_name("w.raw.csv"))
    assert raw["time"].between(start, end).all()
    both = ["--time-window", "1", "2", *from_train]
    assert main([*base, "--out", str(tmp_path / "e.csv"), *both]) != 0
    assert "give one of them" in capsys.readouterr().err


def test_oracle_with_the_window_keeps_its_signals_and_lowers_its_noise(
    tiny_dataset, tiny_cache, tmp_path
):
    base = ["baseline", "matched-filter", str(tiny_dataset), "--psd", str(tiny_cache / "psd.npz")]
    tables = {}
    for name, extra in (("all", []), ("window", ["--time-window", "1.4", "2.0"])):
        out = tmp_path / f"{name}.csv"
        assert main([*base, "-q", "--oracle", "--out", str(out), *extra]) == 0
        tables[name] = pd.read_csv(out.with_name(f"{name}.raw.csv"), dtype={"id": str})
    labels = pd.read_csv(tiny_dataset / "truth" / "test_labels.csv", dtype={"id": str})
    signal = tables["all"]["id"].isin(labels.loc[labels["target"] == 1, "id"]).to_numpy()
    a, b = tables["all"]["snr"].to_numpy(), tables["window"]["snr"].to_numpy()
    # signals merge at 1.48-1.92 s in H1: their in-place peak (lag 0) is inside the window
    np.testing.assert_allclose(b[signal], a[signal], rtol=1e-6)
    # noise gets the window around each random template's own merger: never louder, and
    # from 30% of the lags its mean network SNR^2 falls (by about 2 ln(1 / 0.3) = 2.4)
    assert np.all(b[~signal] <= a[~signal] + 1e-6)
    assert np.mean(a[~signal] ** 2) - np.mean(b[~signal] ** 2) > 1.0
