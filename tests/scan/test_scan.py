"""Scanning a long simulated stretch: conditioning like preprocess, injections found at their
times, NaN gaps never scored, clustering and time-slide false-alarm rates."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
from conftest import GAP, GPS0, INJECTIONS, SCORE_BAND, band_variance, excess_power

from g2res import SAMPLE_RATE
from g2res.scan import (
    Conditioning,
    ScanSettings,
    Scorer,
    Strain,
    cluster_windows,
    condition_windows,
    false_alarm_rate,
    psd_blocks,
    scan_strain,
    slide_strain,
    timeslide_background,
    window_starts,
)
from g2res.signal.reference import welch_reference, whiten_reference

OFFSET = SCORE_BAND[0]  # earliest merger position the excess-power scorer fires for


def test_windows_cover_segments_and_blocks_split_evenly():
    starts = window_starts((100, 100 + 4096 + 1000), 512)
    np.testing.assert_array_equal(starts, [100, 612, 1100])  # last one ends at the segment end
    assert window_starts((0, 4095), 512).size == 0
    blocks = psd_blocks((0, 10_000), 3000)
    assert blocks[0][0] == 0 and blocks[-1][1] == 10_000 and len(blocks) == 3
    assert all(b0[1] == b1[0] for b0, b1 in zip(blocks, blocks[1:]))
    assert psd_blocks((5, 1000), 3000) == [(5, 1000)]


def test_conditioning_matches_numpy_reference_and_whitens(long_strain):
    """Each window equals scipy Welch PSD of its block + numpy whitening/bandpass, and
    conditioned noise has the variance of bandpassed unit white noise."""
    cond = Conditioning(fmin=25.0, fmax=400.0, filter_order=6, window_alpha=0.25)
    data = long_strain["clean"]
    block = data[:, : int(32 * SAMPLE_RATE)]
    freqs, psd = welch_reference(block, SAMPLE_RATE, 0.5, 0.5, "hann", "median")
    starts = np.array([0, 5000, 40_000])
    ours = condition_windows(block, starts, freqs, psd, cond).numpy()
    for k, s in enumerate(starts):
        ref = whiten_reference(
            block[:, s : s + 4096].astype(np.float32), freqs, psd, SAMPLE_RATE, 0.25, 25.0, 400.0, 6
        )
        np.testing.assert_allclose(ours[k], ref, atol=2e-5 * np.abs(ref).max())
    # Noise-only windows (the injections are at 23 s and 70 s): unit whitened variance, with a
    # PSD on the windows' own 0.5-Hz grid (2-s segments) that resolves the spectral lines.
    freqs, psd = welch_reference(block, SAMPLE_RATE, 2.0, 0.5, "hann", "median")
    starts = np.arange(0, int(20 * SAMPLE_RATE), 2048)
    x = condition_windows(data, starts, freqs, psd, Conditioning()).numpy()
    var = x[..., 600:3500].var()  # the flat part of the Tukey taper
    assert var == pytest.approx(band_variance(), rel=0.03)


def test_scan_finds_injections_and_skips_gap(long_strain):
    strain = Strain(long_strain["data"], GPS0, SAMPLE_RATE)
    settings = ScanSettings(stride=0.25, psd_length=32.0, merger_offset=OFFSET)
    res = scan_strain(strain, Scorer(excess_power()), settings, progress=False)
    # Never a window overlapping the L1 gap, and every valid 2-s window start is a stride apart.
    gap = (GPS0 + GAP[0], GPS0 + GAP[1])
    assert not np.any((res.window_start < gap[1]) & (res.window_start + 2.0 > gap[0]))
    assert res.segments == [(GPS0, gap[0]), (gap[1], GPS0 + 96.0)]
    assert res.live_time == pytest.approx(96.0 - (GAP[1] - GAP[0]))
    assert len(res.skipped) == 1 and res.skipped[0]["detectors"] == ["L1"]
    assert (res.skipped[0]["gps_start"], res.skipped[0]["gps_end"]) == gap
    assert res.window_start.size == sum(int((b - a - 2.0) / 0.25) + 1 for a, b in res.segments)

    triggers = cluster_windows(res.window_start, res.scores, merger_offset=OFFSET)
    found = np.sort(triggers["gps_time"].to_numpy()[:2]) - GPS0
    np.testing.assert_allclose(found, INJECTIONS, atol=0.25)
    assert triggers["score"].iloc[1] > triggers["score"].iloc[2:].max()
    assert triggers["n_windows"].sum() == res.window_start.size

    # The same strain with the gap filled: the gap's windows appear, the rest is unchanged
    # where the PSD blocks coincide (the first segment is split the same way).
    full = scan_strain(
        Strain(long_strain["clean"], GPS0, SAMPLE_RATE), Scorer(excess_power()), settings, False
    )
    assert full.window_start.size > res.window_start.size
    first = res.window_start < gap[0]
    np.testing.assert_array_equal(full.window_start[: first.sum()], res.window_start[first])


def test_more_scorers_average_and_bad_scorer_is_named(long_strain):
    strain = Strain(long_strain["clean"][:, : int(12 * SAMPLE_RATE)], GPS0, SAMPLE_RATE)
    settings = ScanSettings(stride=1.0, psd_length=12.0)
    one = scan_strain(strain, Scorer(excess_power()), settings, progress=False)
    other = Conditioning(fmin=30.0)  # conditioned separately
    half = Scorer(lambda x: np.full(len(x), 0.5), other)
    two = scan_strain(strain, [Scorer(excess_power()), half], settings, progress=False)
    np.testing.assert_allclose(two.scores, (one.scores + 0.5) / 2)
    with pytest.raises(RuntimeError, match="scorer broken returned"):
        scan_strain(strain, Scorer(lambda x: np.ones(1), name="broken"), settings, False)
    with pytest.raises(ValueError, match="2048 Hz"):
        scan_strain(Strain(strain.data, GPS0, 4096.0), Scorer(excess_power()), settings, False)


def test_resampled_input_finds_the_same_injections(long_strain, tmp_path):
    """4096-Hz files (the 2048-Hz stretch upsampled) are resampled back and scanned."""
    from g2res.scan import load_strain

    paths = []
    for d, row in zip("HLV", long_strain["data"]):
        up = np.full(row.size * 2, np.nan)
        for a, b in ((0, int(GAP[0] * SAMPLE_RATE)), (int(GAP[1] * SAMPLE_RATE), row.size)):
            up[2 * a : 2 * b] = scipy.signal.resample_poly(row[a:b], 2, 1)
        paths.append(tmp_path / f"{d}.npy")
        np.save(paths[-1], up)
    strain = load_strain(paths, sample_rate=4096.0, gps_start=GPS0)
    assert strain.sample_rate == SAMPLE_RATE and strain.data.shape == long_strain["data"].shape
    settings = ScanSettings(stride=0.25, psd_length=32.0, merger_offset=OFFSET)
    res = scan_strain(strain, Scorer(excess_power()), settings, progress=False)
    triggers = cluster_windows(res.window_start, res.scores, merger_offset=OFFSET)
    found = np.sort(triggers["gps_time"].to_numpy()[:2]) - GPS0
    np.testing.assert_allclose(found, INJECTIONS, atol=0.25)


def test_clusters_partition_windows_loudest_first(rng):
    t = np.arange(200) * 0.25
    s = rng.uniform(size=t.size)
    triggers = cluster_windows(t, s, cluster_window=1.0, merger_offset=0.0)
    assert triggers["n_windows"].sum() == t.size
    assert np.all(np.diff(triggers["score"]) <= 0)
    assert triggers["score"].iloc[0] == s.max()
    peaks = np.sort(triggers["window_start"].to_numpy())
    assert np.all(np.diff(peaks) > 1.0)  # a louder window absorbs everything within 1 s
    # A flat-topped bump on a slow rise (a loud inspiral): the time is the half-height
    # crossing of its falling edge + offset, whatever the rise does.
    s = np.zeros(40)
    s[6:10] = [0.3, 0.6, 0.8, 0.9]
    s[10:15] = 1.0
    s[15] = 0.25
    top = cluster_windows(np.arange(40) * 0.25, s, 2.0, merger_offset=1.0).iloc[0]
    assert top["gps_time"] == pytest.approx(14 * 0.25 + (1.0 - 0.5) / 0.75 * 0.25 + 1.0)
    assert top["window_start"] == 10 * 0.25 and top["n_windows"] == 17


def test_timeslides_give_far(long_strain):
    strain = Strain(long_strain["clean"], GPS0, SAMPLE_RATE)
    slid = slide_strain(strain, (0, 2048, 4096))
    np.testing.assert_array_equal(slid.data[1], np.roll(strain.data[1], 2048))
    settings = ScanSettings(stride=0.5, psd_length=32.0, merger_offset=OFFSET)
    bg, live = timeslide_background(strain, Scorer(excess_power()), 2, 7.0, settings, False)
    assert live == pytest.approx(2 * 96.0)
    far = false_alarm_rate(np.array([0.0, np.median(bg), 2.0]), bg, live)
    year = 365.25 * 86400
    assert far[0] == pytest.approx(bg.size / live * year)
    assert far[1] == pytest.approx(np.sum(bg >= np.median(bg)) / live * year)
    assert far[2] == pytest.approx(1 / live * year)  # nothing louder: the bound
    with pytest.raises(ValueError, match="do not fit"):
        timeslide_background(strain, Scorer(excess_power()), 10, 7.0, settings, False)
