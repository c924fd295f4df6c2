"""Scanning long detector strain with 2-s windows: ``g2res scan``."""

from g2res.scan.scan import (
    Conditioning,
    ScanResult,
    ScanSettings,
    Scorer,
    condition_windows,
    full_channels,
    psd_blocks,
    scan_strain,
    window_starts,
)
from g2res.scan.search import output_paths, plot_scores, run_conditioning, run_scorer, scan_files
from g2res.scan.strain import (
    Strain,
    StrainError,
    check_detectors,
    invalid_stretches,
    load_strain,
    read_series,
    resample,
    valid_segments,
)
from g2res.scan.triggers import (
    cluster_windows,
    false_alarm_rate,
    slide_strain,
    timeslide_background,
)

__all__ = [
    "Conditioning",
    "ScanResult",
    "ScanSettings",
    "Scorer",
    "Strain",
    "StrainError",
    "check_detectors",
    "cluster_windows",
    "condition_windows",
    "false_alarm_rate",
    "full_channels",
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
