"""Autogating of whitened strain, as PyCBC's ``--autogating-*`` does, on 2-s windows.

A loud short glitch in one detector is removed by zeroing a stretch of that detector's
whitened strain around it, with inverse Tukey tapers so the data fall smoothly to zero.
For each sample and detector of ``x`` (batch, detector, time), whitened (unit-variance
noise up to the band's share; the level is estimated, not assumed):

1. the noise level ``sigma = 1.4826 * median(|x - median(x)|)`` (the median absolute
   deviation, which a short glitch barely moves; 1.4826 makes it the standard deviation
   of Gaussian noise);
2. excursions: samples with ``|x - median(x)| > threshold * sigma``;
3. a gate of half-width ``window`` s around each excursion (so a cluster of excursions
   is zeroed from ``window`` s before its first to ``window`` s after its last sample;
   clusters closer than ``2 window`` merge), with a Hann ramp of ``taper`` s on each
   side: the weight at distance ``d`` s from the nearest excursion is 0 for
   ``d <= window``, ``(1 - cos(pi (d - window) / taper)) / 2`` up to ``window + taper``
   and 1 beyond. A detector whose ``sigma`` is 0 (a zeroed channel) is never gated.

The gated data are ``x * weight``; the gated fraction of a detector is ``mean(1 - weight)``
(the share of its duration removed, each taper counting half: an isolated excursion
away from the ends removes ``2 window + taper`` s plus one sample).

Defaults (sized on 2-s windows at 2048 Hz, whitened and bandpassed 20-500 Hz as the cache,
and the simulator's glitch kinds, :mod:`g2res.data.glitches`): ``threshold`` 7 sigma,
``window`` 0.1 s, ``taper`` 0.05 s. Measured with ``python benchmarks/gate.py --workdir W``
(seed 0; 1,000 noise and 500 BBH samples of network SNR 4-16, IMRPhenomXPHM, 7-50 Msun):

- false gates: 0 of 1,000 pure-noise samples (3,000 detector series) at 7 sigma (the
  loudest noise sample peaks at 5.6 sigma; Gaussian noise passes 7 sigma in a 4,096-sample
  series with probability ~1e-8); 0 at 6 sigma too, 2 at 5.5;
- BBH chirps: none of 500 gated at 7 sigma (their peaks reach 6.55 sigma at network SNR
  12-16; 4 of 500, up to SNR 15.2, are gated at 6 sigma, hence 7);
- blips of SNR 20-50 (one detector): all gated, residual SNR (the norm of what is left of
  the conditioned glitch over its norm) 0.3%; of SNR 8-20: 72% gated. Sine-Gaussians of
  SNR 20-50: 89% gated (residual < 10% in 88%; the long, low-f0, high-Q ones are never
  loud in any one sample); a koi fish (not a simulator kind: a broadband blip of SNR in
  the hundreds) is gated a fortiori; scattered-light arches (0.2-1 s, 30-90 Hz) of SNR 20-50: 19%.
  Time-domain gating is for short loud transients; the chi-squared veto and the network
  are for the rest. A half-width of 0.05 s leaves 0.5% of a gated blip (85% of the gated
  sine-Gaussians below 10%), 0.1 s 0.3% (88%).
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = [
    "GATE_THRESHOLD",
    "GATE_WINDOW",
    "GATE_TAPER",
    "MAD_TO_SIGMA",
    "noise_level",
    "gate_weight",
    "gate",
    "Gate",
]

GATE_THRESHOLD = 7.0  # whitened-noise sigmas
GATE_WINDOW = 0.1  # s, half-width zeroed around each excursion
GATE_TAPER = 0.05  # s, Hann ramp on each side of a gate
MAD_TO_SIGMA = 1.4826  # standard deviation / median absolute deviation of a Gaussian


def noise_level(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Median (..., 1) and robust standard deviation ``1.4826 * MAD`` (..., 1) along time."""
    med = x.median(dim=-1, keepdim=True).values
    mad = (x - med).abs().median(dim=-1, keepdim=True).values
    return med, MAD_TO_SIGMA * mad


