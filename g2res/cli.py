"""The ``g2res`` command line: parses arguments, then calls library functions.

Each subcommand has an ``_add_<name>`` function that declares its options and a
``_run_<name>`` function that hands them to the library; no logic lives here.
"""

from __future__ import annotations

import argparse
import os
import sys

from g2res import __version__
from g2res.config import (
    Config,
    ConfigError,
    PreprocessConfig,
    SimulateConfig,
    SubmitConfig,
    load_config,
)

DEFAULTS = Config()


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Show defaults and keep the layout of descriptions."""


def _recipe_args(p: argparse.ArgumentParser) -> None:
    """Options shared by every command that reads a recipe."""
    p.add_argument(
        "--config",
        metavar="YAML",
        default=None,
        help="recipe file (see pipelines/); its values are the defaults below it",
    )
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="override any recipe field, e.g. train.lr=3e-4 model.backbone.name=resnet34",
    )


def _run_dir_args(p: argparse.ArgumentParser, force_help: str) -> None:
    """--device, --resume, --force, --seed and -q of the commands that train into RUN."""
    p.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N (default: recipe)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in RUN")
    p.add_argument("--force", action="store_true", help=force_help)
    _common_args(p)


def _recipe_with(args, flags: dict) -> Config:
    """The recipe with the command line's flags (None: not given), --device and --seed."""
    flags = {**flags, "device": args.device, "seed": args.seed}
    return load_recipe(args).replace({k: v for k, v in flags.items() if v is not None})


def _common_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=None, help="seed for every random choice")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


# ---------------------------------------------------------------------------- simulate
def _add_simulate(sub) -> None:
    d = SimulateConfig()
    p = sub.add_parser(
        "simulate",
        formatter_class=_Formatter,
        help="write a simulated data set in the G2Net layout",
        description=(
            "Simulate a data set in the G2Net layout: stationary Gaussian noise coloured by\n"
            "a PSD per detector (H1, L1, V1; 2 s at 2048 Hz), with binary black hole signals\n"
            "(lalsimulation) injected in a fraction of the samples. Writes train/, test/,\n"
            "training_labels.csv, sample_submission.csv and the truth in truth/."
        ),
    )
    p.add_argument("out_dir", metavar="OUT_DIR", help="output directory (must be empty)")
    p.add_argument("--n-train", type=int, default=d.n_train, help="training samples")
    p.add_argument("--n-test", type=int, default=d.n_test, help="test samples")
    p.add_argument(
        "--snr",
        type=float,
        nargs=2,
        metavar=("MIN", "MAX"),
        default=list(d.snr),
        help="network optimal SNR of injections, drawn uniformly in [MIN, MAX]",
    )
    p.add_argument(
        "--signal-fraction",
        type=float,
        default=d.signal_fraction,
        help="fraction of samples holding a signal (target 1)",
    )
    p.add_argument(
        "--approximant",
        default=d.approximant,
        help="lalsimulation time-domain approximant (e.g. IMRPhenomXPHM, IMRPhenomD, SEOBNRv4)",
    )
    p.add_argument(
        "--psd",
        default=d.psd,
        metavar="FILE",
        help=(
            "PSD file (.txt or .npy): a frequency column in Hz and one one-sided PSD column "
            "(strain^2/Hz) per detector H1, L1, V1 (or one column for all); "
            "default: aLIGO design for H1/L1, AdVirgo for V1"
        ),
    )
    p.add_argument(
        "--merger-window",
        type=float,
        nargs=2,
        metavar=("START", "END"),
        default=list(d.merger_window),
        help="s, range of the merger time within the 2-s window",
    )
    p.add_argument(
        "--mass-range",
        type=float,
        nargs=2,
        metavar=("MIN", "MAX"),
        default=list(d.mass_range),
        help="solar masses, range of each component mass",
    )
    p.add_argument("--workers", type=int, default=d.workers, help="worker processes")
    p.add_argument(
        "--glitch-rate",
        type=float,
        default=d.glitch_rate,
        help=(
            "expected glitches per sample (Poisson), in noise and signal samples, each in one "
            "detector chosen at random; all listed in truth/glitches.csv"
        ),
    )
    p.add_argument(
        "--glitch-snr",
        type=float,
        nargs=2,
        metavar=("MIN", "MAX"),
        default=list(d.glitch_snr),
        help="optimal SNR of a glitch in its detector, drawn uniformly in [MIN, MAX]",
    )
    p.add_argument(
        "--glitch-kinds",
        nargs="+",
        metavar="KIND",
        default=list(d.glitch_kinds),
        help="glitch kinds drawn with equal odds: sine_gaussian, blip, scattered_light",
    )
    p.add_argument(
        "--psd-drift",
        type=float,
        default=d.psd_drift,
        metavar="X",
        help=(
            "PSD drift per sample and detector: scale uniform in [1-X, 1+X] times a tilt "
            "(f/100 Hz)^t reaching up to a factor 1+X at 20 and 500 Hz; recorded in "
            "truth/psd_drift.csv"
        ),
    )
    p.add_argument("--force", action="store_true", help="overwrite a non-empty OUT_DIR")
    _common_args(p)
    p.set_defaults(func=_run_simulate)


