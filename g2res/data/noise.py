"""Detector noise: design PSDs, user PSD files and stationary coloured Gaussian noise.

All PSDs are one-sided, in strain^2/Hz, one row per detector (H1, L1, V1). Noise is
coloured in the frequency domain on a segment longer than the output window and the
middle is kept, so the circular FFT leaves no wrap-around artefacts in the window.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from g2res import DETECTORS

SAMPLE_RATE = 2048.0  # Hz
DURATION = 2.0  # s
N_SAMPLES = 4096  # samples per detector in one G2Net window

# lalsimulation analytic design curves: aLIGO zero-detuning high-power (LIGO-T0900288)
# and Advanced Virgo design (Virgo analytic fit, LIGO-P1200087 era).
DESIGN_CURVES = {
    "H1": "SimNoisePSDaLIGOZeroDetHighPower",
    "L1": "SimNoisePSDaLIGOZeroDetHighPower",
    "V1": "SimNoisePSDAdvVirgo",
}
# The analytic fits diverge below ~10 Hz (seismic wall); hold them flat there so the
# coloured noise is not dominated by a physically meaningless sub-10-Hz explosion.
DESIGN_FLOOR_FREQUENCY = 10.0  # Hz

PSDFunction = Callable[[np.ndarray], np.ndarray]


def rfft_frequencies(n_samples: int = N_SAMPLES, sample_rate: float = SAMPLE_RATE) -> np.ndarray:
    """Frequencies (n_samples // 2 + 1,) in Hz of ``np.fft.rfft`` of ``n_samples`` points."""
    return np.fft.rfftfreq(int(n_samples), d=1.0 / float(sample_rate))


def design_psd(
    frequencies: np.ndarray,
    detectors: tuple[str, ...] = DETECTORS,
    floor_frequency: float = DESIGN_FLOOR_FREQUENCY,
) -> np.ndarray:
    """Design PSD (len(detectors), f) in strain^2/Hz at ``frequencies`` (f,) Hz.

    aLIGO zero-detuning high-power for H1/L1, Advanced Virgo for V1 (lalsimulation);
    below ``floor_frequency`` Hz the value at ``floor_frequency`` is used.
    """
    import lalsimulation

    freqs = np.maximum(np.asarray(frequencies, dtype=float), floor_frequency)
    unique, inverse = np.unique(freqs, return_inverse=True)
    out = np.empty((len(detectors), freqs.size))
    for row, det in enumerate(detectors):
        if det not in DESIGN_CURVES:
            raise ValueError(f"no design PSD for detector {det!r}; known: {sorted(DESIGN_CURVES)}")
        curve = getattr(lalsimulation, DESIGN_CURVES[det])
        values = np.array([curve(float(f)) for f in unique])
        out[row] = values[inverse]
    return out.reshape(len(detectors), *np.shape(frequencies))


def load_psd_file(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a PSD file: a frequency column (Hz) and 1 or 3 one-sided PSD columns.

    ``.npy`` (2-D float array, allow_pickle=False) or text (whitespace or comma
    separated, ``#`` comments). One PSD column is used for every detector.
    Returns frequencies (f,) in Hz, increasing, and psd (3, f) in strain^2/Hz.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"PSD file {path} does not exist")
    try:
        if path.suffix == ".npy":
            table = np.load(path, allow_pickle=False)
        else:
            try:
                table = np.loadtxt(path, comments="#", ndmin=2)
            except ValueError:
                table = np.loadtxt(path, comments="#", delimiter=",", ndmin=2)
    except Exception as exc:  # any parse failure is reported with the file name
        raise ValueError(f"PSD file {path} could not be read: {exc}") from exc
    table = np.asarray(table)
    if table.ndim == 2 and table.shape[0] in (2, 4) and table.shape[1] > 4:
        table = table.T  # stored as rows instead of columns
    if table.ndim != 2 or table.shape[1] not in (2, 4):
        raise ValueError(
            f"PSD file {path}: expected columns (frequency, PSD) or (frequency, PSD_H1, PSD_L1, "
            f"PSD_V1), got an array of shape {table.shape}"
        )
    if not np.issubdtype(table.dtype, np.number):
        raise ValueError(f"PSD file {path}: values must be numbers, got dtype {table.dtype}")
    table = table.astype(float)
    if table.shape[0] < 2:
        raise ValueError(f"PSD file {path}: needs at least 2 rows, got {table.shape[0]}")
    if not np.all(np.isfinite(table)):
        raise ValueError(f"PSD file {path}: contains NaN or infinite values")
    freqs, psd = table[:, 0], table[:, 1:].T
    if np.any(np.diff(freqs) <= 0):
        raise ValueError(f"PSD file {path}: frequencies (first column) must strictly increase")
    if freqs[0] < 0:
        raise ValueError(f"PSD file {path}: negative frequency {freqs[0]} Hz")
    keep = freqs > 0  # a DC row (often 0) carries no information for colouring
    freqs, psd = freqs[keep], psd[:, keep]
    if freqs.size < 2:
        raise ValueError(f"PSD file {path}: needs at least 2 rows above 0 Hz")
    bad = np.argwhere(psd <= 0)
    if bad.size:
        det, row = bad[0]
        raise ValueError(
            f"PSD file {path}: PSD must be positive, got {psd[det, row]} at {freqs[row]} Hz"
        )
    if psd.shape[0] == 1:
        psd = np.repeat(psd, len(DETECTORS), axis=0)
    return freqs, psd


def interpolate_psd(frequencies: np.ndarray, psd: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """PSD (d, f) known at ``frequencies`` (f,) Hz, log-log interpolated onto ``grid`` (g,) Hz.

    Outside the known range the edge values are held (also at 0 Hz). Returns (d, g).
    """
    logf = np.log(frequencies)
    logg = np.log(np.clip(np.asarray(grid, dtype=float), frequencies[0], frequencies[-1]))
    return np.exp(np.stack([np.interp(logg, logf, np.log(row)) for row in np.atleast_2d(psd)]))


def psd_function(psd_file: str | os.PathLike | None = None) -> PSDFunction:
    """A function frequencies (f,) Hz -> PSD (3, f) strain^2/Hz: design curves or a file."""
    if psd_file is None:
        return design_psd
    freqs, psd = load_psd_file(psd_file)
    if freqs[0] > 20.0 or freqs[-1] < SAMPLE_RATE / 2:
        warnings.warn(
            f"PSD file {psd_file} covers {freqs[0]:g}-{freqs[-1]:g} Hz; edge values are held "
            f"outside it (the analysis band is 20-{SAMPLE_RATE / 2:g} Hz)",
            stacklevel=2,
        )

    def from_file(frequencies: np.ndarray) -> np.ndarray:
        return interpolate_psd(freqs, psd, frequencies)

    return from_file


class ColoredNoise:
    """Stationary Gaussian noise (3, n_samples) with a one-sided PSD per detector.

    White complex Gaussian coefficients are scaled by sqrt(PSD * N * fs / 4) on the
    rfft grid of a ``segment_duration``-s segment (DC and Nyquist zeroed), inverse
    transformed, and the middle ``n_samples`` kept.
    """

    def __init__(
        self,
        psd: PSDFunction | None = None,
        sample_rate: float = SAMPLE_RATE,
        n_samples: int = N_SAMPLES,
        segment_duration: float = 8.0,
    ):
        self.sample_rate = float(sample_rate)
        self.n_samples = int(n_samples)
        self.n_segment = int(round(segment_duration * self.sample_rate))
        if self.n_segment < self.n_samples:
            raise ValueError(
                f"segment_duration {segment_duration} s is shorter than the window "
                f"({self.n_samples / self.sample_rate} s)"
            )
        self.psd = psd or design_psd
        self.frequencies = rfft_frequencies(self.n_segment, self.sample_rate)
        psd_grid = np.asarray(self.psd(self.frequencies), dtype=float)
        if psd_grid.ndim != 2 or psd_grid.shape[1] != self.frequencies.size:
            raise ValueError(f"PSD function returned shape {psd_grid.shape}, expected (3, f)")
        if not np.all(np.isfinite(psd_grid)) or np.any(psd_grid < 0):
            raise ValueError("PSD must be finite and non-negative on the noise grid")
        self.n_detectors = psd_grid.shape[0]
        amplitude = np.sqrt(psd_grid * self.n_segment * self.sample_rate / 4.0)
        amplitude[:, 0] = 0.0
        if self.n_segment % 2 == 0:
            amplitude[:, -1] = 0.0  # the Nyquist coefficient of a real series must be real
        self.amplitude = amplitude
        self.start = (self.n_segment - self.n_samples) // 2

    def __call__(
        self,
        rng: np.random.Generator,
        batch: int | None = None,
        psd_factor: np.ndarray | None = None,
    ) -> np.ndarray:
        """Noise in strain: (3, n_samples), or (batch, 3, n_samples) when ``batch`` is given.

        ``psd_factor`` (3, f) on :attr:`frequencies` (the segment's rfft grid) multiplies
        the PSD (e.g. :func:`g2res.data.glitches.drift_factor`); the same ``rng`` draws
        give the same noise recoloured.
        """
        lead = () if batch is None else (int(batch),)
        shape = (*lead, self.n_detectors, self.frequencies.size)
        white = rng.standard_normal((2, *shape))
        amplitude = self.amplitude
        if psd_factor is not None:
            amplitude = amplitude * np.sqrt(np.asarray(psd_factor, dtype=float))
        coeffs = amplitude * (white[0] + 1j * white[1])
        series = np.fft.irfft(coeffs, n=self.n_segment, axis=-1)
        return series[..., self.start : self.start + self.n_samples]
