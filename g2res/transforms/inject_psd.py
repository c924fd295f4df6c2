"""Noise PSDs of injected samples: the cache's, PSD files, random scales and tilts.

By default every injected sample's noise has the cache's PSD (:mod:`g2res.transforms.inject`).
``injection.psd_sources`` lets each sample's PSD come from one of several sources, chosen
uniformly per sample:

- ``cache``: the PSD the cache estimated (its ``psd.npz``);
- ``file:PATH``: a PSD file as ``g2res simulate --psd`` reads it (a frequency column in Hz,
  then one PSD column or H1, L1, V1 columns, strain^2/Hz; log-log interpolated,
  :func:`g2res.data.noise.psd_function`).

``injection.psd_tilt`` X > 0 then multiplies it, per sample and detector, by
``scale * (f / 100 Hz)^alpha`` with ``scale`` uniform in [1 - X, 1 + X] and ``alpha``
uniform in [-a_max, a_max], ``a_max = ln(1 + X) / ln(5)``: the tilt alone moves the PSD by
up to a factor 1 + X at 20 and 500 Hz, as ``g2res simulate --psd-drift X`` does
(:func:`g2res.data.glitches.draw_drift`).

The model still sees data whitened by the cache's PSD S_c, as the cache was: a sample of
PSD S_i has whitened noise of PSD ~ S_i / S_c (coloured: the point), and its signal is
scaled so that its optimal SNR against S_i, the norm of the signal whitened by S_i
(conditioned like the cache otherwise), is the drawn network SNR. Both use one factor on
the rfft grid, ``ratio = S_i / S_c`` (:meth:`InjectionPSDs.ratio`): whitening is a division
by sqrt(S) in the frequency domain, so whitening by S_i is the cache's whitening times
sqrt(1 / ratio), Gaussian noise of S_i is that of S_c times sqrt(ratio) on the generating
grid (exact), and cached noise rows are recoloured by sqrt(ratio) after their conditioning
(exact up to the difference between the cache's PSD estimate and the rows' own PSD).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from g2res import SAMPLE_RATE
from g2res.data.glitches import DRIFT_REFERENCE, drift_tilt_max
from g2res.signal import interpolate_psd

__all__ = ["InjectionPSDs", "parse_psd_sources", "recolour"]


def parse_psd_sources(sources: Sequence[str]) -> list[tuple[str, str | None]]:
    """``[("cache", None) | ("file", PATH), ...]`` for ``injection.psd_sources`` entries.

    Raises ValueError naming an entry of unknown kind or without a path, and
    FileNotFoundError naming a PSD file that does not exist.
    """
    if isinstance(sources, str) or not len(sources):
        raise ValueError(
            f"injection.psd_sources={sources!r}: need a list of 'cache' and 'file:PATH' entries"
        )
    out: list[tuple[str, str | None]] = []
    for entry in sources:
        text = str(entry).strip()
        if text == "cache":
            out.append(("cache", None))
            continue
        kind, sep, path = text.partition(":")
        if kind != "file" or not sep:
            raise ValueError(
                f"injection.psd_sources entry {entry!r}: unknown kind; use 'cache' (the cache's "
                "PSD) or 'file:PATH' (a PSD file as `g2res simulate --psd` reads it)"
            )
        if not path.strip():
            raise ValueError(f"injection.psd_sources entry {entry!r}: no path after 'file:'")
        if not os.path.isfile(path.strip()):
            raise FileNotFoundError(
                f"injection.psd_sources entry {entry!r}: PSD file {path.strip()} does not exist"
            )
        out.append(("file", path.strip()))
    return out


def check_psd_tilt(tilt: float) -> float:
    """``tilt`` as a float; ValueError unless 0 <= tilt < 1."""
    tilt = float(tilt)
    if not (math.isfinite(tilt) and 0 <= tilt < 1):
        raise ValueError(f"injection.psd_tilt={tilt}: need 0 <= X < 1 (0 off, 0.2: +/-20%)")
    return tilt


def recolour(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``x`` (b, d, n) with its power spectrum multiplied by ``factor`` (b, d, n // 2 + 1)."""
    spec = torch.fft.rfft(x)
    return torch.fft.irfft(spec * factor.sqrt().to(x.dtype), n=x.shape[-1])


