"""Coherent network SNR: the complex SNRs of three detectors projected onto the signal space
of each sky direction, maximised over a sky grid and the H1 time.

A signal from sky direction n reaches detector d at ``tau_d(n)`` and its complex SNR there
(the same whitened template in every detector, unit norm per detector, template sigma
``sigma_d``) is ``z_d = sigma_d (F+_d(n, psi) A+ + Fx_d(n, psi) Ax)`` with complex
amplitudes ``A+``, ``Ax`` that carry distance, inclination and phase. For any ``psi`` the
vector ``z`` (3,) lies in the complex span of the real vectors ``sigma * F+(n, 0)`` and
``sigma * Fx(n, 0)``, so the maximum-likelihood statistic over ``A+``, ``Ax`` is the
squared norm of ``z`` projected on that plane,

    rho_coh^2(t, n) = z(t)^H P(n) z(t),   z(t) = (z_H1(t), z_L1(t + dt_L1(n)), z_V1(t + dt_V1(n))),

with ``P = M (M^T M)^-1 M^T``, ``M = [sigma * F+, sigma * Fx]`` (3, 2) and ``dt`` the
arrival delays relative to H1. In Gaussian noise ``rho_coh^2`` is chi-squared with 4
degrees of freedom (the incoherent ``sum |z_d|^2`` has 6) and the rest,
``rho_null^2 = |z|^2 - rho_coh^2`` (2 degrees of freedom), is the null stream: a signal
puts nothing there. With three detectors it is no glitch veto: for directions on a curve
of the sky the signal plane holds the H1 axis, so a glitch in H1 alone is consistent
there. Antenna patterns and light-travel delays are the detectors' geometry (lal), not
anything about the data set.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from g2res import DETECTORS

__all__ = ["SkyGrid", "sky_grid", "coherent_snr", "HALF_WIDTH"]

HALF_WIDTH = 0.01  # s: H1 times searched either side of the incoherent peak
_GPS = 1_000_000_000.0  # any epoch: an isotropic grid covers every Earth-fixed direction


def _fibonacci_sphere(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Right ascension and declination (n,) rad of ``n`` near-uniform points on the sphere."""
    k = np.arange(n) + 0.5
    dec = np.arcsin(1.0 - 2.0 * k / n)
    ra = np.mod(np.pi * (1.0 + 5.0**0.5) * k, 2.0 * np.pi)
    return ra, dec


def _frame(ra: np.ndarray, dec: np.ndarray, gps: float) -> tuple[np.ndarray, ...]:
    """Earth-fixed unit vectors (n, 3) of directions ``ra``, ``dec`` at ``gps``: the wave
    frame X, Y at polarisation 0 and the direction towards the source."""
    import lal

    gmst = lal.GreenwichMeanSiderealTime(lal.LIGOTimeGPS(gps))
    gha = gmst - np.asarray(ra, dtype=np.float64)
    dec = np.asarray(dec, dtype=np.float64)
    cg, sg, cd, sd = np.cos(gha), np.sin(gha), np.cos(dec), np.sin(dec)
    # psi = 0: X = (-sin gha, -cos gha, 0), Y = (-cos gha sin dec, sin gha sin dec, cos dec)
    x = np.stack([-sg, -cg, np.zeros_like(gha)], -1)
    y = np.stack([-cg * sd, sg * sd, cd], -1)
    return x, y, np.stack([cd * cg, -cd * sg, sd], -1)


def antenna_and_delays(
    ra: np.ndarray, dec: np.ndarray, gps: float = _GPS, detectors=DETECTORS
) -> tuple[np.ndarray, np.ndarray]:
    """Antenna patterns (n, 3, 2) (F+, Fx at polarisation angle 0) and arrival delays
    (n, 3) s relative to the geocentre of directions ``ra``, ``dec`` (n,) rad at ``gps``,
    vectorised from lal's detector tensors and positions (the formulas of
    ``XLALComputeDetAMResponse`` and ``XLALTimeDelayFromEarthCenter``)."""
    import lal

    x, y, source = _frame(ra, dec, gps)
    fp, fx, tau = [], [], []
    for name in detectors:
        det = lal.cached_detector_by_prefix[name]
        d = np.asarray(det.response, dtype=np.float64)
        fp.append(np.einsum("ni,ij,nj->n", x, d, x) - np.einsum("ni,ij,nj->n", y, d, y))
        fx.append(np.einsum("ni,ij,nj->n", x, d, y) + np.einsum("ni,ij,nj->n", y, d, x))
        tau.append(-(source @ np.asarray(det.location, dtype=np.float64)) / lal.C_SI)
    antenna = np.stack([np.stack(fp, -1), np.stack(fx, -1)], -1)
    return antenna, np.stack(tau, -1)


