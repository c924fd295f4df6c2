"""Matched-filter front-end: a fixed bank of whitened templates correlated with each
detector's whitened strain by FFT inside the model, for 1D backbones.

``(batch, 3, time)`` whitened strain -> ``(batch, channels, time // pool)`` matched-filter
SNR series ``|z|`` (unit-variance quadratures in Gaussian noise; a template-shaped signal
of whitened norm rho peaks at ~rho at its merger sample). Two feature layouts:

- ``topk`` (default): for each sample, the ``k`` templates with the largest network peak
  ``sum_d max_t |z_d(t)|^2``; channels ``(rank, detector)`` = ``k * 3``, best first. The
  same template is kept in all detectors, so coincidence and phase-free timing across
  detectors stay visible to the backbone.
- ``groups``: the bank sorted by chirp mass and cut into ``groups`` contiguous groups of
  nearly equal size; channel ``(group, detector)`` is the max of ``|z|`` over the group's
  templates (``groups * 3`` channels, fixed meaning: low to high chirp mass).

``pool > 1`` max-pools the series over ``pool`` samples (a peak stays a peak, the
backbone gets ``pool`` times fewer samples).

The bank (:class:`WhitenedBank`) is placed for the cache's PSD by
:func:`g2res.baselines.bank.stochastic_bank` (sizes in :class:`g2res.config.BankConfig`)
and whitened with the cache's own conditioning (the manifest's bandpass and the PSD in
``psd.npz``; no taper: templates have their merger at sample 0 and wrap round), saved
as ``RUN/bank.npz`` and held by the module as the persistent buffer ``kernels`` (so
``.to()`` moves it and every checkpoint carries it: ``g2res submit`` never places it
again). The correlation is :mod:`g2res.signal.matched` (fp32, outside autocast,
templates in chunks sized to memory).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from g2res.signal.matched import (
    correlation_kernels,
    snr_power,
    snr_quadratures,
    template_chunk,
    unit_spectra,
)
from g2res.transforms.bank_templates import (
    BANK_FILE,
    WhitenedBank,
    chirp_mass,
    describe,
    place_bank,
    run_bank,
    whiten_templates,
)

__all__ = [
    "BANK_FILE",
    "BankFrontend",
    "WhitenedBank",
    "chirp_mass",
    "describe",
    "whiten_templates",
    "attach_bank",
    "place_bank",
    "run_bank",
    "uses_bank",
]

FEATURES = ("topk", "groups")
# A training batch of 64 (3, 4096) samples is ~12 MiB per template: 4-5 templates a chunk.
FRONTEND_CHUNK_BYTES = 64 * 2**20


def _groups(n_templates: int, n_groups: int) -> torch.Tensor:
    """Boundaries (G + 1,) of ``n_groups`` contiguous groups of nearly equal size."""
    return torch.round(torch.linspace(0, n_templates, n_groups + 1)).long()


class BankFrontend(nn.Module):
    """Matched-filter SNR series of each detector against a whitened template bank.

    Args:
        bank: a :class:`WhitenedBank` or whitened templates ``(d, T, n_time)`` (d = 1 or
            ``in_chans``); None builds an empty module whose bank comes with a
            checkpoint (``load_state_dict``) or :meth:`set_bank`.
        features: ``topk`` or ``groups`` (see the module docstring).
        k: templates kept per sample (``topk``).
        groups: chirp-mass groups (``groups``); at most the number of templates.
        pool: samples max-pooled into one output sample (``n_time`` divisible by it).
        in_chans: detectors of the input.
        n_time: samples of the input (and of the templates).
        chunk_bytes: memory for one chunk of templates (product + SNR series).

    Buffers: ``kernels`` ``(T, d, 2, f, 2)`` float32 (the correlation kernels of
    :func:`g2res.signal.matched.correlation_kernels` as real pairs) and
    ``chirp_mass`` ``(T,)`` Msun, both persistent.
    """

    is_2d = False

    def __init__(
        self,
        bank: WhitenedBank | np.ndarray | None = None,
        features: str = "topk",
        k: int = 4,
        groups: int = 8,
        pool: int = 1,
        in_chans: int = 3,
        n_time: int = 4096,
        sample_rate: float = 2048.0,
        chunk_bytes: int = FRONTEND_CHUNK_BYTES,
    ):
        super().__init__()
        if features not in FEATURES:
            raise ValueError(
                f"bank front-end: features must be one of {FEATURES}, got {features!r}"
            )
        if k < 1 or groups < 1 or pool < 1 or n_time % pool:
            raise ValueError(
                f"bank front-end: need k >= 1, groups >= 1 and a pool >= 1 dividing n_time="
                f"{n_time}; got k={k}, groups={groups}, pool={pool}"
            )
        self.features, self.k, self.n_groups, self.pool = features, int(k), int(groups), int(pool)
        self.in_chans, self.n_time = int(in_chans), int(n_time)
        self.sample_rate = float(sample_rate)
        self.chunk_bytes = int(chunk_bytes)
        width = self.k if features == "topk" else self.n_groups
        self.out_chans = width * self.in_chans
        n_freq = self.n_time // 2 + 1
        self.register_buffer("kernels", torch.zeros(0, 1, 2, n_freq, 2))
        self.register_buffer("chirp_mass", torch.zeros(0))
        if bank is not None:
            self.set_bank(bank)

    # ----------------------------------------------------------------- the bank
    @property
    def n_templates(self) -> int:
        return self.kernels.shape[0]

    def set_bank(self, bank: WhitenedBank | np.ndarray, chirp_mass: np.ndarray | None = None):
        """Hold ``bank`` (whitened templates ``(d, T, n_time)`` sorted by chirp mass)."""
        if isinstance(bank, WhitenedBank):
            chirp_mass, templates = bank.chirp_mass, bank.templates
        else:
            templates = np.asarray(bank)
        if templates.ndim != 3 or templates.shape[0] not in (1, self.in_chans):
            raise ValueError(
                f"bank front-end: templates must be (1 or {self.in_chans}, T, {self.n_time}), "
                f"got {templates.shape}"
            )
        if templates.shape[-1] != self.n_time:
            raise ValueError(
                f"bank front-end: templates have {templates.shape[-1]} samples, the input "
                f"{self.n_time}"
            )
        n = templates.shape[1]
        if self.features == "topk" and self.k > n:
            raise ValueError(f"bank front-end: k={self.k} but the bank has {n} templates")
        if self.features == "groups" and self.n_groups > n:
            raise ValueError(
                f"bank front-end: groups={self.n_groups} but the bank has {n} templates"
            )
        device = self.kernels.device
        t = torch.as_tensor(templates, dtype=torch.float32, device=device).transpose(0, 1)
        kernels = correlation_kernels(unit_spectra(t), 1.0, self.n_time)  # (T, d, 2, f)
        self.kernels = torch.view_as_real(kernels).contiguous()
        cm = np.arange(n, dtype=np.float64) if chirp_mass is None else np.asarray(chirp_mass)
        self.chirp_mass = torch.as_tensor(cm, dtype=torch.float32, device=device)
        return self

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # A module built without a bank takes the checkpoint's (any number of templates).
        for name in ("kernels", "chirp_mass"):
            value = state_dict.get(prefix + name)
            if value is not None and value.shape != getattr(self, name).shape:
                setattr(self, name, torch.empty_like(value, device=getattr(self, name).device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ----------------------------------------------------------------- forward
    def output_shape(self, n_time: int) -> tuple[int, int]:
        return self.out_chans, n_time // self.pool

    def snr(self, x: torch.Tensor) -> torch.Tensor:
        """Complex SNR ``(batch, T, detector, time)`` of every template (all at once:
        for tests and inspection; :meth:`forward` keeps memory bounded)."""
        spec, kernels = self._spectra(x)
        q = snr_quadratures(spec, kernels, self.n_time)
        return torch.complex(q[..., 0, :], q[..., 1, :])

    def _spectra(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.n_templates == 0:
            raise RuntimeError(
                "bank front-end has no templates: load a checkpoint or call set_bank "
                "(cv-train places the bank for the cache's PSD)"
            )
        if x.ndim != 3 or x.shape[1] != self.in_chans or x.shape[2] != self.n_time:
            raise ValueError(
                f"bank front-end expects (batch, {self.in_chans}, {self.n_time}), "
                f"got {tuple(x.shape)}"
            )
        spec = torch.fft.rfft(x.float(), dim=-1)
        return spec, torch.view_as_complex(self.kernels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, detector, time)`` whitened strain -> ``(batch, out_chans, time // pool)``
        float32 ``|z|``."""
        with torch.autocast(device_type=x.device.type, enabled=False):
            spec, kernels = self._spectra(x)
            b, d, n_freq = spec.shape
            chunk = template_chunk(b, d, n_freq, self.n_time, self.chunk_bytes)
            if self.features == "topk":
                power = self._topk(spec, kernels, chunk)
            else:
                power = self._group_max(spec, kernels, chunk)
            z = power.clamp_min(0).sqrt().reshape(b, self.out_chans, self.n_time)
            if self.pool > 1:
                z = F.max_pool1d(z, self.pool, self.pool)
            return z

    def _chunks(self, spec, kernels, chunk):
        for s in range(0, self.n_templates, chunk):
            yield s, snr_power(snr_quadratures(spec, kernels[s : s + chunk], self.n_time))

    def _topk(self, spec, kernels, chunk) -> torch.Tensor:
        # Pass 1: every template's network peak; pass 2: the k best series of each sample
        # again, with per-sample kernels (k / T of the first pass's FFTs).
        score = torch.cat([p.amax(-1).sum(-1) for _, p in self._chunks(spec, kernels, chunk)], 1)
        keep = score.topk(self.k, dim=1).indices  # (b, k), largest first
        return snr_power(snr_quadratures(spec, kernels[keep], self.n_time))

    def _group_max(self, spec, kernels, chunk) -> torch.Tensor:
        b, d, _ = spec.shape
        bounds = _groups(self.n_templates, self.n_groups).tolist()
        out = spec.new_zeros((b, self.n_groups, d, self.n_time), dtype=torch.float32)
        for s, p in self._chunks(spec, kernels, chunk):
            e = s + p.shape[1]
            for g in range(self.n_groups):  # the groups this chunk overlaps
                lo, hi = max(bounds[g], s), min(bounds[g + 1], e)
                if lo < hi:
                    out[:, g] = torch.maximum(out[:, g], p[:, lo - s : hi - s].amax(1))
        return out

    def extra_repr(self) -> str:
        shape = tuple(self.kernels.shape[:2])
        return (
            f"templates={shape[0]}, whitening={'per detector' if shape[1] > 1 else 'network'}, "
            f"features={self.features}, k={self.k}, groups={self.n_groups}, pool={self.pool}, "
            f"out_chans={self.out_chans}"
        )


