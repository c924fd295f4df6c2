"""The bank front-end's templates: placed for the cache's PSD, whitened with the cache's
conditioning, saved as ``RUN/bank.npz`` (:class:`WhitenedBank`).

Placement is :func:`g2res.baselines.bank.stochastic_bank` (sizes in
:class:`g2res.config.BankConfig`); whitening uses the manifest's bandpass and the PSD in
``psd.npz``, with no taper (templates have their merger at sample 0 and wrap round).
The module that correlates them with the data is :mod:`g2res.transforms.bank`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from g2res.baselines.bank import PARAMETERS
from g2res.utils import atomic_path

BANK_FILE = "bank.npz"  # beside a run's config.yaml


def chirp_mass(mass1: np.ndarray, mass2: np.ndarray) -> np.ndarray:
    """Chirp mass (Msun) of component masses (Msun)."""
    m1, m2 = np.asarray(mass1, np.float64), np.asarray(mass2, np.float64)
    return (m1 * m2) ** 0.6 / (m1 + m2) ** 0.2


@dataclass
class WhitenedBank:
    """Templates as the front-end sees them.

    ``templates`` (d, T, n_time) float32: whitened, unit-norm time series, merger at
    sample 0, sorted by chirp mass; ``d`` = 3 (one PSD per detector) or 1 (the
    detectors' harmonic-mean PSD). ``parameters``: ``mass1, mass2, spin1z, spin2z``
    (T,) each. ``settings``: placement and conditioning (JSON-able).
    """

    templates: np.ndarray
    parameters: dict[str, np.ndarray]
    settings: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return self.templates.shape[1]

    @property
    def chirp_mass(self) -> np.ndarray:
        return chirp_mass(self.parameters["mass1"], self.parameters["mass2"])

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``.npz`` atomically."""
        path = Path(path)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(
                fh,
                templates=self.templates.astype(np.float32),
                **{k: np.asarray(self.parameters[k], np.float64) for k in PARAMETERS},
                settings=np.array(json.dumps(self.settings, sort_keys=True)),
            )
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> WhitenedBank:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"template bank {path} does not exist")
        try:
            with np.load(path, allow_pickle=False) as z:
                templates = np.asarray(z["templates"], np.float32)
                params = {k: np.asarray(z[k], np.float64) for k in PARAMETERS}
                settings = json.loads(str(z["settings"]))
        except (KeyError, ValueError, OSError) as exc:
            raise ValueError(f"template bank {path} cannot be read: {exc}") from None
        if templates.ndim != 3 or any(v.shape != (templates.shape[1],) for v in params.values()):
            raise ValueError(
                f"template bank {path}: templates {templates.shape} and parameters do not fit"
            )
        return cls(templates, params, settings)


def _conditioning(cache) -> dict:
    """The cache's whitening + bandpass settings (manifest) and window length."""
    c = cache.conditioning
    return {
        "fmin": float(c["fmin"]),
        "fmax": float(c["fmax"]),
        "filter_order": int(c["filter_order"]),
        "sample_rate": float(cache.sample_rate),
        "n_time": int(cache.manifest.get("n_time", 4096)),
    }


def _placement(bank_cfg, seed: int) -> dict:
    return {
        "templates": int(bank_cfg.templates),
        "mass_range": [float(m) for m in bank_cfg.mass_range],
        "spin_max": float(bank_cfg.spin_max),
        "minimal_match": float(bank_cfg.minimal_match),
        "approximant": str(bank_cfg.approximant),
        "convergence": int(bank_cfg.convergence),
        "per_detector": bool(bank_cfg.per_detector),
        "seed": int(seed),
    }


def whiten_templates(
    waveforms: np.ndarray, frequencies, psd, conditioning: dict, per_detector: bool = True
) -> np.ndarray:
    """Strain templates (T, n) -> whitened unit-norm templates (d, T, n) float32.

    The cache's transfer function (inverse ASD x zero-phase Butterworth ``|H|^2``,
    :func:`g2res.signal.whiten.whitening_transfer`) applied without the data taper;
    ``psd`` (3, f) on ``frequencies`` Hz; ``per_detector=False``: the harmonic mean.
    """
    from g2res.signal.whiten import whitening_transfer

    psd = np.atleast_2d(np.asarray(psd, np.float64))
    if not per_detector:
        psd = 1.0 / np.mean(1.0 / psd, axis=0, keepdims=True)
    c = conditioning
    transfer = whitening_transfer(
        frequencies, psd, c["n_time"], c["sample_rate"], c["fmin"], c["fmax"], c["filter_order"]
    )  # (d, f) float64
    spec = torch.fft.rfft(torch.as_tensor(waveforms, dtype=torch.float64), dim=-1)
    white = torch.fft.irfft(spec[None] * transfer[:, None], n=c["n_time"])  # (d, T, n)
    norm = white.square().sum(-1, keepdim=True).sqrt()
    if bool((norm == 0).any()):
        raise ValueError("a template has no power in the cache's band")
    return (white / norm).float().numpy()


