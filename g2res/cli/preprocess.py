"""``g2res preprocess``: validate, whiten and bandpass a data set into a cache."""

from __future__ import annotations

from g2res.cli._common import Formatter, common_args
from g2res.config import PreprocessConfig


def add_parser(sub) -> None:
    d = PreprocessConfig()
    p = sub.add_parser(
        "preprocess",
        formatter_class=Formatter,
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
    common_args(p)
    p.set_defaults(func=run)


def run(args) -> int:
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
