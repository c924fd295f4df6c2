"""Long detector strain for ``g2res scan``: reading, resampling, aligning, valid segments.

Files: GWOSC HDF5 (``strain/Strain``), any HDF5 or GWF that gwpy's
``TimeSeries.read`` understands (``channel`` names the series), or ``.npy`` (one
float series; ``sample_rate`` and optionally ``gps_start`` must be given).
Missing data (GWOSC marks it NaN) stays NaN: :func:`valid_segments` lists the
stretches where all scanned detectors hold finite strain, and only those are
scanned.

A detector with no data at all (no file) can be left out explicitly by scanning a
subset (``detectors=("H1", "L1")``, ``g2res scan --detectors H1 L1``): the
:class:`Strain` then holds only the scanned rows, and the scan gives the models zeros
for the absent detector's whitened channel (see :mod:`g2res.scan.scan`). Without that
choice a missing file is an error naming the detector.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from g2res import DETECTORS, SAMPLE_RATE

__all__ = [
    "StrainError",
    "Strain",
    "read_series",
    "resample",
    "load_strain",
    "valid_segments",
    "invalid_stretches",
    "check_detectors",
]

GWOSC_DATASET = "strain/Strain"


class StrainError(ValueError):
    """A strain file that cannot be scanned."""


@dataclass
class Strain:
    """Aligned strain of the detectors on one time grid.

    ``data`` is ``(detector, time)`` float64 strain with NaN where a detector has
    no data; sample ``k`` is at GPS ``gps_start + k / sample_rate`` s.
    """

    data: np.ndarray
    gps_start: float
    sample_rate: float
    detectors: tuple[str, ...] = DETECTORS  # the rows of ``data``, a subset of H1, L1, V1
    sources: tuple[str, ...] = ()

    @property
    def duration(self) -> float:
        """s covered by the grid."""
        return self.data.shape[-1] / self.sample_rate

    def gps(self, index) -> np.ndarray:
        """GPS time (s) of sample ``index``."""
        return self.gps_start + np.asarray(index, dtype=np.float64) / self.sample_rate


def _is_gwosc_hdf5(path: Path) -> bool:
    import h5py

    try:
        with h5py.File(path, "r") as fh:
            return GWOSC_DATASET in fh
    except OSError:
        return False


def read_series(
    path: str | os.PathLike,
    channel: str | None = None,
    sample_rate: float | None = None,
    gps_start: float | None = None,
) -> tuple[np.ndarray, float, float]:
    """Read one detector's strain: ``(values (n,) float64, gps_start s, sample_rate Hz)``.

    ``.npy`` needs ``sample_rate`` (Hz); its ``gps_start`` defaults to 0. For HDF5
    and GWF the file's own times are used (``sample_rate``/``gps_start``, when given,
    must agree with them).
    """
    path = Path(path)
    if not path.is_file():
        raise StrainError(f"strain file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        if sample_rate is None:
            raise StrainError(f"{path}: .npy strain needs --sample-rate (Hz)")
        try:
            values = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise StrainError(f"strain file {path} cannot be read: {exc}") from None
        values = np.asarray(values)
        if values.ndim != 1 or not np.issubdtype(values.dtype, np.floating):
            raise StrainError(
                f"{path}: expected a 1-D float strain series, got {values.dtype} {values.shape}"
            )
        return values.astype(np.float64), float(gps_start or 0.0), float(sample_rate)
    if suffix not in (".h5", ".hdf5", ".hdf", ".gwf"):
        raise StrainError(f"{path}: unknown strain format {suffix!r} (use .hdf5, .h5, .gwf, .npy)")
    from gwpy.timeseries import TimeSeries

    try:
        if suffix != ".gwf" and channel is None and _is_gwosc_hdf5(path):
            series = TimeSeries.read(path, format="hdf5.gwosc")
        elif channel is not None:
            series = TimeSeries.read(path, channel)
        else:
            series = TimeSeries.read(path)
    except Exception as exc:  # gwpy raises many types; name the file and hint at --channel
        hint = "" if channel else " (pass --channel NAME for files holding several series)"
        raise StrainError(f"strain file {path} cannot be read by gwpy: {exc}{hint}") from None
    values = np.asarray(series.value, dtype=np.float64)
    t0, rate = float(series.t0.value), float(series.sample_rate.value)
    if values.ndim != 1:
        raise StrainError(f"{path}: expected one strain series, got shape {values.shape}")
    if sample_rate is not None and not np.isclose(sample_rate, rate):
        raise StrainError(f"{path}: file is sampled at {rate:g} Hz, not {sample_rate:g} Hz")
    if gps_start is not None and not np.isclose(gps_start, t0):
        raise StrainError(f"{path}: file starts at GPS {t0}, not {gps_start}")
    return values, t0, rate


def _finite_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` index ranges where ``mask`` (n,) bool is True."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def _grid_start(start: int, up: int, down: int) -> int:
    """First input index >= ``start`` whose time is on the output grid (``i * up % down == 0``)."""
    step = down // np.gcd(up, down)
    return -(-start // step) * step


def resample(values: np.ndarray, rate_in: float, rate_out: float = SAMPLE_RATE) -> np.ndarray:
    """Resample ``values`` (n,) from ``rate_in`` to ``rate_out`` Hz (polyphase, anti-aliased).

    Each finite stretch is resampled on its own so NaN gaps stay NaN and never
    leak into valid data. Output sample ``k`` is at time ``k / rate_out`` s after
    the input's first sample.
    """
    from scipy.signal import resample_poly

    if np.isclose(rate_in, rate_out):
        return np.asarray(values, dtype=np.float64)
    ratio = Fraction(rate_out / rate_in).limit_denominator(1000)
    if not np.isclose(float(ratio), rate_out / rate_in, rtol=1e-9):
        raise StrainError(f"cannot resample {rate_in:g} Hz to {rate_out:g} Hz: not a simple ratio")
    up, down = ratio.numerator, ratio.denominator
    n_out = int(np.floor(len(values) * up / down))
    out = np.full(n_out, np.nan)
    for start, stop in _finite_runs(np.isfinite(values)):
        # Start each stretch on an input sample that falls on the output grid (dropping
        # fewer than ``down`` samples), so resample_poly's samples land on the grid.
        start = _grid_start(start, up, down)
        if stop - start < 2 * down:
            continue
        first = start * up // down
        y = resample_poly(values[start:stop], up, down)
        n = min(y.size, n_out - first)
        out[first : first + n] = y[:n]
    return out


def load_strain(
    paths: dict[str, str | os.PathLike] | list[str | os.PathLike],
    channels: dict[str, str] | None = None,
    sample_rate: float | None = None,
    gps_start: float | None = None,
    target_rate: float = SAMPLE_RATE,
    detectors: tuple[str, ...] | list[str] | None = None,
) -> Strain:
    """Read one file per detector of ``detectors`` (default H1, L1, V1), resample to
    ``target_rate`` Hz, align.

    ``paths`` maps detector to file (a list is taken in the order of ``detectors``);
    a detector without a file is an error that names it, unless ``detectors`` leaves it
    out. The grid spans from the earliest start to the latest end of the files; where
    a detector has no data its row is NaN. Start times must differ by whole
    samples of ``target_rate``.
    """
    detectors = check_detectors(detectors)
    if not isinstance(paths, dict):
        paths = dict(zip(detectors, paths))
    paths = {d: p for d, p in paths.items() if p is not None}
    missing = [d for d in detectors if d not in paths]
    if missing:
        left = [d for d in detectors if d not in missing]
        hint = (
            f"; to scan without it pass --detectors {' '.join(left)} (its whitened channel "
            "is then zeros)"
            if left
            else ""
        )
        raise StrainError(f"no strain file for {', '.join(missing)}{hint}")
    extra = [d for d in paths if d not in detectors]
    if extra:
        raise StrainError(
            f"strain file(s) given for {', '.join(extra)}, which the chosen detectors "
            f"{' '.join(detectors)} leave out; drop the file(s) or add the detector(s)"
        )
    paths = {d: paths[d] for d in detectors}
    channels = channels or {}
    series = {}
    for det, path in paths.items():
        values, t0, rate = read_series(path, channels.get(det), sample_rate, gps_start)
        if rate < target_rate and not np.isclose(rate, target_rate):
            raise StrainError(
                f"{path}: sampled at {rate:g} Hz, below the {target_rate:g} Hz needed"
            )
        series[det] = (resample(values, rate, target_rate), t0, str(path))
    t_first = min(t0 for _, t0, _ in series.values())
    offsets = {}
    for det, (_values, t0, path) in series.items():
        shift = (t0 - t_first) * target_rate
        if not np.isclose(shift, round(shift), atol=1e-3):
            raise StrainError(
                f"{path} starts at GPS {t0}, not a whole {1 / target_rate:g}-s sample after "
                f"GPS {t_first}; the detectors cannot be aligned"
            )
        offsets[det] = int(round(shift))
    n = max(offsets[d] + series[d][0].size for d in detectors)
    data = np.full((len(detectors), n), np.nan)
    for row, det in enumerate(detectors):
        values = series[det][0]
        data[row, offsets[det] : offsets[det] + values.size] = values
    return Strain(
        data, t_first, float(target_rate), detectors, tuple(s[2] for s in series.values())
    )


def check_detectors(detectors: tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    """``detectors`` (default all) as a tuple in the order H1, L1, V1, checked."""
    if detectors is None:
        return DETECTORS
    unknown = [d for d in detectors if d not in DETECTORS]
    if unknown or not detectors or len(set(detectors)) != len(detectors):
        raise StrainError(
            f"detectors must be distinct names among {' '.join(DETECTORS)}, got "
            f"{' '.join(map(str, detectors)) or 'none'}"
        )
    return tuple(d for d in DETECTORS if d in detectors)


def valid_segments(data: np.ndarray, min_samples: int = 1) -> list[tuple[int, int]]:
    """``[start, stop)`` sample ranges where every detector of ``data`` (d, n) is finite.

    Ranges shorter than ``min_samples`` are left out.
    """
    ok = np.isfinite(data).all(axis=0)
    return [(a, b) for a, b in _finite_runs(ok) if b - a >= min_samples]


def invalid_stretches(data: np.ndarray, detectors: tuple[str, ...] = DETECTORS) -> list[dict]:
    """Stretches where some detector is NaN/inf: ``[{start, stop, detectors}]`` (samples);
    ``detectors`` names the rows of ``data`` (d, n)."""
    bad = ~np.isfinite(data)
    out = []
    for a, b in _finite_runs(bad.any(axis=0)):
        dets = [
            detectors[i] if i < len(detectors) else str(i)
            for i in np.flatnonzero(bad[:, a:b].any(1))
        ]
        out.append({"start": a, "stop": b, "detectors": dets})
    return out
