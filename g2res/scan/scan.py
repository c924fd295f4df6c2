"""Sliding 2-s windows over long strain: conditioning, scoring, clustering, time slides.

How a window is conditioned. The models were trained on 2-s samples that
``g2res preprocess`` tapered (Tukey), whitened and bandpassed one by one. The
scan does exactly that to each raw 2-s window (the same :class:`WhitenBandpass`
with the taper, corners and filter order of the run's cache, batched), so a
window looks to the model like a cache sample. The only difference is the PSD:
instead of the cache's PSD it is estimated from the data around the window
(Welch with the cache's segment length, overlap, window and average over a
``psd_length``-s block of the valid segment the window lies in), as a search
on real strain must, since the noise drifts.

Spectral lines (60 Hz and harmonics, calibration lines, violin modes) are in the
block's Welch estimate, so whitening follows them, at the resolution of the Welch
segment: with the 0.5-s segments of a cache (2-Hz resolution) a narrow line keeps a
residual peak a few times the noise level at its frequency in the 0.5-Hz grid of a 2-s
window, with a notch of over-whitened noise around it. ``ScanSettings.psd_segment``
(``g2res scan --psd-segment 2``, the window length) estimates the PSD on the windows'
own grid instead and whitens lines down to the noise (``tests/scan/test_lines.py``).

Absent detectors. A scan of a subset of the detectors (``Strain.detectors``, e.g. H1 and
L1 when V1 has no data) conditions only those; the models, built for the (H1, L1, V1)
channels, get zeros for the absent detector's whitened channel: no data, neither signal
nor noise (:func:`full_channels`). Models trained on three detectors never saw such a
channel, so the scores of a two-detector scan are its own and only comparable with a
background (time slides) of the same detectors.

Valid segments are the stretches where all scanned detectors hold finite strain;
windows never cross a NaN sample or a gap, and the stretches left out (NaN/gaps,
or valid pieces shorter than one window) are reported.

Clustering: windows are taken in order of decreasing score; each unclustered
window claims every unclustered window whose start lies within
``cluster_window`` s (default: one window length) of its own. Every cluster is
a trigger. Its GPS time comes from the cluster's falling edge: as windows slide
forward the merger leaves through the start of the window, and once it has left
nothing of the signal remains (the ringdown lasts milliseconds), so the last window
whose score is still half way from the cluster's lowest to its peak score
(interpolated between it and the window after) has the merger at the earliest
position the models fire for, ``merger_offset`` s into the window (default 0.1 s,
where the conditioning's Tukey taper has faded the merger out). The rising edge is
no clock: a loud signal's inspiral enters the window well before its merger and the
models fire on it, earlier the louder the signal, and a model firing on a merger
anywhere in the window gives a plateau nearly 2 s long, so the peak window itself
says little about the time.

Time slides: L1 is shifted by ``k * slide_step`` and V1 by ``2 k * slide_step``
(with a subset, the second scanned detector by ``k`` and the third by ``2 k`` steps)
(circularly over the scanned grid, ``slide_step`` far above the 27-ms light
travel time) for ``k = 1..K``; the clusters of those scans are background,
and a trigger's false-alarm rate is the number of background clusters scoring
at least as high divided by the background live time.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from g2res import DETECTORS, N_SAMPLES, SAMPLE_RATE, TAPER_ALPHA
from g2res.scan.strain import Strain, invalid_stretches, valid_segments
from g2res.signal import WhitenBandpass, welch

__all__ = [
    "Conditioning",
    "ScanSettings",
    "Scorer",
    "ScanResult",
    "window_starts",
    "psd_blocks",
    "condition_windows",
    "full_channels",
    "scan_strain",
]

ScoreFn = Callable[[torch.Tensor], np.ndarray]


@dataclass(frozen=True)
class Conditioning:
    """Per-window conditioning: the PSD and filter settings of a run's cache."""

    fmin: float = 20.0  # Hz
    fmax: float = 500.0  # Hz
    filter_order: int = 8
    window: str = "tukey"
    window_alpha: float = TAPER_ALPHA
    psd_segment: float = 0.5  # s, Welch segment
    psd_overlap: float = 0.5  # fraction
    psd_window: str = "hann"
    psd_average: str = "median"

    @classmethod
    def from_settings(cls, settings) -> Conditioning:
        """From a :class:`PreprocessConfig` or a cache manifest's ``settings`` dict."""
        if dataclasses.is_dataclass(settings):
            settings = dataclasses.asdict(settings)
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in settings.items() if k in names})

    @property
    def psd_key(self) -> tuple:
        return (self.psd_segment, self.psd_overlap, self.psd_window, self.psd_average)


