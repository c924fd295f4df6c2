"""Template banks of binary black hole waveforms for the matched filter.

Templates are lalsimulation h+ waveforms (face-on, coalescence phase 0, aligned
spins) of non-precessing approximants (IMRPhenomD by default). Each is laid out on
the analysis window (``n_samples`` at ``sample_rate`` Hz) with its peak at sample 0
and the inspiral wrapped round to the end, so the correlation with data at lag
``k`` is the SNR of a merger at ``k / sample_rate`` s. At most ``duration`` s of
inspiral are kept (a G2Net window is 2 s long), the cut tapered by a half-Hann.

Placement is stochastic (as in sbank): proposals drawn from the simulator's prior
(component masses uniform in ``mass_range``, aligned spins the z components of
isotropic spins of magnitude up to ``spin_max``) are added when their best match with
the bank is below ``minimal_match``; placement stops after ``convergence`` proposals
in a row were all covered. The fraction of the prior left uncovered is then about
``1 / convergence``. The match is the overlap maximised over time and phase, weighted
by the harmonic mean of the detectors' PSDs over ``fmin``-Nyquist.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from g2res.utils import atomic_path

SAMPLE_RATE = 2048.0  # Hz
N_SAMPLES = 4096  # samples of one window
F_LOWER = 20.0  # Hz, waveform start frequency and lower edge of every inner product
DURATION = 1.8  # s, longest inspiral kept before the peak
POST_MERGER = 0.1  # s, kept after the peak
START_TAPER = 0.05  # s, half-Hann ramp at the start of a cut template
PARAMETERS = ("mass1", "mass2", "spin1z", "spin2z")


def template_waveform(
    mass1: float,
    mass2: float,
    spin1z: float = 0.0,
    spin2z: float = 0.0,
    approximant: str = "IMRPhenomD",
    sample_rate: float = SAMPLE_RATE,
    n_samples: int = N_SAMPLES,
    duration: float = DURATION,
    f_lower: float = F_LOWER,
) -> np.ndarray:
    """One template (n_samples,) in strain at 100 Mpc: peak at sample 0, inspiral wrapped
    round to the end of the array (masses in Msun, detector frame; dimensionless spins)."""
    from g2res.data.waveforms import BBHParameters, is_precessing, polarizations

    if is_precessing(approximant):
        raise ValueError(
            f"approximant {approximant!r} is precessing; the bank needs an aligned-spin or "
            "non-spinning one (e.g. IMRPhenomD, SEOBNRv4, TaylorT4)"
        )
    n_pre = int(round(duration * sample_rate))
    n_post = int(round(POST_MERGER * sample_rate))
    if n_pre + n_post > n_samples:
        raise ValueError(
            f"template duration {duration} s + {POST_MERGER} s does not fit the "
            f"{n_samples / sample_rate} s window"
        )
    params = BBHParameters(
        mass1, mass2, 0.0, 0.0, spin1z, 0.0, 0.0, spin2z,
        0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    )  # fmt: skip
    hp, _, t_first = polarizations(params, approximant, sample_rate, f_lower, duration + 0.1)
    peak = int(round(-t_first * sample_rate))
    lo, hi = max(peak - n_pre, 0), min(peak + n_post, hp.size)
    seg = hp[lo:hi].copy()
    if lo > 0:  # cut inside the inspiral: taper it so the cut does not ring
        n_taper = min(int(round(START_TAPER * sample_rate)), seg.size // 4)
        seg[:n_taper] *= 0.5 - 0.5 * np.cos(np.pi * np.arange(n_taper) / n_taper)
    out = np.zeros(n_samples)
    out[(np.arange(lo, hi) - peak) % n_samples] = seg
    return out


def whitening(
    psd: np.ndarray, frequencies: np.ndarray, fmin: float = F_LOWER, fmax: float | None = None
) -> np.ndarray:
    """1 / sqrt(psd) in the band ``fmin <= f <= fmax`` (default Nyquist), 0 outside.

    ``psd`` (..., f) one-sided strain^2/Hz on ``frequencies`` (f,) Hz.
    """
    fmax = frequencies[-1] if fmax is None else fmax
    band = (frequencies >= fmin) & (frequencies <= fmax)
    psd = np.asarray(psd, dtype=np.float64)
    if np.any(~np.isfinite(psd[..., band])) or np.any(psd[..., band] <= 0):
        raise ValueError(f"PSD must be finite and positive between {fmin} and {fmax} Hz")
    weight = np.zeros_like(psd)
    weight[..., band] = 1.0 / np.sqrt(psd[..., band])
    return weight


def normalised_spectra(h: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Whitened spectra of unit norm: rfft(h) * weight / ||rfft(h) * weight||.

    ``h`` (..., n) strain, ``weight`` (..., n // 2 + 1) from :func:`whitening`.
    Returns complex128 (..., n // 2 + 1); sum of |.|^2 over frequency is 1.
    """
    spec = np.fft.rfft(h, axis=-1) * weight
    norm = np.sqrt(np.sum(np.abs(spec) ** 2, axis=-1, keepdims=True))
    if np.any(norm == 0):
        raise ValueError("a template has no power in the analysis band")
    return spec / norm


