"""Batched matched-filter correlation: complex SNR time series of whitened data with a
bank of whitened templates, by FFT, for all lags, templates and detectors at once.

For whitened data ``x`` (unit-variance noise) and a whitened template ``u`` of unit
norm (``sum u^2 = 1``), the complex SNR at lag ``t`` samples is

    z(t) = sum_k x[k + t] u[k] + i sum_k x[k + t] H[u][k]

(``H`` the Hilbert transform; circular lags), so ``Re z`` and ``Im z`` of Gaussian
noise each have unit variance and ``x = noise + rho * roll(u, t0)`` gives
``|z(t0)| ~ rho``. With ``X = rfft(x)`` and ``U = rfft(u)`` both quadratures are real
inverse FFTs of one product, ``Re z = irfft(X conj(U))`` and
``Im z = irfft(-i X conj(U))``: the kernels ``[conj(U), -i conj(U)]`` are formed once
per bank (:func:`correlation_kernels`) and a batch costs one complex multiply and one
batched ``irfft`` per (sample, template, detector, quadrature). A real inverse FFT
of the one-sided product is ~8x faster on CPU than the complex inverse FFT of the
zero-padded product (the analytic-signal route), and gives the same ``z`` except for
the DC and Nyquist bins, which have no quadrature and are left out (the whitened,
bandpassed data have no power there).

Everything runs in float32 on the tensors' device, outside autocast (half-precision
FFTs lose the SNR). Templates are processed in chunks sized to a memory budget
(:func:`template_chunk`); there is no loop over single templates.
"""

from __future__ import annotations

import torch

__all__ = [
    "CHUNK_BYTES",
    "correlation_kernels",
    "snr_quadratures",
    "snr_power",
    "complex_snr",
    "template_chunk",
    "sliding_max",
    "unit_spectra",
]

# Bytes of (product + output) per chunk: ~1,000 irfft rows of 4096 samples stay in a
# CPU's caches best (benchmarks/matched_filter.py measures the throughput per chunk).
CHUNK_BYTES = 16 * 2**20


def _no_autocast(device: torch.device):
    return torch.autocast(device_type=device.type, enabled=False)


def unit_spectra(templates: torch.Tensor) -> torch.Tensor:
    """rFFT of whitened templates ``(..., n_time)`` scaled to unit norm: ``(..., f)``
    complex64 with ``(2 / n_time) * sum |U|^2 = 1`` over 0 < f < Nyquist (so the
    template ``irfft`` has ``sum u^2 = 1`` once DC and Nyquist are dropped)."""
    n_time = templates.shape[-1]
    with _no_autocast(templates.device):
        spec = torch.fft.rfft(templates.float(), dim=-1)
        spec[..., 0] = 0
        if n_time % 2 == 0:
            spec[..., -1] = 0
        norm2 = spec.real.square().sum(-1) + spec.imag.square().sum(-1)
        if bool((norm2 <= 0).any()):
            raise ValueError("a template has no power between DC and Nyquist")
        return spec * (n_time / (2.0 * norm2)).sqrt()[..., None]


def correlation_kernels(
    spectra: torch.Tensor, scale: float = 1.0, n_time: int | None = None
) -> torch.Tensor:
    """Kernels ``(..., 2, f)`` complex64 ``scale * [conj(U), -i conj(U)]`` of template
    spectra ``U`` ``(..., f)``, with DC (and Nyquist when ``n_time`` is even; default
    ``n_time = 2 (f - 1)``) set to 0.

    ``scale = 1`` for spectra from :func:`unit_spectra` and data ``rfft(x)``. Other
    conventions set ``scale`` so that ``irfft(d * kernel)`` is ``Re z``.
    """
    n_freq = spectra.shape[-1]
    n_time = 2 * (n_freq - 1) if n_time is None else int(n_time)
    with _no_autocast(spectra.device):
        k = spectra.to(torch.complex64).conj() * scale
        k = k.resolve_conj().clone()
        k[..., 0] = 0
        if n_time % 2 == 0 and n_time // 2 == n_freq - 1:
            k[..., -1] = 0
        return torch.stack([k, k * -1j], dim=-2)


def template_chunk(
    n_batch: int,
    n_detectors: int,
    n_freq: int,
    n_lags: int,
    budget: int = CHUNK_BYTES,
    limit: int | None = None,
) -> int:
    """Templates per chunk so that one chunk's product ``(b, T, d, 2, f)`` complex64 and
    output ``(b, T, d, 2, n_lags)`` float32 fit ``budget`` bytes (at least 1; at most
    ``limit`` when given)."""
    per_template = n_batch * n_detectors * 2 * (8 * n_freq + 4 * n_lags)
    chunk = max(1, int(budget) // max(per_template, 1))
    return min(chunk, int(limit)) if limit else chunk


def snr_quadratures(data: torch.Tensor, kernels: torch.Tensor, n_lags: int) -> torch.Tensor:
    """``Re z`` and ``Im z`` ``(b, T, d, 2, n_lags)`` float32 of data spectra ``data``
    ``(b, d, f)`` (``rfft`` of whitened data) with ``kernels`` ``(T, d, 2, f)`` shared by
    the batch or ``(b, T, d, 2, f)`` per sample (:func:`correlation_kernels`).

    ``n_lags`` is the length of the inverse FFT: the data length, or a multiple of it
    to interpolate the lags (the spectra are zero-padded).
    """
    with _no_autocast(data.device):
        prod = data.to(torch.complex64)[:, None, :, None, :] * kernels
        return torch.fft.irfft(prod, n=n_lags, dim=-1)


def snr_power(quadratures: torch.Tensor) -> torch.Tensor:
    """``|z|^2`` ``(..., n_lags)`` of quadratures ``(..., 2, n_lags)``."""
    re, im = quadratures[..., 0, :], quadratures[..., 1, :]
    return torch.addcmul(re.square(), im, im)  # one temporary fewer than square().sum()


def complex_snr(data: torch.Tensor, kernels: torch.Tensor, n_lags: int) -> torch.Tensor:
    """Complex SNR ``(b, T, d, n_lags)`` complex64 (see :func:`snr_quadratures`)."""
    q = snr_quadratures(data, kernels, n_lags)
    return torch.complex(q[..., 0, :], q[..., 1, :])


def sliding_max(x: torch.Tensor, half_width: int) -> torch.Tensor:
    """Maximum of ``x`` ``(..., n)`` over ``[t - half_width, t + half_width]`` (clipped at
    the ends): the same values as ``max_pool1d(x, 2 w + 1, stride=1, padding=w)`` in
    ~log2(2 w + 1) elementwise maxima instead of 2 w + 1 comparisons per sample."""
    w = int(half_width)
    if w <= 0:
        return x
    n, width = x.shape[-1], 2 * w + 1
    q = torch.nn.functional.pad(x, (w, w), value=float("-inf"))
    span = 1
    while 2 * span <= width:  # q[i] = max over [i, i + 2 span)
        q = torch.maximum(q[..., :-span], q[..., span:])
        span *= 2
    return torch.maximum(q[..., :n], q[..., width - span : width - span + n])
