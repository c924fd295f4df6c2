"""``g2res simulate``: a synthetic data set in the G2Net layout (lalsuite noise + BBH signals).

Writes ``train/<a>/<b>/<c>/<id>.npy`` and ``test/...`` (float64 (3, 4096), strain, not
whitened), ``training_labels.csv``, ``sample_submission.csv`` and the truth:

- ``truth/test_labels.csv`` (id, target);
- ``truth/injections.csv``: every parameter, arrival times and optimal SNRs per sample
  (noise rows: NaN parameters, SNR 0); ``index`` is the sample's seed index for
  :func:`sample_rng`, so any sample can be regenerated with its noise and signal apart;
- ``truth/psd.npy``: the PSD used, on the window's rfft grid, columns (frequency, H1,
  L1, V1) like a ``--psd`` file;
- ``truth/glitches.csv``: one row per glitch (``--glitch-rate``; header only without):
  id, split, detector, kind, time (s, centre in the window), f0 (Hz), Q, duration (s),
  phase (rad) and snr, the optimal SNR in its detector against that sample's PSD (with
  its drift); see :mod:`g2res.data.glitches`;
- ``truth/psd_drift.csv`` (only with ``--psd-drift``): id, split and per detector the
  ``scale_<det>`` and ``tilt_<det>`` of that sample's PSD, ``S(f) scale (f / 100 Hz)^tilt``;
- ``truth/simulate.json``: the settings.

Each sample is generated from its own generator seeded by (seed, sample index), so the
bytes do not depend on the number of workers. Glitches and PSD drift draw from two more
generators of the sample (:func:`sample_generators`), so with ``glitch_rate=0`` and
``psd_drift=0`` the data are those of a simulation without them, and with them the same
noise (recoloured), signals and labels plus the glitches. Signal SNRs stay those against
the undrifted PSD (the source's loudness); glitch SNRs are against the drifted one.
Nothing downstream may rely on truth/.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import shutil
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd

from g2res.config import SimulateConfig
from g2res.data.glitches import (
    GLITCH_COLUMNS,
    check_kinds,
    draw_drift,
    draw_glitches,
    drift_factor,
)
from g2res.data.layout import (
    INJECTIONS,
    SAMPLE_SUBMISSION,
    TEST_LABELS,
    TRAIN_LABELS,
    TRUTH_DIR,
    sample_path,
)
from g2res.data.noise import (
    DETECTORS,
    DURATION,
    N_SAMPLES,
    SAMPLE_RATE,
    ColoredNoise,
    psd_function,
    rfft_frequencies,
)
from g2res.data.waveforms import (
    GPS_REFERENCE,
    BBHParameters,
    Injector,
    _approximant,
    render_with_redraws,
)
from g2res.utils import atomic_open, check_output_dir, save_npy, write_json

ID_LENGTH = 10
DEFAULT_CONFIG = SimulateConfig()  # never mutated
PSD_FILE = "truth/psd.npy"
GLITCHES_FILE = "truth/glitches.csv"
DRIFT_FILE = "truth/psd_drift.csv"
SETTINGS_FILE = "truth/simulate.json"
PARAMETER_COLUMNS = [f.name for f in fields(BBHParameters) if f.name != "snr"]
INJECTION_COLUMNS = (
    ["id", "index", "split", "target", *PARAMETER_COLUMNS]
    + [f"t_{d}" for d in DETECTORS]
    + [f"snr_{d}" for d in DETECTORS]
    + ["snr_network"]
)
GLITCH_FILE_COLUMNS = ["id", "split", "detector", *GLITCH_COLUMNS]
DRIFT_COLUMNS = ["id", "split"] + [f"{k}_{d}" for k in ("scale", "tilt") for d in DETECTORS]


def sample_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of sample ``index`` (0-based over train then test) for ``seed``."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1, int(index))))


def sample_generators(seed: int, index: int) -> tuple[np.random.Generator, ...]:
    """(noise and signal, PSD drift, glitches) generators of sample ``index`` for ``seed``.

    The first is :func:`sample_rng`; the others are its own streams, so turning glitches
    or drift on does not change the noise or signal draws.
    """
    return tuple(
        np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))
        for key in ((1, int(index)), (1, int(index), 1), (1, int(index), 2))
    )


def make_ids(n: int, seed: int) -> list[str]:
    """``n`` unique ids of 10 lowercase hex characters, reproducible from ``seed``."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0, 0)))
    ids: list[str] = []
    seen: set[str] = set()
    while len(ids) < n:
        for value in rng.integers(0, 16**ID_LENGTH, size=n - len(ids)):
            text = f"{int(value):0{ID_LENGTH}x}"
            if text not in seen:
                seen.add(text)
                ids.append(text)
    return ids


