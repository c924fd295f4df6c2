"""Per-sample noise-level normalisation of whitened strain (a drifting PSD's scale).

One average PSD whitens every sample of a cache; when the detector's noise level drifts
between samples (``g2res simulate --psd-drift``; real strain from minute to minute), the
whitened noise of a sample has a standard deviation other than the cache's, and a network
that sees power reads the drift as excess power. :func:`robust_normalise` divides each
sample's detector series by its own robust standard deviation ``1.4826 * MAD``
(:func:`g2res.signal.gate.noise_level`): a short glitch or a chirp of SNR <= 20 barely
moves a median over 4,096 samples, so the noise of every sample comes out at unit
standard deviation whatever its level, while the signal-to-noise ratio is unchanged. A
spectral tilt (a drift of shape, not of level) is left to the network.
"""

from __future__ import annotations

import torch
from torch import nn

from g2res.signal.gate import noise_level

__all__ = ["NORMALISATIONS", "robust_normalise", "RobustNormalise"]

NORMALISATIONS = ("mad",)


def robust_normalise(x: torch.Tensor) -> torch.Tensor:
    """``x`` (..., time) over its robust standard deviation along time (same shape,
    unit-less: noise at unit standard deviation). A series whose MAD is 0 (a zeroed
    channel) is left as it is."""
    _, sigma = noise_level(x)
    return x / torch.where(sigma > 0, sigma, torch.ones_like(sigma))


class RobustNormalise(nn.Module):
    """:func:`robust_normalise` on ``(batch, detector, time)``; no buffers or weights."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return robust_normalise(x)
