"""A prior on the merger time: the H1 lags at which the bank's network statistic may peak.

A data set puts its mergers in part of each window only (the G2Net samples late in their
2 s; ``g2res simulate`` in ``--merger-window``). A search maximised over every lag pays
the look-elsewhere cost of the lags where no merger lies: in noise the loudest of all
lags is louder than the loudest of the lags a signal can take. Restricting the H1 lags
of the network statistic to [start, end] s removes that cost, as a search's prior on the
coalescence time does. The window is not assumed: :func:`estimate_time_window` reads it
off the peak times of the training signals the bank itself finds.

With the bank's templates (merger at sample 0), a lag of t s puts the merger at t s
in H1; lags are circular, so only 0 <= start < end <= duration are windows. The oracle's
templates (the injected signals in place) get the same prior with their own merger times.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from g2res import DURATION

# A training signal counts as found above this quantile of the training noise. Its peak is
# then the signal's but for a share of about 1 - quantile of the found: samples whose own
# noise (a glitch, in real data) outdoes their signal, peaking anywhere in the sample.
# Not the loudest noise: one loud glitch in the training noise would leave no signal above.
NOISE_QUANTILE = 0.99
# The central share of the found signals' peak times kept: it drops those stray peaks
# (under 1% of the found, most outside the window) and a few ms of true ones at each end,
# which the margin (s) gives back.
COVERAGE = 0.98
MARGIN = 0.03
MIN_FOUND = 20


def check_window(window, duration: float) -> tuple[float, float]:
    """``window`` as (start, end) s, checked against a ``duration`` s series."""
    try:
        start, end = (float(v) for v in window)
    except (TypeError, ValueError):
        raise ValueError(f"time window {window!r}: need two numbers START END (s)") from None
    if not 0.0 <= start < end <= duration:
        raise ValueError(
            f"time window {start:g}-{end:g} s: need 0 <= START < END <= {duration:g} s "
            "(the H1 merger time within the sample)"
        )
    return start, end


def lag_mask(window, length: int, rate: float, device=None, offset=None) -> torch.Tensor:
    """Bool (length,): the lags (index / ``rate`` s) inside ``window`` (start, end) s.

    ``offset`` (batch,) s: the H1 merger time of each sample's template at lag 0 (the
    oracle's templates sit in place); the mask is then (batch, 1, length), true where
    ``offset`` + lag (mod the duration) is inside the window."""
    duration = length / rate
    start, end = check_window(window, duration)
    t = torch.arange(length, dtype=torch.float64, device=device) / rate
    if offset is not None:
        shift = torch.tensor(np.asarray(offset, dtype=np.float64), device=device)
        t = torch.remainder(shift[:, None, None] + t, duration)
    return (t >= start) & (t <= end)


def estimate_time_window(
    companion: str | os.PathLike,
    labels: str | os.PathLike,
    noise_quantile: float = NOISE_QUANTILE,
    coverage: float = COVERAGE,
    margin: float = MARGIN,
    duration: float | None = None,
) -> tuple[float, float]:
    """The merger-time window (start, end) s of a data set, from the bank's statistics of
    its labelled training split.

    ``companion``: the ``.raw.csv`` of ``g2res baseline matched-filter --split train``
    (``id``, ``stat``, ``time``); ``labels``: ``training_labels.csv`` (id,target). The
    training signals whose statistic exceeds the ``noise_quantile`` of the training noise
    are the ones the bank surely found; the central ``coverage`` of their peak times,
    widened by ``margin`` s either side and clipped to [0, ``duration``] s, is the window.
    """
    table = pd.read_csv(companion, dtype={"id": str})
    for col in ("id", "stat", "time"):
        if col not in table.columns:
            raise ValueError(f"{companion}: no {col!r} column (a matched-filter .raw.csv?)")
    truth = pd.read_csv(labels, dtype={"id": str})
    if not {"id", "target"} <= set(truth.columns):
        raise ValueError(f"{labels}: need id,target columns")
    merged = table.merge(truth[["id", "target"]], on="id", how="inner")
    if len(merged) < len(table):
        missing = sorted(set(table["id"]) - set(merged["id"]))[:3]
        raise ValueError(f"{companion}: ids without a label in {labels}, e.g. {missing}")
    noise = merged.loc[merged["target"] == 0, "stat"].to_numpy()
    if len(noise) == 0:
        raise ValueError(f"{companion}: no noise sample (target 0) to set the threshold")
    threshold = np.quantile(noise, noise_quantile)
    found = merged.loc[(merged["target"] == 1) & (merged["stat"] > threshold), "time"]
    if len(found) < MIN_FOUND:
        raise ValueError(
            f"{companion}: only {len(found)} training signals stand above the noise's "
            f"{noise_quantile:g} quantile; at least {MIN_FOUND} are needed to estimate "
            "the merger-time window (give it with --time-window START END)"
        )
    tail = (1.0 - coverage) / 2.0
    low, high = np.quantile(found.to_numpy(), [tail, 1.0 - tail])
    end = float(high) + margin
    return max(0.0, float(low) - margin), end if duration is None else min(end, duration)


def data_time_window(companion: str | os.PathLike, data_dir: str | os.PathLike):
    """:func:`estimate_time_window` of a train-split .raw.csv and ``data_dir``'s training
    labels, clipped to a G2Net sample's duration: (start, end) s."""
    from g2res.data.layout import TRAIN_LABELS

    return estimate_time_window(companion, Path(data_dir) / TRAIN_LABELS, duration=DURATION)
