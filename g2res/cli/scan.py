"""``g2res scan``: slide 2-s windows over long strain files and score them with trained runs."""

from __future__ import annotations

from g2res.cli._common import Formatter


def add_parser(sub) -> None:
    from g2res.scan.scan import ScanSettings

    d = ScanSettings()
    p = sub.add_parser(
        "scan",
        formatter_class=Formatter,
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
            "OUT.png (score vs time). A detector without data is left out only when\n"
            "--detectors says so; the models then get zeros for its whitened channel.\n\n"
            "example:\n"
            "  g2res scan --h1 H-H1.hdf5 --l1 L-L1.hdf5 --v1 V-V1.hdf5 --runs runs/a \\\n"
            "      --stride 0.25 --timeslides 20 --out triggers.csv"
        ),
    )
    p.add_argument("--h1", metavar="FILE", help="H1 strain file")
    p.add_argument("--l1", metavar="FILE", help="L1 strain file")
    p.add_argument("--v1", metavar="FILE", help="V1 strain file")
    p.add_argument(
        "--detectors", nargs="+", default=["H1", "L1", "V1"], choices=["H1", "L1", "V1"],
        metavar="IFO",
        help="detectors to scan, each needing its file; an absent one (e.g. --detectors H1 "
        "L1 without V1 data) is given to the models as a zero whitened channel: no data",
    )  # fmt: skip
    p.add_argument(
        "--runs", nargs="+", required=True, metavar="RUN",
        help="run directories of g2res cv-train; scores are averaged over folds, then runs",
    )  # fmt: skip
    p.add_argument("--out", default="triggers.csv", help="triggers CSV to write")
    p.add_argument(
        "--channel", nargs="+", default=None, metavar="NAME",
        help="channel name(s) in GWF/HDF5 files: one for all detectors (e.g. {ifo}:GWOSC-"
        "4KHZ_R1_STRAIN, {ifo} becomes H1/L1/V1), three (H1 L1 V1) or one per --detectors; "
        "default: the file's only series or the GWOSC strain/Strain dataset",
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
        "--psd-segment", type=float, default=None, metavar="S",
        help="Welch segment (s) of the PSD estimate; default: the runs' cache's (0.5 s "
        "resolves lines to 2 Hz only; 2, the window length, whitens narrow lines away)",
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
    p.set_defaults(func=run)


def run(args) -> int:
    from g2res.scan.scan import ScanSettings
    from g2res.scan.search import scan_files

    dets = ("H1", "L1", "V1")
    channels = None
    if args.channel:
        if len(args.channel) not in (1, 3, len(args.detectors)):
            raise ValueError(
                f"--channel takes 1, 3 or one name per --detectors, got {len(args.channel)}"
            )
        names = args.channel * 3 if len(args.channel) == 1 else args.channel
        dets = dets if len(names) == 3 else args.detectors  # one name per --detectors
        channels = {d: n.replace("{ifo}", d) for d, n in zip(dets, names)}
    settings = ScanSettings(
        stride=args.stride,
        psd_length=args.psd_length,
        cluster_window=args.cluster_window,
        merger_offset=args.merger_offset,
        batch_size=args.batch_size,
        psd_segment=args.psd_segment,
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
        detectors=args.detectors,
    )
    print(
        f"g2res scan: {report['windows_scored']} windows over {report['live_time']:.1f} s of "
        f"strain ({report['skipped_duration']:.1f} s skipped) -> {report['triggers']} "
        f"triggers in {args.out}"
    )
    return 0
