"""Output scaling of time-frequency images for CNNs (shared by CQT and STFT)."""

from __future__ import annotations

import torch

SCALES = ("magnitude", "power", "log")
NORMS = ("noise", "image", "none")


def check_scaling(scale: str, norm: str, owner: str) -> None:
    """Raise a clear error for an unknown ``scale`` or ``norm`` of front-end ``owner``."""
    if scale not in SCALES:
        raise ValueError(f"{owner}: scale must be one of {SCALES}, got {scale!r}")
    if norm not in NORMS:
        raise ValueError(f"{owner}: norm must be one of {NORMS}, got {norm!r}")


def scale_image(
    power: torch.Tensor, noise_power: torch.Tensor, scale: str, norm: str, eps: float = 1e-6
) -> torch.Tensor:
    """Turn a power image ``(batch, chan, freq, time)`` into a CNN input.

    ``norm="noise"`` first divides by ``noise_power`` (freq,), the expected power of
    unit-variance white noise in each frequency row, so whitened noise gives ~1
    everywhere and a signal's absolute loudness is kept. ``scale`` then maps power
    to magnitude (sqrt), keeps it, or takes ``log(power + eps)``. ``norm="image"``
    standardises each channel of each sample to zero mean and unit variance instead.
    """
    if norm == "noise":
        power = power / noise_power[:, None]
    if scale == "magnitude":
        out = torch.sqrt(power + eps * eps) if power.requires_grad else torch.sqrt(power)
    elif scale == "log":
        out = torch.log(power + eps)
    else:
        out = power
    if norm == "image":
        mean = out.mean(dim=(-2, -1), keepdim=True)
        std = out.std(dim=(-2, -1), keepdim=True)
        out = (out - mean) / (std + eps)
    return out