def attach_bank(
    model: nn.Module, cache, bank_cfg, seed: int, run_dir: str | os.PathLike,
    init_from: str | os.PathLike | None = None, write: bool = True, progress: bool = True,
) -> WhitenedBank | None:  # fmt: skip
    """Give ``model``'s bank front-end (if it has one) the run's templates.

    A front-end that already holds a bank (the weights of ``train.init_from``) keeps
    it, and the bank file beside ``init_from`` is copied into ``run_dir`` when there is
    one; otherwise the bank is :func:`run_bank` (``run_dir/bank.npz``, placed and written
    when missing). Returns the bank set, or None.
    """
    front = getattr(model, "frontend", model)
    if not isinstance(front, BankFrontend):
        return None
    path = Path(run_dir) / BANK_FILE
    if front.n_templates > 0:
        source = Path(init_from).parent / BANK_FILE if init_from else None
        if write and source is not None and source.is_file() and not path.is_file():
            WhitenedBank.load(source).save(path)
        return None
    bank = run_bank(run_dir, cache, bank_cfg, seed, progress, write)
    front.set_bank(bank)
    return bank


def uses_bank(model_cfg) -> bool:
    """Whether a :class:`g2res.config.ModelConfig` has the ``bank`` front-end."""
    f = model_cfg.frontend
    return (f if isinstance(f, str) else dict(f).get("name")) == "bank"
