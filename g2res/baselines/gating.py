"""Autogating of the matched filter's whitened data (``g2res baseline matched-filter --gate``).

The filter's data spectra ``d`` (batch, 3, f) are whitened and scaled so that noise has
``E|d|^2 = 2`` per in-band frequency (:meth:`MatchedFilter.data_spectra`). Their inverse
FFT ``irfft(d * sqrt(n / 2))`` is the whitened strain in the filter's band (unit-variance
white noise up to the band's share); it is gated with :func:`g2res.signal.gate.gate`
(the same robust noise level, threshold in its sigmas, zeroed windows and Hann tapers as
the model's ``model.gate``) and transformed back, keeping only the band, so the templates,
the network statistic and the chi-squared veto see the gated data.
"""

from __future__ import annotations

import numpy as np
import torch

from g2res.signal.gate import GATE_TAPER, GATE_WINDOW, gate

__all__ = ["gate_spectra"]


def gate_spectra(
    d: np.ndarray,
    n_samples: int,
    sample_rate: float,
    threshold: float,
    window: float = GATE_WINDOW,
    taper: float = GATE_TAPER,
    band: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Gated data spectra (batch, 3, f) complex128 and the gated fraction (batch, 3).

    ``d`` (batch, 3, n_samples // 2 + 1): whitened spectra as the filter forms them, at
    ``sample_rate`` Hz; ``threshold``, ``window`` (s), ``taper`` (s) as
    :func:`g2res.signal.gate.gate`. ``band`` (3, f) or (f,) bool: the bins kept (the
    filter's band); None: those where ``d`` is not 0 in some sample.
    """
    d = np.asarray(d)
    scale = np.sqrt(n_samples / 2.0)
    w = torch.from_numpy(np.fft.irfft(d * scale, n=n_samples, axis=-1))
    gated, fraction = gate(w, threshold, window, taper, sample_rate, return_fraction=True)
    if band is None:
        band = np.any(d != 0, axis=tuple(range(d.ndim - 1)))
    out = np.fft.rfft(gated.numpy(), axis=-1) / scale
    return out * band, fraction.numpy()