def _run_simulate(args) -> int:
    from g2res.data.simulate import simulate

    simulate(
        args.out_dir,
        config=SimulateConfig(
            n_train=args.n_train,
            n_test=args.n_test,
            snr=tuple(args.snr),
            signal_fraction=args.signal_fraction,
            approximant=args.approximant,
            psd=args.psd,
            merger_window=tuple(args.merger_window),
            mass_range=tuple(args.mass_range),
            workers=args.workers,
            glitch_rate=args.glitch_rate,
            glitch_snr=tuple(args.glitch_snr),
            glitch_kinds=list(args.glitch_kinds),
            psd_drift=args.psd_drift,
        ),
        seed=0 if args.seed is None else args.seed,
        force=args.force,
        progress=not args.quiet,
    )
    return 0


# ---------------------------------------------------------------------------- preprocess
def _add_preprocess(sub) -> None:
    d = PreprocessConfig()
    p = sub.add_parser(
        "preprocess",
        formatter_class=_Formatter,
        help="validate, whiten and bandpass a data set into a cache",
        description=(
            "Check every file of a G2Net-layout data set, estimate the noise PSD per\n"
            "detector (Welch), whiten and bandpass every sample in batches, and pack the\n"
            "result as memory-mappable arrays in CACHE_DIR. Interrupted runs resume.\n\n"
            "Large data sets: run `--shard I/N` for I = 0..N-1 (separate jobs or machines,\n"
            "each with its own --out SHARD_DIR), then `--merge SHARD_DIR... --out CACHE_DIR`\n"
            "gives the same bytes as one run."
        ),
    )
    p.add_argument("data_dir", nargs="?", metavar="DATA_DIR", help="data set in the G2Net layout")
    p.add_argument(
        "--out", required=True, metavar="CACHE_DIR", help="cache (or shard) directory to write"
    )
    p.add_argument(
        "--shard",
        metavar="I/N",
        help="process only the I-th (0-based) of N contiguous slices of each split into a "
        "shard directory; every shard estimates the same PSD",
    )
    p.add_argument(
        "--merge",
        nargs="+",
        metavar="SHARD_DIR",
        help="join the shard directories of one --shard run into CACHE_DIR (no DATA_DIR)",
    )
    p.add_argument(
        "--psd-source",
        default=d.psd_source,
        help="noise: mean PSD of training samples with target 0; all: of all training "
        "samples; or a path to a PSD file (.npz from a cache, or frequency + PSD columns)",
    )
    p.add_argument("--psd-segment", type=float, default=d.psd_segment, help="s, Welch segment")
    p.add_argument(
        "--psd-overlap", type=float, default=d.psd_overlap, help="Welch overlap, fraction"
    )
    p.add_argument("--psd-window", default=d.psd_window, help="Welch window (scipy name)")
    p.add_argument("--psd-average", default=d.psd_average, choices=["median", "mean"])
    p.add_argument(
        "--psd-max-samples",
        type=int,
        default=d.psd_max_samples,
        help="training samples (seeded random subset) averaged for the PSD",
    )
    p.add_argument("--fmin", type=float, default=d.fmin, help="Hz, bandpass low edge")
    p.add_argument("--fmax", type=float, default=d.fmax, help="Hz, bandpass high edge")
    p.add_argument(
        "--filter-order",
        type=int,
        default=d.filter_order,
        help="Butterworth order of the zero-phase bandpass",
    )
    p.add_argument(
        "--window-alpha",
        type=float,
        default=d.window_alpha,
        help="Tukey taper shape parameter: the fraction of the window in the two ramps\n"
        "(0.1: 0.1 s each side of 2 s, mergers up to 1.9 s keep full amplitude)",
    )
    p.add_argument("--dtype", default=d.dtype, choices=["float32", "float16"], help="cache dtype")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="samples per batch")
    p.add_argument("--workers", type=int, default=d.workers, help="threads reading files")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument(
        "--skip-bad",
        action="store_true",
        help="exclude bad files (listed in CACHE_DIR/bad_files.csv) instead of stopping",
    )
    p.add_argument("--force", action="store_true", help="discard an existing cache and start over")
    _common_args(p)
    p.set_defaults(func=_run_preprocess)


def _run_preprocess(args) -> int:
    from g2res.data.preprocess import merge_shards, preprocess

    if args.merge:
        if args.data_dir or args.shard:
            raise ValueError("--merge takes shard directories, not DATA_DIR or --shard")
        merge_shards(args.merge, args.out, force=args.force, progress=not args.quiet)
        return 0
    if not args.data_dir:
        raise ValueError("give DATA_DIR (or --merge SHARD_DIR...)")
    shard = None
    if args.shard:
        try:
            shard = tuple(int(v) for v in args.shard.split("/"))
            if len(shard) != 2 or not 0 <= shard[0] < shard[1]:
                raise ValueError
        except ValueError:
            raise ValueError(f"--shard {args.shard!r} must be I/N with 0 <= I < N") from None
    cfg = PreprocessConfig(
        psd_source=args.psd_source,
        psd_segment=args.psd_segment,
        psd_overlap=args.psd_overlap,
        psd_window=args.psd_window,
        psd_average=args.psd_average,
        psd_max_samples=args.psd_max_samples,
        fmin=args.fmin,
        fmax=args.fmax,
        filter_order=args.filter_order,
        window_alpha=args.window_alpha,
        dtype=args.dtype,
        batch_size=args.batch_size,
        workers=args.workers,
    )
    preprocess(
        args.data_dir,
        args.out,
        config=cfg,
        seed=0 if args.seed is None else args.seed,
        device=args.device,
        skip_bad=args.skip_bad,
        force=args.force,
        progress=not args.quiet,
        shard=shard,
    )
    return 0


