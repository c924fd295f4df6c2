"""Plain numpy/scipy versions of the signal steps, one sample at a time.

Written independently of the torch code (scipy windows, ``np.interp``, scipy's
analog Butterworth response) so tests can compare the two paths.
"""

from __future__ import annotations

import numpy as np
import scipy.signal

from g2res import TAPER_ALPHA


def welch_reference(
    x, sample_rate, segment_duration=0.5, overlap=0.5, window="hann", average="median"
):
    """``scipy.signal.welch`` with g2res's argument names: ``(freqs, psd)``."""
    nperseg = int(round(segment_duration * sample_rate))
    return scipy.signal.welch(
        np.asarray(x, dtype=np.float64),
        fs=sample_rate,
        window=window,
        nperseg=nperseg,
        noverlap=int(round(overlap * nperseg)),
        detrend="constant",
        scaling="density",
        average=average,
        axis=-1,
    )


def butterworth_response_reference(frequencies, fmin=None, fmax=None, order=8) -> np.ndarray:
    """``|H(f)|^2`` of analog Butterworth high-pass(fmin) x low-pass(fmax) (scipy.signal.freqs)."""
    w = 2 * np.pi * np.asarray(frequencies, dtype=np.float64)
    response = np.ones_like(w)
    for corner, kind in ((fmin, "highpass"), (fmax, "lowpass")):
        if corner is None:
            continue
        b, a = scipy.signal.butter(order, 2 * np.pi * corner, btype=kind, analog=True)
        _, h = scipy.signal.freqs(b, a, worN=w)
        response = response * np.abs(h) ** 2
    return response


def whiten_reference(
    x,
    frequencies,
    psd,
    sample_rate,
    window_alpha=TAPER_ALPHA,
    fmin=None,
    fmax=None,
    order=8,
) -> np.ndarray:
    """Whiten (and optionally bandpass) one ``(detector, time)`` sample with numpy.

    Tukey taper, ``np.interp`` of the PSD to the rfft grid, DC removed,
    ``sqrt(2 / sample_rate)`` normalisation.
    """
    x = np.asarray(x, dtype=np.float64)
    psd = np.atleast_2d(np.asarray(psd, dtype=np.float64))
    n = x.shape[-1]
    taper = scipy.signal.windows.tukey(n, window_alpha, sym=True)
    f = np.fft.rfftfreq(n, 1.0 / sample_rate)
    out = np.empty_like(x)
    for d in range(x.shape[0]):
        p = np.interp(f, frequencies, psd[d if psd.shape[0] > 1 else 0])
        factor = np.zeros_like(f)
        factor[1:] = 1.0 / np.sqrt(p[1:])
        factor *= np.sqrt(2.0 / sample_rate)
        if fmin is not None or fmax is not None:
            factor *= butterworth_response_reference(f, fmin, fmax, order)
        out[d] = np.fft.irfft(np.fft.rfft(x[d] * taper) * factor, n=n)
    return out


def coloured_noise(rng: np.random.Generator, psd_fn, shape, sample_rate) -> np.ndarray:
    """Stationary Gaussian noise ``shape = (..., time)`` with one-sided PSD ``psd_fn(f)``.

    White noise (PSD ``2 / sample_rate``) is coloured in the frequency domain on a
    grid twice as long, keeping the first half so the series does not wrap.
    """
    n = shape[-1]
    white = rng.standard_normal((*shape[:-1], 2 * n))
    f = np.fft.rfftfreq(2 * n, 1.0 / sample_rate)
    amp = np.sqrt(np.asarray(psd_fn(f), dtype=np.float64) * sample_rate / 2.0)
    return np.fft.irfft(np.fft.rfft(white) * amp, n=2 * n)[..., :n]


def gate_reference(x, threshold, window, taper, sample_rate):
    """:func:`g2res.signal.gate.gate` of one series ``x`` (time,) in plain numpy: the
    distance of every sample to every excursion, the Hann ramps written out."""
    x = np.asarray(x, dtype=np.float64)
    med = np.median(x)
    sigma = 1.4826 * np.median(np.abs(x - med))
    hits = np.flatnonzero(np.abs(x - med) > threshold * sigma) if sigma > 0 else []
    weight = np.ones_like(x)
    t = np.arange(x.size)
    w, tp = window * sample_rate, taper * sample_rate
    for k in hits:
        d = np.abs(t - k).astype(np.float64)
        g = np.ones_like(x)
        g[d <= w] = 0.0
        ramp = (d > w) & (d < w + tp)
        g[ramp] = 0.5 - 0.5 * np.cos(np.pi * (d[ramp] - w) / tp)
        weight = np.minimum(weight, g)
    return x * weight, 1.0 - weight.mean()
