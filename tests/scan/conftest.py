"""Long simulated strain for the scan tests: design-PSD Gaussian noise with narrow spectral
lines (60 Hz and harmonics, an off-grid 331.3-Hz line), two loud BBH injections at known GPS
times and a NaN gap, written as .npy and GWOSC-style HDF5."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from g2res import DETECTORS, SAMPLE_RATE

GPS0 = 1238166018.0  # s, start of the stretch
DURATION = 96.0  # s
INJECTIONS = (23.3, 70.65)  # s after GPS0: geocentre merger times
SNR = 25.0  # network optimal SNR of each injection
GAP = (42.0, 47.5)  # s after GPS0: NaN in L1 only
SCORE_BAND = (1.4, 1.8)  # s in the window where the excess-power scorer looks
# Narrow lines: (frequency Hz, power in units of the noise power in 1 Hz at that frequency).
LINES = ((60.0, 300.0), (120.0, 100.0), (180.0, 100.0), (331.3, 100.0))


def add_lines(data: np.ndarray, seed: int, lines=LINES, rate: float = SAMPLE_RATE) -> np.ndarray:
    """``data`` (3, n) plus sinusoids of the ``lines`` (random phase per detector from
    ``seed``), each of power ``ratio * S(f) * 1 Hz`` for the design PSD S."""
    from g2res.data.noise import design_psd

    rng = np.random.default_rng([seed, 1])
    t = np.arange(data.shape[-1]) / rate
    out = data.copy()
    for f0, ratio in lines:
        amplitude = np.sqrt(2.0 * ratio * design_psd(np.array([f0]))[0])
        phase = rng.uniform(0, 2 * np.pi, size=(data.shape[0], 1))
        out += amplitude * np.sin(2 * np.pi * f0 * t + phase)
    return out


def simulate_long(
    seed: int, duration: float = DURATION, injections=INJECTIONS, snr=SNR, lines=LINES
):
    """(3, n) float64 strain: coloured Gaussian noise with spectral ``lines`` + BBH signals
    merging at ``injections`` (s after the start, geocentre), and the per-detector arrival
    times (s)."""
    from g2res.data.noise import ColoredNoise, design_psd, rfft_frequencies
    from g2res.data.waveforms import Injector, Projector

    rng = np.random.default_rng(seed)
    n = int(duration * SAMPLE_RATE)
    noise = ColoredNoise(n_samples=n, segment_duration=duration + 8.0)(rng)
    n_inj = 8 * int(SAMPLE_RATE)  # 8-s render: the inspiral enters below 20 Hz
    psd = design_psd(rfft_frequencies(n_inj))
    injector = Injector(
        psd,
        approximant="IMRPhenomD",
        mass_range=(25.0, 40.0),
        snr_range=(snr, snr),
        merger_window=(6.5, 6.5),
        projector=Projector(n_samples=n_inj, gps_reference=GPS0),
    )
    arrivals = []
    for t_merger in injections:
        params = injector.draw(rng)
        signal, info = injector.render(params)
        start = int(round((t_merger - 6.5) * SAMPLE_RATE))
        noise[:, start : start + n_inj] += signal
        arrivals.append([info[f"t_{d}"] + t_merger - 6.5 for d in DETECTORS])
    return add_lines(noise, seed, lines), np.array(arrivals)


@pytest.fixture(scope="session")
def long_strain():
    """Dict: ``data`` (3, n) with the L1 gap NaN, ``clean`` without, ``arrivals``."""
    clean, arrivals = simulate_long(11)
    data = clean.copy()
    a, b = (int(t * SAMPLE_RATE) for t in GAP)
    data[1, a:b] = np.nan
    return {"data": data, "clean": clean, "arrivals": arrivals}


def write_gwosc_hdf5(path, values, gps_start, sample_rate, detector):
    """A file in the GWOSC HDF5 layout (strain/Strain with Xstart, Xspacing)."""
    with h5py.File(path, "w") as fh:
        d = fh.create_dataset("strain/Strain", data=values)
        d.attrs.update(
            Xstart=gps_start,
            Xspacing=1.0 / sample_rate,
            Npoints=len(values),
            Xunits="second",
            Yunits="strain",
        )
        fh.create_dataset("meta/GPSstart", data=int(gps_start))
        fh.create_dataset("meta/Duration", data=int(len(values) / sample_rate))
        fh.create_dataset("meta/Detector", data=detector.encode())


def write_gwpy_hdf5(path, values, gps_start, sample_rate, detector):
    """A file written by gwpy ``TimeSeries.write`` (one dataset named by the channel)."""
    from gwpy.timeseries import TimeSeries

    channel = f"{detector}:GWOSC-4KHZ_R1_STRAIN"
    TimeSeries(values, t0=gps_start, sample_rate=sample_rate, name=channel, channel=channel).write(
        str(path), format="hdf5"
    )


def band_variance(fmin=20.0, fmax=500.0, order=8, n=4096, rate=SAMPLE_RATE) -> float:
    """Variance of white unit noise after the zero-phase Butterworth bandpass (|H|^2)."""
    from g2res.signal.reference import butterworth_response_reference

    f = np.fft.rfftfreq(n, 1.0 / rate)
    h = butterworth_response_reference(f, fmin, fmax, order)
    weights = np.full(f.size, 2.0)
    weights[[0, -1]] = 1.0
    return float(np.sum(weights * h**2) / n)


def excess_power(band=SCORE_BAND, rate=SAMPLE_RATE):
    """Deterministic scorer: excess whitened power in ``band`` s of the window over the
    noise level, clipped to [0, 1]. Fires when a merger lies in ``band``."""
    a, b = (int(t * rate) for t in band)
    var0 = band_variance()

    def score(x: torch.Tensor) -> np.ndarray:
        e = x[..., a:b].double().pow(2).mean(dim=(-1, -2)) / var0
        return (e - 1.0).clamp(0.0, 1.0).numpy()

    return score
