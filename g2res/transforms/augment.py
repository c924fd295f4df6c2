"""Training augmentations on whitened strain, batched and seeded.

Every augmentation acts on ``(batch, detector, time)`` tensors, is applied to each
sample independently with its own probability and draws its randomness only from
the ``torch.Generator`` passed to :meth:`Augment.forward` (on the CPU, so a seed
gives the same result on any device). In ``eval()`` mode :class:`Augment` is the
identity.

``augment.glitch`` adds a simulated glitch (:mod:`g2res.data.glitches`, the generator
``g2res simulate --glitch-rate`` uses) to one detector of a sample, rendered at its
optimal SNR against the cache's PSD and conditioned like the cache (taper, whitening,
bandpass from its manifest; :class:`GlitchInjector`), so a glitch of SNR 20 here is what
a simulated glitch of SNR 20 becomes after ``g2res preprocess``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from g2res import DETECTORS, N_SAMPLES, TAPER_ALPHA
from g2res.config import AugmentConfig
from g2res.data.glitches import GLITCH_KINDS, check_kinds, make_glitch
from g2res.data.waveforms import SNR_FMIN
from g2res.signal import WhitenBandpass, interpolate_psd

__all__ = [
    "Augment",
    "GlitchInjector",
    "TTA_GROUPS",
    "TTA_TRANSFORMS",
    "reorder_detectors",
    "swap_h1l1",
    "sign_flip",
]

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


class GlitchInjector(nn.Module):
    """Simulated glitches conditioned like a cache: ``(m, detector, n_time)`` float32.

    Args:
        frequencies, psd: the cache's PSD, (f,) Hz and (d, f) one-sided strain^2/Hz.
        sample_rate, n_time: Hz and samples of the cache's windows.
        fmin, fmax, order, window, window_alpha: the cache's conditioning (manifest).
        kinds, snr_range: glitch kinds and the range of their optimal SNR.

    ``forward(detectors, rng)`` draws one glitch per entry of ``detectors`` (row indices)
    from the numpy generator ``rng`` with :func:`g2res.data.glitches.make_glitch`, scaled
    to its optimal SNR (f >= 20 Hz, as the simulator) against the PSD interpolated like
    the cache's whitening does, and returns them whitened and bandpassed, each in its row
    (zeros in the others). Away from the taper and inside the band the norm of a
    conditioned glitch is its SNR.
    """

    def __init__(
        self,
        frequencies,
        psd,
        sample_rate: float,
        n_time: int = N_SAMPLES,
        fmin: float | None = 20.0,
        fmax: float | None = 500.0,
        order: int = 8,
        window: str = "tukey",
        window_alpha: float = TAPER_ALPHA,
        kinds: Sequence[str] = ("sine_gaussian", "blip", "scattered_light"),
        snr_range: tuple[float, float] = (8.0, 50.0),
    ):
        super().__init__()
        self.kinds = check_kinds(kinds, "augment.glitch_kinds")
        if not 0 < snr_range[0] <= snr_range[1]:
            raise ValueError(f"augment.glitch_snr {tuple(snr_range)}: need 0 < MIN <= MAX")
        self.snr_range = (float(snr_range[0]), float(snr_range[1]))
        self.sample_rate, self.n_time = float(sample_rate), int(n_time)
        self.conditioner = WhitenBandpass(
            frequencies, psd, sample_rate, n_time, fmin=fmin, fmax=fmax, order=order,
            window=window, window_alpha=window_alpha,
        )  # fmt: skip
        self.psd_grid = np.atleast_2d(
            interpolate_psd(frequencies, psd, n_time, sample_rate).numpy()
        )

    @classmethod
    def from_cache(cls, cache, kinds=None, snr_range=(8.0, 50.0)) -> GlitchInjector:
        """Built from a :class:`g2res.data.cache.Cache` (or its path): PSD and manifest."""
        from g2res.data.cache import Cache

        cache = cache if isinstance(cache, Cache) else Cache(cache)
        c = cache.conditioning
        n_time = cache.manifest.get("n_time") or cache.array("train").shape[-1]
        psd = cache.psd
        return cls(
            psd["frequencies"], psd["psd"], cache.sample_rate, int(n_time),
            fmin=c["fmin"], fmax=c["fmax"], order=c["filter_order"], window=c["window"],
            window_alpha=c["window_alpha"],
            kinds=kinds if kinds is not None else GLITCH_KINDS,
            snr_range=snr_range,
        )  # fmt: skip

    def render(self, detectors: Sequence[int], rng: np.random.Generator):
        """Strain (m, d, n_time) float64 numpy and the :class:`Glitch` records."""
        strain = np.zeros((len(detectors), self.psd_grid.shape[0], self.n_time))
        records = []
        for i, det in enumerate(detectors):
            series, glitch = make_glitch(rng, self.psd_grid[det], self.sample_rate, self.n_time,
                                         self.kinds, self.snr_range, SNR_FMIN)  # fmt: skip
            strain[i, det] = series
            records.append(glitch)
        return strain, records

    def forward(self, detectors: Sequence[int], rng: np.random.Generator) -> torch.Tensor:
        strain, _ = self.render(detectors, rng)
        x = torch.from_numpy(strain).to(self.conditioner.transfer.device)
        return self.conditioner(x).float()


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

    Before all of them, ``glitch`` adds a simulated glitch to one detector chosen
    uniformly (:class:`GlitchInjector`, built from ``cache``), so the later steps move it
    with the data.

    The same random numbers are drawn whatever the probabilities, so changing one
    probability does not reshuffle the others; the glitch draws come after all others
    and only when ``glitch > 0``, so recipes without glitches keep their numbers.
    """

    def __init__(self, cfg: AugmentConfig | None = None, sample_rate: float = 2048.0, cache=None):
        super().__init__()
        cfg = cfg if cfg is not None else AugmentConfig()
        for name in (*_PROBABILITIES, "glitch"):
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
        self.glitches = None
        if cfg.glitch > 0:
            if cache is None:
                raise ValueError(
                    "augment.glitch needs the cache (its PSD and conditioning settings) to "
                    "render glitches like the cached data"
                )
            self.glitches = GlitchInjector.from_cache(cache, cfg.glitch_kinds, cfg.glitch_snr)
            if abs(self.glitches.sample_rate - self.sample_rate) > 1e-9:
                raise ValueError(
                    f"augment at {self.sample_rate} Hz but the cache is at "
                    f"{self.glitches.sample_rate} Hz"
                )

    @property
    def active(self) -> bool:
        """True when at least one augmentation has a non-zero probability."""
        return any(getattr(self.cfg, name) > 0 for name in (*_PROBABILITIES, "glitch"))

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

        if self.glitches is not None:
            u_glitch, u_gdet = uniform(2, batch).cpu()
            seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=dev))
            rows = torch.nonzero(u_glitch < self.cfg.glitch).flatten()
            if rows.numel():
                if n_det != self.glitches.psd_grid.shape[0] or n_time != self.glitches.n_time:
                    raise ValueError(
                        f"augment.glitch built for ({self.glitches.psd_grid.shape[0]}, "
                        f"{self.glitches.n_time}) samples, got {tuple(x.shape[1:])}"
                    )
                det = torch.clamp(torch.floor(u_gdet[rows] * n_det).long(), max=n_det - 1)
                glitch = self.glitches(det.tolist(), np.random.default_rng(seed))
                x = x.index_add(0, rows.to(x.device), glitch.to(x.device, x.dtype))

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
        parts = [f"{n}={getattr(self.cfg, n)}" for n in (*_PROBABILITIES, "glitch")]
        return ", ".join(
            parts + [f"max_shift={self.cfg.max_shift}s", f"mask_width={self.cfg.mask_width}s"]
        )