# ---------------------------------------------------------------------------- submit
def _add_submit(sub) -> None:
    d = SubmitConfig()
    p = sub.add_parser(
        "submit",
        formatter_class=_Formatter,
        help="ensemble trained runs into a validated submission.csv",
        description=(
            "Predict the test split of a cache with every fold model of every RUN (each\n"
            "averaged over the identity and the --tta transforms), average the folds of a\n"
            "run, blend the runs, check the result against sample_submission.csv (same ids,\n"
            "same order, finite probabilities in [0, 1]) and write it atomically.\n"
            "With OOF predictions (oof.csv) in every run, the OOF AUC of each run and of\n"
            "the blend is reported."
        ),
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories of g2res cv-train")
    p.add_argument(
        "--cache", default=None, help="cache whose test split is predicted (default: first RUN's)"
    )
    p.add_argument("--out", default="submission.csv", help="submission file to write")
    p.add_argument(
        "--sample-submission",
        metavar="FILE",
        default=None,
        help="ids and order to follow (default: sample_submission.csv of the cache's data)",
    )
    p.add_argument(
        "--tta",
        nargs="*",
        default=None,
        metavar="NAME",
        help="test-time augmentations averaged with the identity: swap_h1l1, sign_flip, "
        "permute_detectors (all six detector orders); default: the first RUN's recipe "
        "(submit.tta); --tta alone: none",
    )
    p.add_argument(
        "--blend",
        default=d.blend,
        choices=["mean", "rank"],
        help="mean of probabilities, or mean of ranks/n (order only)",
    )
    w = p.add_mutually_exclusive_group()
    w.add_argument(
        "--weights", type=float, nargs="+", metavar="W", help="one non-negative weight per RUN"
    )
    w.add_argument(
        "--fit-weights",
        action="store_true",
        help="fit weights maximising the blend's OOF AUC (an in-sample figure)",
    )
    p.add_argument(
        "--fill-missing",
        type=float,
        default=None,
        metavar="VALUE",
        help="probability written for sample ids absent from the cache (e.g. files dropped "
        "by preprocess --skip-bad); without it such ids are an error",
    )
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="samples per batch")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--json", metavar="FILE", default=None, help="also write the summary as JSON")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_run_submit)


def _run_submit(args) -> int:
    from g2res.ensemble.submit import submit
    from g2res.utils import write_json

    summary = submit(
        args.runs,
        args.cache,
        args.out,
        sample_submission=args.sample_submission,
        tta=args.tta,
        method=args.blend,
        weights=args.weights,
        fit_weights=args.fit_weights,
        fill_missing=args.fill_missing,
        batch_size=args.batch_size,
        device=args.device,
        force=args.force,
        progress=not args.quiet,
    )
    if args.json:
        write_json(args.json, summary)
    return 0


# ---------------------------------------------------------------------------- evaluate
def _add_evaluate(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        formatter_class=_Formatter,
        help="score a submission against known test labels",
        description=(
            "Score SUBMISSION (id,target) against LABELS (id,target, e.g. a simulation's\n"
            "truth/test_labels.csv) with the metrics of cv-train; with --injections, the\n"
            "detection efficiency per SNR bin at a fixed false-positive rate."
        ),
    )
    p.add_argument("submission", metavar="SUBMISSION", help="submission CSV (id,target)")
    p.add_argument("--labels", required=True, metavar="CSV", help="true labels (id,target)")
    p.add_argument(
        "--injections",
        metavar="CSV",
        default=None,
        help="injection table with snr_network per id (simulate's truth/injections.csv)",
    )
    p.add_argument("--plots", metavar="DIR", default=None, help="write figures into DIR")
    p.add_argument(
        "--fpr", type=float, default=0.01, help="false-positive rate fixing the threshold"
    )
    p.add_argument(
        "--against",
        metavar="CSV",
        default=None,
        help="another submission of the same ids: report this one's AUC minus its AUC with\n"
        "a 95%% paired bootstrap interval (per SNR bin with --injections)",
    )
    p.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples for --against")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resamples")
    p.add_argument(
        "--misses",
        type=int,
        default=0,
        metavar="N",
        help="list the N signals that cost the most AUC (the share of the noise scored above\n"
        "each), with their source parameters from --injections; with --against, ranked by\n"
        "that cost minus the other submission's: what it finds and this one misses",
    )
    p.add_argument(
        "--misses-snr",
        type=float,
        nargs=2,
        default=None,
        metavar=("LO", "HI"),
        help="only signals of network SNR in [LO, HI) for --misses (needs --injections)",
    )
    p.add_argument("--json", metavar="FILE", default=None, help="also write the results as JSON")
    p.set_defaults(func=_run_evaluate)


