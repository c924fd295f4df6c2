"""Front-end registry: ``create_frontend(name, sample_rate, n_time, **kwargs)``.

``bank`` (:mod:`g2res.transforms.bank`) is built empty here; its templates come from
the run (placed for the cache's PSD by the trainer) or from a checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

__all__ = ["Identity", "create_frontend", "list_frontends", "register_frontend"]

_FRONTENDS: dict[str, Callable[..., nn.Module]] = {}


def register_frontend(name: str) -> Callable:
    """Decorator registering a front-end factory ``f(sample_rate, n_time, **kwargs)``."""

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _FRONTENDS:
            raise ValueError(f"front-end {name!r} is already registered")
        _FRONTENDS[name] = fn
        return fn

    return wrap


class Identity(nn.Module):
    """Raw whitened strain for 1D models: ``(batch, chan, time)`` unchanged.

    ``scale`` multiplies the input (1 by default; whitened noise is already ~unit variance).
    """

    is_2d = False

    def __init__(self, in_chans: int = 3, scale: float = 1.0):
        super().__init__()
        self.in_chans = self.out_chans = int(in_chans)
        self.scale = float(scale)

    def output_shape(self, n_time: int) -> tuple[int, int]:
        return self.out_chans, n_time

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 3:
            raise ValueError(
                f"Identity front-end expects (batch, chan, time), got {tuple(x.shape)}"
            )
        return x if self.scale == 1.0 else x * self.scale

    def extra_repr(self) -> str:
        return f"in_chans={self.in_chans}, scale={self.scale:g}"


@register_frontend("identity")
def _identity(sample_rate: float, n_time: int, **kwargs) -> Identity:
    return Identity(**kwargs)


@register_frontend("cqt")
def _cqt(sample_rate: float, n_time: int, **kwargs) -> nn.Module:
    from g2res.transforms.cqt import CQT

    return CQT(sample_rate=sample_rate, n_time=n_time, **kwargs)


@register_frontend("stft")
def _stft(sample_rate: float, n_time: int, **kwargs) -> nn.Module:
    from g2res.transforms.stft import Spectrogram

    return Spectrogram(sample_rate=sample_rate, n_time=n_time, **kwargs)


@register_frontend("bank")
def _bank(sample_rate: float, n_time: int, **kwargs) -> nn.Module:
    from g2res.transforms.bank import BankFrontend

    return BankFrontend(sample_rate=sample_rate, n_time=n_time, **kwargs)


def list_frontends() -> list[str]:
    """Registered front-end names, sorted."""
    return sorted(_FRONTENDS)


def create_frontend(
    name: str, sample_rate: float = 2048.0, n_time: int = 4096, **kwargs
) -> nn.Module:
    """Build front-end ``name`` for series of ``n_time`` samples at ``sample_rate`` Hz.

    Every front-end has ``is_2d``, ``in_chans``, ``out_chans`` and ``output_shape(n_time)``.
    """
    if name not in _FRONTENDS:
        raise ValueError(f"unknown front-end {name!r}; choose from {list_frontends()}")
    try:
        return _FRONTENDS[name](sample_rate, n_time, **kwargs)
    except TypeError as exc:
        raise TypeError(f"front-end {name!r}: {exc}") from None
