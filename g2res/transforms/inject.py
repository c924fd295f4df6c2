"""On-the-fly injection of simulated BBH signals into noise, batched on any device.

A training batch is built from a waveform pool (:mod:`g2res.data.pool`) and noise:

1. sky position (ra uniform, sin(dec) uniform), polarisation angle (uniform in
   [0, pi)), geocentre merger time (uniform in ``merger_window`` s) and network SNR
   (:class:`SNRSchedule`) are drawn per sample;
2. :class:`DetectorProjection` computes F+, Fx and the delays from the geocentre for
   H1, L1, V1 in torch from the lal detector tensors and positions (buffers);
3. :class:`SignalInjector` projects h+, hx on each detector in the frequency domain,
   moving the peak to ``merger_time + delay`` by a linear phase (any fraction of a
   sample), crops the 2-s window, conditions it exactly as ``g2res preprocess`` did
   the cache (Tukey taper, whitening by the cache's PSD, zero-phase bandpass; the
   :class:`g2res.signal.WhitenBandpass` module), and scales it so the whitened norm,
   sqrt(sum_t y^2) summed over detectors, equals the drawn network SNR. For Gaussian
   noise of the PSD this norm is the optimal SNR sqrt(4 df sum |h~|^2 / S) restricted
   to the taper and the pass band (a few % below the full-band value);
4. noise is :class:`CacheNoise` (label-0 training samples of the cache) or
   :class:`GaussianNoise` (coloured by the cache's PSD, conditioned the same way);
   with ``psd_sources``/``psd_tilt`` each sample's noise has a PSD of its own, and its
   signal's SNR is measured against it (:mod:`g2res.transforms.inject_psd`);
5. a fraction ``rate`` of the samples gets a signal (target 1).

Time slides on cached noise. Cached samples were tapered (Tukey) before whitening,
so a circular shift would move the quiet, tapered ends into the window and make noise
the network can tell apart. Instead each detector's row is taken from a different
label-0 sample (three distinct samples per injection), which is a time slide by
whole multiples of the 2-s window: far beyond the 10-27 ms light travel time, so the
noise is uncorrelated between detectors, yet every taper stays in place. Each row is
also time-reversed and sign-flipped with probability 1/2 (whitening and bandpass are
zero-phase and the taper symmetric, so both keep the noise statistics), giving
n^3 * 64 combinations of n noise samples: each batch is new noise.

Every random choice of batch ``step`` comes from a generator seeded by (seed, step),
so a run is reproducible and resumable and the same on CPU and GPU (up to rounding).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from g2res import DETECTORS, N_SAMPLES, SAMPLE_RATE, TAPER_ALPHA
from g2res.signal import WhitenBandpass
from g2res.transforms.inject_noise import CacheNoise, GaussianNoise
from g2res.transforms.inject_psd import InjectionPSDs, recolour
from g2res.transforms.projection import (
    GPS_REFERENCE,
    MAX_DELAY,
    OMEGA_EARTH,
    DetectorProjection,
    _gmst,
)

__all__ = [
    "DetectorProjection",
    "SNRSchedule",
    "SignalInjector",
    "CacheNoise",
    "GaussianNoise",
    "InjectionBatches",
    "InjectionPSDs",
    "draw_sources",
    "batch_rng",
    "MAX_DELAY",
]


class SNRSchedule:
    """Network SNR draws, optionally annealed from loud to faint (a curriculum).

    ``distribution``: ``uniform`` in [lo, hi], ``loguniform``, or ``volume`` (p ~ rho^-4,
    sources uniform in volume). With ``start`` = (lo0, hi0) and ``steps`` > 0 the range
    moves linearly from ``start`` at step 0 to ``snr_range`` at ``steps`` and stays there.
    """

    def __init__(
        self,
        snr_range: tuple[float, float] = (4.0, 20.0),
        distribution: str = "uniform",
        start: tuple[float, float] | None = None,
        steps: int = 0,
    ):
        if distribution not in ("uniform", "loguniform", "volume"):
            raise ValueError(
                f"unknown SNR distribution {distribution!r}: use uniform, loguniform or volume"
            )
        for rng_ in (snr_range, start):
            if rng_ is not None and not 0 < rng_[0] <= rng_[1]:
                raise ValueError(f"SNR range {tuple(rng_)}: need 0 < MIN <= MAX")
        if steps < 0:
            raise ValueError(f"curriculum steps={steps}: need >= 0")
        self.snr_range = tuple(float(v) for v in snr_range)
        self.distribution = distribution
        self.start = None if start is None else tuple(float(v) for v in start)
        self.steps = int(steps)

    def range_at(self, step: int) -> tuple[float, float]:
        """(lo, hi) of the network SNR at training step ``step``."""
        if self.start is None or self.steps == 0:
            return self.snr_range
        t = min(max(step, 0) / self.steps, 1.0)
        return tuple(a + t * (b - a) for a, b in zip(self.start, self.snr_range))

    def sample(self, rng: np.random.Generator, n: int, step: int = 0) -> np.ndarray:
        """(n,) network SNRs for ``step``."""
        lo, hi = self.range_at(step)
        u = rng.uniform(size=n)
        if self.distribution == "uniform":
            return lo + u * (hi - lo)
        if self.distribution == "loguniform":
            return np.exp(np.log(lo) + u * (np.log(hi) - np.log(lo)))
        a = -3.0  # inverse CDF of p ~ rho^-4: rho^-3 is uniform between the edges
        return (lo**a + u * (hi**a - lo**a)) ** (1 / a)


def batch_rng(seed: int, step: int) -> np.random.Generator:
    """The generator of every random choice in batch ``step`` for ``seed``."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(3, int(step))))