def _run_evaluate(args) -> int:
    from g2res.ensemble.evaluate import evaluate, format_report
    from g2res.utils import write_json

    result = evaluate(
        args.submission,
        args.labels,
        injections=args.injections,
        plots=args.plots,
        fpr=args.fpr,
        against=args.against,
        n_boot=args.n_boot,
        seed=args.seed,
        misses=args.misses,
        misses_snr=args.misses_snr,
    )
    print(format_report(result))
    if args.json:
        write_json(args.json, result)
    return 0


# ---------------------------------------------------------------------------- run
def _add_run(sub) -> None:
    p = sub.add_parser(
        "run",
        formatter_class=_Formatter,
        help="the whole pipeline from one recipe: simulate ... evaluate",
        description=(
            "Run simulate -> preprocess -> cv-train -> submit -> evaluate from one recipe\n"
            "in WORKDIR (data/, cache/, runs/NAME/, submission.csv, evaluation.json).\n"
            "Complete steps are skipped and interrupted ones resume: run the same command\n"
            "again to continue. A recipe with data_dir (or cache) set uses that data\n"
            "instead of simulating (or preprocessing)."
        ),
    )
    p.add_argument("recipe", metavar="RECIPE", help="recipe YAML, e.g. pipelines/quickstart.yaml")
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="override any recipe field, e.g. train.epochs=2 simulate.n_train=500",
    )
    p.add_argument("--out", required=True, metavar="WORKDIR", help="work directory")
    p.add_argument("--seed", type=int, default=None, help="seed for every random choice")
    p.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N (default: recipe)")
    p.add_argument("--force", action="store_true", help="start every step over")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_run_run)


def _run_run(args) -> int:
    from g2res.pipeline import run_pipeline

    cfg = load_config(args.recipe, args.overrides)
    if args.seed is not None:
        cfg = cfg.replace({"seed": args.seed})
    if args.device is not None:
        cfg = cfg.replace({"device": args.device})
    run_pipeline(cfg, args.out, force=args.force, progress=not args.quiet)
    return 0


# ---------------------------------------------------------------------------- waveforms
def _add_waveforms(sub) -> None:
    from g2res.data.pool import PoolConfig
    from g2res.data.waveforms import MASS_PRIORS

    d = PoolConfig()
    p = sub.add_parser(
        "waveforms",
        formatter_class=_Formatter,
        help="make a pool of BBH waveforms for on-the-fly injection",
        description=(
            "Generate h+ and hx of N binary black holes (lalsimulation) drawn from wide\n"
            "priors (masses log-uniform in --mass-range, isotropic spins and orientation),\n"
            "float32 and memory-mapped, peak at a fixed sample. Sky position, polarisation,\n"
            "merger time and SNR are drawn at training time (injection: in a recipe).\n"
            "Reproducible for a seed whatever --workers; an interrupted run resumes."
        ),
    )
    p.add_argument("--out", required=True, metavar="POOL", help="pool directory to write")
    p.add_argument("--n", type=int, default=d.n, help="number of sources")
    p.add_argument("--approximant", default=d.approximant, help="lalsimulation TD approximant")
    p.add_argument(
        "--mass-range",
        type=float,
        nargs=2,
        metavar=("MIN", "MAX"),
        default=list(d.mass_range),
        help="solar masses, detector-frame component masses",
    )
    p.add_argument(
        "--mass-prior",
        choices=MASS_PRIORS,
        default=d.mass_prior,
        help="prior of each component mass in --mass-range (log-uniform gives light,\n"
        "long signals, the hard ones, a fair share of training)",
    )
    p.add_argument("--spin-max", type=float, default=d.spin_max, help="largest spin magnitude")
    p.add_argument(
        "--pre-merger", type=float, default=d.pre_merger, help="s of signal kept before the peak"
    )
    p.add_argument(
        "--post-merger", type=float, default=d.post_merger, help="s of signal kept after the peak"
    )
    p.add_argument("--workers", type=int, default=d.workers, help="worker processes")
    p.add_argument("--force", action="store_true", help="replace an existing pool in POOL")
    _common_args(p)
    p.set_defaults(func=_run_waveforms)


def _run_waveforms(args) -> int:
    from g2res.data.pool import PoolConfig, make_pool

    cfg = PoolConfig(
        n=args.n,
        approximant=args.approximant,
        mass_range=tuple(args.mass_range),
        mass_prior=args.mass_prior,
        spin_max=args.spin_max,
        pre_merger=args.pre_merger,
        post_merger=args.post_merger,
        workers=args.workers,
    )
    seed = 0 if args.seed is None else args.seed
    make_pool(args.out, cfg, seed=seed, force=args.force, progress=not args.quiet)
    return 0


