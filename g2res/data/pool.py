"""``g2res waveforms``: a pool of binary black hole polarisations for on-the-fly injection.

A pool stores, for each source, h+ and hx (float32, strain at ``REFERENCE_DISTANCE``
Mpc) on a common grid with the peak (lalsimulation's t = 0) at a fixed sample.
Everything that does not change the polarisations' shape is left for injection time
(:mod:`g2res.transforms.inject`): sky position, polarisation angle, merger time,
detector delays and the amplitude (network SNR).

Priors (per source, deliberately wider than a typical data set's)
----------------------------------------------------------------
- component masses independently log-uniform in ``mass_range`` (detector frame,
  default 5-100 Msun; ``mass_prior="uniform"`` for flat), then ordered m1 >= m2.
  Log-uniform because light binaries are the hard ones for a network: at a given
  SNR their power is spread over a long, slowly rising chirp, while heavy ones put it
  in a few loud cycles. A flat 5-100 Msun prior has half its sources above 100 Msun
  total mass, where a network is already near matched-filter efficiency;
  log-uniform gives light and heavy systems comparable shares of the training;
- spins isotropic in direction, magnitude uniform in [0, ``spin_max``] (0.99); for
  non-precessing approximants only the z components are kept;
- cos(inclination) uniform in [-1, 1], coalescence phase uniform in [0, 2 pi).

These are :func:`g2res.data.waveforms.draw_parameters`; its other draws (sky,
polarisation, merger time, SNR) are made but not used, so sources line up with it.

Layout of the pool directory::

    polarizations.npy   (n, 2, n_time) float32: h+ (row 0), hx (row 1), strain
    params.csv          index, masses (Msun), spins, inclination, coa_phase (rad), f_start (Hz)
                        (and approximant, for a mix)
    manifest.json       format, sample rate, n_time, merger_index, priors, seed, approximant
                        (a name, or for a mix the list and approximant_weights)

Several approximants (``approximant=("IMRPhenomXPHM", "SEOBNRv4_opt")``, optional
``approximant_weights``) give each source one of them, drawn from the pool's seed by
:mod:`g2res.data.approximants`; one approximant writes the same bytes as before mixes.

The grid covers ``pre_merger`` s before the peak and ``post_merger`` s after it;
the first ``taper`` s are a half-Hann ramp so the cut early inspiral does not ring
when shifted. Injections are valid for merger times up to ``pre_merger - taper``
minus the largest light-travel delay (~21 ms) into the window.

Each source is drawn from its own generator seeded by (seed, index), so the bytes do
not depend on the number of workers. An interrupted run resumes from ``OUT/.partial``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from g2res import __version__
from g2res.data.approximants import ApproximantMix, parse_approximants
from g2res.data.waveforms import (
    F_LOWER,
    MASS_PRIORS,
    REFERENCE_DISTANCE,
    SPIN_MAX,
    draw_parameters,
    polarizations,
    render_with_redraws,
)
from g2res.utils import atomic_open, atomic_path, write_json

FORMAT = "g2res-pool-1"
MANIFEST = "manifest.json"
ARRAY = "polarizations.npy"
PARAMS = "params.csv"
PARTIAL = ".partial"
STATE = "state.json"
PARAM_COLUMNS = [
    "index", "mass1", "mass2", "spin1x", "spin1y", "spin1z", "spin2x", "spin2y", "spin2z",
    "inclination", "coa_phase", "f_start", "attempts",
]  # fmt: skip


@dataclass(frozen=True)
class PoolConfig:
    """Settings of a waveform pool (all recorded in its manifest)."""

    n: int = 200_000  # sources
    approximant: str | tuple[str, ...] = "IMRPhenomXPHM"  # lalsimulation TD approximant(s)
    approximant_weights: tuple[float, ...] | None = None  # of a mix; None: equal
    mass_range: tuple[float, float] = (5.0, 100.0)  # Msun, detector-frame component masses
    mass_prior: str = "loguniform"  # or "uniform", for each component mass in mass_range
    spin_max: float = SPIN_MAX  # largest dimensionless spin magnitude
    sample_rate: float = 2048.0  # Hz
    pre_merger: float = 2.25  # s of signal kept before the peak
    post_merger: float = 0.25  # s kept after the peak
    taper: float = 0.2  # s, half-Hann ramp at the start of the grid
    f_lower: float = F_LOWER  # Hz, reference frequency of the spins and lowest start frequency
    workers: int = 1  # processes
    chunk: int = 256  # sources written between progress checkpoints

    @property
    def n_time(self) -> int:
        return int(round((self.pre_merger + self.post_merger) * self.sample_rate))

    @property
    def merger_index(self) -> int:
        return int(round(self.pre_merger * self.sample_rate))


def check_pool_config(config: PoolConfig) -> None:
    """Raise ValueError naming the first bad setting."""
    c = config
    if c.n < 1:
        raise ValueError(f"pool size n={c.n}: need at least 1 source")
    if not 0 < c.mass_range[0] <= c.mass_range[1]:
        raise ValueError(f"mass_range {c.mass_range} Msun: need 0 < MIN <= MAX")
    if c.mass_prior not in MASS_PRIORS:
        raise ValueError(f"mass_prior {c.mass_prior!r}: use one of {', '.join(MASS_PRIORS)}")
    if not 0 <= c.spin_max < 1:
        raise ValueError(f"spin_max={c.spin_max}: need 0 <= spin_max < 1")
    if c.pre_merger <= c.taper or c.taper < 0 or c.post_merger < 0:
        raise ValueError(
            f"pre_merger={c.pre_merger} s, post_merger={c.post_merger} s, taper={c.taper} s: "
            "need pre_merger > taper >= 0 and post_merger >= 0"
        )
    if c.workers < 1 or c.chunk < 1:
        raise ValueError(f"workers={c.workers}, chunk={c.chunk}: need at least 1")
    approximant_mix(c)


def approximant_mix(config: PoolConfig) -> ApproximantMix:
    """The checked approximant(s) of ``config`` (ValueError naming a bad one)."""
    return parse_approximants(config.approximant, config.approximant_weights)


def _normalised(config: PoolConfig) -> PoolConfig:
    """One approximant as a plain name without weights (what pools before mixes
    recorded, so their fingerprint and manifest do not change); a mix's weights summing
    to 1."""
    mix = approximant_mix(config)
    if not mix.mixed:
        return dataclasses.replace(config, approximant=mix.names[0], approximant_weights=None)
    return dataclasses.replace(config, approximant=mix.names, approximant_weights=mix.weights)


def param_columns(mix: ApproximantMix) -> list[str]:
    """Columns of params.csv: an ``approximant`` column only for a mix."""
    return PARAM_COLUMNS + ["approximant"] if mix.mixed else list(PARAM_COLUMNS)


def source_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of pool source ``index`` for ``seed`` (independent of simulate's)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2, int(index))))


class _Renderer:
    """Turns one source index into (2, n_time) float32 polarisations on the pool grid."""

    def __init__(self, config: PoolConfig, seed: int):
        self.config = config
        self.seed = int(seed)
        self.mix = approximant_mix(config)
        n_time = config.n_time
        # Room after the grid so a fractional shift of a waveform running past it does
        # not wrap around into the start.
        self.n_buffer = n_time + 256
        self.frequencies = np.fft.rfftfreq(self.n_buffer, 1.0 / config.sample_rate)
        n_taper = int(round(config.taper * config.sample_rate))
        self.ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(n_taper) / max(n_taper, 1))

    def __call__(self, index: int) -> tuple[np.ndarray, dict]:
        c = self.config
        rng = source_rng(self.seed, index)
        k = self.mix.choose(self.seed, index)  # no draw for a single approximant
        approximant, precessing = self.mix.names[k], self.mix.precessing[k]

        def draw():
            params = draw_parameters(rng, c.mass_range, precessing=precessing,
                                     spin_max=c.spin_max, mass_prior=c.mass_prior)  # fmt: skip
            params.distance = REFERENCE_DISTANCE
            return params

        params, (hp, hc, t_first), attempt = render_with_redraws(
            draw,
            lambda p: polarizations(p, approximant, c.sample_rate, c.f_lower,
                                    duration_needed=c.pre_merger + 0.1),
        )  # fmt: skip
        buffer = np.zeros((2, self.n_buffer))
        position = c.merger_index + t_first * c.sample_rate
        start = int(np.floor(position))
        fraction = position - start
        lo, hi = max(start, 0), min(start + hp.size, self.n_buffer)
        if hi > lo:
            buffer[0, lo:hi] = hp[lo - start : hi - start]
            buffer[1, lo:hi] = hc[lo - start : hi - start]
        if fraction:
            spectra = np.fft.rfft(buffer, axis=-1)
            spectra *= np.exp(-2j * np.pi * self.frequencies * fraction / c.sample_rate)
            buffer = np.fft.irfft(spectra, n=self.n_buffer, axis=-1)
        out = buffer[:, : c.n_time]
        out[:, : self.ramp.size] *= self.ramp
        import lal
        import lalsimulation

        f_start = max(c.f_lower, lalsimulation.SimInspiralChirpStartFrequencyBound(
            c.pre_merger + 0.1, params.mass1 * lal.MSUN_SI, params.mass2 * lal.MSUN_SI
        ))  # fmt: skip
        row = dict(
            index=int(index),
            mass1=params.mass1, mass2=params.mass2,
            spin1x=params.spin1x, spin1y=params.spin1y, spin1z=params.spin1z,
            spin2x=params.spin2x, spin2y=params.spin2y, spin2z=params.spin2z,
            inclination=params.inclination, coa_phase=params.coa_phase,
            f_start=float(f_start), attempts=attempt,
        )  # fmt: skip
        if self.mix.mixed:
            row["approximant"] = approximant
        return out.astype(np.float32), row


_WORKER: dict = {}


def _init_worker(config: PoolConfig, seed: int) -> None:
    _WORKER["renderer"] = _Renderer(config, seed)


def _render(index: int):
    return _WORKER["renderer"](index)


def _fingerprint(config: PoolConfig, seed: int) -> str:
    settings = dataclasses.asdict(config)
    for key in ("workers", "chunk"):  # do not change the bytes
        settings.pop(key)
    if settings["approximant_weights"] is None:  # one approximant: as before mixes
        settings.pop("approximant_weights")
    text = json.dumps(dict(settings=settings, seed=int(seed), format=FORMAT), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def make_pool(
    out_dir: str | os.PathLike,
    config: PoolConfig = PoolConfig(),  # noqa: B008 - frozen
    seed: int = 0,
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Generate a waveform pool in ``out_dir`` (see the module docstring); returns its path.

    Refuses a non-empty ``out_dir`` that is not an interrupted run of the same settings,
    unless ``force``. Files are moved into place at the end, ``manifest.json`` last.
    """
    from tqdm.auto import tqdm

    check_pool_config(config)
    config = _normalised(config)
    mix = approximant_mix(config)
    columns = param_columns(mix)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"pool path {out} exists and is not a directory")
    fingerprint = _fingerprint(config, seed)
    partial = out / PARTIAL
    state_file = partial / STATE
    state = json.loads(state_file.read_text()) if state_file.is_file() else None
    if force and out.is_dir():
        for name in (ARRAY, PARAMS, MANIFEST):
            (out / name).unlink(missing_ok=True)
        shutil.rmtree(partial, ignore_errors=True)
        state = None
    if state is not None and state.get("fingerprint") != fingerprint:
        raise FileExistsError(
            f"{out} holds an interrupted pool with other settings; rerun with the same "
            "settings to resume, or pass --force to start over"
        )
    if state is None:
        if out.is_dir() and any(out.iterdir()):
            raise FileExistsError(
                f"pool directory {out} is not empty; choose another --out or pass --force"
            )
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        with atomic_path(partial / ARRAY) as tmp:
            np.lib.format.open_memmap(tmp, "w+", np.float32, (config.n, 2, config.n_time))
        state = {"fingerprint": fingerprint, "done": 0}
        write_json(state_file, state)

    array = np.load(partial / ARRAY, mmap_mode="r+", allow_pickle=False)
    rows_file = partial / "rows.csv"
    done = int(state["done"])
    if rows_file.is_file():
        rows = pd.read_csv(rows_file).iloc[:done]
    else:
        rows = pd.DataFrame(columns=columns)
    rows_list = rows.to_dict("records")
    bar = tqdm(total=config.n, initial=done, desc="waveforms", unit="source",
               disable=not progress, dynamic_ncols=True)  # fmt: skip
    workers = min(config.workers, config.n - done) if done < config.n else 1
    pool = None
    try:
        if workers > 1:
            pool = multiprocessing.get_context().Pool(
                workers, initializer=_init_worker, initargs=(config, seed)
            )
            render = lambda idx: pool.imap(_render, idx, chunksize=8)  # noqa: E731
        else:
            renderer = _Renderer(config, seed)
            render = lambda idx: map(renderer, idx)  # noqa: E731
        for start in range(done, config.n, config.chunk):
            indices = range(start, min(start + config.chunk, config.n))
            for index, (wave, row) in zip(indices, render(indices)):
                array[index] = wave
                rows_list.append(row)
                bar.update()
            array.flush()
            # Rows first, then the state that points at them: a crash in between
            # only repeats a chunk.
            with atomic_open(rows_file, "w", newline="") as fh:
                pd.DataFrame(rows_list, columns=columns).to_csv(
                    fh, index=False, float_format="%.10g"
                )
            state["done"] = indices.stop
            write_json(state_file, state)
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
            pool.join()
    del array
    manifest = {
        "format": FORMAT,
        "version": __version__,
        "n": config.n,
        "sample_rate": config.sample_rate,
        "n_time": config.n_time,
        "merger_index": config.merger_index,
        "pre_merger": config.pre_merger,
        "post_merger": config.post_merger,
        "taper": config.taper,
        "reference_distance": REFERENCE_DISTANCE,
        "approximant": list(mix.names) if mix.mixed else mix.names[0],
        **({"approximant_weights": list(mix.weights)} if mix.mixed else {}),
        "priors": {
            "mass_range": list(config.mass_range),
            "spin_max": config.spin_max,
            "precessing": list(mix.precessing) if mix.mixed else mix.precessing[0],
            "f_lower": config.f_lower,
            "mass_prior": config.mass_prior,
            "masses": f"component masses {config.mass_prior} in mass_range, ordered m1 >= m2",
            "spins": "isotropic direction, magnitude uniform in [0, spin_max]",
            "inclination": "cos uniform in [-1, 1]",
            "coa_phase": "uniform in [0, 2 pi)",
        },
        "seed": int(seed),
        "fingerprint": fingerprint,
    }
    os.replace(rows_file, out / PARAMS)
    os.replace(partial / ARRAY, out / ARRAY)
    write_json(partial / MANIFEST, manifest)
    os.replace(partial / MANIFEST, out / MANIFEST)
    shutil.rmtree(partial)
    return out


