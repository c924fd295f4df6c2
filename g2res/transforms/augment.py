"""Training augmentations on whitened strain, batched and seeded.

Every augmentation acts on ``(batch, detector, time)`` tensors, is applied to each
sample independently with its own probability and draws its randomness only from
the ``torch.Generator`` passed to :meth:`Augment.forward` (on the CPU, so a seed
gives the same result on any device). In ``eval()`` mode :class:`Augment` is the
identity.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import torch
from torch import nn

from g2res import DETECTORS
from g2res.config import AugmentConfig

__all__ = ["Augment", "TTA_GROUPS", "TTA_TRANSFORMS", "reorder_detectors", "swap_h1l1", "sign_flip"]

_PROBABILITIES = (
    "time_shift",
    "swap_h1l1",
    "sign_flip",
    "time_mask",
    "detector_dropout",
    "permute_detectors",
)


def swap_h1l1(x: torch.Tensor) -> torch.Tensor:
    """Exchange the H1 and L1 channels of ``(batch, detector, time)`` (V1 and others stay)."""
    if x.shape[-2] < 2:
        raise ValueError(f"swap_h1l1 needs at least 2 detectors, got shape {tuple(x.shape)}")
    order = [1, 0, *range(2, x.shape[-2])]
    return x[..., order, :]


def sign_flip(x: torch.Tensor) -> torch.Tensor:
    """Multiply the strain by -1 (a polarisation rotation by 90 degrees keeps it a signal)."""
    return -x


def reorder_detectors(order: Sequence[int]) -> Callable[[torch.Tensor], torch.Tensor]:
    """The transform putting detector ``order[k]`` in channel ``k`` of ``(batch, detector,
    time)``; e.g. ``(1, 2, 0)``: L1, V1, H1."""
    order = list(order)

    def transform(x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2] != len(order):
            raise ValueError(f"order {order} needs {len(order)} detectors, got {tuple(x.shape)}")
        return x[..., order, :]

    return transform


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _order_name(order: tuple[int, ...]) -> str:
    return "detectors_" + "".join(DETECTORS[k][0].lower() for k in order)


# The five non-identity orders of (H1, L1, V1); (L1, H1, V1) is swap_h1l1.
_ORDERS = [o for o in itertools.permutations(range(len(DETECTORS))) if o != (0, 1, 2)]
_ORDER_NAMES = {o: "swap_h1l1" if o == (1, 0, 2) else _order_name(o) for o in _ORDERS}


#: Deterministic test-time augmentations, ``(batch, detector, time)`` -> same shape.
TTA_TRANSFORMS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "identity": _identity,
    "swap_h1l1": swap_h1l1,
    "sign_flip": sign_flip,
    "swap_h1l1+sign_flip": lambda x: sign_flip(swap_h1l1(x)),
    **{name: reorder_detectors(o) for o, name in _ORDER_NAMES.items() if name != "swap_h1l1"},
}

#: Names that stand for several TTA transforms: ``permute_detectors`` is every order of
#: the detector channels (with the identity, the six), the test-time counterpart of the
#: ``permute_detectors`` training augmentation.
TTA_GROUPS: dict[str, list[str]] = {"permute_detectors": list(_ORDER_NAMES.values())}


class Augment(nn.Module):
    """Random augmentations of whitened strain ``(batch, detector, time)``, training only.

    In order, each with its own per-sample probability from ``cfg``:
    ``time_shift`` (circular shift of all detectors together by up to ``max_shift``
    seconds, so inter-detector delays are kept), ``swap_h1l1``, ``sign_flip``,
    ``time_mask`` (zero a stretch of up to ``mask_width`` seconds in all detectors) and
    ``detector_dropout`` (zero one detector chosen uniformly) and ``permute_detectors``
    (the detector channels in a uniformly random order). After whitening every channel
    is unit noise plus a signal delayed by at most the light travel time, so a reordered
    sample is still a plausible one; it shows the network loud-V1 signals as often as
    loud-H1 ones, where the data alone would show few (V1 is the least sensitive).

    The same random numbers are drawn whatever the probabilities, so changing one
    probability does not reshuffle the others.
    """

    def __init__(self, cfg: AugmentConfig | None = None, sample_rate: float = 2048.0):
        super().__init__()
        cfg = cfg if cfg is not None else AugmentConfig()
        for name in _PROBABILITIES:
            p = getattr(cfg, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"augment.{name} is a probability in [0, 1], got {p}")
        if cfg.max_shift < 0 or cfg.mask_width < 0:
            raise ValueError(
                f"augment.max_shift and augment.mask_width are seconds >= 0, "
                f"got {cfg.max_shift} and {cfg.mask_width}"
            )
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        self.cfg = cfg
        self.sample_rate = float(sample_rate)
        self.max_shift_samples = int(round(cfg.max_shift * sample_rate))
        self.max_mask_samples = int(round(cfg.mask_width * sample_rate))

    @property
    def active(self) -> bool:
        """True when at least one augmentation has a non-zero probability."""
        return any(getattr(self.cfg, name) > 0 for name in _PROBABILITIES)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Augment ``x`` (batch, detector, time) in training mode; identity in eval mode."""
        if not self.training or not self.active:
            return x
        if x.ndim != 3:
            raise ValueError(f"Augment expects (batch, detector, time), got {tuple(x.shape)}")
        batch, n_det, n_time = x.shape
        dev = generator.device if generator is not None else torch.device("cpu")

        def uniform(*shape: int) -> torch.Tensor:
            return torch.rand(shape, generator=generator, device=dev).to(x.device)

        # All draws happen up front and in a fixed order (see class docstring); draws of
        # augmentations added later come last, so older recipes keep their numbers.
        u_apply = uniform(len(_PROBABILITIES) - 1, batch)
        u_shift, u_width, u_start, u_det = uniform(4, batch)
        u_apply = torch.cat([u_apply, uniform(1, batch)])
        u_order = uniform(batch, n_det)
        p = torch.tensor([getattr(self.cfg, n) for n in _PROBABILITIES], device=x.device)
        apply = u_apply < p[:, None]  # (augmentation, batch)
        t = torch.arange(n_time, device=x.device)

        if self.cfg.time_shift > 0 and self.max_shift_samples > 0:
            m = self.max_shift_samples
            shift = torch.floor(u_shift * (2 * m + 1)).long() - m
            shift = torch.where(apply[0], shift, torch.zeros_like(shift))
            index = (t[None, :] - shift[:, None]) % n_time
            x = torch.gather(x, 2, index[:, None, :].expand(batch, n_det, n_time))
        if self.cfg.swap_h1l1 > 0:
            x = torch.where(apply[1][:, None, None], swap_h1l1(x), x)
        if self.cfg.sign_flip > 0:
            x = x * torch.where(apply[2], -1.0, 1.0).to(x.dtype)[:, None, None]
        if self.cfg.time_mask > 0 and self.max_mask_samples > 0:
            width = torch.floor(u_width * (min(self.max_mask_samples, n_time) + 1)).long()
            start = torch.floor(u_start * (n_time - width + 1)).long()
            masked = (t[None, :] >= start[:, None]) & (t[None, :] < (start + width)[:, None])
            masked &= apply[3][:, None]
            x = x.masked_fill(masked[:, None, :], 0.0)
        if self.cfg.detector_dropout > 0:
            det = torch.clamp(torch.floor(u_det * n_det).long(), max=n_det - 1)
            drop = (torch.arange(n_det, device=x.device)[None, :] == det[:, None]) & apply[4][
                :, None
            ]
            x = x.masked_fill(drop[:, :, None], 0.0)
        if self.cfg.permute_detectors > 0:
            order = torch.argsort(u_order, dim=1)
            keep = torch.arange(n_det, device=x.device).expand(batch, n_det)
            order = torch.where(apply[5][:, None], order, keep)
            x = torch.gather(x, 1, order[:, :, None].expand(batch, n_det, n_time))
        return x

    def extra_repr(self) -> str:
        parts = [f"{n}={getattr(self.cfg, n)}" for n in _PROBABILITIES]
        return ", ".join(
            parts + [f"max_shift={self.cfg.max_shift}s", f"mask_width={self.cfg.mask_width}s"]
        )