@dataclass
class ScanSettings:
    """Sliding-window settings (all times in s)."""

    stride: float = 0.25  # between window starts
    psd_length: float = 64.0  # Welch stretch per PSD block
    cluster_window: float = 2.0  # windows starting closer than this join one trigger
    merger_offset: float = 0.1  # earliest merger position in the window the models fire for
    batch_size: int = 256  # windows per scoring batch
    window_duration: float = N_SAMPLES / SAMPLE_RATE
    psd_segment: float | None = None  # Welch segment; None: each run's own (its cache's)

    def check(self) -> None:
        if self.psd_segment is not None and not 0 < self.psd_segment <= self.psd_length:
            raise ValueError(
                f"psd_segment {self.psd_segment} s must be positive and at most psd_length "
                f"{self.psd_length} s"
            )
        if self.stride <= 0 or self.psd_length <= 0 or self.cluster_window < 0:
            raise ValueError("stride and psd_length must be positive, cluster_window >= 0")
        if self.psd_length < self.window_duration:
            raise ValueError(
                f"psd_length {self.psd_length} s is shorter than a {self.window_duration}-s window"
            )
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {self.batch_size}")


@dataclass
class Scorer:
    """A scoring function and the conditioning its windows need.

    ``score(x)`` maps whitened windows ``(batch, 3, 4096)`` float32 to ``(batch,)``
    probabilities in [0, 1].
    """

    score: ScoreFn
    conditioning: Conditioning = field(default_factory=Conditioning)
    name: str = "scorer"


@dataclass
class ScanResult:
    """Window scores and bookkeeping of one scan."""

    window_start: np.ndarray  # (n,) GPS s
    scores: np.ndarray  # (n,) mean probability over scorers
    segments: list[tuple[float, float]]  # scanned [start, end) GPS s
    skipped: list[dict]  # {gps_start, gps_end, duration, reason, detectors}
    seconds: float  # wall-clock s spent
    live_time: float  # s of strain in the scanned segments

    def report(self) -> dict:
        return {
            "windows_scored": int(self.window_start.size),
            "segments_scanned": [
                {"gps_start": a, "gps_end": b, "duration": b - a} for a, b in self.segments
            ],
            "live_time": self.live_time,
            "skipped": self.skipped,
            "skipped_duration": float(sum(s["duration"] for s in self.skipped)),
            "seconds": self.seconds,
            "strain_seconds_per_second": self.live_time / self.seconds if self.seconds else None,
        }


def window_starts(segment: tuple[int, int], stride: int, n_window: int = N_SAMPLES) -> np.ndarray:
    """Start samples of the windows in ``segment`` ``[a, b)``: every ``stride`` samples from
    ``a``, plus one ending at ``b`` so the whole segment is covered. Empty when too short."""
    a, b = segment
    if b - a < n_window:
        return np.empty(0, dtype=np.int64)
    starts = np.arange(a, b - n_window + 1, stride, dtype=np.int64)
    if starts[-1] != b - n_window:
        starts = np.append(starts, b - n_window)
    return starts


def psd_blocks(segment: tuple[int, int], block: int) -> list[tuple[int, int]]:
    """``segment`` split into ``round(length / block)`` (at least 1) nearly equal blocks."""
    a, b = segment
    n = max(1, int(round((b - a) / block)))
    edges = np.linspace(a, b, n + 1).round().astype(np.int64)
    return list(zip(edges[:-1].tolist(), edges[1:].tolist()))


def _estimate_psd(data: np.ndarray, cond: Conditioning, sample_rate: float):
    freqs, psd = welch(
        torch.from_numpy(np.ascontiguousarray(data)),
        sample_rate,
        segment_duration=cond.psd_segment,
        overlap=cond.psd_overlap,
        window=cond.psd_window,
        average=cond.psd_average,
    )
    return freqs.numpy(), psd.numpy()


def condition_windows(
    data: np.ndarray,
    starts: np.ndarray,
    frequencies: np.ndarray,
    psd: np.ndarray,
    cond: Conditioning,
    sample_rate: float = SAMPLE_RATE,
    n_window: int = N_SAMPLES,
) -> torch.Tensor:
    """Cut raw windows ``data[:, s:s+n_window]`` for ``s`` in ``starts`` and condition them
    like ``g2res preprocess``: float32 ``(len(starts), d, n_window)`` whitened strain of
    the ``d`` rows of ``data`` (psd ``(d, f)``)."""
    conditioner = WhitenBandpass(
        frequencies,
        psd,
        sample_rate,
        n_window,
        fmin=cond.fmin,
        fmax=cond.fmax,
        order=cond.filter_order,
        window=cond.window,
        window_alpha=cond.window_alpha,
    )
    idx = np.asarray(starts)[:, None] + np.arange(n_window)
    x = torch.from_numpy(np.ascontiguousarray(data[:, idx].transpose(1, 0, 2)))
    # Preprocess conditions float32 copies of the float64 files: the same here.
    return conditioner(x.to(torch.float32)).to(torch.float32)


