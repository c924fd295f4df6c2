"""Global pooling layers: average, GeM and attention, for 1D and 2D feature maps."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["AttentionPool", "GeM", "create_pool"]


class GeM(nn.Module):
    """Generalised mean pooling ``(mean(clamp(x, eps)^p))^(1/p)`` over all axes after
    the channel axis, with a learnable ``p`` (p=1: average, p -> inf: max)."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6):
        super().__init__()
        self.p = nn.Parameter(torch.tensor(float(p)))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = tuple(range(2, x.ndim))
        return x.clamp(min=self.eps).pow(self.p).mean(dim=dims).pow(1.0 / self.p)


class AttentionPool(nn.Module):
    """Softmax-weighted mean over positions, weights from a 1x1 convolution.

    Lets a 1D net focus on the merger's ~0.1 s within a 2-s window.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.score = nn.Linear(channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(2).transpose(1, 2)  # (batch, positions, channels)
        weights = torch.softmax(self.score(flat), dim=1)
        return (weights * flat).sum(dim=1)


class _AvgPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2).mean(dim=2)


class _MaxPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_max_pool1d(x.flatten(2), 1).squeeze(-1)


def create_pool(name: str, channels: int) -> nn.Module:
    """``avg`` | ``max`` | ``gem`` | ``attention``: ``(batch, C, *spatial)`` -> ``(batch, C)``."""
    if name == "avg":
        return _AvgPool()
    if name == "max":
        return _MaxPool()
    if name == "gem":
        return GeM()
    if name == "attention":
        return AttentionPool(channels)
    raise ValueError(f"pool must be 'avg', 'max', 'gem' or 'attention', got {name!r}")