def make_targets(n: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """(n,) int labels with exactly round(fraction * n) ones, in random order."""
    targets = np.zeros(n, dtype=np.int64)
    targets[: int(round(fraction * n))] = 1
    return rng.permutation(targets)


@dataclass
class Sample:
    """One simulated window: ``noise``, ``signal`` and ``glitch`` (3, 4096) strain,
    data = noise + signal (+ glitch when there is one).

    ``glitches``: (detector row, :class:`g2res.data.glitches.Glitch`) of each glitch;
    ``drift``: the PSD (scale (3,), tilt (3,)) of the noise, None when undrifted.
    """

    noise: np.ndarray
    signal: np.ndarray
    params: BBHParameters | None
    info: dict
    glitch: np.ndarray | None = None
    glitches: list = field(default_factory=list)
    drift: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def data(self) -> np.ndarray:
        data = self.noise + self.signal
        return data if self.glitch is None else data + self.glitch


class Simulator:
    """Everything one worker needs (noise model, injector), built once per process."""

    def __init__(self, config: SimulateConfig = DEFAULT_CONFIG):
        self.config = config
        psd = psd_function(config.psd)
        self.noise = ColoredNoise(psd, SAMPLE_RATE, N_SAMPLES)
        self.frequencies = rfft_frequencies(N_SAMPLES, SAMPLE_RATE)
        self.psd = psd(self.frequencies)  # (3, 2049), the grid every SNR is computed on
        self.injector = Injector(
            self.psd,
            approximant=config.approximant,
            mass_range=config.mass_range,
            merger_window=config.merger_window,
            snr_range=config.snr,
        )

    def make_sample(
        self,
        rng: np.random.Generator,
        target: int,
        drift_rng: np.random.Generator | None = None,
        glitch_rng: np.random.Generator | None = None,
    ) -> Sample:
        """Noise always first, then (target 1) parameters and signal, from ``rng``.

        With ``drift_rng`` and ``config.psd_drift > 0`` the noise PSD is drifted; with
        ``glitch_rng`` and ``config.glitch_rate > 0`` glitches are added (their SNRs
        against the sample's PSD). See :func:`sample_generators`.
        """
        c = self.config
        drift = None
        factor = None
        psd = self.psd
        if drift_rng is not None and c.psd_drift > 0:
            drift = draw_drift(drift_rng, c.psd_drift, self.psd.shape[0])
            factor = drift_factor(self.noise.frequencies, *drift)
            psd = self.psd * drift_factor(self.frequencies, *drift)
        noise = self.noise(rng, psd_factor=factor)
        if not target:
            sample = Sample(noise, np.zeros_like(noise), None, {})
        else:
            # Redrawn from the sample's own stream when rejected, so it stays reproducible.
            params, (signal, info), _ = render_with_redraws(
                lambda: self.injector.draw(rng), lambda p: self.injector.render(p)
            )
            sample = Sample(noise, signal, params, info)
        sample.drift = drift
        if glitch_rng is not None and c.glitch_rate > 0:
            glitch, records = draw_glitches(
                glitch_rng, c.glitch_rate, psd, SAMPLE_RATE, N_SAMPLES, c.glitch_kinds,
                c.glitch_snr,
            )  # fmt: skip
            if records:
                sample.glitch, sample.glitches = glitch, records
        return sample


_WORKER: dict = {}


def _init_worker(config: SimulateConfig, out_dir: str, seed: int) -> None:
    _WORKER.update(simulator=Simulator(config), out_dir=out_dir, seed=seed)


def _run_task(task: tuple[int, str, str, int]) -> tuple[dict, list[dict], dict | None]:
    """Write one sample; returns its injections row, glitch rows and drift row (or None)."""
    index, split, sample_id, target = task
    sim: Simulator = _WORKER["simulator"]
    sample = sim.make_sample(*_with_target(sample_generators(_WORKER["seed"], index), target))
    save_npy(sample_path(_WORKER["out_dir"], split, sample_id), sample.data)
    row = {"id": sample_id, "index": index, "split": split, "target": target}
    row.update(dict.fromkeys(PARAMETER_COLUMNS, math.nan))
    row.update({f"t_{d}": math.nan for d in DETECTORS})
    row.update({f"snr_{d}": 0.0 for d in DETECTORS})
    row["snr_network"] = 0.0
    if sample.params is not None:
        row.update({k: v for k, v in sample.params.to_dict().items() if k in PARAMETER_COLUMNS})
        row.update(sample.info)
    glitches = [
        {"id": sample_id, "split": split, "detector": DETECTORS[det], **glitch.to_dict()}
        for det, glitch in sample.glitches
    ]
    drift = None
    if sample.drift is not None:
        drift = {"id": sample_id, "split": split}
        for name, values in zip(("scale", "tilt"), sample.drift):
            drift.update({f"{name}_{d}": float(v) for d, v in zip(DETECTORS, values)})
    return row, glitches, drift


def _with_target(generators: tuple, target: int) -> tuple:
    rng, drift_rng, glitch_rng = generators
    return rng, target, drift_rng, glitch_rng


def check_config(config: SimulateConfig) -> None:
    """Raise ValueError naming the first bad setting (before anything is written)."""
    c = config
    if c.n_train < 0 or c.n_test < 0 or c.n_train + c.n_test == 0:
        raise ValueError(f"n_train={c.n_train}, n_test={c.n_test}: need >= 0 and some samples")
    if not 0 < c.snr[0] <= c.snr[1]:
        raise ValueError(f"snr range {c.snr}: need 0 < MIN <= MAX")
    if not 0 <= c.signal_fraction <= 1:
        raise ValueError(f"signal_fraction {c.signal_fraction}: need a value in [0, 1]")
    if c.test_signal_fraction is not None and not 0 <= c.test_signal_fraction <= 1:
        raise ValueError(f"test_signal_fraction {c.test_signal_fraction}: need a value in [0, 1]")
    if not 0 <= c.merger_window[0] <= c.merger_window[1] <= DURATION:
        raise ValueError(f"merger_window {c.merger_window} s: need 0 <= START <= END <= 2")
    if not 0 < c.mass_range[0] <= c.mass_range[1]:
        raise ValueError(f"mass_range {c.mass_range} Msun: need 0 < MIN <= MAX")
    if c.workers < 1:
        raise ValueError(f"workers={c.workers}: need at least 1")
    if not c.glitch_rate >= 0:
        raise ValueError(f"glitch_rate {c.glitch_rate}: need expected glitches per sample >= 0")
    if not 0 < c.glitch_snr[0] <= c.glitch_snr[1]:
        raise ValueError(f"glitch_snr range {c.glitch_snr}: need 0 < MIN <= MAX")
    check_kinds(c.glitch_kinds, "glitch_kinds")
    if not 0 <= c.psd_drift < 1:
        raise ValueError(f"psd_drift {c.psd_drift}: need 0 <= X < 1 (0.2: +/-20%)")
    _approximant(c.approximant)


def _test_fraction(config: SimulateConfig) -> float:
    """Share of signals in the test split (``test_signal_fraction``, else ``signal_fraction``)."""
    t = config.test_signal_fraction
    return config.signal_fraction if t is None else t


def _clear_previous(out: Path) -> None:
    """With --force, remove only what a previous simulation wrote."""
    for name in ("train", "test", TRUTH_DIR):
        if (out / name).is_dir():
            shutil.rmtree(out / name)
    for name in (TRAIN_LABELS, SAMPLE_SUBMISSION):
        (out / name).unlink(missing_ok=True)


def _write_csv(path: Path, frame: pd.DataFrame) -> None:
    with atomic_open(path, "w", newline="") as fh:
        frame.to_csv(fh, index=False, float_format="%.10g")


def _by_split(rows: list[dict], columns: list[str]) -> pd.DataFrame:
    """Rows ordered like injections.csv: train then test, by id (stable within an id)."""
    frame = pd.DataFrame(rows, columns=columns)
    frame["_order"] = frame.split.map({"train": 0, "test": 1})
    return frame.sort_values(["_order", "id"], kind="stable").drop(columns="_order")


def simulate(
    out_dir: str | os.PathLike,
    config: SimulateConfig = DEFAULT_CONFIG,
    seed: int = 0,
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Write a simulated G2Net-layout data set into ``out_dir``; returns its path.

    Refuses a non-empty ``out_dir`` unless ``force`` (then only the files a simulation
    writes are replaced). Sample files come first, the CSVs last, so a crash never
    leaves labels pointing at missing files.
    """
    from tqdm.auto import tqdm

    check_config(config)
    sim = Simulator(config)  # fails early on a bad PSD file, before anything is written
    out = check_output_dir(out_dir, force=force, what="simulation output")
    if force:
        _clear_previous(out)
    out.mkdir(parents=True, exist_ok=True)

    n_total = config.n_train + config.n_test
    ids = make_ids(n_total, seed)
    split_of = ["train"] * config.n_train + ["test"] * config.n_test
    label_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0, 1)))
    targets = np.concatenate(
        [
            make_targets(config.n_train, config.signal_fraction, label_rng),
            make_targets(config.n_test, _test_fraction(config), label_rng),
        ]
    )
    tasks = [(i, split_of[i], ids[i], int(targets[i])) for i in range(n_total)]

    workers = min(config.workers, n_total)
    bar = tqdm(total=n_total, desc="simulate", unit="sample", disable=not progress)
    rows: list[dict] = []
    glitch_rows: list[dict] = []
    drift_rows: list[dict] = []

    def collect(result: tuple[dict, list[dict], dict | None]) -> None:
        row, glitches, drift = result
        rows.append(row)
        glitch_rows.extend(glitches)
        if drift is not None:
            drift_rows.append(drift)
        bar.update()

    if workers == 1:
        _WORKER.update(simulator=sim, out_dir=str(out), seed=seed)
        try:
            for task in tasks:
                collect(_run_task(task))
        finally:
            _WORKER.clear()
    else:
        chunksize = max(1, min(64, n_total // (workers * 8)))
        with multiprocessing.get_context().Pool(
            workers, initializer=_init_worker, initargs=(config, str(out), seed)
        ) as pool:
            for result in pool.imap(_run_task, tasks, chunksize=chunksize):
                collect(result)
    bar.close()

    table = pd.DataFrame(rows, columns=INJECTION_COLUMNS)
    train = table[table.split == "train"].sort_values("id")
    test = table[table.split == "test"].sort_values("id")
    _write_csv(out / TRAIN_LABELS, train[["id", "target"]])
    _write_csv(out / SAMPLE_SUBMISSION, test[["id"]].assign(target=0.5))
    _write_csv(out / TEST_LABELS, test[["id", "target"]])
    _write_csv(out / INJECTIONS, pd.concat([train, test]))
    _write_csv(out / GLITCHES_FILE, _by_split(glitch_rows, GLITCH_FILE_COLUMNS))
    if config.psd_drift > 0:
        _write_csv(out / DRIFT_FILE, _by_split(drift_rows, DRIFT_COLUMNS))
    # Columns (frequency, H1, L1, V1): the --psd file format, so a data set can be remade.
    save_npy(out / PSD_FILE, np.column_stack([sim.frequencies, sim.psd.T]))
    write_json(
        out / SETTINGS_FILE,
        {
            "config": asdict(config),
            "seed": seed,
            "sample_rate": SAMPLE_RATE,
            "duration": DURATION,
            "detectors": list(DETECTORS),
            "gps_reference": GPS_REFERENCE,
            "n_train": config.n_train,
            "n_test": config.n_test,
        },
    )
    return out