def draw_sources(
    rng: np.random.Generator,
    n: int,
    n_pool: int,
    merger_window: tuple[float, float],
    snr: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Per-sample extrinsic draws: pool index, ra, dec, psi (rad), merger_time (s), snr."""
    out = {
        "index": rng.integers(0, n_pool, size=n),
        "ra": rng.uniform(0.0, 2 * np.pi, size=n),
        "dec": np.arcsin(rng.uniform(-1.0, 1.0, size=n)),
        "psi": rng.uniform(0.0, np.pi, size=n),
        "merger_time": rng.uniform(merger_window[0], merger_window[1], size=n),
    }
    if snr is not None:
        out["snr"] = np.asarray(snr, dtype=float)
    return out


class SignalInjector(nn.Module):
    """Pool polarisations -> conditioned detector signals at a given network SNR.

    Args:
        frequencies, psd: the cache's PSD, (f,) Hz and (d, f) strain^2/Hz.
        pool_n_time, merger_index: length of the pool grid and the sample of its peak.
        valid_before_merger: s before the peak where the pool is untapered.
        merger_window: s, allowed geocentre merger times in the window.
        fmin, fmax, order, window, window_alpha: the cache's conditioning (manifest).
        sample_rate, n_time: Hz and samples of the window.

    ``forward(polarizations (b, 2, pool_n_time), ra, dec, psi, merger_time, snr (b,))``
    returns the conditioned signal (b, d, n_time) float32 whose whitened norm is ``snr``;
    with ``psd_ratio`` (b, d, n_time // 2 + 1), S_i / S_cache of each sample's noise, the
    norm of the signal whitened by S_i instead (its optimal SNR in that noise).
    """

    def __init__(
        self,
        frequencies,
        psd,
        pool_n_time: int,
        merger_index: int,
        valid_before_merger: float,
        merger_window: tuple[float, float] = (1.5, 1.9),
        fmin: float | None = 20.0,
        fmax: float | None = 500.0,
        order: int = 8,
        window: str = "tukey",
        window_alpha: float = TAPER_ALPHA,
        sample_rate: float = SAMPLE_RATE,
        n_time: int = N_SAMPLES,
        detectors: Sequence[str] = DETECTORS,
        gps: float = GPS_REFERENCE,
    ):
        super().__init__()
        self.sample_rate, self.n_time = float(sample_rate), int(n_time)
        self.pool_n_time, self.merger_index = int(pool_n_time), int(merger_index)
        lo, hi = (float(v) for v in merger_window)
        duration = self.n_time / self.sample_rate
        if not 0 <= lo <= hi <= duration:
            raise ValueError(
                f"merger_window {merger_window} s: need 0 <= START <= END <= {duration}"
            )
        if hi + MAX_DELAY > valid_before_merger:
            raise ValueError(
                f"merger_window ends at {hi} s but the pool holds only {valid_before_merger:.3f} s "
                f"of untapered signal before the merger (plus up to {MAX_DELAY * 1e3:.0f} ms of "
                "detector delay); make the pool with a longer --pre-merger"
            )
        self.merger_window = (lo, hi)
        self.projection = DetectorProjection(detectors)
        self.gmst = _gmst(gps)
        self.conditioner = WhitenBandpass(
            frequencies, psd, sample_rate, n_time, fmin=fmin, fmax=fmax, order=order,
            window=window, window_alpha=window_alpha,
        )  # fmt: skip
        # The pool sits at the start of a zero-padded buffer; shifts of [0, n_time]
        # samples never wrap into the window [start, start + n_time).
        self.n_buffer = self.pool_n_time + self.n_time
        first = math.floor((lo - MAX_DELAY) * self.sample_rate)
        self.start = self.merger_index - first
        if not 0 <= self.start <= self.n_buffer - self.n_time:
            raise ValueError(f"merger_window {merger_window} s does not fit the pool grid")
        freqs = torch.fft.rfftfreq(self.n_buffer, 1.0 / self.sample_rate, dtype=torch.float64)
        self.register_buffer("buffer_frequencies", freqs)

    def project(
        self, polarizations, ra, dec, psi, merger_time
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Detector strain (b, d, n_time) float32, unconditioned, and arrival times (b, d) s."""
        x = torch.as_tensor(polarizations, device=self.buffer_frequencies.device)
        x = x.to(torch.float32)
        dev = x.device
        merger_time = torch.as_tensor(merger_time, dtype=torch.float64, device=dev)
        # Sidereal time at the merger (window start + merger_time), as the simulator.
        gmst = self.gmst + OMEGA_EARTH * merger_time
        fplus, fcross = self.projection.antenna_patterns(ra, dec, psi, gmst)
        delays = self.projection.time_delays(ra, dec, gmst)
        arrival = merger_time[:, None] + delays
        shift = arrival * self.sample_rate + (self.start - self.merger_index)  # samples, >= 0
        spectra = torch.fft.rfft(x, n=self.n_buffer)  # (b, 2, f)
        phase = torch.polar(
            torch.ones_like(shift[..., None]),
            -2 * math.pi * self.buffer_frequencies * shift[..., None] / self.sample_rate,
        ).to(torch.complex64)
        strain = (
            fplus[..., None].float() * spectra[:, :1] + fcross[..., None].float() * spectra[:, 1:]
        )
        series = torch.fft.irfft(strain * phase, n=self.n_buffer)
        return series[..., self.start : self.start + self.n_time], arrival

    def forward(
        self, polarizations, ra, dec, psi, merger_time, snr, psd_ratio=None
    ) -> torch.Tensor:
        strain, _ = self.project(polarizations, ra, dec, psi, merger_time)
        y = self.conditioner(strain)
        own = y  # the signal whitened by its noise's PSD
        if psd_ratio is not None:
            psd_ratio = torch.as_tensor(psd_ratio, device=y.device)
            own = recolour(y, torch.where(psd_ratio > 0, 1.0 / psd_ratio, 0.0))
        norm = own.square().sum(dim=(-2, -1)).sqrt()
        snr = torch.as_tensor(snr, dtype=y.dtype, device=y.device)
        scale = torch.where(norm > 0, snr / norm.clamp_min(torch.finfo(y.dtype).tiny), 0.0)
        return y * scale[:, None, None]


class InjectionBatches:
    """Training batches (x (b, 3, time) float32, y (b,) float32) made on ``device``.

    Built from a waveform pool and a cache (its PSD, conditioning settings and, for
    ``noise="cache"``, its label-0 training rows in ``indices``). ``batch(step, n)``
    is a pure function of (seed, step, n). ``psd_sources``, ``psd_tilt``: the noise PSDs
    of the samples (:class:`InjectionPSDs`; the defaults keep the cache's).
    """

    def __init__(
        self,
        pool,
        cache,
        indices=None,
        noise: str = "cache",
        snr: SNRSchedule | None = None,
        rate: float = 0.5,
        merger_window: tuple[float, float] = (1.5, 1.9),
        seed: int = 0,
        device: torch.device | str = "cpu",
        preload: bool | None = None,
        psd_sources: Sequence[str] = ("cache",),
        psd_tilt: float = 0.0,
    ):
        from g2res.data.cache import Cache
        from g2res.data.pool import WaveformPool

        self.pool = pool if isinstance(pool, WaveformPool) else WaveformPool(pool)
        self.cache = cache if isinstance(cache, Cache) else Cache(cache)
        if not 0 <= rate <= 1:
            raise ValueError(f"injection rate {rate}: need a fraction in [0, 1]")
        if noise not in ("cache", "gaussian"):
            raise ValueError(f"injection noise {noise!r}: use 'cache' or 'gaussian'")
        if abs(self.pool.sample_rate - self.cache.sample_rate) > 1e-9:
            raise ValueError(
                f"pool {self.pool.path} is at {self.pool.sample_rate} Hz but cache "
                f"{self.cache.path} at {self.cache.sample_rate} Hz"
            )
        self.device = torch.device(device)
        self.snr = snr or SNRSchedule()
        self.rate, self.noise_kind, self.seed = float(rate), noise, int(seed)
        c = self.cache.conditioning
        psd = self.cache.psd
        n_time = int(self.cache.manifest.get("n_time", N_SAMPLES))
        self.injector = SignalInjector(
            psd["frequencies"], psd["psd"], self.pool.n_time, self.pool.merger_index,
            self.pool.valid_before_merger, merger_window,
            fmin=c["fmin"], fmax=c["fmax"], order=c["filter_order"], window=c["window"],
            window_alpha=c["window_alpha"], sample_rate=self.cache.sample_rate, n_time=n_time,
        ).to(self.device)  # fmt: skip
        if noise == "cache":
            labels = self.cache.labels("train")
            rows = np.flatnonzero(labels == 0)
            if indices is not None:
                rows = np.intersect1d(rows, np.asarray(indices))
            self.noise = CacheNoise(self.cache.array("train"), rows, self.device, preload=preload)
        else:
            self.noise = GaussianNoise(
                psd["frequencies"], psd["psd"], self.injector.conditioner,
                self.cache.sample_rate, n_time,
            ).to(self.device)  # fmt: skip
        self.n_time = n_time
        self.psds = InjectionPSDs(
            psd["frequencies"], psd["psd"], psd_sources, psd_tilt, self.cache.sample_rate
        ).to(self.device)

    def batch(self, step: int, n: int) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """Batch ``step`` of ``n`` samples: x (n, d, time), y (n,), and the draws (numpy)."""
        rng = batch_rng(self.seed, step)
        target = rng.random(n) < self.rate
        draws = draw_sources(rng, n, len(self.pool), self.injector.merger_window,
                             self.snr.sample(rng, n, step))  # fmt: skip
        draws["target"] = target
        if self.noise_kind == "cache":
            x = self.noise.sample(rng, n)
        else:
            gen = torch.Generator(device=self.device)
            gen.manual_seed(int(rng.integers(2**62)))
        ratio = None  # S_i / S_cache (n, d, f): drawn after every other choice
        if self.psds.active:
            psd_draws = self.psds.draw(rng, n)
            draws.update(psd_draws)
            ratio = self.psds.ratio(*psd_draws.values(), self.n_time)
        if self.noise_kind == "cache":
            if ratio is not None:
                x = recolour(x, ratio)
        else:
            segment = None
            if ratio is not None:
                segment = self.psds.ratio(*psd_draws.values(), self.noise.n_segment)
            x = self.noise(n, gen, segment)
        k = np.flatnonzero(target)
        if k.size:
            waves = torch.from_numpy(self.pool.batch(draws["index"][k])).to(self.device)
            sig = self.injector(
                waves, *(torch.from_numpy(draws[key][k]) for key in ("ra", "dec", "psi")),
                torch.from_numpy(draws["merger_time"][k]), torch.from_numpy(draws["snr"][k]),
                None if ratio is None else ratio[torch.from_numpy(k).to(ratio.device)],
            )  # fmt: skip
            x[torch.from_numpy(k).to(self.device)] += sig
        y = torch.from_numpy(target.astype(np.float32)).to(self.device)
        return x, y, draws


def pool_and_cache_exist(pool: str | os.PathLike, cache: str | os.PathLike) -> None:
    """Raise FileNotFoundError naming whichever of ``pool``/``cache`` is missing."""
    for what, path in (("waveform pool", pool), ("cache", cache)):
        if path is None or not os.path.isdir(path):
            raise FileNotFoundError(f"{what} {path} does not exist")