class InjectionPSDs(nn.Module):
    """Per-sample, per-detector noise PSDs of injected samples (module docstring).

    Args:
        frequencies, psd: the cache's PSD, (f,) Hz and (d, f) strain^2/Hz.
        sources: ``injection.psd_sources`` entries (``cache``, ``file:PATH``).
        tilt: ``injection.psd_tilt`` X, 0 for none.
        sample_rate: Hz; segment_duration: s, the grid the PSDs are held on (the rfft grid
            of that many seconds, the one :class:`GaussianNoise` colours on).

    Buffers: ``frequencies`` (g,) Hz, ``reference`` (d, g) the cache's PSD and ``psds``
    (k, d, g) one per source, strain^2/Hz, float64. ``active`` is False for the default
    (``["cache"]``, tilt 0): then nothing is drawn and the caller keeps its plain path.
    """

    def __init__(
        self,
        frequencies,
        psd,
        sources: Sequence[str] = ("cache",),
        tilt: float = 0.0,
        sample_rate: float = SAMPLE_RATE,
        segment_duration: float = 8.0,
    ):
        super().__init__()
        from g2res.data.noise import psd_function

        parsed = parse_psd_sources(sources)
        self.sources = [str(s).strip() for s in sources]
        self.tilt = check_psd_tilt(tilt)
        self.sample_rate = float(sample_rate)
        n_grid = int(round(segment_duration * self.sample_rate))
        grid = np.fft.rfftfreq(n_grid, 1.0 / self.sample_rate)
        reference = interpolate_psd(frequencies, np.atleast_2d(psd), n_grid, self.sample_rate)
        n_det = reference.shape[0]
        psds = []
        for (kind, path), entry in zip(parsed, self.sources):
            if kind == "cache":
                psds.append(reference)
                continue
            table = torch.as_tensor(psd_function(path)(grid), dtype=torch.float64)
            if table.shape != reference.shape:
                raise ValueError(
                    f"injection.psd_sources entry {entry!r}: PSD of shape {tuple(table.shape)} "
                    f"on {grid.size} frequencies, the cache has {n_det} detectors"
                )
            psds.append(table)
        self.register_buffer("frequencies", torch.as_tensor(grid, dtype=torch.float64))
        self.register_buffer("reference", reference)
        self.register_buffer("psds", torch.stack(psds))
        self.active = self.tilt > 0 or [k for k, _ in parsed] != ["cache"]

    @property
    def n_detectors(self) -> int:
        return int(self.reference.shape[0])

    def draw(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        """Per-sample draws: ``psd_source`` (n,) index into ``sources``, ``psd_scale`` and
        ``psd_alpha`` (n, d). Only what varies is drawn (nothing when not ``active``)."""
        d = self.n_detectors
        source = np.zeros(n, dtype=np.int64)
        scale, alpha = np.ones((n, d)), np.zeros((n, d))
        if len(self.sources) > 1:
            source = rng.integers(0, len(self.sources), size=n)
        if self.tilt > 0:
            scale = rng.uniform(1 - self.tilt, 1 + self.tilt, size=(n, d))
            a_max = drift_tilt_max(self.tilt)
            alpha = rng.uniform(-a_max, a_max, size=(n, d))
        return {"psd_source": source, "psd_scale": scale, "psd_alpha": alpha}

    def forward(self, source, scale, alpha) -> torch.Tensor:
        """PSD (b, d, g) strain^2/Hz on ``frequencies`` of samples with draws ``source``
        (b,), ``scale`` and ``alpha`` (b, d)."""
        dev = self.psds.device
        source = torch.as_tensor(source, dtype=torch.long, device=dev)
        scale = torch.as_tensor(scale, dtype=torch.float64, device=dev)
        alpha = torch.as_tensor(alpha, dtype=torch.float64, device=dev)
        f = torch.where(self.frequencies > 0, self.frequencies, DRIFT_REFERENCE) / DRIFT_REFERENCE
        return self.psds[source] * scale[..., None] * f ** alpha[..., None]

    def ratio(self, source, scale, alpha, n_time: int) -> torch.Tensor:
        """S_i / S_c (b, d, n_time // 2 + 1) on the rfft grid of ``n_time`` samples at
        ``sample_rate`` (linear interpolation: exact where the grids share frequencies,
        e.g. 2 s and 8 s); 1 where the cache's PSD is 0."""
        psd = self.forward(source, scale, alpha)
        ref = self.reference
        ratio = torch.where(ref > 0, psd / ref.clamp_min(torch.finfo(ref.dtype).tiny), 1.0)
        if int(n_time) == 2 * (self.frequencies.numel() - 1):
            return ratio
        grid = self.frequencies.cpu().numpy()
        return interpolate_psd(grid, ratio, int(n_time), self.sample_rate)

    def extra_repr(self) -> str:
        return f"sources={self.sources}, tilt={self.tilt}"
