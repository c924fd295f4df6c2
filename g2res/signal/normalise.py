"""Per-sample noise-level normalisation of whitened strain (a drifting PSD's scale).

One average PSD whitens every sample of a cache; when the detector's noise level drifts
between samples (``g2res simulate --psd-drift``; real strain from minute to minute), the
whitened noise of a sample has a standard deviation other than the cache's, and a network
that sees power reads the drift as excess power. :func:`robust_normalise` divides each
sample's detector series by its own robust standard deviation ``1.4826 * MAD``
(:func:`g2res.signal.gate.noise_level`): a short glitch or a chirp of SNR <= 20 barely
moves a median over 4,096 samples, so the noise of every sample comes out at unit
standard deviation whatever its level, while the signal-to-noise ratio is unchanged. A
spectral tilt (a drift of shape, not of level) is what :class:`SpectralNormalise` fits
(``model.normalise: spectral``): a scale and a tilt per sample and detector from the
sample's own median Welch PSD.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from g2res import TAPER_ALPHA
from g2res.signal.filters import butterworth_response
from g2res.signal.gate import noise_level

__all__ = ["NORMALISATIONS", "robust_normalise", "RobustNormalise", "SpectralNormalise"]

NORMALISATIONS = ("mad", "spectral")


def robust_normalise(x: torch.Tensor) -> torch.Tensor:
    """``x`` (..., time) over its robust standard deviation along time (same shape,
    unit-less: noise at unit standard deviation). A series whose MAD is 0 (a zeroed
    channel) is left as it is."""
    _, sigma = noise_level(x)
    return x / torch.where(sigma > 0, sigma, torch.ones_like(sigma))


class RobustNormalise(nn.Module):
    """:func:`robust_normalise` on ``(batch, detector, time)``; no buffers or weights."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return robust_normalise(x)


# ----------------------------------------------------------------- spectral (scale + tilt)


def _log_design(log_f: torch.Tensor, order: int) -> torch.Tensor:
    """``(f, order + 1)`` powers 0..order of ``log_f``."""
    return torch.stack([log_f**k for k in range(order + 1)], dim=-1)


