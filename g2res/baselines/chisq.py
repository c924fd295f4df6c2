"""The Allen chi-squared veto and the re-weighted SNR (newSNR) of the matched filter.

Allen (2005, Phys. Rev. D 71, 062001), as PyCBC implements it
(``pycbc.vetoes.power_chisq``): the template's whitened band is cut into ``p``
frequency bins holding equal template power, and the complex SNR ``z`` at a lag is
split into the contributions ``z_i`` of the bins (``sum_i z_i = z``). With unit-norm
whitened templates and data whose noise has ``E|d~(f)|^2 = 2`` per frequency (the
normalisation of :class:`g2res.baselines.matched_filter.MatchedFilter`, where Re z and
Im z have unit variance)

    chisq = p * sum_i |z_i - z / p|^2 = p * sum_i |z_i|^2 - |z|^2.

A signal matching the template puts ``z / p`` into every bin, so it cancels and chisq is
chi-squared distributed with ``2p - 2`` degrees of freedom whatever its SNR; a glitch,
whose power sits in a few bins, gives ``chisq ~ (p - 1) |z|^2``. The reduced chisq is
``chisq / (2p - 2)``.

On the 0.5-Hz grid of a 2-s window the bins hold equal power only up to the power of one
frequency, and a low-frequency bin may hold just a few frequencies (a percent of the power
each), which would leave ``p A^2 sum_i (P_i - 1/p)^2`` of a loud signal of SNR ``A`` in the
chisq. We therefore use Allen's general form with each bin's actual template power share
``P_i`` (``sum_i P_i = 1``),

    chisq = sum_i |z_i - P_i z|^2 / P_i = sum_i |z_i|^2 / P_i - |z|^2,

which is the formula above when every ``P_i = 1/p``, keeps ``2p - 2`` degrees of freedom
in Gaussian noise and cancels a matching signal exactly (measured: chisq_r 0.98 +/- 0.26
over 900 SNR-15 detector signals, ``tests/baselines/test_chisq.py``).

PyCBC's re-weighted SNR (``pycbc.events.ranking.newsnr``, q = 6, n = 2) is

    rho_hat = rho / [(1 + chisq_r^3) / 2]^(1/6)   if chisq_r > 1, else rho.

``noise_power`` scales the expected noise (``E|d~|^2 = 2 noise_power``); the matched
filter leaves it at 1: its Tukey taper lowers the noise only where a template overlaps the
0.1-s ramps, and a signal whose chirp lies in the flat part sees unit noise power.

Network statistic with the veto (:func:`reweighted_network`): the lag of each template's
network peak is found by SNR exactly as without the veto (H1 lag ``t``, L1 and V1 at the
loudest lag within their light-travel windows of ``t``); chisq is evaluated at each
detector's lag there, every detector's SNR is re-weighted, and the network statistic is
the quadrature sum ``sum_d rho_hat_d^2`` (as the SNR statistic is the sum of ``|z_d|^2``;
PyCBC's coincidences rank by the quadrature sum of newSNRs too), then maximised over
templates. Evaluating chisq only at the SNR peak (as PyCBC does at its triggers) costs
one pass over the frequencies per template instead of ``p`` inverse FFTs. The price: the
lag is chosen before the veto, so a glitch louder (in the SNR statistic) than a coincident
signal in the same template's 2-s series hides that signal; it is vetoed, not looked past.

Shapes: data spectra ``d`` (batch, 3, f); template spectra ``u`` (T, 3, f) shared by the
batch or (batch, T, 3, f) per sample; lags (batch, T, 3) on a grid of ``length`` samples
(``n_samples * upsample``).
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "DEFAULT_BINS",
    "chisq_bin_index",
    "chisq_dof",
    "coincident_lags",
    "newsnr",
    "power_chisq",
    "power_chisq_series",
    "reweighted_network",
]

DEFAULT_BINS = 16


def chisq_dof(n_bins: int) -> int:
    """Degrees of freedom of the chisq of ``n_bins`` bins: 2p - 2."""
    if n_bins < 2:
        raise ValueError(f"the chi-squared veto needs at least 2 bins, got {n_bins}")
    return 2 * int(n_bins) - 2


def chisq_bin_index(u: torch.Tensor, n_bins: int = DEFAULT_BINS) -> torch.Tensor:
    """Bin (0 .. n_bins - 1) of every frequency of whitened template spectra ``u`` (..., f):
    bins of equal template power |u|^2, as ``pycbc.vetoes.power_chisq_bins``.

    A frequency belongs to bin ``floor(p * P_below / P_total)``, ``P_below`` the template
    power at lower frequencies; frequencies without template power contribute nothing
    wherever they fall. Returns int64 (..., f).
    """
    chisq_dof(n_bins)
    power = u.real.double().square() + u.imag.double().square()
    total = power.sum(-1, keepdim=True)
    if torch.any(total <= 0):
        raise ValueError("a template has no power in the analysis band")
    below = torch.cumsum(power, -1) - power
    return torch.clamp((below / total * n_bins).floor().long(), 0, n_bins - 1)


def _bin_sums(prod: torch.Tensor, bins: torch.Tensor, n_bins: int) -> torch.Tensor:
    """Sum ``prod`` (..., f) over the frequencies of each bin: (..., n_bins)."""
    out = torch.zeros((*prod.shape[:-1], n_bins), dtype=prod.dtype, device=prod.device)
    return out.scatter_add_(-1, bins.expand(prod.shape), prod)


def _bin_power(u: torch.Tensor, bins: torch.Tensor, n_bins: int) -> torch.Tensor:
    """Share P_i of the template power |u|^2 (..., f) in each bin: float64 (..., n_bins)."""
    power = u.real.double().square() + u.imag.double().square()
    share = _bin_sums(power, bins, n_bins)
    return share / share.sum(-1, keepdim=True)


def _chisq_from_bins(zi: torch.Tensor, share: torch.Tensor, noise_power: float) -> torch.Tensor:
    """sum_i |z_i|^2 / P_i - |z|^2 from bin SNRs ``zi`` (..., p) and bin shares ``share``
    (..., p) (empty bins left out), divided by ``noise_power``."""
    zi = zi.to(torch.complex128)
    z = zi.sum(-1)
    p_bin = zi.real.square() + zi.imag.square()
    weighted = torch.where(share > 0, p_bin / share.clamp(min=1e-300), 0.0).sum(-1)
    chisq = weighted - (z.real.square() + z.imag.square())
    return (chisq / noise_power).clamp(min=0.0)


def power_chisq(
    d: torch.Tensor,
    u: torch.Tensor,
    lag: torch.Tensor,
    length: int,
    n_bins: int = DEFAULT_BINS,
    bins: torch.Tensor | None = None,
    noise_power: float = 1.0,
) -> torch.Tensor:
    """Allen chisq (2p - 2 degrees of freedom) of every (sample, template, detector) at
    ``lag``.

    ``d`` (batch, 3, f) whitened data spectra (noise ``E|d|^2 = 2 * noise_power``), ``u``
    (T, 3, f) or (batch, T, 3, f) unit-norm whitened template spectra, ``lag`` (batch, T, 3)
    int64 sample index on the ``length``-sample lag grid of ``MatchedFilter.snr_series``
    (``z(t) = sum_k d_k u_k^* exp(2 pi i k t / length)``). ``bins`` from
    :func:`chisq_bin_index` of ``u`` (computed when not given). Returns float64
    (batch, T, 3).
    """
    if u.ndim == 3:
        u = u[None]
    bins = chisq_bin_index(u, n_bins) if bins is None else bins
    n_freq = d.shape[-1]
    k = torch.arange(n_freq, device=d.device)
    # Phase k * lag / length reduced modulo length in integers, so float32 keeps its digits.
    turns = (lag[..., None].long() * k) % int(length)
    angle = turns.double() * (2 * math.pi / length)
    phase = torch.polar(torch.ones_like(angle), angle)
    prod = (d[:, None] * u.conj()).to(torch.complex128) * phase
    zi = _bin_sums(prod, bins, n_bins)
    return _chisq_from_bins(zi, _bin_power(u, bins, n_bins), noise_power)


def power_chisq_series(
    d: torch.Tensor,
    u: torch.Tensor,
    length: int,
    n_bins: int = DEFAULT_BINS,
    noise_power: float = 1.0,
) -> torch.Tensor:
    """Allen chisq at every lag: float64 (batch, T, 3, length), by one inverse FFT per bin.

    Arguments as :func:`power_chisq`. ``n_bins`` times the cost of the SNR series: for
    tests and plots of single templates, not the bank search.
    """
    if u.ndim == 3:
        u = u[None]
    bins = chisq_bin_index(u, n_bins)
    prod = d[:, None] * u.conj()  # (b, T, 3, f)
    onehot = torch.nn.functional.one_hot(bins, n_bins).movedim(-1, -2)  # (.., p, f)
    zi = torch.fft.ifft(prod[..., None, :] * onehot, n=length, dim=-1) * length
    share = _bin_power(u, bins, n_bins)[..., None, :]
    return _chisq_from_bins(zi.movedim(-2, -1), share, noise_power)


def newsnr(
    snr: torch.Tensor, chisq_r: torch.Tensor, q: float = 6.0, n: float = 2.0
) -> torch.Tensor:
    """PyCBC's re-weighted SNR: ``snr / [(1 + chisq_r^(q/n)) / 2]^(1/q)`` where the reduced
    chisq ``chisq_r > 1``, else ``snr`` (q = 6, n = 2 as ``pycbc.events.ranking.newsnr``)."""
    snr = torch.as_tensor(snr)
    chisq_r = torch.as_tensor(chisq_r, dtype=snr.dtype if snr.is_floating_point() else None)
    factor = ((1.0 + chisq_r.clamp(min=1.0) ** (q / n)) / 2.0) ** (1.0 / q)
    return torch.where(chisq_r > 1.0, snr / factor, snr)


def coincident_lags(power: torch.Tensor, lag: torch.Tensor, pool: list[int]) -> torch.Tensor:
    """Per-detector lags of a network peak: (batch, T, 3) int64.

    ``power`` (batch, T, 3, n) |z|^2, ``lag`` (batch, T) the H1 lag of the peak, ``pool``
    the half-widths (samples) of the L1 and V1 windows: each of them sits at its loudest
    lag within ``lag +/- w`` (clipped to the series, as the max pool of the statistic).
    """
    n = power.shape[-1]
    out = [lag]
    for k, w in enumerate(pool, start=1):
        offsets = torch.arange(-w, w + 1, device=lag.device)
        idx = (lag[..., None] + offsets).clamp(0, n - 1)  # (b, T, 2w + 1)
        best = power[:, :, k].gather(-1, idx).argmax(-1, keepdim=True)
        out.append(idx.gather(-1, best)[..., 0])
    return torch.stack(out, -1)


def reweighted_network(
    d: torch.Tensor,
    u: torch.Tensor,
    z: torch.Tensor,
    lag: torch.Tensor,
    pool: list[int],
    n_bins: int = DEFAULT_BINS,
    noise_power: float = 1.0,
) -> dict[str, torch.Tensor]:
    """The network statistic from re-weighted SNRs at each template's network peak.

    ``d``, ``u`` as :func:`power_chisq`; ``z`` (batch, T, 3, length) the complex SNR series
    of ``MatchedFilter.snr_series``; ``lag`` (batch, T) the H1 lag of each template's peak
    (``MatchedFilter.network``); ``pool`` the L1/V1 window half-widths (samples). Returns
    (float64): ``stat`` (batch, T) ``sum_d newsnr_d^2``, and per detector (batch, T, 3)
    ``snr`` |z|, ``chisq_r`` (reduced) and ``newsnr`` at the detectors' lags.
    """
    length = z.shape[-1]
    power = z.real.square() + z.imag.square()
    lags = coincident_lags(power, lag, pool)
    snr = power.gather(-1, lags[..., None])[..., 0].double().sqrt()
    chisq_r = power_chisq(d, u, lags, length, n_bins, noise_power=noise_power) / chisq_dof(n_bins)
    rho_hat = newsnr(snr, chisq_r)
    return {"stat": rho_hat.square().sum(-1), "snr": snr, "chisq_r": chisq_r, "newsnr": rho_hat}


def filter_vetoed(mf, d: torch.Tensor, u: torch.Tensor, k: torch.Tensor, chunk: int, n_bins: int):
    """:meth:`~g2res.baselines.matched_filter.MatchedFilter.filter`'s template loop ranking
    by the network re-weighted SNR (it needs each chunk's complex SNR series ``z`` and
    template spectra ``u``) for the filter ``mf``, data spectra ``d`` (batch, 3, f) and
    correlation kernels ``k`` of ``u``.

    Returns, per sample (batch,): the network statistic, template index and H1 lag of the
    best re-weighted template, its per-detector |z|^2 (batch, 3), ``{"chisq_r", "newsnr"}``
    (batch, 3) there, the best network newSNR^2, and every template's network newSNR^2
    (batch, T) (for :func:`g2res.baselines.marginal.marginal_statistic`).
    """
    from g2res.signal.matched import complex_snr

    n, dev = d.shape[0], mf.device
    rows = torch.arange(n, device=dev)
    best = torch.full((n,), -1.0, device=dev)
    index = torch.zeros(n, dtype=torch.long, device=dev)
    lag = torch.zeros(n, dtype=torch.long, device=dev)
    dets = torch.zeros((n, 3), device=dev)
    rank = torch.full((n,), -1.0, dtype=torch.float64, device=dev)
    veto = {key: torch.zeros((n, 3), dtype=torch.float64) for key in ("chisq_r", "newsnr")}
    ranks = []
    with torch.no_grad():
        for s in range(0, k.shape[-4], chunk):
            z = complex_snr(d, k[..., s : s + chunk, :, :, :], mf.length)
            stat, lags, per = mf.network(z)
            rw = reweighted_network(d, u[..., s : s + chunk, :, :], z, lags, mf.pool, n_bins)
            value, j = rw["stat"].max(1)
            ranks.append(rw["stat"])
            better = value > rank
            rank = torch.where(better, value, rank)
            for key in veto:
                veto[key] = torch.where(better[:, None].cpu(), rw[key][rows, j].cpu(), veto[key])
            best = torch.where(better, stat[rows, j], best)
            index = torch.where(better, j + s, index)
            lag = torch.where(better, lags[rows, j], lag)
            dets = torch.where(better[:, None], per[rows, j], dets)
    return best, index, lag, dets, veto, rank, torch.cat(ranks, 1)