@dataclass(frozen=True)
class SkyGrid:
    """Sky directions distinct at one lag resolution.

    ``lags`` (S, 2) int: arrival delay of L1 and V1 after H1 in lags; ``antenna`` (S, 3, 2)
    float: F+ and Fx of H1, L1, V1 at polarisation 0; ``ra``, ``dec`` (S,) rad (at
    :data:`_GPS`); ``rate`` Hz the lag rate.
    """

    lags: np.ndarray
    antenna: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    rate: float

    def __len__(self) -> int:
        return len(self.lags)


@lru_cache(maxsize=4)
def sky_grid(rate: float, n_points: int = 100_000) -> SkyGrid:
    """The sky grid for lags at ``rate`` Hz: ``n_points`` near-uniform directions (spacing
    ~0.6 lag of the longest baseline at 2048 Hz for the default), one kept per distinct
    (L1 lag, V1 lag, side of the detectors' plane): the two sides share delays but not
    antenna patterns."""
    ra, dec = _fibonacci_sphere(int(n_points))
    antenna, tau = antenna_and_delays(ra, dec)
    lags = np.rint((tau[:, 1:] - tau[:, :1]) * float(rate)).astype(np.int64)
    import lal

    loc = [np.asarray(lal.cached_detector_by_prefix[d].location, float) for d in DETECTORS]
    normal = np.cross(loc[1] - loc[0], loc[2] - loc[0])
    side = (_frame(ra, dec, _GPS)[2] @ normal > 0).astype(np.int64)
    key = np.column_stack([lags, side])
    _, keep = np.unique(key, axis=0, return_index=True)
    keep = np.sort(keep)
    return SkyGrid(lags[keep], antenna[keep], ra[keep], dec[keep], float(rate))


def projections(sigma: torch.Tensor, antenna: torch.Tensor) -> torch.Tensor:
    """Projectors ``P`` (..., S, 3, 3) onto span(sigma * F+, sigma * Fx) for template sigmas
    ``sigma`` (..., 3) and antenna patterns (S, 3, 2)."""
    m = sigma[..., None, :, None] * antenna  # (..., S, 3, 2)
    gram = m.transpose(-1, -2) @ m  # (..., S, 2, 2)
    # A tiny ridge keeps directions where F+ and Fx are nearly parallel finite.
    ridge = 1e-9 * gram.diagonal(dim1=-2, dim2=-1).sum(-1)[..., None, None]
    eye = torch.eye(2, dtype=m.dtype, device=m.device)
    return m @ torch.linalg.solve(gram + ridge * eye, m.transpose(-1, -2))


