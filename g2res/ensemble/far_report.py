"""The low false-alarm report of ``g2res evaluate``: efficiency at fixed false-alarm
probabilities (:mod:`g2res.ensemble.far`), overall and per network-SNR bin, for one
submission and, paired, for two; text lines for the printed report.

A FAP the test set's noise cannot resolve (fewer than ``ceil(1 / fap)`` noise samples) is
kept in the report as ``{"fap", "n_noise", "skipped": reason}`` with a warning, so the
other FAPs and the AUC are still reported.
"""

from __future__ import annotations

import warnings

import numpy as np

from g2res.ensemble.far import (
    SNR_BINS,
    FAPResolutionError,
    efficiency_at_fap,
    paired_efficiency_difference,
)

DEFAULT_FAPS = (1e-2, 1e-3)


def _each_fap(faps, n_noise: int, fn) -> list[dict]:
    out = []
    for fap in faps:
        try:
            out.append(fn(float(fap)))
        except FAPResolutionError as err:
            warnings.warn(f"efficiency at FAP {fap:g} not reported: {err}", stacklevel=3)
            out.append({"fap": float(fap), "n_noise": n_noise, "skipped": str(err)})
    return out


def fap_report(
    y: np.ndarray,
    p: np.ndarray,
    snr: np.ndarray | None = None,
    faps=DEFAULT_FAPS,
    bins=SNR_BINS,
    n_boot: int = 2000,
    seed: int = 0,
) -> list[dict] | None:
    """:func:`~g2res.ensemble.far.efficiency_at_fap` of scores ``p`` (n,) with labels
    ``y`` (n,) 0/1 at each of ``faps``, per SNR bin when ``snr`` (n,) is given; None
    without noise or without signals."""
    noise, signal = y == 0, y == 1
    if not noise.any() or not signal.any():
        return None
    s = None if snr is None else snr[signal]
    return _each_fap(
        faps,
        int(noise.sum()),
        lambda f: efficiency_at_fap(p[noise], p[signal], f, s, bins, n_boot, seed=seed),
    )


def paired_fap_report(
    y: np.ndarray,
    p: np.ndarray,
    q: np.ndarray,
    snr: np.ndarray | None = None,
    faps=DEFAULT_FAPS,
    bins=SNR_BINS,
    n_boot: int = 2000,
    seed: int = 0,
) -> list[dict] | None:
    """:func:`~g2res.ensemble.far.paired_efficiency_difference` of ``p`` minus ``q`` (both
    (n,), same samples) at each of ``faps``; None without noise or without signals."""
    noise, signal = y == 0, y == 1
    if not noise.any() or not signal.any():
        return None
    s = None if snr is None else snr[signal]
    return _each_fap(
        faps,
        int(noise.sum()),
        lambda f: paired_efficiency_difference(
            p[noise], p[signal], q[noise], q[signal], f, s, bins, n_boot, seed=seed
        ),
    )


def _name(row: dict) -> str:
    return "all" if "snr_low" not in row else f"SNR {row['snr_low']:g}-{row['snr_high']:g}"


def format_fap(reports: list[dict] | None) -> list[str]:
    """Lines of the printed report for :func:`fap_report`."""
    lines = []
    for r in reports or []:
        if "skipped" in r:
            lines.append(f"efficiency at FAP {r['fap']:g}: not reported ({r['skipped']})")
            continue
        lines.append(
            f"efficiency at FAP {r['fap']:g} (threshold {r['threshold']:.4g}, {r['n_noise']} "
            f"noise samples; {r['level']:.0%} bootstrap interval):"
        )
        for row in [r["overall"], *(r["by_snr"] or [])]:
            lines.append(
                f"  {_name(row):<14}{row['efficiency']:.3f}  [{row['low']:.3f}, {row['high']:.3f}]"
                f"  n={row['n_signals']}"
            )
    return lines


def format_paired_fap(reports: list[dict] | None, other: str) -> list[str]:
    """Lines of the printed report for :func:`paired_fap_report`."""
    lines = []
    for r in reports or []:
        if "skipped" in r:
            lines.append(f"efficiency at FAP {r['fap']:g} vs {other}: not reported")
            continue
        lines.append(
            f"efficiency at FAP {r['fap']:g} minus that of {other} "
            f"({r['level']:.0%} paired bootstrap interval):"
        )
        for row in [r["overall"], *(r["by_snr"] or [])]:
            lines.append(
                f"  {_name(row):<14}{row['efficiency_a']:.3f} vs {row['efficiency_b']:.3f}  "
                f"{row['diff']:+.3f}  [{row['low']:+.3f}, {row['high']:+.3f}]  {row['verdict']}"
            )
    return lines
