"""Signals injected on the fly into training batches, shared by ``g2res pretrain``
(every batch) and the fold trainer (``injection.mode: mix``, a share of each batch)."""

from __future__ import annotations

from pathlib import Path

import torch

from g2res.config import Config

__all__ = ["injection_source", "mix_injections"]


def injection_source(cfg: Config, train_rows=None, device="cpu", seed: int | None = None):
    """:class:`InjectionBatches` for ``cfg`` (pool, cache, noise, SNR schedule, rate)."""
    from g2res.transforms.inject import InjectionBatches, SNRSchedule

    inj = cfg.injection
    if not inj.pool:
        raise ValueError("injection.pool is not set: make one with `g2res waveforms --out POOL`")
    if not cfg.cache:
        raise ValueError("the recipe has no cache: set cache=CACHE_DIR (g2res preprocess)")
    for what, path in (("waveform pool", inj.pool), ("cache", cfg.cache)):
        if not Path(path).is_dir():
            raise FileNotFoundError(f"{what} {path} does not exist")
    schedule = SNRSchedule(inj.snr, inj.snr_distribution, inj.curriculum_snr, inj.curriculum_steps)
    return InjectionBatches(
        inj.pool,
        cfg.cache,
        indices=train_rows,
        noise=inj.noise,
        snr=schedule,
        rate=inj.rate,
        merger_window=inj.merger_window,
        seed=cfg.seed if seed is None else seed,
        device=device,
        psd_sources=inj.psd_sources,
        psd_tilt=inj.psd_tilt,
    )


def mix_injections(x, y, source, step: int, fraction: float):
    """Replace the first round(fraction * batch) samples of a labelled batch by injected
    ones (batch ``step`` of ``source``); x (b, d, time), y (b,). Returns new tensors."""
    k = int(round(fraction * x.shape[0]))
    if k == 0:
        return x, y
    xi, yi, _ = source.batch(step, k)
    x = torch.cat([xi.to(x), x[k:]])
    y = torch.cat([yi.to(y).reshape(-1), y[k:].reshape(-1)])
    return x, y