class SpectralNormalise(nn.Module):
    """Per-sample PSD adaptation of whitened strain ``(batch, detector, time)``.

    One average PSD whitens every sample of a cache; when a detector's PSD drifts between
    samples in level *and shape* (``g2res simulate --psd-drift``: a scale and a spectral
    tilt; real strain from minute to minute) its whitened noise is no longer white. For
    each series this fits ``log(P(f) / P0(f)) = sum_k c_k log(f / f_ref)^k`` (``order``
    1: a scale and a power-law tilt) by least squares to the series' own PSD ``P``,
    against the PSD ``P0 = 2 / sample_rate * response(f)^2`` that unit-variance white
    noise has after the cache's zero-phase Butterworth bandpass, and divides the series'
    spectrum by ``sqrt(exp(fit))``.

    ``P`` is measured in ``bands`` equal frequency bands of the untapered interior:
    Hann-windowed ``segment``-s periodograms (half overlap: 7 segments of 2 s) are averaged
    over the frequencies of each band (efficient: a band holds tens of bins), then the
    median over the segments is taken (robust: a short glitch or a chirp sits in one or
    two segments, so neither is whitened away). Only frequencies where the bandpass passes
    >= ``min_response`` of the power are used; the fit is held constant beyond them. Noise
    of any drifted level and tilt comes out at unit variance (the level is known to ~3%
    from 2 s), a signal's SNR against the drifted noise is kept.

    ``fmin``, ``fmax`` (Hz), ``filter_order`` (None: a sharp band), ``window_alpha``
    (the Tukey taper of the cached series, whose ends are left out) as the cache's
    conditioning. The bias of the log of the median is measured once on seeded white
    noise (buffer ``log_bias``, deterministic).
    """

    def __init__(
        self,
        sample_rate: float = 2048.0,
        n_time: int = 4096,
        fmin: float = 20.0,
        fmax: float = 500.0,
        filter_order: int | None = 8,
        window_alpha: float = TAPER_ALPHA,
        order: int = 1,
        segment: float = 0.5,
        bands: int = 16,
        min_response: float = 0.9,
    ):
        super().__init__()
        if not 0 <= order < bands:
            raise ValueError(f"spectral normalisation: order {order} needs 0 <= order < bands "
                             f"({bands})")  # fmt: skip
        self.sample_rate, self.n_time = float(sample_rate), int(n_time)
        # The taper of the cached series covers window_alpha / 2 of each end.
        self.trim = int(math.ceil(0.5 * window_alpha * n_time))
        interior = n_time - 2 * self.trim
        self.nperseg = int(round(segment * sample_rate))
        self.step = self.nperseg // 2
        if interior < 2 * self.nperseg:
            raise ValueError(
                f"spectral normalisation: {interior} untapered samples hold fewer than two "
                f"{segment}-s segments"
            )
        f_w = torch.fft.rfftfreq(self.nperseg, d=1.0 / sample_rate, dtype=torch.float64)
        f_full = torch.fft.rfftfreq(n_time, d=1.0 / sample_rate, dtype=torch.float64)
        if filter_order is None:
            power = ((f_w >= fmin) & (f_w <= fmax)).to(torch.float64)
            df = sample_rate / self.nperseg  # Hann leakage reaches two bins past a sharp edge
            fit = (f_w >= fmin + 2 * df) & (f_w <= fmax - 2 * df)
        else:
            power = butterworth_response(f_w, fmin, fmax, filter_order) ** 2
            fit = power >= min_response
        fit &= f_w > 0
        if int(fit.sum()) < 2 * bands:
            raise ValueError(f"spectral normalisation: too few frequencies in {fmin}-{fmax} Hz "
                             f"for {bands} bands")  # fmt: skip
        lo, hi = float(f_w[fit].min()), float(f_w[fit].max())
        f_ref = math.sqrt(lo * hi)
        # Band k averages the fit frequencies between edges k and k + 1, equally spaced so
        # that every band holds as many bins (and the least-squares fit needs no weights).
        edges = torch.linspace(lo, hi, bands + 1, dtype=torch.float64)
        which = torch.bucketize(f_w, edges[1:-1], right=True)
        average = torch.zeros(f_w.numel(), bands, dtype=torch.float64)
        average[fit, which[fit]] = 1.0
        if bool((average.sum(0) == 0).any()):
            raise ValueError(
                f"spectral normalisation: a band of {fmin}-{fmax} Hz has no frequency; use "
                f"fewer than {bands} bands or longer segments"
            )
        average = average / average.sum(0, keepdim=True)
        expected = (2.0 / sample_rate) * power @ average  # (bands,) P0 averaged per band
        centre = torch.exp(torch.log(f_w.clamp_min(lo)) @ average)  # geometric band centres
        design = _log_design(torch.log(centre / f_ref), order)  # (bands, order + 1)
        full = _log_design(torch.log(f_full.clamp(lo, hi) / f_ref), order)  # (F, order + 1)
        win = torch.hann_window(self.nperseg, periodic=True, dtype=torch.float64)
        # One-sided periodogram normalisation, as Welch's (g2res.signal.psd.welch).
        norm = 2.0 / (sample_rate * float((win**2).sum()))
        self.register_buffer("window", win.float(), persistent=False)
        self.register_buffer("average", (average * norm).float(), persistent=False)
        self.register_buffer("log_expected", torch.log(expected).float(), persistent=False)
        self.register_buffer("pinv", torch.linalg.pinv(design).float(), persistent=False)
        self.register_buffer("design", full.float(), persistent=False)
        self.register_buffer("fit_mask", fit, persistent=False)
        self.register_buffer("log_bias", torch.zeros(()), persistent=False)
        g = torch.Generator().manual_seed(0)
        white = torch.randn(256, interior, generator=g)  # unit variance: PSD 2 / sample_rate
        self.log_bias = self._log_ratio(white, flat=True).mean()

    def _log_ratio(self, interior: torch.Tensor, flat: bool = False) -> torch.Tensor:
        """log(median over segments of the band-averaged periodogram / P0) (..., bands)."""
        seg = interior.float().unfold(-1, self.nperseg, self.step)  # (..., n_seg, nperseg)
        seg = seg - seg.mean(-1, keepdim=True)
        spec = torch.fft.rfft(seg * self.window)
        banded = (spec.real.square() + spec.imag.square()) @ self.average  # (..., n_seg, K)
        p = banded.median(dim=-2).values
        ref = math.log(2.0 / self.sample_rate) if flat else self.log_expected
        return torch.log(p.clamp_min(1e-30)) - ref

    def log_level(self, x: torch.Tensor) -> torch.Tensor:
        """Fitted ``log(P / P0)`` (..., time // 2 + 1) on the rfft grid of ``x`` (..., time)."""
        interior = x[..., self.trim : x.shape[-1] - self.trim] if self.trim else x
        r = self._log_ratio(interior.detach()) - self.log_bias
        coef = r @ self.pinv.T  # (..., order + 1)
        return coef @ self.design.T

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.n_time:
            raise ValueError(f"spectral normalisation built for {self.n_time} samples, got "
                             f"{x.shape[-1]}")  # fmt: skip
        scale = torch.exp(-0.5 * self.log_level(x)).to(x.dtype)
        spec = torch.fft.rfft(x, dim=-1) * scale
        return torch.fft.irfft(spec, n=self.n_time, dim=-1)
