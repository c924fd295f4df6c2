"""Whitening by an ASD in the frequency domain, optionally fused with a bandpass.

For data ``x`` (strain) with one-sided noise PSD ``S(f)`` (strain^2/Hz)::

    whitened = irfft(rfft(x * window) / sqrt(S(f)) * sqrt(2 / sample_rate))

so Gaussian noise of PSD ``S`` becomes unit-variance white noise (one-sided PSD
``2 / sample_rate``) wherever the taper ``window`` is 1. The taper (Tukey by
default) makes the ends meet so the circular FFT does not ring; inside the
tapers the variance falls as ``window**2``. In these units the squared norm of a
whitened noise-free signal is its optimal SNR^2.

The PSD may be given on any frequency grid (e.g. Welch with 0.5-s segments ->
2 Hz) and is interpolated to the data's rfft grid (``1 / duration`` Hz), held
constant beyond its ends; the DC bin is zeroed.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
from torch import nn

from g2res import TAPER_ALPHA
from g2res.signal.filters import _check_nyquist, _real_dtype, butterworth_response
from g2res.signal.psd import load_psd
from g2res.signal.windows import get_window

__all__ = [
    "interpolate_psd",
    "inverse_asd",
    "whitening_transfer",
    "whiten",
    "Whiten",
    "WhitenBandpass",
    "Conditioner",
]


def _interp(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """``np.interp`` along the last axis of ``fp`` (..., len(xp)); constant beyond the ends."""
    idx = torch.searchsorted(xp, x.clamp(xp[0], xp[-1])).clamp(1, xp.numel() - 1)
    x0, x1 = xp[idx - 1], xp[idx]
    t = ((x.clamp(xp[0], xp[-1]) - x0) / (x1 - x0)).clamp(0.0, 1.0)
    return fp[..., idx - 1] * (1 - t) + fp[..., idx] * t


def interpolate_psd(
    frequencies,
    psd,
    n_time: int,
    sample_rate: float,
    method: str = "linear",
) -> torch.Tensor:
    """PSD ``(..., f)`` given at ``frequencies`` (Hz) on the rfft grid of ``n_time`` samples.

    ``method``: ``linear`` (in PSD and frequency, as gwpy) or ``loglog`` (linear in
    log PSD vs log frequency; good for steep curves on coarse grids). Values
    beyond the given range are held at the edge values. Returns float64
    ``(..., n_time // 2 + 1)``.
    """
    xp = torch.as_tensor(np.asarray(frequencies, dtype=np.float64))
    fp = torch.as_tensor(psd, dtype=torch.float64)
    xp = xp.to(fp.device)
    if xp.ndim != 1 or fp.shape[-1] != xp.numel() or xp.numel() < 2:
        raise ValueError(f"PSD of shape {tuple(fp.shape)} does not fit {xp.numel()} frequencies")
    f = torch.fft.rfftfreq(n_time, d=1.0 / sample_rate, dtype=torch.float64, device=fp.device)
    if method == "linear":
        return _interp(f, xp, fp)
    if method == "loglog":
        keep = xp > 0
        xp, fp = xp[keep], fp[..., keep]
        tiny = torch.finfo(torch.float64).tiny
        logp = torch.log(fp.clamp_min(tiny))
        fl = torch.log(f.clamp_min(float(f[1]) if f.numel() > 1 else 1.0))
        return torch.exp(_interp(fl, torch.log(xp), logp))
    raise ValueError(f"unknown PSD interpolation {method!r}: use 'linear' or 'loglog'")


def inverse_asd(
    frequencies,
    psd,
    n_time: int,
    sample_rate: float,
    method: str = "linear",
    fduration: float | None = None,
) -> torch.Tensor:
    """``1 / sqrt(PSD)`` (sqrt(Hz)/strain) on the rfft grid, float64 ``(..., n_time//2 + 1)``.

    Bins where the PSD is zero, and DC, are set to 0. ``fduration`` (s), when
    given, truncates the whitening filter's impulse response to that length with
    a Hann taper (as gwpy/ml4gw), limiting how far whitening spreads a glitch.
    """
    p = interpolate_psd(frequencies, psd, n_time, sample_rate, method)
    inv = torch.where(p > 0, p.clamp_min(torch.finfo(torch.float64).tiny).rsqrt(), 0.0)
    inv[..., 0] = 0.0
    if fduration is not None:
        ntaps = int(round(fduration * sample_rate))
        if not 2 <= ntaps <= n_time:
            raise ValueError(f"fduration={fduration} s must span 2..{n_time} samples")
        # Zero-phase impulse response centred on t=0 (wrapped); keep |t| < fduration/2.
        q = torch.fft.irfft(inv, n=n_time)
        half = ntaps // 2
        taper = get_window("hann", 2 * half, dtype=torch.float64, device=q.device)
        mask = torch.zeros(n_time, dtype=torch.float64, device=q.device)
        mask[:half] = taper[half:]
        mask[n_time - half :] = taper[:half]
        inv = torch.fft.rfft(q * mask).abs()
        inv[..., 0] = 0.0
    return inv


def whitening_transfer(
    frequencies,
    psd,
    n_time: int,
    sample_rate: float,
    fmin: float | None = None,
    fmax: float | None = None,
    order: int = 8,
    method: str = "linear",
    fduration: float | None = None,
) -> torch.Tensor:
    """Frequency-domain factor applied after ``rfft(x * window)``: float64 ``(..., f)``.

    ``inverse_asd * sqrt(2 / sample_rate)`` times the zero-phase Butterworth response
    when ``fmin``/``fmax`` (Hz) are given.
    """
    transfer = inverse_asd(frequencies, psd, n_time, sample_rate, method, fduration)
    transfer = transfer * math.sqrt(2.0 / sample_rate)
    if fmin is not None or fmax is not None:
        _check_nyquist(sample_rate, fmin, fmax)
        f = torch.fft.rfftfreq(n_time, 1.0 / sample_rate, dtype=torch.float64)
        transfer = transfer * butterworth_response(f, fmin, fmax, order).to(transfer.device)
    return transfer


def _apply(x: torch.Tensor, window: torch.Tensor, transfer: torch.Tensor) -> torch.Tensor:
    dtype = _real_dtype(x)
    spec = torch.fft.rfft(x.to(dtype) * window.to(dtype))
    # In place on the fresh spectrum: one (batch, detector, f) complex temporary fewer.
    return torch.fft.irfft(spec.mul_(transfer.to(dtype)), n=x.shape[-1])


def whiten(
    x: torch.Tensor,
    frequencies,
    psd,
    sample_rate: float,
    window: str = "tukey",
    window_alpha: float = TAPER_ALPHA,
    fmin: float | None = None,
    fmax: float | None = None,
    order: int = 8,
    method: str = "linear",
    fduration: float | None = None,
) -> torch.Tensor:
    """Whiten ``(..., detector, time)`` strain with a PSD ``(detector, f)`` or ``(f,)``.

    Optional zero-phase bandpass ``fmin``..``fmax`` Hz in the same FFT pass. Output
    has unit variance for noise of that PSD (away from the taper), dtype float32
    or float64 following ``x``.
    """
    x = torch.as_tensor(x)
    n = x.shape[-1]
    transfer = whitening_transfer(
        frequencies, psd, n, sample_rate, fmin, fmax, order, method, fduration
    ).to(x.device)
    win = get_window(window, n, window_alpha, device=x.device)
    return _apply(x, win, transfer)


class Whiten(nn.Module):
    """Whitening of ``(batch, detector, n_time)`` strain by a fixed PSD.

    Args:
        frequencies: ``(f,)`` Hz of the PSD.
        psd: ``(detector, f)`` or ``(f,)`` one-sided PSD, strain^2/Hz.
        sample_rate: Hz of the data to whiten.
        n_time: samples per series of the data to whiten.
        window, window_alpha: data taper (scipy name; Tukey shape parameter).
        method: PSD interpolation, ``linear`` or ``loglog``.
        fduration: s, optional truncation of the whitening filter.

    Buffers: ``window`` ``(n_time,)`` and ``transfer`` ``(detector or 1, n_time//2+1)``.
    """

    def __init__(
        self,
        frequencies,
        psd,
        sample_rate: float,
        n_time: int,
        window: str = "tukey",
        window_alpha: float = TAPER_ALPHA,
        method: str = "linear",
        fduration: float | None = None,
        *,
        fmin: float | None = None,
        fmax: float | None = None,
        order: int = 8,
    ):
        super().__init__()
        self.sample_rate, self.n_time = float(sample_rate), int(n_time)
        self.fmin, self.fmax, self.order = fmin, fmax, order
        transfer = whitening_transfer(
            frequencies, psd, n_time, sample_rate, fmin, fmax, order, method, fduration
        )
        if transfer.ndim == 1:
            transfer = transfer[None]
        self.register_buffer("transfer", transfer)
        self.register_buffer("window", get_window(window, n_time, window_alpha))

    @classmethod
    def from_file(cls, path: str | os.PathLike, sample_rate: float, n_time: int, **kwargs):
        """Build from a PSD file (see :func:`g2res.signal.psd.load_psd`)."""
        freqs, psd, _ = load_psd(path)
        return cls(freqs, psd, sample_rate, n_time, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.n_time:
            raise ValueError(
                f"{type(self).__name__} built for {self.n_time} samples, got {x.shape[-1]}"
            )
        if self.transfer.shape[0] not in (1, x.shape[-2]):
            raise ValueError(
                f"PSD has {self.transfer.shape[0]} detectors but the data has {x.shape[-2]}"
            )
        return _apply(x, self.window, self.transfer)

    def extra_repr(self) -> str:
        n_det = self.transfer.shape[0]
        return f"sample_rate={self.sample_rate}, n_time={self.n_time}, detectors={n_det}"


class WhitenBandpass(Whiten):
    """Whitening and a zero-phase bandpass ``fmin``..``fmax`` Hz in one FFT pass.

    What ``g2res preprocess`` applies; same arguments as :class:`Whiten` plus the
    corners (Hz) and Butterworth ``order``.
    """

    def __init__(
        self,
        frequencies,
        psd,
        sample_rate: float,
        n_time: int,
        fmin: float | None = 20.0,
        fmax: float | None = 500.0,
        order: int = 8,
        window: str = "tukey",
        window_alpha: float = TAPER_ALPHA,
        method: str = "linear",
        fduration: float | None = None,
    ):
        super().__init__(
            frequencies,
            psd,
            sample_rate,
            n_time,
            window,
            window_alpha,
            method,
            fduration,
            fmin=fmin,
            fmax=fmax,
            order=order,
        )

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, fmin={self.fmin}, fmax={self.fmax}, order={self.order}"


Conditioner = WhitenBandpass
