"""``g2res simulate``: write a simulated data set in the G2Net layout."""

from __future__ import annotations

from g2res.cli._common import Formatter, common_args
from g2res.config import SimulateConfig


def add_parser(sub) -> None:
    d = SimulateConfig()
    p = sub.add_parser(
        "simulate",
        formatter_class=Formatter,
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
        "--test-signal-fraction",
        type=float,
        default=d.test_signal_fraction,
        metavar="F",
        help="fraction of the test split holding a signal (None: as --signal-fraction); a\n"
        "mostly-noise test split resolves low false-alarm probabilities (evaluate --fap)",
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
    common_args(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from g2res.data.simulate import simulate

    simulate(
        args.out_dir,
        config=SimulateConfig(
            n_train=args.n_train,
            n_test=args.n_test,
            snr=tuple(args.snr),
            signal_fraction=args.signal_fraction,
            test_signal_fraction=args.test_signal_fraction,
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