def gate_weight(
    excursion: torch.Tensor, window_samples: float, taper_samples: float
) -> torch.Tensor:
    """Weights (..., time) in [0, 1] from a boolean ``excursion`` mask (..., time).

    Distance (samples) to the nearest excursion: 0 within ``window_samples``, a Hann
    ramp over ``taper_samples`` beyond, 1 further away and where there is none.
    """
    n = excursion.shape[-1]
    idx = torch.arange(n, device=excursion.device, dtype=torch.float32).expand_as(excursion)
    big = float(4 * n + 4 * (window_samples + taper_samples) + 4)
    last = torch.where(excursion, idx, torch.full_like(idx, -big)).cummax(dim=-1).values
    later = torch.where(excursion, idx, torch.full_like(idx, big)).flip(-1)
    after = later.cummin(dim=-1).values.flip(-1)
    d = torch.minimum(idx - last, after - idx)
    if taper_samples > 0:
        ramp = ((d - window_samples) / taper_samples).clamp(0.0, 1.0)
        w = 0.5 * (1.0 - torch.cos(math.pi * ramp))
    else:
        w = (d > window_samples).to(idx.dtype)
    return torch.where(d <= window_samples, torch.zeros_like(w), w)


def gate(
    x: torch.Tensor,
    threshold: float = GATE_THRESHOLD,
    window: float = GATE_WINDOW,
    taper: float = GATE_TAPER,
    sample_rate: float = 2048.0,
    return_fraction: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Gate whitened strain ``x`` (..., time) (module docstring), any device and float dtype.

    Args:
        threshold: excursions beyond this many robust sigmas of each series are gated.
        window: s, half-width of the zeroed stretch around each excursion.
        taper: s, length of the Hann ramp on each side of a zeroed stretch.
        sample_rate: Hz of ``x``.
        return_fraction: also return the gated fraction (...,) per series.

    Returns the gated data (same shape and dtype), and the fraction when asked.
    """
    if not threshold > 0:
        raise ValueError(f"gate threshold {threshold}: need a positive number of sigmas")
    if window < 0 or taper < 0:
        raise ValueError(f"gate window {window} s and taper {taper} s must be >= 0")
    if x.shape[-1] < 2:
        raise ValueError(f"gate needs series of at least 2 samples, got {tuple(x.shape)}")
    with torch.no_grad():
        med, sigma = noise_level(x.detach())
        excursion = ((x.detach() - med).abs() > threshold * sigma) & (sigma > 0)
        weight = gate_weight(excursion, window * sample_rate, taper * sample_rate).to(x.dtype)
    out = x * weight
    if return_fraction:
        return out, (1.0 - weight).mean(dim=-1)
    return out


class Gate(nn.Module):
    """:func:`gate` as a module on ``(batch, detector, time)`` whitened strain.

    No buffers or parameters (so checkpoints do not change); ``forward(x)`` returns the
    gated data, and ``last_fraction`` (batch, detector) holds the gated fraction of the
    last call. ``return_fraction=True`` makes ``forward`` return ``(gated, fraction)``.
    """

    def __init__(
        self,
        threshold: float = GATE_THRESHOLD,
        window: float = GATE_WINDOW,
        taper: float = GATE_TAPER,
        sample_rate: float = 2048.0,
        return_fraction: bool = False,
    ):
        super().__init__()
        if not threshold > 0:
            raise ValueError(f"gate threshold {threshold}: need a positive number of sigmas")
        if window < 0 or taper < 0:
            raise ValueError(f"gate window {window} s and taper {taper} s must be >= 0")
        self.threshold, self.window, self.taper = float(threshold), float(window), float(taper)
        self.sample_rate = float(sample_rate)
        self.return_fraction = bool(return_fraction)
        self.last_fraction: torch.Tensor | None = None

    def forward(self, x: torch.Tensor):
        out, frac = gate(
            x, self.threshold, self.window, self.taper, self.sample_rate, return_fraction=True
        )
        self.last_fraction = frac.detach()
        return (out, frac) if self.return_fraction else out

    def extra_repr(self) -> str:
        return (
            f"threshold={self.threshold:g}, window={self.window:g}, taper={self.taper:g}, "
            f"sample_rate={self.sample_rate:g}"
        )