# ---------------------------------------------------------------------------- pretrain
def _add_pretrain(sub) -> None:
    p = sub.add_parser(
        "pretrain",
        formatter_class=_Formatter,
        help="train a recipe's model on signals injected on the fly",
        description=(
            "Pretrain the recipe's model for injection.steps steps on batches built on the\n"
            "device: signals from the waveform pool (injection.pool, `g2res waveforms`)\n"
            "projected with random sky position and polarisation, conditioned like the\n"
            "cache and scaled to a network SNR, added to the cache's label-0 noise (each\n"
            "detector from a different sample) or to Gaussian noise of the cache's PSD.\n"
            "Then fine-tune from it: train.init_from=RUN/best.pt (or injection.mode=off here)."
        ),
    )
    _recipe_args(p)
    p.add_argument("--out", required=True, metavar="RUN", help="run directory to write")
    p.add_argument("--cache", default=None, help="cache directory (recipe: cache)")
    p.add_argument("--pool", default=None, help="waveform pool (recipe: injection.pool)")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps (injection.steps)")
    p.add_argument("--batch-size", type=int, default=None, help="samples per step")
    _run_dir_args(p, "overwrite a non-empty RUN")
    p.set_defaults(func=_run_pretrain)


def _run_pretrain(args) -> int:
    from g2res.train.pretrain import pretrain

    cfg = _recipe_with(args, {
        "cache": args.cache,
        "injection.pool": args.pool,
        "injection.steps": args.steps,
        "train.batch_size": args.batch_size,
    })  # fmt: skip
    metrics = pretrain(cfg, args.out, resume=args.resume, force=args.force, progress=not args.quiet)
    if not args.quiet:
        print(
            f"g2res pretrain: {metrics['steps']} steps, best held-out AUC "
            f"{metrics['best_val_auc']}, injection {100 * metrics['injection_share']:.0f}% of "
            f"the time -> {args.out}"
        )
    return 0


# ---------------------------------------------------------------------------- baseline
def _add_baseline(sub) -> None:
    p = sub.add_parser(
        "baseline",
        formatter_class=_Formatter,
        help="classical baselines (matched filter)",
        description="Classical detectors scored like any model.",
    )
    bsub = p.add_subparsers(dest="baseline", metavar="BASELINE", required=True)
    m = bsub.add_parser(
        "matched-filter",
        formatter_class=_Formatter,
        help="matched filter with a template bank (or the injected waveform: --oracle)",
        description=(
            "Whitened FFT matched filter per detector (phase-maximised complex SNR), a\n"
            "network statistic from H1 peaks and L1/V1 maxima within the light travel\n"
            "times, maximised over lags and templates. Writes OUT (id,target: the rank of\n"
            "the network SNR in (0, 1)) and OUT's .raw.csv companion (raw SNRs, times,\n"
            "best templates). The bank is placed stochastically for the PSD given."
        ),
    )
    m.add_argument("data_dir", metavar="DATA_DIR", help="data set in the G2Net layout")
    m.add_argument(
        "--psd", required=True, metavar="FILE", help="PSD file, e.g. CACHE/psd.npz of a cache"
    )
    m.add_argument("--split", default="test", choices=["test", "train"], help="split to filter")
    m.add_argument("--out", required=True, metavar="CSV", help="submission-format output")
    m.add_argument(
        "--oracle",
        action="store_true",
        help="use each sample's injected waveform (DATA_DIR/truth) as the only template",
    )
    m.add_argument("--bank", metavar="NPZ", default=None, help="load a bank saved by --save-bank")
    m.add_argument("--save-bank", metavar="NPZ", default=None, help="write the bank used")
    m.add_argument(
        "--mass-range",
        type=float,
        nargs=2,
        metavar=("MIN", "MAX"),
        default=[7.0, 50.0],
        help="Msun, component masses covered by the bank",
    )
    m.add_argument("--spin-max", type=float, default=0.99, help="largest spin magnitude")
    m.add_argument(
        "--minimal-match", type=float, default=0.95, help="bank placement match threshold"
    )
    m.add_argument(
        "--approximant", default="IMRPhenomD", help="aligned-spin lalsimulation approximant"
    )
    m.add_argument("--taper-alpha", type=float, default=0.1, help="Tukey taper of the data")
    m.add_argument("--batch-size", type=int, default=8, help="samples per batch")
    m.add_argument("--template-batch", type=int, default=64, help="templates per batch")
    m.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    m.add_argument("--force", action="store_true", help="overwrite OUT")
    _common_args(m)
    m.set_defaults(func=_run_baseline)


def _run_baseline(args) -> int:
    from g2res.baselines.matched_filter import matched_filter

    matched_filter(
        args.data_dir,
        args.psd,
        args.out,
        split=args.split,
        oracle=args.oracle,
        bank=args.bank,
        mass_range=tuple(args.mass_range),
        spin_max=args.spin_max,
        minimal_match=args.minimal_match,
        approximant=args.approximant,
        save_bank=args.save_bank,
        taper_alpha=args.taper_alpha,
        batch_size=args.batch_size,
        template_batch=args.template_batch,
        device=args.device,
        seed=0 if args.seed is None else args.seed,
        force=args.force,
        progress=not args.quiet,
    )
    return 0


