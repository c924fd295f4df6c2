"""Detector frames as they come: GWF at 16384 Hz with the sites' channel names
(``H1:LDAS-STRAIN``, ``L1:LDAS-STRAIN``, ``V1:h_16384Hz``), a detector left out with
``--detectors``, and a stretch too short to scan."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
from conftest import GPS0, INJECTIONS, SCORE_BAND, excess_power

from g2res import DETECTORS, SAMPLE_RATE
from g2res.scan import (
    ScanSettings,
    Scorer,
    Strain,
    StrainError,
    cluster_windows,
    load_strain,
    scan_files,
    scan_strain,
)

FRAME_RATE = 16384.0  # Hz
CHANNELS = {"H1": "H1:LDAS-STRAIN", "L1": "L1:LDAS-STRAIN", "V1": "V1:h_16384Hz"}
DURATION = 40.0  # s of the long strain in the frames (holds the injection at 23.3 s)
SETTINGS = ScanSettings(stride=0.25, psd_length=20.0, merger_offset=SCORE_BAND[0])


def write_frame(path, values, gps_start, sample_rate, channel):
    """One GWF frame file of one channel (gwpy + lalframe)."""
    from gwpy.timeseries import TimeSeries

    TimeSeries(values, t0=gps_start, sample_rate=sample_rate, name=channel, channel=channel).write(
        str(path)
    )


@pytest.fixture(scope="module")
def frames(tmp_path_factory, long_strain):
    """The first 40 s of the long strain, upsampled to 16384 Hz, one GWF per detector."""
    root = tmp_path_factory.mktemp("frames")
    data = long_strain["clean"][:, : int(DURATION * SAMPLE_RATE)]
    up = int(FRAME_RATE / SAMPLE_RATE)
    files = {}
    for det, row in zip(DETECTORS, data):
        files[det] = root / f"{det[0]}-{det}_LLHOFT-{int(GPS0)}-{int(DURATION)}.gwf"
        write_frame(
            files[det], scipy.signal.resample_poly(row, up, 1), GPS0, FRAME_RATE, CHANNELS[det]
        )
    return {"root": root, "files": files, "data": data}


def recording(scorer):
    """``scorer`` that also keeps the windows it was given."""
    seen = []

    def score(x):
        seen.append(x.numpy().copy())
        return scorer(x)

    return score, seen


def test_16384_hz_frames_scan_like_the_2048_hz_data(frames):
    strain = load_strain(frames["files"], CHANNELS)
    assert strain.sample_rate == SAMPLE_RATE and strain.gps_start == GPS0
    assert strain.data.shape == frames["data"].shape
    assert strain.sources == tuple(str(frames["files"][d]) for d in DETECTORS)
    # Polyphase up then down: the same conditioned windows in the band the models use ...
    score_f, seen_f = recording(excess_power())
    frame = scan_strain(strain, Scorer(score_f), SETTINGS, progress=False)
    score_d, seen_d = recording(excess_power())
    direct = scan_strain(
        Strain(frames["data"], GPS0, SAMPLE_RATE), Scorer(score_d), SETTINGS, False
    )
    np.testing.assert_array_equal(frame.window_start, direct.window_start)
    xf, xd = np.concatenate(seen_f), np.concatenate(seen_d)
    assert np.abs(xf - xd).max() < 0.01 * xd.std()
    # ... so the same scores: the injection fires the scorer in both alike.
    assert direct.scores.max() > 0.2 > np.median(direct.scores)
    np.testing.assert_allclose(frame.scores, direct.scores, atol=0.01)
    found = cluster_windows(frame.window_start, frame.scores, merger_offset=SCORE_BAND[0])
    assert found["gps_time"].iloc[0] - GPS0 == pytest.approx(INJECTIONS[0], abs=0.25)


def test_a_missing_detector_needs_an_explicit_choice(frames):
    files = {d: frames["files"][d] for d in ("H1", "L1")}
    with pytest.raises(StrainError, match=r"no strain file for V1; .*--detectors H1 L1"):
        load_strain(files, CHANNELS)
    with pytest.raises(StrainError, match="given for V1, which the chosen detectors H1 L1"):
        load_strain(frames["files"], CHANNELS, detectors=("H1", "L1"))
    with pytest.raises(StrainError, match="distinct names among H1 L1 V1"):
        load_strain(files, CHANNELS, detectors=("H1", "K1"))

    two = load_strain(files, CHANNELS, detectors=["L1", "H1"])  # any order: H1, L1
    assert two.detectors == ("H1", "L1") and two.data.shape[0] == 2
    score2, seen2 = recording(lambda x: excess_power()(x[:, :2]))  # H1 and L1 only
    res = scan_strain(two, Scorer(score2), SETTINGS, progress=False)
    score3, seen3 = recording(excess_power())
    scan_strain(load_strain(frames["files"], CHANNELS), Scorer(score3), SETTINGS, False)
    x2, x3 = np.concatenate(seen2), np.concatenate(seen3)
    # The models get (H1, L1, V1) channels: H1 and L1 as in the full scan, V1 zeros.
    assert x2.shape == x3.shape
    np.testing.assert_array_equal(x2[:, :2], x3[:, :2])
    assert not np.any(x2[:, 2])
    found = cluster_windows(res.window_start, res.scores, merger_offset=SCORE_BAND[0])
    assert found["gps_time"].iloc[0] - GPS0 == pytest.approx(INJECTIONS[0], abs=0.25)


def test_scan_files_reports_the_detectors_and_refuses_a_short_stretch(frames, tmp_path):
    files = {"H1": frames["files"]["H1"], "V1": frames["files"]["V1"]}
    report = scan_files(
        files, out=tmp_path / "t.csv", settings=SETTINGS, scorers=[Scorer(excess_power())],
        channels=CHANNELS, detectors=("H1", "V1"), progress=False,
    )  # fmt: skip
    assert report["detectors"] == ["H1", "V1"] and report["absent_detectors"] == ["L1"]
    assert list(report["files"]) == ["H1", "V1"]
    # One second of 16384-Hz frames: a clear refusal naming the length a window needs.
    short = {}
    for det in DETECTORS:
        short[det] = tmp_path / f"{det}-short.gwf"
        row = np.random.default_rng(0).normal(size=int(FRAME_RATE)) * 1e-21
        write_frame(short[det], row, GPS0, FRAME_RATE, CHANNELS[det])
    with pytest.raises(ValueError, match=r"too short: a scan needs at least 2 s .* is 1 s"):
        scan_files(
            short, out=tmp_path / "s.csv", settings=SETTINGS, scorers=[Scorer(excess_power())],
            channels=CHANNELS, progress=False,
        )  # fmt: skip
