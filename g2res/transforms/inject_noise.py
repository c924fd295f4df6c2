"""Noise for on-the-fly injection (step 4 of :mod:`g2res.transforms.inject`): label-0
samples of the cache, time-slid across detectors, or Gaussian noise of the cache's PSD."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from g2res import N_SAMPLES, SAMPLE_RATE
from g2res.signal import interpolate_psd


class CacheNoise:
    """Noise rows from a cache's label-0 training samples, a different sample per detector.

    ``array``: (n, d, time) conditioned noise (a memory map is fine); ``indices``: the
    rows allowed (label 0, training fold only). Each row is time-reversed and
    sign-flipped with probability 1/2 when ``reverse``/``flip``. ``preload``: keep the
    rows as one tensor on ``device`` (default when they take under 1 GiB).
    """

    def __init__(
        self,
        array,
        indices=None,
        device: torch.device | str = "cpu",
        reverse: bool = True,
        flip: bool = True,
        preload: bool | None = None,
    ):
        self.array = array
        self.indices = np.arange(len(array)) if indices is None else np.asarray(indices)
        n_det = array.shape[1]
        if self.indices.size < n_det:
            raise ValueError(
                f"cached noise needs at least {n_det} label-0 samples (one per detector), "
                f"got {self.indices.size}"
            )
        self.device = torch.device(device)
        self.reverse, self.flip = reverse, flip
        nbytes = self.indices.size * array.shape[1] * array.shape[2] * 4
        if preload is None:
            preload = nbytes < 2**30
        self.rows = None
        if preload:
            rows = np.asarray(array[np.sort(self.indices)], dtype=np.float32)
            self.indices = np.sort(self.indices)
            self.rows = torch.from_numpy(rows).to(self.device)

    def sample(self, rng: np.random.Generator, n: int) -> torch.Tensor:
        """(n, d, time) float32 noise on ``device``; detectors come from distinct samples."""
        m, n_det = self.indices.size, self.array.shape[1]
        # Distinct positions per sample: an anchor plus distinct non-zero offsets mod m.
        offsets = rng.integers(1, m, size=(n, n_det - 1))
        for j in range(1, n_det - 1):  # collisions among offsets are rare: redraw them
            clash = (offsets[:, j : j + 1] == offsets[:, :j]).any(1)
            while clash.any():
                offsets[clash, j] = rng.integers(1, m, size=int(clash.sum()))
                clash = (offsets[:, j : j + 1] == offsets[:, :j]).any(1)
        anchor = rng.integers(0, m, size=(n, 1))
        pos = np.concatenate([anchor, (anchor + offsets) % m], axis=1)  # (n, d)
        reverse = rng.random((n, n_det)) < 0.5 if self.reverse else np.zeros((n, n_det), bool)
        sign = (
            np.where(rng.random((n, n_det)) < 0.5, -1.0, 1.0) if self.flip else np.ones((n, n_det))
        )
        det = np.arange(n_det)
        if self.rows is not None:
            x = self.rows[
                torch.from_numpy(pos).to(self.device), torch.arange(n_det, device=self.device)
            ]
        else:
            rows = self.indices[pos]
            flat = rows.ravel()
            order = np.argsort(flat, kind="stable")
            got = np.empty((flat.size, self.array.shape[2]), np.float32)
            got[order] = self.array[flat[order], np.tile(det, n)[order]]
            x = torch.from_numpy(got.reshape(n, n_det, -1)).to(self.device)
        rev = torch.from_numpy(reverse).to(self.device)[..., None]
        x = torch.where(rev, x.flip(-1), x)
        return x * torch.from_numpy(sign).to(x)[..., None]


class GaussianNoise(nn.Module):
    """Stationary Gaussian noise coloured by a PSD, conditioned by ``conditioner``.

    Like :class:`g2res.data.noise.ColoredNoise`: complex white coefficients scaled by
    sqrt(PSD * N * fs / 4) on a ``segment_duration``-s grid, inverse transformed, the
    middle ``n_time`` samples kept; then the cache's conditioning. Buffer ``amplitude``.
    ``forward(n, generator, psd_ratio)``: ``psd_ratio`` (n, d, n_segment // 2 + 1) colours
    each sample by ``PSD * psd_ratio`` instead (:mod:`g2res.transforms.inject_psd`).
    """

    def __init__(
        self,
        frequencies,
        psd,
        conditioner: nn.Module,
        sample_rate: float = SAMPLE_RATE,
        n_time: int = N_SAMPLES,
        segment_duration: float = 8.0,
    ):
        super().__init__()
        self.n_time = int(n_time)
        self.n_segment = int(round(segment_duration * sample_rate))
        if self.n_segment < self.n_time:
            raise ValueError(f"segment_duration {segment_duration} s is shorter than the window")
        grid = interpolate_psd(frequencies, psd, self.n_segment, sample_rate)
        amplitude = (grid * self.n_segment * sample_rate / 4.0).sqrt()
        amplitude[..., 0] = 0.0
        if self.n_segment % 2 == 0:
            amplitude[..., -1] = 0.0
        self.register_buffer("amplitude", amplitude.to(torch.float32))
        self.conditioner = conditioner
        self.offset = (self.n_segment - self.n_time) // 2

    def forward(
        self, n: int, generator: torch.Generator | None = None, psd_ratio=None
    ) -> torch.Tensor:
        shape = (n, self.amplitude.shape[0], self.amplitude.shape[-1])
        dev = self.amplitude.device
        re = torch.randn(shape, generator=generator, device=dev)
        im = torch.randn(shape, generator=generator, device=dev)
        amplitude = self.amplitude
        if psd_ratio is not None:
            amplitude = amplitude * torch.as_tensor(psd_ratio, device=dev).sqrt().float()
        series = torch.fft.irfft(torch.complex(re, im) * amplitude, n=self.n_segment)
        return self.conditioner(series[..., self.offset : self.offset + self.n_time])