def place_bank(cache, bank_cfg, seed: int = 0, progress: bool = True) -> WhitenedBank:
    """Place a bank for ``cache``'s PSD (``psd.npz``) and whiten it like the cache.

    ``bank_cfg``: :class:`g2res.config.BankConfig`. The match of the placement is
    weighed over the cache's band (``fmin``-``fmax`` of its bandpass).
    """
    from g2res.baselines.bank import stochastic_bank
    from g2res.signal.whiten import interpolate_psd

    cond = _conditioning(cache)
    if bank_cfg.templates < 1:
        raise ValueError(f"model.bank.templates={bank_cfg.templates}: need at least 1")
    psd = cache.psd
    grid = np.fft.rfftfreq(cond["n_time"], 1.0 / cond["sample_rate"])
    on_grid = interpolate_psd(
        psd["frequencies"], psd["psd"], cond["n_time"], cond["sample_rate"]
    ).numpy()
    bank = stochastic_bank(
        on_grid, grid, tuple(bank_cfg.mass_range), bank_cfg.spin_max, bank_cfg.minimal_match,
        bank_cfg.approximant, convergence=bank_cfg.convergence,
        max_templates=bank_cfg.templates, seed=seed, fmin=cond["fmin"], fmax=cond["fmax"],
        sample_rate=cond["sample_rate"], n_samples=cond["n_time"], progress=progress,
    )  # fmt: skip
    order = np.argsort(chirp_mass(bank.mass1, bank.mass2), kind="stable")
    params = {k: np.asarray(getattr(bank, k), np.float64)[order] for k in PARAMETERS}
    waves = bank.waveforms(cond["sample_rate"], cond["n_time"])[order]
    templates = whiten_templates(waves, psd["frequencies"], psd["psd"], cond, bank_cfg.per_detector)
    settings = {
        **_placement(bank_cfg, seed),
        "conditioning": cond,
        "placed": len(bank),
        "proposals": int(bank.meta.get("proposals", 0)),
        "cache": str(cache.path),
        "psd_sha256": _psd_digest(psd["psd"]),
    }
    return WhitenedBank(templates, params, settings)


def _psd_digest(psd) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(psd, np.float64).tobytes()).hexdigest()


def run_bank(
    run_dir: str | os.PathLike, cache, bank_cfg, seed: int = 0, progress: bool = True,
    write: bool = True,
) -> WhitenedBank:  # fmt: skip
    """The bank of a run: ``run_dir/bank.npz`` when it is there (it must have been placed
    with the same settings for the same PSD), else placed now and (``write``) saved."""
    path = Path(run_dir) / BANK_FILE
    want = _placement(bank_cfg, seed)
    if path.is_file():
        bank = WhitenedBank.load(path)
        have = {k: bank.settings.get(k) for k in want}
        if have != want or bank.settings.get("psd_sha256") != _psd_digest(cache.psd["psd"]):
            raise ValueError(
                f"template bank {path} was placed with other settings or for another PSD "
                f"({have} vs the recipe's {want}); remove it or train into a new run directory"
            )
        return bank
    bank = place_bank(cache, bank_cfg, seed, progress)
    if write:
        bank.save(path)
    return bank


def describe(bank: WhitenedBank) -> str:
    """One line: templates, chirp-mass range, placement settings."""
    cm = bank.chirp_mass
    s = bank.settings
    return (
        f"{len(bank)} templates (chirp mass {cm.min():.1f}-{cm.max():.1f} Msun), "
        f"masses {s.get('mass_range')}, minimal match {s.get('minimal_match')}, "
        f"{'per-detector' if bank.templates.shape[0] > 1 else 'network'} whitening"
    )