def max_overlap(a: torch.Tensor, b: torch.Tensor, upsample: int = 2) -> torch.Tensor:
    """Match of every row of ``a`` (A, f) with every row of ``b`` (B, f): (A, B).

    Rows are unit-norm whitened one-sided spectra (:func:`normalised_spectra`); the
    match |sum a b* exp(2 pi i f t)| is maximised over phase (modulus) and time on a
    grid ``upsample`` times finer than the sampling.
    """
    n_freq = a.shape[-1]
    length = 2 * (n_freq - 1) * upsample
    prod = a[:, None, :] * b[None, :, :].conj()
    series = torch.fft.ifft(prod, n=length, dim=-1) * length
    return series.abs().amax(-1)


@dataclass
class TemplateBank:
    """Template parameters (each (n_templates,)) and the settings that made them."""

    mass1: np.ndarray
    mass2: np.ndarray
    spin1z: np.ndarray
    spin2z: np.ndarray
    approximant: str = "IMRPhenomD"
    minimal_match: float = 0.95
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.mass1)

    def waveforms(
        self, sample_rate: float = SAMPLE_RATE, n_samples: int = N_SAMPLES, **kwargs
    ) -> np.ndarray:
        """All templates (n_templates, n_samples), see :func:`template_waveform`."""
        return np.stack(
            [
                template_waveform(*p, self.approximant, sample_rate, n_samples, **kwargs)
                for p in zip(self.mass1, self.mass2, self.spin1z, self.spin2z)
            ]
        )

    def parameters(self, index: int) -> dict:
        return {name: float(getattr(self, name)[index]) for name in PARAMETERS}

    def save(self, path: str | os.PathLike) -> Path:
        """Write the bank as ``.npz`` (atomically)."""
        path = Path(path)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(
                fh,
                **{name: getattr(self, name) for name in PARAMETERS},
                approximant=np.array(self.approximant),
                minimal_match=np.array(self.minimal_match),
            )
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> TemplateBank:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"template bank {path} does not exist")
        try:
            with np.load(path, allow_pickle=False) as z:
                values = {name: np.asarray(z[name], dtype=np.float64) for name in PARAMETERS}
                return cls(
                    **values,
                    approximant=str(z["approximant"]),
                    minimal_match=float(z["minimal_match"]),
                )
        except (KeyError, ValueError, OSError) as exc:
            raise ValueError(f"template bank {path} cannot be read: {exc}") from None


def _propose(rng, n, mass_range, spin_max) -> np.ndarray:
    """(n, 4) proposals: masses uniform in ``mass_range`` (m1 >= m2) and aligned spins
    distributed as the z components of isotropic spins of magnitude uniform in
    [0, spin_max] (the simulator's prior), so coverage is measured where injections are."""
    m = rng.uniform(mass_range[0], mass_range[1], size=(n, 2))
    chi = rng.uniform(0.0, spin_max, size=(n, 2)) * rng.uniform(-1.0, 1.0, size=(n, 2))
    return np.column_stack([m.max(1), m.min(1), chi[:, 0], chi[:, 1]])


