"""``g2res scan``: trained runs over long strain files, to triggers, a report and a plot.

Outputs (next to ``out``, e.g. ``triggers.csv``):

- ``triggers.csv``: one row per cluster, loudest first: ``gps_time`` (s), ``score``,
  ``window_start``/``window_end`` (GPS s of the peak window), ``n_windows``, and with
  time slides ``far_per_year``;
- ``triggers_windows.csv``: ``window_start`` (GPS s) and ``score`` of every window;
- ``triggers_report.json``: files, settings, segments scanned, stretches skipped
  (NaN/gaps, too short), windows scored, seconds, throughput;
- ``triggers.png``: window score vs time with the triggers and skipped stretches.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from g2res import DETECTORS, N_SAMPLES, SAMPLE_RATE, __version__
from g2res.scan.scan import Conditioning, ScanSettings, Scorer, scan_strain
from g2res.scan.strain import Strain, load_strain
from g2res.scan.triggers import cluster_windows, false_alarm_rate, timeslide_background
from g2res.utils import atomic_open, atomic_path, resolve_device, write_json

__all__ = ["run_conditioning", "run_scorer", "output_paths", "scan_files", "plot_scores"]


def run_conditioning(run) -> Conditioning:
    """The window conditioning a run's models were trained with.

    Read from the manifest of the run's cache (``config.yaml`` ``cache:``) when it
    exists, since that is what the models saw; else from the recipe's
    ``preprocess:`` section.
    """
    from g2res.ensemble.predict import find_run

    run = find_run(run) if not hasattr(run, "config") else run
    cfg = run.config()
    if cfg.cache:
        manifest = Path(cfg.cache) / "manifest.json"
        if not manifest.is_absolute() and not manifest.is_file():
            manifest = run.path / manifest
        if manifest.is_file():
            try:
                settings = json.loads(manifest.read_text())["settings"]
            except (ValueError, KeyError) as exc:
                raise ValueError(f"cache manifest {manifest} has no settings: {exc}") from None
            return Conditioning.from_settings(settings)
    return Conditioning.from_settings(cfg.preprocess)


def run_scorer(
    run,
    tta: Sequence[str] | None = None,
    batch_size: int = 256,
    device: str | torch.device = "auto",
    load_model=None,
) -> Scorer:
    """A :class:`Scorer` averaging the fold models of ``run`` (and the ``tta`` transforms).

    ``load_model(checkpoint, device)`` defaults to the cv-train checkpoint loader.
    """
    from g2res.ensemble import predict

    run = predict.find_run(run) if not isinstance(run, predict.Run) else run
    device = resolve_device(device) if isinstance(device, str) else device
    load_model = load_model or predict.load_checkpoint_model
    models = []
    for fold, ckpt in run.checkpoints.items():
        try:
            models.append(load_model(ckpt, device))
        except (OSError, RuntimeError, KeyError, ValueError) as exc:
            raise RuntimeError(
                f"cannot load fold {fold} of run {run.path} ({ckpt}): {exc}"
            ) from exc
    predict.tta_transforms(tta)  # unknown names fail before the scan starts

    def score(x: torch.Tensor) -> np.ndarray:
        probs = predict.predict_array(
            models, x.numpy(), tta, batch_size, device, progress=False, desc=run.name
        )
        return probs.mean(axis=0)

    return Scorer(score=score, conditioning=run_conditioning(run), name=str(run.path))


def output_paths(out: str | os.PathLike) -> dict[str, Path]:
    """Files written for ``--out out``: triggers, windows, report, plot."""
    out = Path(out)
    stem = out.with_suffix("")
    return {
        "triggers": out,
        "windows": stem.with_name(stem.name + "_windows.csv"),
        "report": stem.with_name(stem.name + "_report.json"),
        "plot": out.with_suffix(".png"),
    }


def plot_scores(path, result, triggers: pd.DataFrame, n_mark: int = 10) -> None:
    """Score vs time (window centre, GPS s) with the top ``n_mark`` triggers and skipped
    stretches marked; written atomically (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t_ref = result.segments[0][0] if result.segments else 0.0
    fig, ax = plt.subplots(figsize=(10, 3.5))
    centre = result.window_start + 0.5 * N_SAMPLES / SAMPLE_RATE - t_ref
    ax.plot(centre, result.scores, ".-", ms=2, lw=0.6, color="C0", label="window score")
    for i, s in enumerate(result.skipped):
        ax.axvspan(
            s["gps_start"] - t_ref,
            s["gps_end"] - t_ref,
            color="0.8",
            label="skipped" if i == 0 else None,
        )
    top = triggers.head(n_mark)
    ax.plot(
        top["gps_time"] - t_ref,
        top["score"],
        "v",
        color="C3",
        ms=7,
        label=f"top {len(top)} triggers",
    )
    ax.set_xlabel(f"time - {t_ref:.3f} (GPS s)")
    ax.set_ylabel("score")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def scan_files(
    files: dict[str, str | os.PathLike] | Sequence[str | os.PathLike],
    runs: Sequence[str | os.PathLike] = (),
    out: str | os.PathLike = "triggers.csv",
    settings: ScanSettings | None = None,
    *,
    scorers: Sequence[Scorer] | None = None,
    channels: dict[str, str] | None = None,
    sample_rate: float | None = None,
    gps_start: float | None = None,
    tta: Sequence[str] | None = None,
    device: str = "auto",
    timeslides: int = 0,
    slide_step: float = 7.0,
    force: bool = False,
    progress: bool = True,
    detectors: Sequence[str] | None = None,
) -> dict:
    """Scan long strain with the fold ensembles of ``runs`` (or given ``scorers``).

    Reads the ``files`` of ``detectors`` (default H1, L1, V1; a subset leaves the others
    out explicitly, their whitened channels zeros), scans, clusters, optionally estimates
    the background with ``timeslides`` slides, writes the outputs of :func:`output_paths`
    and returns the report (also written as JSON).
    """
    settings = settings or ScanSettings()
    settings.check()
    paths = output_paths(out)
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not force:
        raise FileExistsError(f"{', '.join(existing)} exist(s); pass --force to overwrite")
    if scorers is None:
        if not runs:
            raise ValueError("scan needs at least one run directory (--runs)")
        scorers = [run_scorer(r, tta, settings.batch_size, device) for r in runs]
    strain: Strain = load_strain(files, channels, sample_rate, gps_start, detectors=detectors)
    result = scan_strain(strain, scorers, settings, progress)
    if result.window_start.size == 0:
        longest = max((s["duration"] for s in result.skipped if not s["detectors"]), default=0)
        raise ValueError(
            f"strain too short: a scan needs at least {settings.window_duration:g} s of valid "
            f"data in every scanned detector ({' '.join(strain.detectors)}); the longest "
            f"valid stretch of {', '.join(map(str, strain.sources))} is {longest:g} s "
            f"(skipped: {result.skipped[:5]})"
        )
    triggers = cluster_windows(
        result.window_start,
        result.scores,
        settings.cluster_window,
        settings.merger_offset,
        settings.window_duration,
    )
    report = {
        "version": __version__,
        "files": dict(zip(strain.detectors, map(str, strain.sources))),
        "detectors": list(strain.detectors),
        "absent_detectors": [d for d in DETECTORS if d not in strain.detectors],
        "runs": [s.name for s in scorers],
        "conditioning": [dataclasses.asdict(s.conditioning) for s in scorers],
        "settings": dataclasses.asdict(settings),
        "gps_start": strain.gps_start,
        "duration": strain.duration,
        **result.report(),
        "triggers": int(len(triggers)),
    }
    if timeslides:
        background, live = timeslide_background(
            strain, scorers, timeslides, slide_step, settings, progress
        )
        triggers["far_per_year"] = false_alarm_rate(triggers["score"], background, live)
        report["timeslides"] = {
            "slides": timeslides,
            "step": slide_step,
            "background_clusters": int(background.size),
            "background_live_time": live,
        }
    with atomic_open(paths["triggers"], "w") as fh:
        triggers.to_csv(fh, index=False, float_format="%.6f")
    with atomic_open(paths["windows"], "w") as fh:
        pd.DataFrame({"window_start": result.window_start, "score": result.scores}).to_csv(
            fh, index=False, float_format="%.6f"
        )
    plot_scores(paths["plot"], result, triggers)
    report["outputs"] = {k: str(v) for k, v in paths.items()}
    write_json(paths["report"], report)
    return report