def full_channels(x: torch.Tensor, detectors: Sequence[str]) -> torch.Tensor:
    """Conditioned windows ``x`` (batch, len(detectors), n) of the scanned ``detectors``
    laid out on the models' (H1, L1, V1) channels: (batch, 3, n), zeros where absent."""
    detectors = tuple(detectors)
    if detectors == DETECTORS:
        return x
    out = x.new_zeros((x.shape[0], len(DETECTORS), x.shape[-1]))
    for row, det in enumerate(detectors):
        out[:, DETECTORS.index(det)] = x[:, row]
    return out


def _skipped(strain: Strain, segments_all, n_window: int) -> list[dict]:
    rate = strain.sample_rate
    out = []
    for s in invalid_stretches(strain.data, strain.detectors):
        out.append(
            {
                "gps_start": float(strain.gps(s["start"])),
                "gps_end": float(strain.gps(s["stop"])),
                "duration": (s["stop"] - s["start"]) / rate,
                "reason": "NaN or missing data",
                "detectors": s["detectors"],
            }
        )
    for a, b in segments_all:
        if b - a < n_window:
            out.append(
                {
                    "gps_start": float(strain.gps(a)),
                    "gps_end": float(strain.gps(b)),
                    "duration": (b - a) / rate,
                    "reason": f"valid stretch shorter than a {n_window / rate:g}-s window",
                    "detectors": [],
                }
            )
    return sorted(out, key=lambda s: s["gps_start"])


def scan_strain(
    strain: Strain,
    scorers: Scorer | Sequence[Scorer],
    settings: ScanSettings | None = None,
    progress: bool = True,
    desc: str = "scan",
) -> ScanResult:
    """Score every 2-s window of the valid segments of ``strain``.

    Each window is conditioned per scorer (see the module notes; detectors absent from
    ``strain.detectors`` get zero channels) and scored; the score is the mean over
    scorers. Returns window start times (GPS s) and scores.
    """
    settings = settings or ScanSettings()
    settings.check()
    scorers = [scorers] if isinstance(scorers, Scorer) else list(scorers)
    if not scorers:
        raise ValueError("scan needs at least one scorer")
    rate = strain.sample_rate
    if not np.isclose(rate, SAMPLE_RATE):
        raise ValueError(f"strain must be at {SAMPLE_RATE} Hz (resample first), got {rate:g} Hz")
    n_window = int(round(settings.window_duration * rate))
    stride = max(1, int(round(settings.stride * rate)))
    block = int(round(settings.psd_length * rate))
    t0 = time.perf_counter()
    segments_all = valid_segments(strain.data)
    segments = [(a, b) for a, b in segments_all if b - a >= n_window]
    plan = []  # (block, window starts whose centre lies in it)
    for seg in segments:
        starts = window_starts(seg, stride, n_window)
        centres = starts + n_window // 2
        for a, b in psd_blocks(seg, block):
            # The Welch block must hold a window even when the segment was split finely.
            a, b = (a, b) if b - a >= n_window else (max(seg[0], b - n_window), b)
            mine = starts[(centres >= a) & (centres < b)]
            if mine.size:
                plan.append(((a, b), mine))
    total = sum(len(s) for _, s in plan)
    all_starts = np.concatenate([s for _, s in plan]) if plan else np.empty(0, np.int64)
    scores = np.zeros(total)
    bar = tqdm(total=total, desc=desc, unit="window", disable=not progress, dynamic_ncols=True)
    with bar:
        pos = 0
        for (a, b), starts in plan:
            psds = {}
            for k in range(0, starts.size, settings.batch_size):
                batch = starts[k : k + settings.batch_size]
                conditioned = {}
                for scorer in scorers:
                    cond = scorer.conditioning
                    if settings.psd_segment is not None:
                        cond = dataclasses.replace(cond, psd_segment=settings.psd_segment)
                    if cond.psd_key not in psds:
                        psds[cond.psd_key] = _estimate_psd(strain.data[:, a:b], cond, rate)
                    if cond not in conditioned:
                        conditioned[cond] = full_channels(
                            condition_windows(
                                strain.data, batch, *psds[cond.psd_key], cond, rate, n_window
                            ),
                            strain.detectors,
                        )
                    p = np.asarray(scorer.score(conditioned[cond]), dtype=np.float64).reshape(-1)
                    if p.shape != (batch.size,) or not np.isfinite(p).all():
                        raise RuntimeError(
                            f"scorer {scorer.name} returned {p.shape} scores (finite: "
                            f"{np.isfinite(p).all()}) for {batch.size} windows"
                        )
                    scores[pos : pos + batch.size] += p
                pos += batch.size
                bar.update(batch.size)
    scores /= len(scorers)
    order = np.argsort(all_starts, kind="stable")
    return ScanResult(
        window_start=strain.gps(all_starts[order]),
        scores=scores[order],
        segments=[(float(strain.gps(a)), float(strain.gps(b))) for a, b in segments],
        skipped=_skipped(strain, segments_all, n_window),
        seconds=time.perf_counter() - t0,
        live_time=float(sum(b - a for a, b in segments) / rate),
    )