def coherent_snr(
    z: torch.Tensor,
    peak: torch.Tensor,
    sigma: torch.Tensor,
    grid: SkyGrid,
    half_width: int,
) -> dict[str, torch.Tensor]:
    """Coherent statistic of complex SNR series ``z`` (B, K, 3, L) (K candidate templates
    per sample, circular lags at ``grid.rate``) around H1 lags ``peak`` (B, K) +/-
    ``half_width`` lags, with template sigmas ``sigma`` (B, K, 3).

    Returns tensors (B, K): ``coh`` (rho_coh^2), ``null`` (rho_null^2 there), ``lag`` (H1
    lag of the maximum) and ``sky`` (index into ``grid``).
    """
    b, k, n_det, n_lags = z.shape
    if n_det != len(DETECTORS):
        raise ValueError(f"coherent SNR needs the 3 detectors {DETECTORS}, got {n_det}")
    device = z.device
    antenna = torch.as_tensor(grid.antenna, dtype=torch.float32, device=device)
    delays = torch.as_tensor(grid.lags, dtype=torch.long, device=device)  # (S, 2)
    reach = delays.abs().amax(0).tolist()  # largest |delay| of L1, V1 in lags
    width = 2 * half_width + 1
    out = {key: [] for key in ("coh", "null", "lag", "sky")}
    with torch.no_grad():
        for j in range(k):  # candidates one at a time: (B, S, W) fits memory
            p = projections(sigma[:, j].float(), antenna)  # (B, S, 3, 3)
            start = peak[:, j, None] - half_width  # (B, 1): first H1 lag searched
            zh = _window(z[:, j, 0], start, width, 0)  # (B, 1, W)
            # Every delay of a detector as one (B, A, W) table; the sky picks rows of it.
            shifted, pick = [], []
            for det in (1, 2):
                r = reach[det - 1]
                shifted.append(_window(z[:, j, det], start - r, width, 2 * r))  # (B, A, W)
                pick.append(delays[:, det - 1] + r)
            zl, zv = (t.index_select(1, i) for t, i in zip(shifted, pick))  # (B, S, W)
            power = [zh.real.square() + zh.imag.square()] + [
                (t.real.square() + t.imag.square()).index_select(1, i)
                for t, i in zip(shifted, pick)
            ]
            cross_hl = (zh.conj() * shifted[0]).real.index_select(1, pick[0])
            cross_hv = (zh.conj() * shifted[1]).real.index_select(1, pick[1])
            cross_lv = zl.real * zv.real + zl.imag * zv.imag
            diag = [p[:, :, i, i, None] for i in range(3)]
            coh = diag[0] * power[0] + diag[1] * power[1] + diag[2] * power[2]
            coh += 2.0 * p[:, :, 0, 1, None] * cross_hl
            coh += 2.0 * p[:, :, 0, 2, None] * cross_hv
            coh += 2.0 * p[:, :, 1, 2, None] * cross_lv
            best, where = coh.reshape(b, -1).max(-1)
            sky, w = where // width, where % width
            total = power[0][:, 0, :].gather(-1, w[:, None])[:, 0]
            for pw in power[1:]:
                total = total + pw.reshape(b, -1).gather(-1, where[:, None])[:, 0]
            out["coh"].append(best)
            out["null"].append(total - best)
            out["lag"].append(torch.remainder(start[:, 0] + w, n_lags))
            out["sky"].append(sky)
    return {key: torch.stack(v, 1) for key, v in out.items()}


def _window(series: torch.Tensor, start: torch.Tensor, width: int, extra: int) -> torch.Tensor:
    """Windows (B, extra + 1, width) of circular ``series`` (B, L): row ``a`` holds lags
    ``start + a + [0, width)`` (``start`` (B, 1))."""
    n_lags = series.shape[-1]
    idx = torch.remainder(start + torch.arange(width + extra, device=series.device), n_lags)
    return series.gather(-1, idx).unfold(-1, width, 1)


def search_best_templates(mf, d, u, sigma, stat: torch.Tensor, lag: torch.Tensor, k: int) -> dict:
    """The coherent search of :meth:`MatchedFilter.filter` (``mf``) over the ``k`` best
    templates of each sample: data spectra ``d`` (batch, 3, f), template spectra ``u``
    (T, 3, f) and sigmas (T, 3), ``stat`` and ``lag`` (batch, T) the templates' incoherent
    statistics and H1 peak lags. Returns numpy (batch,) ``coh_snr``, ``null_snr``,
    ``coh_template`` and ``coh_time`` (s, H1) of the best of them."""
    from g2res.signal.matched import complex_snr

    rate = mf.sample_rate * mf.upsample
    k = min(int(k), stat.shape[1])
    top = stat.topk(k, dim=1).indices  # (batch, k)
    with torch.no_grad():
        z = complex_snr(d, mf.kernels(u[top]), mf.length)  # (batch, k, 3, lags)
        sig = torch.as_tensor(np.asarray(sigma), dtype=torch.float32, device=mf.device)
        res = coherent_snr(z, lag.gather(1, top), sig[top], sky_grid(rate),
                           int(np.ceil(HALF_WIDTH * rate)))  # fmt: skip
    best, j = res["coh"].max(1)
    pick = lambda key: res[key].gather(1, j[:, None])[:, 0]  # noqa: E731
    return {
        "coh_snr": best.clamp(min=0).sqrt().cpu().numpy().astype(np.float64),
        "null_snr": pick("null").clamp(min=0).sqrt().cpu().numpy().astype(np.float64),
        "coh_template": top.gather(1, j[:, None])[:, 0].cpu().numpy(),
        "coh_time": pick("lag").cpu().numpy() / rate,
    }