# ---------------------------------------------------------------------------- cv-train
def _add_cv_train(sub) -> None:
    p = sub.add_parser(
        "cv-train",
        formatter_class=_Formatter,
        help="K-fold training of one recipe on a preprocessed cache",
        description=(
            "Train the recipe's model on every fold of a stratified K-fold split of the\n"
            "cache's training samples (folds.csv), validating on the held-out fold each\n"
            "epoch. Writes per fold best.pt/last.pt/history.csv, and per run oof.csv,\n"
            "metrics.json (ROC AUC, accuracy, precision, recall, F1, confusion matrices)\n"
            "and plots/. Interrupt at any time and continue with --resume.\n\n"
            "Several processes or machines: launch with torchrun (DDP: nccl on GPUs,\n"
            "gloo on CPU); rank 0 writes the run directory.\n"
            "  torchrun --nproc-per-node 4 -m g2res cv-train --config R.yaml --out RUN\n\n"
            "example:\n"
            "  g2res cv-train --config pipelines/cqt-resnet18.yaml --cache cache \\\n"
            "      --folds 5 --out runs/cqt-r18 train.lr=3e-4"
        ),
    )
    _recipe_args(p)
    p.add_argument("--out", required=True, metavar="RUN", help="run directory to write")
    p.add_argument("--cache", default=None, help="cache directory (recipe: cache)")
    p.add_argument("--folds", type=int, default=None, help="number of folds (recipe: cv.folds)")
    p.add_argument(
        "--fold", type=int, nargs="+", default=None, metavar="K",
        help="train only these folds, numbered from 0 (recipe: cv.fold; default all)",
    )  # fmt: skip
    p.add_argument("--epochs", type=int, default=None, help="epochs per fold (train.epochs)")
    p.add_argument("--batch-size", type=int, default=None, help="samples per step")
    p.add_argument(
        "--init-from", default=None, metavar="CKPT",
        help="start every fold from this g2res checkpoint (train.init_from)",
    )  # fmt: skip
    p.add_argument(
        "--folds-from", default=None, metavar="CSV",
        help="use the split of another run's folds.csv (cv.folds_file)",
    )  # fmt: skip
    p.add_argument("--workers", type=int, default=None, help="DataLoader worker processes")
    p.add_argument(
        "--fold-parallel", action="store_true", default=None,
        help="under torchrun: train one fold per process instead of each fold data-parallel",
    )  # fmt: skip
    _run_dir_args(p, "train a non-empty RUN from scratch")
    p.set_defaults(func=_run_cv_train)


def _run_cv_train(args) -> int:
    from g2res.train.cv import cv_train

    cfg = _recipe_with(args, {
        "cache": args.cache,
        "cv.folds": args.folds,
        "cv.fold": args.fold,
        "cv.folds_file": args.folds_from,
        "train.epochs": args.epochs,
        "train.batch_size": args.batch_size,
        "train.init_from": args.init_from,
        "train.num_workers": args.workers,
        "cv.fold_parallel": args.fold_parallel,
    })  # fmt: skip
    cv_train(cfg, args.out, resume=args.resume, force=args.force, progress=not args.quiet)
    return 0


# ---------------------------------------------------------------------------- scan
def _add_scan(sub) -> None:
    from g2res.scan.scan import ScanSettings

    d = ScanSettings()
    p = sub.add_parser(
        "scan",
        formatter_class=_Formatter,
        help="slide 2-s windows over long strain files and score them with trained runs",
        description=(
            "Read long H1/L1/V1 strain (GWOSC HDF5, GWF or HDF5 via gwpy, or .npy with\n"
            "--sample-rate), resample to 2048 Hz when needed, and score 2-s windows every\n"
            "--stride s with the fold ensembles of the RUNs. Each raw window is tapered,\n"
            "whitened and bandpassed like the runs' cache samples, with a PSD estimated by\n"
            "Welch from the --psd-length s of data around it. Windows are clustered into\n"
            "triggers. NaN stretches and gaps are never scored; they are listed in the\n"
            "report. Writes OUT (triggers, loudest first: gps_time, score, window_start,\n"
            "window_end, n_windows[, far_per_year]), OUT_windows.csv (every window's\n"
            "score), OUT_report.json (segments, skipped stretches, windows, seconds) and\n"
            "OUT.png (score vs time).\n\n"
            "example:\n"
            "  g2res scan --h1 H-H1.hdf5 --l1 L-L1.hdf5 --v1 V-V1.hdf5 --runs runs/a \\\n"
            "      --stride 0.25 --timeslides 20 --out triggers.csv"
        ),
    )
    p.add_argument("--h1", required=True, metavar="FILE", help="H1 strain file")
    p.add_argument("--l1", required=True, metavar="FILE", help="L1 strain file")
    p.add_argument("--v1", required=True, metavar="FILE", help="V1 strain file")
    p.add_argument(
        "--runs", nargs="+", required=True, metavar="RUN",
        help="run directories of g2res cv-train; scores are averaged over folds, then runs",
    )  # fmt: skip
    p.add_argument("--out", default="triggers.csv", help="triggers CSV to write")
    p.add_argument(
        "--channel", nargs="+", default=None, metavar="NAME",
        help="channel name(s) in GWF/HDF5 files: one for all detectors (e.g. {ifo}:GWOSC-"
        "4KHZ_R1_STRAIN, {ifo} becomes H1/L1/V1) or three (H1 L1 V1); default: the "
        "file's only series or the GWOSC strain/Strain dataset",
    )  # fmt: skip
    p.add_argument(
        "--sample-rate", type=float, default=None, metavar="HZ",
        help="sample rate of .npy strain files (required for .npy)",
    )  # fmt: skip
    p.add_argument(
        "--gps-start", type=float, default=None, metavar="S",
        help="GPS time of the first sample of .npy strain files (default 0)",
    )  # fmt: skip
    p.add_argument("--stride", type=float, default=d.stride, metavar="S", help="s between windows")
    p.add_argument(
        "--psd-length", type=float, default=d.psd_length, metavar="S",
        help="s of data per Welch PSD estimate (valid segments are split into blocks of "
        "about this length; shorter segments use their whole length)",
    )  # fmt: skip
    p.add_argument(
        "--cluster-window", type=float, default=d.cluster_window, metavar="S",
        help="windows starting within this many s of a louder one join its trigger",
    )  # fmt: skip
    p.add_argument(
        "--merger-offset", type=float, default=d.merger_offset, metavar="S",
        help="earliest merger position (s into the window) the models fire for: a "
        "trigger's gps_time is the start of its last firing window (the falling edge) + this",
    )  # fmt: skip
    p.add_argument(
        "--timeslides", type=int, default=0, metavar="K",
        help="background from K time slides (L1 by k*step, V1 by 2k*step); adds far_per_year",
    )  # fmt: skip
    p.add_argument(
        "--slide-step", type=float, default=7.0, metavar="S",
        help="s per time-slide step (far above the 27-ms light travel time)",
    )  # fmt: skip
    p.add_argument(
        "--tta", nargs="*", default=[], metavar="NAME",
        help="test-time augmentations averaged with the identity: swap_h1l1, sign_flip, "
        "permute_detectors (all six detector orders)",
    )  # fmt: skip
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="windows per scoring batch")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--force", action="store_true", help="overwrite existing output files")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_run_scan)