class PoolError(RuntimeError):
    """A pool directory that is missing, incomplete or inconsistent."""


class WaveformPool:
    """Read-only view of a pool directory: memory-mapped polarisations and parameters."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        manifest = self.path / MANIFEST
        if not manifest.is_file():
            hint = " (interrupted: rerun `g2res waveforms` to finish it)" if (
                self.path / PARTIAL
            ).is_dir() else ""  # fmt: skip
            raise PoolError(
                f"{self.path} is not a waveform pool (no {MANIFEST}){hint}; "
                "make one with `g2res waveforms --out POOL`"
            )
        self.manifest: dict = json.loads(manifest.read_text())
        if self.manifest.get("format") != FORMAT:
            raise PoolError(f"{manifest}: format {self.manifest.get('format')!r}, not {FORMAT}")
        try:
            self.polarizations = np.load(self.path / ARRAY, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise PoolError(f"pool {self.path}: cannot read {ARRAY}: {exc}") from None
        expected = (self.manifest["n"], 2, self.manifest["n_time"])
        if self.polarizations.shape != expected or self.polarizations.dtype != np.float32:
            raise PoolError(
                f"pool {self.path}: {ARRAY} is {self.polarizations.dtype} "
                f"{self.polarizations.shape}, manifest says float32 {expected}"
            )

    def __len__(self) -> int:
        return int(self.manifest["n"])

    @property
    def sample_rate(self) -> float:
        return float(self.manifest["sample_rate"])

    @property
    def n_time(self) -> int:
        return int(self.manifest["n_time"])

    @property
    def merger_index(self) -> int:
        """Sample of the peak (geocentre merger) on the pool grid."""
        return int(self.manifest["merger_index"])

    @property
    def valid_before_merger(self) -> float:
        """s before the peak where the stored signal is untapered."""
        return float(self.manifest["pre_merger"]) - float(self.manifest["taper"])

    @property
    def params(self) -> pd.DataFrame:
        return pd.read_csv(self.path / PARAMS)

    @property
    def approximants(self) -> list[str]:
        """The approximant names (one, or a mix's; params.csv then says whose is whose)."""
        names = self.manifest["approximant"]
        return [names] if isinstance(names, str) else list(names)

    def batch(self, indices) -> np.ndarray:
        """Polarisations ``(len(indices), 2, n_time)`` float32 strain (read in sorted order)."""
        indices = np.asarray(indices, dtype=np.int64)
        order = np.argsort(indices, kind="stable")
        out = np.empty((indices.size, 2, self.n_time), np.float32)
        out[order] = self.polarizations[indices[order]]
        return out
