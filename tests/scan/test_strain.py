"""Reading, resampling and aligning long strain; valid segments around NaN gaps."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
from conftest import GPS0, write_gwosc_hdf5, write_gwpy_hdf5

from g2res.scan.strain import (
    StrainError,
    invalid_stretches,
    load_strain,
    read_series,
    resample,
    valid_segments,
)


def test_hdf5_readers_return_values_and_times(tmp_path, rng):
    x = rng.normal(size=4096 * 3) * 1e-21
    x[1000:1100] = np.nan  # GWOSC marks missing data NaN
    write_gwosc_hdf5(tmp_path / "gwosc.hdf5", x, GPS0, 4096.0, "H1")
    write_gwpy_hdf5(tmp_path / "gwpy.hdf5", x, GPS0 + 2, 4096.0, "L1")
    np.save(tmp_path / "x.npy", x)
    for path, t0 in (("gwosc.hdf5", GPS0), ("gwpy.hdf5", GPS0 + 2)):
        values, start, rate = read_series(tmp_path / path)
        np.testing.assert_array_equal(values, x)
        assert (start, rate) == (t0, 4096.0)
    values, start, rate = read_series(tmp_path / "gwpy.hdf5", channel="L1:GWOSC-4KHZ_R1_STRAIN")
    assert start == GPS0 + 2
    from gwpy.timeseries import TimeSeries

    TimeSeries(x, t0=GPS0, sample_rate=4096, channel="V1:STRAIN", name="V1:STRAIN").write(
        str(tmp_path / "V-V1.gwf")
    )
    values, start, rate = read_series(tmp_path / "V-V1.gwf", channel="V1:STRAIN")
    np.testing.assert_array_equal(values, x)
    assert (start, rate) == (GPS0, 4096.0)
    with pytest.raises(StrainError, match="V-V1.gwf cannot be read by gwpy"):
        read_series(tmp_path / "V-V1.gwf", channel="V1:NOPE")
    values, start, rate = read_series(tmp_path / "x.npy", sample_rate=4096, gps_start=GPS0)
    np.testing.assert_array_equal(values, x)
    assert (start, rate) == (GPS0, 4096.0)


def test_bad_files_are_named(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros(100))
    with pytest.raises(StrainError, match=r"x\.npy.*--sample-rate"):
        read_series(tmp_path / "x.npy")
    np.save(tmp_path / "two.npy", np.zeros((2, 100)))
    with pytest.raises(StrainError, match=r"two\.npy.*1-D"):
        read_series(tmp_path / "two.npy", sample_rate=2048)
    with pytest.raises(StrainError, match="missing.hdf5 does not exist"):
        read_series(tmp_path / "missing.hdf5")
    (tmp_path / "junk.hdf5").write_text("not hdf5")
    with pytest.raises(StrainError, match="junk.hdf5 cannot be read"):
        read_series(tmp_path / "junk.hdf5")
    (tmp_path / "x.txt").write_text("1 2 3")
    with pytest.raises(StrainError, match="unknown strain format"):
        read_series(tmp_path / "x.txt")


def test_resample_matches_scipy_and_keeps_gaps_nan(rng):
    rate = 4096.0
    t = np.arange(int(16 * rate)) / rate
    x = np.sin(2 * np.pi * 100.0 * t) + 0.1 * rng.normal(size=t.size)
    full = scipy.signal.resample_poly(x, 1, 2)
    gapped = x.copy()
    gapped[int(6 * rate) + 1 : int(7 * rate) + 1] = np.nan  # odd ends: off the output grid
    y = resample(gapped, rate, 2048.0)
    assert y.size == full.size
    nan = np.flatnonzero(np.isnan(y))
    # Exactly the 2048-Hz samples whose time falls in the gap are NaN.
    assert nan.min() == 12289 and nan.max() == 14336 and nan.size == 14336 - 12289 + 1
    # Away from the stretch edges (filter transients), each stretch equals scipy on the whole.
    edge = 200
    for a, b in ((0, 12289), (14337, y.size)):
        np.testing.assert_allclose(y[a + edge : b - edge], full[a + edge : b - edge], atol=2e-3)
    # The 100-Hz tone keeps its phase: resampled samples sit on the 2048-Hz grid.
    t2 = np.arange(y.size) / 2048.0
    ok = np.isfinite(y)
    corr = np.nanmean(y[ok] * np.sin(2 * np.pi * 100.0 * t2[ok]))
    assert corr == pytest.approx(0.5, abs=0.02)


def test_load_strain_aligns_and_pads_with_nan(tmp_path, rng):
    rate = 2048.0
    h1 = rng.normal(size=int(10 * rate))
    l1 = rng.normal(size=int(8 * rate))
    v1 = rng.normal(size=int(20 * rate))  # 4096 Hz, 10 s, resampled
    write_gwpy_hdf5(tmp_path / "h1.hdf5", h1, GPS0, rate, "H1")
    write_gwosc_hdf5(tmp_path / "l1.hdf5", l1, GPS0 + 1.5, rate, "L1")
    write_gwosc_hdf5(tmp_path / "v1.hdf5", v1, GPS0 - 0.5, 2 * rate, "V1")
    s = load_strain([tmp_path / "h1.hdf5", tmp_path / "l1.hdf5", tmp_path / "v1.hdf5"])
    assert s.gps_start == GPS0 - 0.5 and s.sample_rate == rate
    assert s.data.shape == (3, int(10.5 * rate))
    np.testing.assert_array_equal(s.data[0, 1024:], h1)
    assert np.isnan(s.data[0, :1024]).all()
    np.testing.assert_array_equal(s.data[1, 4096 : 4096 + l1.size], l1)
    assert valid_segments(s.data) == [(4096, 4096 + l1.size)]
    stretches = invalid_stretches(s.data)
    assert [(x["start"], x["stop"]) for x in stretches] == [(0, 4096), (4096 + l1.size, 21504)]
    assert stretches[0]["detectors"] == ["H1", "L1"]

    write_gwpy_hdf5(tmp_path / "off.hdf5", l1, GPS0 + 0.0001, rate, "L1")
    with pytest.raises(StrainError, match="off.hdf5 starts at GPS .* cannot be aligned"):
        load_strain([tmp_path / "h1.hdf5", tmp_path / "off.hdf5", tmp_path / "v1.hdf5"])
    write_gwpy_hdf5(tmp_path / "slow.hdf5", l1, GPS0, 1024.0, "L1")
    with pytest.raises(StrainError, match="slow.hdf5: sampled at 1024 Hz"):
        load_strain([tmp_path / "h1.hdf5", tmp_path / "slow.hdf5", tmp_path / "v1.hdf5"])
