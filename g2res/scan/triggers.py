"""Triggers of a scan: windows clustered into triggers, the time-slide background and
the false-alarm rate of each trigger against it (``g2res scan --timeslides``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pandas as pd

from g2res.scan.scan import ScanSettings, Scorer, scan_strain
from g2res.scan.strain import Strain

__all__ = ["cluster_windows", "slide_strain", "timeslide_background", "false_alarm_rate"]

SECONDS_PER_YEAR = 365.25 * 86400.0


def cluster_windows(
    window_start: np.ndarray,
    scores: np.ndarray,
    cluster_window: float = ScanSettings.cluster_window,
    merger_offset: float = ScanSettings.merger_offset,
    window_duration: float = ScanSettings.window_duration,
) -> pd.DataFrame:
    """Cluster windows into triggers (see the module notes), loudest first.

    Returns columns ``gps_time`` (s, from the falling edge), ``score`` (peak),
    ``window_start``/``window_end`` (GPS s of the peak window), ``n_windows``.
    """
    t = np.asarray(window_start, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    order = np.argsort(t, kind="stable")
    t, s = t[order], s[order]
    taken = np.zeros(t.size, dtype=bool)
    rows = []
    for i in np.argsort(-s, kind="stable"):
        if taken[i]:
            continue
        members = np.flatnonzero(~taken & (np.abs(t - t[i]) <= cluster_window + 1e-9))
        taken[members] = True
        level = s[members].min() + 0.5 * (s[i] - s[members].min())
        # Walk forward from the peak through neighbouring windows still above the level.
        j, k = i, int(np.searchsorted(members, i))
        last = members.size - 1
        while k < last and members[k + 1] == j + 1 and s[j + 1] >= level:
            j, k = j + 1, k + 1
        edge = t[j]
        if k < last and members[k + 1] == j + 1 and s[j] > s[j + 1]:
            edge = t[j] + (s[j] - level) / (s[j] - s[j + 1]) * (t[j + 1] - t[j])
        rows.append(
            {
                "gps_time": float(edge + merger_offset),
                "score": float(s[i]),
                "window_start": float(t[i]),
                "window_end": float(t[i] + window_duration),
                "n_windows": int(members.size),
            }
        )
    columns = ["gps_time", "score", "window_start", "window_end", "n_windows"]
    return pd.DataFrame(rows, columns=columns)


def slide_strain(strain: Strain, shifts: Sequence[int]) -> Strain:
    """A copy with detector ``d`` rolled by ``shifts[d]`` samples (circularly over the grid)."""
    data = np.stack([np.roll(row, int(k)) for row, k in zip(strain.data, shifts)])
    return dataclasses.replace(strain, data=data)


def timeslide_background(
    strain: Strain,
    scorers: Scorer | Sequence[Scorer],
    n_slides: int,
    slide_step: float = 7.0,
    settings: ScanSettings | None = None,
    progress: bool = True,
) -> tuple[np.ndarray, float]:
    """Peak scores of the clusters of ``n_slides`` time-slid scans and their live time (s).

    Slide ``k`` shifts L1 by ``k * slide_step`` s and V1 by ``2 k * slide_step`` s.
    """
    settings = settings or ScanSettings()
    if n_slides < 1:
        return np.empty(0), 0.0
    step = int(round(slide_step * strain.sample_rate))
    n = strain.data.shape[-1]
    if step < 0.1 * strain.sample_rate or 2 * n_slides * step >= n:
        raise ValueError(
            f"{n_slides} slides of {slide_step} s do not fit {n / strain.sample_rate:g} s of "
            "strain (need 2 * K * step < duration, step >= 0.1 s)"
        )
    background, live = [], 0.0
    for k in range(1, n_slides + 1):
        slid = slide_strain(strain, (0, k * step, 2 * k * step))
        res = scan_strain(slid, scorers, settings, progress, desc=f"slide {k}/{n_slides}")
        clusters = cluster_windows(
            res.window_start, res.scores, settings.cluster_window, settings.merger_offset
        )
        background.append(clusters["score"].to_numpy())
        live += res.live_time
    return np.concatenate(background), live


def false_alarm_rate(scores: np.ndarray, background: np.ndarray, live_time: float) -> np.ndarray:
    """Per year: background clusters scoring >= each score, over ``live_time`` s.

    With no louder background the rate is an upper bound, ``1 / live_time``.
    """
    if live_time <= 0:
        return np.full(np.shape(scores), np.nan)
    bg = np.sort(np.asarray(background, dtype=np.float64))
    louder = bg.size - np.searchsorted(bg, np.asarray(scores, dtype=np.float64), side="left")
    return np.maximum(louder, 1) / live_time * SECONDS_PER_YEAR