def stochastic_bank(
    psd: np.ndarray,
    frequencies: np.ndarray,
    mass_range: tuple[float, float] = (7.0, 50.0),
    spin_max: float = 0.99,
    minimal_match: float = 0.95,
    approximant: str = "IMRPhenomD",
    convergence: int = 100,
    max_templates: int = 5000,
    seed: int = 0,
    fmin: float = F_LOWER,
    sample_rate: float = SAMPLE_RATE,
    n_samples: int = N_SAMPLES,
    device: str | torch.device = "cpu",
    proposals_per_batch: int = 32,
    fmax: float | None = None,
    progress: bool = True,
) -> TemplateBank:
    """Place a stochastic bank (see module docstring) for a PSD (d, f) or (f,) in
    strain^2/Hz on ``frequencies`` = rfftfreq(n_samples, 1 / sample_rate) Hz; matches
    are weighed over ``fmin``-``fmax`` Hz (default Nyquist)."""
    from tqdm.auto import tqdm

    if not 0 < minimal_match < 1:
        raise ValueError(f"minimal match must be in (0, 1), got {minimal_match}")
    if not 0 < mass_range[0] <= mass_range[1]:
        raise ValueError(f"mass range {mass_range} Msun: need 0 < MIN <= MAX")
    psd = np.atleast_2d(np.asarray(psd, dtype=np.float64))
    # Harmonic mean: the network weighs each frequency by the sum of inverse PSDs.
    weight = whitening(1.0 / np.mean(1.0 / psd, axis=0), frequencies, fmin, fmax)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(7,)))
    device = torch.device(device)
    bank = torch.zeros((0, frequencies.size), dtype=torch.complex64, device=device)
    accepted: list[np.ndarray] = []
    in_a_row = 0
    n_proposed = 0
    bar = tqdm(desc="template bank", unit="template", disable=not progress)
    while in_a_row < convergence and len(accepted) < max_templates:
        props = _propose(rng, proposals_per_batch, mass_range, spin_max)
        waves = np.stack(
            [template_waveform(*p, approximant, sample_rate, n_samples) for p in props]
        )
        cand = torch.as_tensor(normalised_spectra(waves, weight), dtype=torch.complex64).to(device)
        best = torch.zeros(len(props), device=device)
        for start in range(0, len(bank), 256):
            best = torch.maximum(best, max_overlap(cand, bank[start : start + 256]).amax(1))
        for i in range(len(props)):
            n_proposed += 1
            if best[i] >= minimal_match:
                in_a_row += 1
                if in_a_row >= convergence:
                    break
                continue
            in_a_row = 0
            accepted.append(props[i])
            bank = torch.cat([bank, cand[i : i + 1]])
            bar.update()
            if len(accepted) >= max_templates:
                break
            if i + 1 < len(props):
                rest = max_overlap(cand[i + 1 :], cand[i : i + 1])[:, 0]
                best[i + 1 :] = torch.maximum(best[i + 1 :], rest)
        bar.set_postfix(proposed=n_proposed, covered_in_a_row=in_a_row)
    bar.close()
    table = np.array(accepted).reshape(-1, 4)
    return TemplateBank(
        *table.T.copy(),
        approximant=approximant,
        minimal_match=minimal_match,
        meta={
            "mass_range": list(mass_range),
            "spin_max": spin_max,
            "convergence": convergence,
            "proposals": n_proposed,
            "seed": seed,
            "fmin": fmin,
            "fmax": fmax,
        },
    )


def best_match(
    bank_spectra: torch.Tensor, h: np.ndarray, weight: np.ndarray, upsample: int = 2
) -> tuple[float, int]:
    """Best match of waveform ``h`` (n,) with a bank's unit-norm spectra (T, f) and the
    index of the template that gives it."""
    u = torch.as_tensor(normalised_spectra(h, weight)[None], dtype=torch.complex64)
    u = u.to(bank_spectra.device)
    matches = torch.cat(
        [
            max_overlap(u, bank_spectra[s : s + 256], upsample)[0]
            for s in range(0, len(bank_spectra), 256)
        ]
    )
    i = int(matches.argmax())
    return float(matches[i]), i
