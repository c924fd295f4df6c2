"""Constant-Q transform front-end (nnAudio ``CQT1992v2``) for 2D CNNs.

Each detector becomes one image channel: ``(batch, 3, time)`` whitened strain ->
``(batch, 3, n_bins, n_frames)``. The transform is a fixed convolution with
complex kernels held as buffers, so it runs on the model's device (a GPU when there
is one) inside the model.
"""

from __future__ import annotations

import contextlib
import io
import math

import numpy as np
import torch
from nnAudio.features import CQT1992v2
from torch import nn

from g2res.transforms.scaling import check_scaling, scale_image

__all__ = ["CQT"]


class CQT(nn.Module):
    """Constant-Q power image of multi-detector strain.

    Args:
        sample_rate: Hz of the input series.
        fmin, fmax: Hz, the lowest bin's centre and the highest allowed centre; the
            number of bins is ``floor(bins_per_octave * log2(fmax / fmin)) + 1``.
        hop_length: samples between frames; ``n_frames = n_time // hop_length + 1``.
            The default 32 (15.6 ms) gives a 38 x 129 image for 2 s at 2048 Hz with
            ``bins_per_octave=8``: small enough that the CQT costs a minor share of
            a ResNet18 forward pass (``benchmarks/models.py``), fine enough to follow
            a chirp's last ~100 ms.
        bins_per_octave: frequency resolution; Q = filter_scale / (2^(1/bpo) - 1).
        filter_scale: scales every kernel's length (and Q).
        window: kernel window (scipy name).
        scale: ``magnitude`` | ``power`` | ``log`` (see :func:`scale_image`).
        norm: ``noise`` (divide by white-noise power per bin: whitened noise -> ~1,
            the default), ``image`` (per-sample, per-channel standardisation) or ``none``.
        pad_mode: ``reflect`` or ``constant`` padding at the edges (nnAudio ``center``).

    Attributes:
        frequencies: Hz, ``(n_bins,)`` numpy array of bin centres.
        n_bins: number of frequency rows.
    """

    is_2d = True

    def __init__(
        self,
        sample_rate: float = 2048.0,
        fmin: float = 20.0,
        fmax: float = 500.0,
        hop_length: int = 32,
        bins_per_octave: int = 8,
        filter_scale: float = 1.0,
        window: str = "hann",
        scale: str = "magnitude",
        norm: str = "noise",
        pad_mode: str = "reflect",
        in_chans: int = 3,
        n_time: int | None = None,
    ):
        super().__init__()
        check_scaling(scale, norm, "CQT")
        nyquist = sample_rate / 2
        if not 0 < fmin < fmax <= nyquist:
            raise ValueError(
                f"CQT: need 0 < fmin < fmax <= Nyquist ({nyquist:g} Hz), "
                f"got fmin={fmin}, fmax={fmax}"
            )
        if hop_length < 1 or bins_per_octave < 1 or filter_scale <= 0:
            raise ValueError(
                f"CQT: hop_length and bins_per_octave must be >= 1 and filter_scale > 0, "
                f"got {hop_length}, {bins_per_octave}, {filter_scale}"
            )
        if pad_mode not in ("reflect", "constant"):
            raise ValueError(f"CQT: pad_mode must be 'reflect' or 'constant', got {pad_mode!r}")
        n_bins = int(math.floor(bins_per_octave * math.log2(fmax / fmin) + 1e-9)) + 1
        with contextlib.redirect_stdout(io.StringIO()):  # nnAudio prints despite verbose
            self.cqt = CQT1992v2(
                sr=sample_rate,
                hop_length=hop_length,
                fmin=fmin,
                fmax=None,
                n_bins=n_bins,
                bins_per_octave=bins_per_octave,
                filter_scale=filter_scale,
                window=window,
                center=True,
                pad_mode=pad_mode,
                output_format="Complex",
                verbose=False,
            )
        kernel_width = int(self.cqt.kernel_width)
        if n_time is not None and pad_mode == "reflect" and kernel_width // 2 >= n_time:
            raise ValueError(
                f"CQT: kernels of {kernel_width} samples (fmin={fmin} Hz) need inputs longer "
                f"than {kernel_width // 2} samples for reflect padding, got n_time={n_time}; "
                "raise fmin or use pad_mode='constant'"
            )
        self.sample_rate = float(sample_rate)
        self.fmin, self.fmax = float(fmin), float(fmax)
        self.hop_length = int(hop_length)
        self.bins_per_octave = int(bins_per_octave)
        self.scale, self.norm = scale, norm
        self.in_chans = self.out_chans = int(in_chans)
        self.frequencies = np.asarray(self.cqt.frequencies, dtype=np.float64)
        self.n_bins = len(self.frequencies)
        # Power of unit-variance white noise in each bin: sum over the kernel of
        # |k|^2 (real and imaginary parts), times nnAudio's 'librosa' factor.
        k2 = self.cqt.cqt_kernels_real.pow(2).sum(dim=(1, 2)) + self.cqt.cqt_kernels_imag.pow(
            2
        ).sum(dim=(1, 2))
        self.register_buffer("noise_power", (k2 * self.cqt.lenghts).float(), persistent=False)

    def n_frames(self, n_time: int) -> int:
        """Time frames produced for an input of ``n_time`` samples."""
        return n_time // self.hop_length + 1

    def output_shape(self, n_time: int) -> tuple[int, int, int]:
        """``(channels, n_bins, n_frames)`` for an input of ``n_time`` samples."""
        return self.out_chans, self.n_bins, self.n_frames(n_time)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, chan, time)`` strain -> ``(batch, chan, n_bins, n_frames)`` image."""
        if x.ndim != 3:
            raise ValueError(f"CQT expects (batch, chan, time), got {tuple(x.shape)}")
        batch, chan, n_time = x.shape
        z = self.cqt(x.reshape(batch * chan, n_time).float())  # (b*c, bins, frames, 2)
        power = z.pow(2).sum(-1)
        power = power.reshape(batch, chan, *power.shape[1:])
        return scale_image(power, self.noise_power, self.scale, self.norm)

    def extra_repr(self) -> str:
        return (
            f"sample_rate={self.sample_rate:g}, fmin={self.fmin:g}, fmax={self.fmax:g}, "
            f"n_bins={self.n_bins}, hop_length={self.hop_length}, "
            f"bins_per_octave={self.bins_per_octave}, scale={self.scale}, norm={self.norm}"
        )