def _run_scan(args) -> int:
    from g2res.scan.scan import ScanSettings
    from g2res.scan.search import scan_files

    dets = ("H1", "L1", "V1")
    channels = None
    if args.channel:
        if len(args.channel) not in (1, 3):
            raise ValueError(f"--channel takes 1 or 3 names, got {len(args.channel)}")
        names = args.channel * 3 if len(args.channel) == 1 else args.channel
        channels = {d: n.replace("{ifo}", d) for d, n in zip(dets, names)}
    settings = ScanSettings(
        stride=args.stride,
        psd_length=args.psd_length,
        cluster_window=args.cluster_window,
        merger_offset=args.merger_offset,
        batch_size=args.batch_size,
    )
    report = scan_files(
        {"H1": args.h1, "L1": args.l1, "V1": args.v1},
        args.runs,
        args.out,
        settings,
        channels=channels,
        sample_rate=args.sample_rate,
        gps_start=args.gps_start,
        tta=args.tta,
        device=args.device,
        timeslides=args.timeslides,
        slide_step=args.slide_step,
        force=args.force,
        progress=not args.quiet,
    )
    print(
        f"g2res scan: {report['windows_scored']} windows over {report['live_time']:.1f} s of "
        f"strain ({report['skipped_duration']:.1f} s skipped) -> {report['triggers']} "
        f"triggers in {args.out}"
    )
    return 0


# ---------------------------------------------------------------------------- pseudo-label
def _add_pseudo_label(sub) -> None:
    p = sub.add_parser(
        "pseudo-label",
        formatter_class=_Formatter,
        help="a new cache whose training split adds test samples labelled by trained runs",
        description=(
            "Label the test split of CACHE with the fold models of RUN(s) (one shared split)\n"
            "and write a new cache OUT: training rows = the original ones, then the test\n"
            "samples whose ensemble mean is <= --threshold-low or >= --threshold-high.\n"
            "OUT/folds.csv keeps the runs' split (pseudo rows: fold -1, training only);\n"
            "OUT/train_pseudo.npy gives fold k's targets from fold k's models alone, so no\n"
            "fold's validation data leaks into its training. Then train on it:\n"
            "  g2res pseudo-label runs/a runs/b --cache cache --out cache-pl --soft\n"
            "  g2res cv-train --config R.yaml --cache cache-pl --out runs/a-pl"
        ),
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories of g2res cv-train")
    p.add_argument("--cache", required=True, help="cache the runs were trained on")
    p.add_argument("--out", required=True, metavar="CACHE2", help="new cache directory")
    p.add_argument("--soft", action="store_true", help="probabilities as targets, not 0/1")
    p.add_argument(
        "--threshold-low", type=float, default=None, metavar="P",
        help="keep test samples with ensemble mean <= P (default 0.1; --soft: keep all)",
    )  # fmt: skip
    p.add_argument(
        "--threshold-high", type=float, default=None, metavar="P",
        help="keep test samples with ensemble mean >= P (default 0.9; --soft: keep all)",
    )  # fmt: skip
    p.add_argument(
        "--tta", nargs="*", default=[], metavar="NAME",
        help="test-time augmentations averaged with the identity: swap_h1l1, sign_flip, "
        "permute_detectors (all six detector orders)",
    )  # fmt: skip
    p.add_argument("--batch-size", type=int, default=256, help="samples per batch")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_run_pseudo_label)


