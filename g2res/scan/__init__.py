"""Scanning long detector strain with 2-s windows: ``g2res scan``."""

from g2res.scan.scan import (
    Conditioning,
    ScanResult,
    ScanSettings,
    Scorer,
    cluster_windows,
    condition_windows,
    false_alarm_rate,
    psd_blocks,
    scan_strain,
    slide_strain,
    timeslide_background,
    window_starts,
)
from g2res.scan.search import output_paths, plot_scores, run_conditioning, run_scorer, scan_files
from g2res.scan.strain import (
    Strain,
    StrainError,
    invalid_stretches,
    load_strain,
    read_series,
    resample,
    valid_segments,
)

__all__ = [
    "Conditioning",
    "ScanResult",
    "ScanSettings",
    "Scorer",
    "Strain",
    "StrainError",
    "cluster_windows",
    "condition_windows",
    "false_alarm_rate",
    "invalid_stretches",
    "load_strain",
    "output_paths",
    "plot_scores",
    "psd_blocks",
    "read_series",
    "resample",
    "run_conditioning",
    "run_scorer",
    "scan_files",
    "scan_strain",
    "slide_strain",
    "timeslide_background",
    "valid_segments",
    "window_starts",
]
