"""Non-Gaussian detector noise: glitches and PSD drift, shared by the simulator and training.

One generator serves both sides: ``g2res simulate`` adds these glitches to raw strain
(:mod:`g2res.data.simulate`), and the ``augment.glitch`` training augmentation
(:mod:`g2res.transforms.augment`) renders the same glitches against the cache's PSD and
conditions them like the cache. A glitch of SNR ``rho`` therefore means the same thing on
both sides: its optimal SNR ``sqrt(4 df sum_{f >= 20 Hz} |g~(f)|^2 / S(f))`` against the
one-sided PSD ``S`` of its detector (:func:`g2res.data.waveforms.optimal_snr`, the
simulator's signal SNR), which after whitening (``g2res.signal.whiten``: unit-variance
noise) is the norm of the whitened glitch, less what the taper and bandpass remove.

Glitch kinds (each in one detector, times in s in the window, frequencies in Hz):

- ``sine_gaussian``: ``exp(-(t - t0)^2 / tau^2) cos(2 pi f0 (t - t0) + phase)`` with
  ``tau = Q / (sqrt(2) pi f0)``; f0 log-uniform in 30-500 Hz, Q uniform in 2-20.
- ``blip``: a short broadband blip, the Ricker wavelet
  ``(1 - 2 (pi f0 (t - t0))^2) exp(-(pi f0 (t - t0))^2)`` times +/-1 (phase 0 or pi), whose
  spectrum ``f^2 exp(-f^2 / f0^2)`` peaks at f0, log-uniform in 40-250 Hz; its envelope
  gives Q = sqrt(2) in the sine-Gaussian sense; a few ms long.
- ``scattered_light``: one low-frequency arch, as light scattered off a surface moving at
  ``f_mod``: instantaneous frequency ``f0 |cos(2 pi f_mod (t - t0))|`` over one arch
  ``|t - t0| < duration / 2`` with ``duration = 1 / (2 f_mod)`` uniform in 0.2-1 s, under a
  Hann envelope; peak frequency f0 uniform in 30-90 Hz; Q is undefined (NaN).

``duration`` (s) in a record: ``2 tau`` (between the envelope's 1/e points) for
sine-Gaussians and blips, the arch's length for scattered light.

PSD drift (``g2res simulate --psd-drift X``): per sample and detector the PSD is
``S(f) * scale * (f / DRIFT_REFERENCE)^tilt`` with ``scale`` uniform in ``[1 - X, 1 + X]``
and ``tilt`` uniform in ``[-t_max, t_max]``, ``t_max = ln(1 + X) / ln(500 / 100)``: the tilt
alone moves the PSD by up to a factor ``1 + X`` at the band edges 20 and 500 Hz (the
reference 100 Hz is their geometric mean).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from g2res.data.waveforms import SNR_FMIN, optimal_snr

__all__ = [
    "GLITCH_KINDS",
    "GLITCH_COLUMNS",
    "DRIFT_REFERENCE",
    "DRIFT_BAND",
    "Glitch",
    "check_kinds",
    "draw_glitch",
    "glitch_waveform",
    "scale_to_snr",
    "make_glitch",
    "draw_glitches",
    "drift_tilt_max",
    "draw_drift",
    "drift_factor",
]

GLITCH_KINDS = ("sine_gaussian", "blip", "scattered_light")
#: Columns of ``truth/glitches.csv`` after ``id`` (the sample), ``split`` and ``detector``.
GLITCH_COLUMNS = ["kind", "time", "f0", "Q", "duration", "phase", "snr"]
SINE_GAUSSIAN_F0 = (30.0, 500.0)  # Hz, log-uniform
SINE_GAUSSIAN_Q = (2.0, 20.0)  # uniform
BLIP_F0 = (40.0, 250.0)  # Hz, peak of the Ricker spectrum, log-uniform
ARCH_F0 = (30.0, 90.0)  # Hz, peak fringe frequency, uniform
ARCH_DURATION = (0.2, 1.0)  # s, one arch, uniform
GLITCH_TIME_MARGIN = 0.1  # s, glitch centres are uniform in [margin, duration - margin]
DRIFT_REFERENCE = 100.0  # Hz, frequency where the tilt leaves the PSD unchanged
DRIFT_BAND = (20.0, 500.0)  # Hz, where the tilt reaches its full +/- X


@dataclass
class Glitch:
    """One glitch: ``kind``, centre ``time`` (s in the window), ``f0`` (Hz), ``Q``,
    ``duration`` (s), ``phase`` (rad) and optimal ``snr`` in its detector."""

    kind: str
    time: float
    f0: float
    Q: float
    duration: float
    phase: float
    snr: float

    def to_dict(self) -> dict:
        return asdict(self)


def check_kinds(kinds: Sequence[str], where: str = "glitch kinds") -> tuple[str, ...]:
    """``kinds`` as a tuple; ValueError naming an unknown kind or an empty list."""
    kinds = tuple(kinds)
    if not kinds:
        raise ValueError(f"{where}: need at least one of {', '.join(GLITCH_KINDS)}")
    for kind in kinds:
        if kind not in GLITCH_KINDS:
            raise ValueError(
                f"{where}: unknown glitch kind {kind!r}; use {', '.join(GLITCH_KINDS)}"
            )
    return kinds


def _check_snr_range(snr_range: Sequence[float], where: str = "glitch SNR range") -> None:
    lo, hi = snr_range
    if not 0 < lo <= hi:
        raise ValueError(f"{where} {tuple(snr_range)}: need 0 < MIN <= MAX")


def _loguniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def draw_glitch(
    rng: np.random.Generator,
    kinds: Sequence[str] = GLITCH_KINDS,
    snr_range: tuple[float, float] = (8.0, 50.0),
    window: float = 2.0,
    margin: float = GLITCH_TIME_MARGIN,
) -> Glitch:
    """Draw one glitch's parameters (module docstring) from ``rng``; ``window`` s long.

    Always seven draws (kind, time, snr, then four shape numbers), whatever the kind.
    """
    kinds = check_kinds(kinds)
    _check_snr_range(snr_range)
    kind = kinds[int(rng.integers(len(kinds)))]
    time = float(rng.uniform(margin, window - margin))
    snr = float(rng.uniform(*snr_range))
    u = rng.uniform(size=4)
    if kind == "sine_gaussian":
        lo, hi = SINE_GAUSSIAN_F0
        f0 = float(np.exp(np.log(lo) + u[0] * (np.log(hi) - np.log(lo))))
        q = SINE_GAUSSIAN_Q[0] + u[1] * (SINE_GAUSSIAN_Q[1] - SINE_GAUSSIAN_Q[0])
        duration = 2 * q / (math.sqrt(2) * math.pi * f0)
        phase = 2 * math.pi * u[2]
    elif kind == "blip":
        lo, hi = BLIP_F0
        f0 = float(np.exp(np.log(lo) + u[0] * (np.log(hi) - np.log(lo))))
        q = math.sqrt(2.0)
        duration = 2 / (math.pi * f0)
        phase = math.pi * float(u[2] < 0.5)
    else:  # scattered_light
        f0 = ARCH_F0[0] + u[0] * (ARCH_F0[1] - ARCH_F0[0])
        q = math.nan
        duration = ARCH_DURATION[0] + u[1] * (ARCH_DURATION[1] - ARCH_DURATION[0])
        phase = 2 * math.pi * u[2]
    return Glitch(kind, time, float(f0), float(q), float(duration), float(phase), snr)


def glitch_waveform(glitch: Glitch, sample_rate: float, n_time: int) -> np.ndarray:
    """The glitch's shape (n_time,) float64 at unit peak envelope (not yet scaled to SNR).

    Sample ``k`` is at ``k / sample_rate`` s, as in the simulator's window.
    """
    t = np.arange(int(n_time)) / float(sample_rate) - glitch.time
    if glitch.kind == "sine_gaussian":
        tau = glitch.Q / (math.sqrt(2) * math.pi * glitch.f0)
        return np.exp(-((t / tau) ** 2)) * np.cos(2 * math.pi * glitch.f0 * t + glitch.phase)
    if glitch.kind == "blip":
        a = (math.pi * glitch.f0 * t) ** 2
        return math.cos(glitch.phase) * (1 - 2 * a) * np.exp(-a)
    if glitch.kind == "scattered_light":
        f_mod = 1.0 / (2 * glitch.duration)
        inside = np.abs(t) < glitch.duration / 2
        envelope = np.where(inside, np.cos(math.pi * t / glitch.duration) ** 2, 0.0)
        phi = glitch.f0 / f_mod * np.sin(2 * math.pi * f_mod * t)
        return envelope * np.cos(phi + glitch.phase)
    raise ValueError(f"unknown glitch kind {glitch.kind!r}; use {', '.join(GLITCH_KINDS)}")


def scale_to_snr(
    series: np.ndarray,
    psd: np.ndarray,
    snr: float,
    sample_rate: float,
    fmin: float = SNR_FMIN,
) -> np.ndarray:
    """``series`` (n,) scaled so its optimal SNR against ``psd`` (n // 2 + 1,) one-sided,
    strain^2/Hz on the window's rfft grid, above ``fmin`` Hz, is ``snr``."""
    rho = float(optimal_snr(series, psd, sample_rate, fmin=fmin))
    if not rho > 0:
        raise ValueError("glitch has no power above the SNR band's lower edge; cannot scale it")
    return series * (snr / rho)


def make_glitch(
    rng: np.random.Generator,
    psd: np.ndarray,
    sample_rate: float,
    n_time: int,
    kinds: Sequence[str] = GLITCH_KINDS,
    snr_range: tuple[float, float] = (8.0, 50.0),
    fmin: float = SNR_FMIN,
) -> tuple[np.ndarray, Glitch]:
    """Draw a glitch and render it (n_time,) in strain at its SNR against ``psd``.

    ``psd`` (n_time // 2 + 1,): one-sided PSD (strain^2/Hz) of the glitch's detector on
    the ``rfftfreq(n_time, 1 / sample_rate)`` grid. Returns the series and its record.
    """
    glitch = draw_glitch(rng, kinds, snr_range, window=n_time / sample_rate)
    shape = glitch_waveform(glitch, sample_rate, n_time)
    return scale_to_snr(shape, psd, glitch.snr, sample_rate, fmin), glitch


def draw_glitches(
    rng: np.random.Generator,
    rate: float,
    psd: np.ndarray,
    sample_rate: float,
    n_time: int,
    kinds: Sequence[str] = GLITCH_KINDS,
    snr_range: tuple[float, float] = (8.0, 50.0),
    fmin: float = SNR_FMIN,
) -> tuple[np.ndarray, list[tuple[int, Glitch]]]:
    """Poisson(``rate``) glitches, each in one detector chosen uniformly.

    ``psd`` (d, n_time // 2 + 1) per detector. Returns the summed glitch strain
    (d, n_time) and a list of (detector row, :class:`Glitch`).
    """
    psd = np.atleast_2d(psd)
    n_det = psd.shape[0]
    total = np.zeros((n_det, int(n_time)))
    records: list[tuple[int, Glitch]] = []
    for _ in range(int(rng.poisson(rate))):
        det = int(rng.integers(n_det))
        series, glitch = make_glitch(rng, psd[det], sample_rate, n_time, kinds, snr_range, fmin)
        total[det] += series
        records.append((det, glitch))
    return total, records


def drift_tilt_max(drift: float) -> float:
    """Largest |tilt| for a drift ``X``: ``(500 / 100)^t_max = 1 + X``."""
    return math.log1p(drift) / math.log(DRIFT_BAND[1] / DRIFT_REFERENCE)


def draw_drift(
    rng: np.random.Generator, drift: float, n_detectors: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-detector PSD ``scale`` (d,) uniform in [1 - X, 1 + X] and ``tilt`` (d,)."""
    if not 0 <= drift < 1:
        raise ValueError(f"psd drift {drift}: need 0 <= X < 1")
    scale = rng.uniform(1 - drift, 1 + drift, size=n_detectors)
    t_max = drift_tilt_max(drift)
    tilt = rng.uniform(-t_max, t_max, size=n_detectors)
    return scale, tilt


def drift_factor(frequencies: np.ndarray, scale: np.ndarray, tilt: np.ndarray) -> np.ndarray:
    """PSD factor (d, f) ``scale * (f / DRIFT_REFERENCE)^tilt`` at ``frequencies`` (f,) Hz.

    At 0 Hz (where noise has no power) the factor is ``scale``.
    """
    f = np.asarray(frequencies, dtype=float)
    ratio = np.where(f > 0, f, DRIFT_REFERENCE) / DRIFT_REFERENCE
    scale = np.asarray(scale, dtype=float)[:, None]
    tilt = np.asarray(tilt, dtype=float)[:, None]
    return scale * ratio[None, :] ** tilt