def _run_pseudo_label(args) -> int:
    from g2res.train.pseudo import pseudo_label

    pseudo_label(
        args.runs,
        args.cache,
        args.out,
        soft=args.soft,
        threshold_low=args.threshold_low,
        threshold_high=args.threshold_high,
        tta=args.tta,
        batch_size=args.batch_size,
        device=args.device,
        force=args.force,
        progress=not args.quiet,
    )
    return 0


# ---------------------------------------------------------------------------- study
def _add_study(sub) -> None:
    p = sub.add_parser(
        "study",
        formatter_class=_Formatter,
        help="controlled studies: several trainings of one recipe differing in one switch",
        description="Controlled studies on a preprocessed cache. Run `g2res study STUDY --help`.",
    )
    studies = p.add_subparsers(dest="study", metavar="STUDY")
    q = studies.add_parser(
        "residual-vs-plain",
        formatter_class=_Formatter,
        help="train each depth with and without skip connections",
        description=(
            "Train each depth with skip connections and as its plain twin (the same\n"
            "blocks and widths, no skip path, no projection shortcuts; model.backbone\n"
            "residual: false), on the same fold of one stratified split, with the same\n"
            "batches and the same seed. Records the mean gradient norm of every weight\n"
            "layer per epoch, and writes per variant the fold run files (OUT/<variant>/),\n"
            "OUT/summary.json (parameters, best validation AUC, losses, epoch times,\n"
            "gradient norms by layer and epoch, first/last-layer gradient-norm ratio),\n"
            "OUT/plots/grad_norms.png and OUT/plots/curves.png. --resume skips the\n"
            "finished variants and continues an interrupted one.\n\n"
            "The recipe's backbone settings other than the name (base_width, pool, ...)\n"
            "apply to every variant; --kind 2d needs a cqt/stft front-end, 1d identity.\n\n"
            "example:\n"
            "  g2res study residual-vs-plain --config pipelines/residual-vs-plain.yaml \\\n"
            "      --cache cache --depths 18 34 50 --out studies/rvp train.epochs=6"
        ),
    )
    _recipe_args(q)
    q.add_argument("--out", required=True, metavar="DIR", help="study directory to write")
    q.add_argument("--cache", default=None, help="cache directory (recipe: cache)")
    q.add_argument(
        "--depths", type=int, nargs="+", default=[18, 34, 50], metavar="D",
        help="ResNet depths: resnet<D> (2d) or resnet1d_<D> (1d)",
    )  # fmt: skip
    q.add_argument(
        "--kind", choices=("2d", "1d"), default="2d",
        help="2D ResNets on images (cqt/stft front-end) or 1D ResNets on strain",
    )  # fmt: skip
    q.add_argument("--epochs", type=int, default=None, help="epochs per variant (train.epochs)")
    q.add_argument("--folds", type=int, default=None, help="folds of the split (cv.folds)")
    q.add_argument(
        "--fold", type=int, default=None, metavar="K",
        help="validation fold, the others train (default: recipe's cv.fold[0], else 0)",
    )  # fmt: skip
    _run_dir_args(q, "run the study again from scratch in a non-empty DIR")
    q.set_defaults(func=_run_study)
    p.set_defaults(func=lambda _args: p.print_help() or 2)


def _run_study(args) -> int:
    from g2res.studies import residual_vs_plain

    cfg = _recipe_with(
        args, {"cache": args.cache, "train.epochs": args.epochs, "cv.folds": args.folds}
    )
    residual_vs_plain(cfg, args.depths, args.out, kind=args.kind, fold=args.fold,
                      resume=args.resume, force=args.force, progress=not args.quiet)  # fmt: skip
    return 0


# ---------------------------------------------------------------------------- main
COMMANDS = [_add_simulate, _add_preprocess, _add_cv_train, _add_submit, _add_evaluate, _add_run]
COMMANDS.append(_add_waveforms)
COMMANDS.append(_add_pretrain)
COMMANDS.append(_add_baseline)
COMMANDS.append(_add_scan)
COMMANDS.append(_add_pseudo_label)
COMMANDS.append(_add_study)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="g2res",
        formatter_class=_Formatter,
        description=(
            "g2res: find gravitational-wave signals in H1/L1/V1 strain with deep residual "
            "networks.\n\nPipeline: simulate -> preprocess -> cv-train -> submit. "
            "Run `g2res COMMAND --help` for each step."
        ),
    )
    parser.add_argument("--version", action="version", version=f"g2res {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # KEY=VALUE overrides may come after options too (`g2res run R.yaml --out W k=v`).
    args, extra = parser.parse_known_args(argv)
    if extra:
        if hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides = [*(args.overrides or []), *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(
            f"\ng2res {args.command}: interrupted; run the same command again to resume",
            file=sys.stderr,
        )
        return 130
    except (ConfigError, FileExistsError, FileNotFoundError, ValueError, RuntimeError) as exc:
        if os.environ.get("G2RES_DEBUG"):
            raise
        print(f"g2res {args.command}: error: {exc}", file=sys.stderr)
        return 1


def load_recipe(args) -> Config:
    """The recipe named by ``--config`` with the command line's overrides applied."""
    return load_config(getattr(args, "config", None), getattr(args, "overrides", None))


if __name__ == "__main__":
    sys.exit(main())
