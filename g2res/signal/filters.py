"""Zero-phase Butterworth band/high/low-pass filters applied in the frequency domain.

The response is the magnitude of a forward-backward (``filtfilt``) analog
Butterworth filter of order ``order``: no phase shift, and ``|H|^2 = 1/2`` at each
corner (-6 dB). It is applied by one real FFT of the (tapered) data, so the
only ringing is what the filter's smooth, short impulse response and the data
taper allow (no brick-wall sinc tails).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["butterworth_response", "bandpass", "highpass", "lowpass", "Bandpass"]


def butterworth_response(
    frequencies: torch.Tensor,
    fmin: float | None = None,
    fmax: float | None = None,
    order: int = 8,
) -> torch.Tensor:
    """Zero-phase amplitude response at ``frequencies`` (Hz), float64, same shape.

    ``fmin`` (Hz) sets the high-pass corner, ``fmax`` (Hz) the low-pass corner;
    either may be None. Equals ``|H_hp(f)|^2 * |H_lp(f)|^2`` of analog Butterworth
    filters of order ``order``, i.e. one pass forward and one backward.
    """
    f = torch.as_tensor(frequencies, dtype=torch.float64).abs()
    if order < 1:
        raise ValueError(f"filter order must be >= 1, got {order}")
    if fmin is not None and fmax is not None and not 0 < fmin < fmax:
        raise ValueError(f"bandpass needs 0 < fmin < fmax, got fmin={fmin}, fmax={fmax}")
    response = torch.ones_like(f)
    if fmin is not None:
        if fmin <= 0:
            raise ValueError(f"high-pass corner must be positive, got fmin={fmin}")
        # (fmin/f)^(2n) as f^(2n)/(f^(2n)+fmin^(2n)) so that f = 0 gives exactly 0.
        ratio = (f / fmin) ** (2 * order)
        response = response * ratio / (1.0 + ratio)
    if fmax is not None:
        if fmax <= 0:
            raise ValueError(f"low-pass corner must be positive, got fmax={fmax}")
        response = response / (1.0 + (f / fmax) ** (2 * order))
    return response


def _filter(x, sample_rate, fmin, fmax, order) -> torch.Tensor:
    x = torch.as_tensor(x)
    n = x.shape[-1]
    freqs = torch.fft.rfftfreq(n, d=1.0 / sample_rate, dtype=torch.float64, device=x.device)
    _check_nyquist(sample_rate, fmin, fmax)
    response = butterworth_response(freqs, fmin, fmax, order).to(_real_dtype(x))
    return torch.fft.irfft(torch.fft.rfft(x.to(_real_dtype(x))) * response, n=n)


def _real_dtype(x: torch.Tensor) -> torch.dtype:
    # float16 FFTs are CUDA-only and lossy; compute in float32 at least.
    return x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32


def _check_nyquist(sample_rate, fmin, fmax) -> None:
    nyquist = sample_rate / 2
    for name, value in (("fmin", fmin), ("fmax", fmax)):
        if value is not None and value >= nyquist:
            raise ValueError(f"{name}={value} Hz is not below the Nyquist frequency {nyquist} Hz")


def bandpass(
    x: torch.Tensor, sample_rate: float, fmin: float = 20.0, fmax: float = 500.0, order: int = 8
) -> torch.Tensor:
    """Zero-phase bandpass of ``(..., time)`` data (Hz corners), circular in time.

    Taper or pad the data first when its ends do not meet (see ``Whiten``).
    """
    return _filter(x, sample_rate, fmin, fmax, order)


def highpass(x: torch.Tensor, sample_rate: float, fmin: float, order: int = 8) -> torch.Tensor:
    """Zero-phase high-pass above ``fmin`` Hz of ``(..., time)`` data."""
    return _filter(x, sample_rate, fmin, None, order)


def lowpass(x: torch.Tensor, sample_rate: float, fmax: float, order: int = 8) -> torch.Tensor:
    """Zero-phase low-pass below ``fmax`` Hz of ``(..., time)`` data."""
    return _filter(x, sample_rate, None, fmax, order)


class Bandpass(nn.Module):
    """:func:`bandpass` for ``(batch, detector, n_time)`` data; the response is a buffer.

    Either corner may be None (high-pass or low-pass only).
    """

    def __init__(
        self,
        sample_rate: float,
        n_time: int,
        fmin: float | None = 20.0,
        fmax: float | None = 500.0,
        order: int = 8,
    ):
        super().__init__()
        _check_nyquist(sample_rate, fmin, fmax)
        self.sample_rate, self.n_time = float(sample_rate), int(n_time)
        self.fmin, self.fmax, self.order = fmin, fmax, order
        freqs = torch.fft.rfftfreq(n_time, d=1.0 / sample_rate, dtype=torch.float64)
        self.register_buffer("response", butterworth_response(freqs, fmin, fmax, order))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.n_time:
            raise ValueError(f"Bandpass built for {self.n_time} samples, got {x.shape[-1]}")
        dtype = _real_dtype(x)
        spec = torch.fft.rfft(x.to(dtype))
        return torch.fft.irfft(spec * self.response.to(dtype), n=self.n_time)

    def extra_repr(self) -> str:
        return (
            f"sample_rate={self.sample_rate}, fmin={self.fmin}, fmax={self.fmax}, "
            f"order={self.order}"
        )
