"""The matched filter's correlation as it was before the batched core
(:mod:`g2res.signal.matched`): a complex inverse FFT of the zero-padded one-sided
product (the analytic signal) and ``max_pool1d`` coincidence windows. Kept as the
reference the tests and ``benchmarks/matched_filter.py`` compare the fast path with.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from g2res import DETECTORS


def reference_snr_series(mf, d: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Complex SNR (batch, templates, 3, lags) of data spectra ``d`` (batch, 3, f) with
    unit-norm template spectra ``u`` (templates, 3, f) or (batch, templates, 3, f)."""
    if u.ndim == 3:
        u = u[None]
    prod = d[:, None] * u.conj()
    return torch.fft.ifft(prod, n=mf.length, dim=-1) * mf.length


def reference_network(mf, z: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """:meth:`MatchedFilter.network` with ``max_pool1d`` windows."""
    p = z.real.square() + z.imag.square()
    b, t, _, n = p.shape
    pooled = [p[:, :, 0]]
    for k, w in enumerate(mf.pool, start=1):
        q = p[:, :, k].reshape(b * t, 1, n)
        pooled.append(F.max_pool1d(q, 2 * w + 1, stride=1, padding=w).reshape(b, t, n))
    pooled = torch.stack(pooled, 2)
    total = pooled.sum(2)
    stat, lag = total.max(-1)
    per_det = pooled.gather(-1, lag[:, :, None, None].expand(b, t, 3, 1))[..., 0]
    return stat, lag, per_det


def reference_filter(mf, x: np.ndarray, u: torch.Tensor, template_batch: int = 64) -> dict:
    """:meth:`MatchedFilter.filter` as it was: same inputs, same outputs."""
    d = mf.data_spectra(x)
    n = d.shape[0]
    best = torch.full((n,), -1.0, device=mf.device)
    index = torch.zeros(n, dtype=torch.long, device=mf.device)
    lag = torch.zeros(n, dtype=torch.long, device=mf.device)
    dets = torch.zeros((n, 3), device=mf.device)
    with torch.no_grad():
        for s in range(0, u.shape[-3], template_batch):
            chunk = u[..., s : s + template_batch, :, :]
            stat, lags, per = reference_network(mf, reference_snr_series(mf, d, chunk))
            value, j = stat.max(1)
            better = value > best
            rows = torch.arange(n, device=mf.device)
            best = torch.where(better, value, best)
            index = torch.where(better, j + s, index)
            lag = torch.where(better, lags[rows, j], lag)
            dets = torch.where(better[:, None], per[rows, j], dets)
    out = {
        "snr": best.clamp(min=0).sqrt().cpu().numpy().astype(np.float64),
        "template": index.cpu().numpy(),
        "time": lag.cpu().numpy() / (mf.sample_rate * mf.upsample),
    }
    for k, det in enumerate(DETECTORS):
        out[f"snr_{det}"] = dets[:, k].clamp(min=0).sqrt().cpu().numpy().astype(np.float64)
    return out
