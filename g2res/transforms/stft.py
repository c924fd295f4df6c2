"""Short-time Fourier spectrogram front-end for 2D CNNs."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from g2res.transforms.scaling import check_scaling, scale_image

__all__ = ["Spectrogram"]


class Spectrogram(nn.Module):
    """STFT power image of multi-detector strain, cropped to ``[fmin, fmax]``.

    ``(batch, chan, time)`` -> ``(batch, chan, n_freq, n_frames)`` with
    ``n_frames = n_time // hop_length + 1`` (centred frames, reflect padding).

    Args:
        sample_rate: Hz.
        n_fft: samples per segment (default 256 = 125 ms, 8 Hz resolution at 2048 Hz).
        hop_length: samples between frames.
        fmin, fmax: Hz, the kept band (bins with fmin <= f <= fmax).
        window: ``hann`` | ``hamming`` | ``blackman``.
        scale, norm: output scaling, see :func:`g2res.transforms.scaling.scale_image`;
            ``norm="noise"`` maps unit-variance white noise to ~1 in every bin.

    Attributes:
        frequencies: Hz, ``(n_freq,)`` numpy array of the kept bins.
    """

    is_2d = True

    def __init__(
        self,
        sample_rate: float = 2048.0,
        n_fft: int = 256,
        hop_length: int = 32,
        fmin: float = 20.0,
        fmax: float = 500.0,
        window: str = "hann",
        scale: str = "magnitude",
        norm: str = "noise",
        in_chans: int = 3,
        n_time: int | None = None,
    ):
        super().__init__()
        check_scaling(scale, norm, "Spectrogram")
        windows = {
            "hann": torch.hann_window,
            "hamming": torch.hamming_window,
            "blackman": torch.blackman_window,
        }
        if window not in windows:
            raise ValueError(
                f"Spectrogram: window must be one of {sorted(windows)}, got {window!r}"
            )
        if n_fft < 2 or hop_length < 1:
            raise ValueError(
                f"Spectrogram: need n_fft >= 2 and hop_length >= 1, got {n_fft}, {hop_length}"
            )
        if n_time is not None and n_fft // 2 >= n_time:
            raise ValueError(f"Spectrogram: n_fft={n_fft} is too long for n_time={n_time}")
        freqs = np.fft.rfftfreq(n_fft, d=1.0 / sample_rate)
        keep = np.flatnonzero((freqs >= fmin) & (freqs <= fmax))
        if keep.size == 0:
            raise ValueError(
                f"Spectrogram: no frequency bin in [{fmin}, {fmax}] Hz with n_fft={n_fft} "
                f"at {sample_rate:g} Hz"
            )
        self.sample_rate = float(sample_rate)
        self.n_fft, self.hop_length = int(n_fft), int(hop_length)
        self.fmin, self.fmax = float(fmin), float(fmax)
        self.scale, self.norm = scale, norm
        self.in_chans = self.out_chans = int(in_chans)
        self.frequencies = freqs[keep]
        self.n_freq = len(keep)
        win = windows[window](n_fft, periodic=True, dtype=torch.float64)
        self.register_buffer("window", win.float(), persistent=False)
        self.register_buffer("bins", torch.as_tensor(keep), persistent=False)
        # E|X_k|^2 of unit-variance white noise is sum(w^2), twice that at DC/Nyquist.
        noise = torch.full((len(keep),), float(win.pow(2).sum()))
        edge = torch.as_tensor((keep == 0) | (keep == n_fft // 2))
        noise[edge] *= 2
        self.register_buffer("noise_power", noise, persistent=False)

    def n_frames(self, n_time: int) -> int:
        """Time frames produced for an input of ``n_time`` samples."""
        return n_time // self.hop_length + 1

    def output_shape(self, n_time: int) -> tuple[int, int, int]:
        """``(channels, n_freq, n_frames)`` for an input of ``n_time`` samples."""
        return self.out_chans, self.n_freq, self.n_frames(n_time)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, chan, time)`` strain -> ``(batch, chan, n_freq, n_frames)`` image."""
        if x.ndim != 3:
            raise ValueError(f"Spectrogram expects (batch, chan, time), got {tuple(x.shape)}")
        batch, chan, n_time = x.shape
        z = torch.stft(
            x.reshape(batch * chan, n_time).float(),
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            window=self.window,
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )
        power = z.index_select(1, self.bins).abs().pow(2)
        power = power.reshape(batch, chan, *power.shape[1:])
        return scale_image(power, self.noise_power, self.scale, self.norm)

    def extra_repr(self) -> str:
        return (
            f"sample_rate={self.sample_rate:g}, n_fft={self.n_fft}, hop_length={self.hop_length}, "
            f"band=[{self.fmin:g}, {self.fmax:g}] Hz ({self.n_freq} bins), "
            f"scale={self.scale}, norm={self.norm}"
        )
