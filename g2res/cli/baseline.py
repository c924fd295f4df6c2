"""``g2res baseline``: classical baselines (matched filter)."""

from __future__ import annotations

from g2res.cli._common import Formatter, common_args


def add_parser(sub) -> None:
    p = sub.add_parser(
        "baseline",
        formatter_class=Formatter,
        help="classical baselines (matched filter)",
        description="Classical detectors scored like any model.",
    )
    bsub = p.add_subparsers(dest="baseline", metavar="BASELINE", required=True)
    m = bsub.add_parser(
        "matched-filter",
        formatter_class=Formatter,
        help="matched filter with a template bank (or the injected waveform: --oracle)",
        description=(
            "Whitened FFT matched filter per detector (phase-maximised complex SNR), a\n"
            "network statistic from H1 peaks and L1/V1 maxima within the light travel\n"
            "times, maximised over lags and templates. Writes OUT (id,target: the rank of\n"
            "the network SNR in (0, 1)) and OUT's .raw.csv companion (raw SNRs, times,\n"
            "best templates). The bank is placed stochastically for the PSD given.\n"
            "--chisq adds the Allen chi-squared veto (p bins of equal template power, as\n"
            "PyCBC): each detector's SNR at the peak is re-weighted to PyCBC's newSNR and\n"
            "OUT ranks the network re-weighted SNR sqrt(sum_det newSNR^2).\n"
            "--gate S autogates the whitened data first (as PyCBC's autogating and the\n"
            "model's model.gate): excursions beyond S robust sigmas are zeroed over\n"
            "+/- --gate-window s with Hann tapers of --gate-taper s.\n"
            "--psd-var divides each sample's own PSD variation out of its whitened data\n"
            "(before the gate): a scale and a spectral tilt per detector fitted to the\n"
            "sample's median Welch PSD over --psd's, as PyCBC's PSD-variation statistic, so\n"
            "a detector noisier than the average PSD no longer raises its SNRs.\n"
            "--coherent K searches the K best templates of each sample again coherently:\n"
            "the three complex SNRs projected on the signal plane of each direction of a\n"
            "sky grid (lal's antenna patterns and delays), maximised over sky and time;\n"
            "OUT then ranks the coherent SNR (chi-squared with 4 degrees of freedom in\n"
            "noise, not 6), and .raw.csv adds coh_snr, null_snr, coh_template, coh_time.\n"
            "--marginal ranks the bank-marginalised log likelihood ratio instead of the best\n"
            "template: log of the mean over templates of exp(rho^2 / 2), rho^2 each template's\n"
            "network statistic (newSNR^2 with --chisq). It adds up every template a signal\n"
            "matches; .raw.csv always has it as the marginal column.\n"
            "--time-window START END is a prior on the merger time: the network statistic\n"
            "peaks only at H1 lags (merger times, s) within it, so noise no longer gets the\n"
            "loudest of every lag (the oracle: lags that keep its template's merger inside).\n"
            "--time-window-from estimates it from the bank's .raw.csv of the train split\n"
            "(this command with --split train, no window) and DATA_DIR's training labels:\n"
            "the peak times of the training signals louder than 99% of the training noise\n"
            "(their central 98%, widened by 0.03 s either side)."
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
    m.add_argument(
        "--chisq", action="store_true",
        help="rank by the re-weighted SNR of the chi-squared veto (adds newsnr, chisq_r_<det>, "
        "newsnr_<det> to the .raw.csv)",
    )  # fmt: skip
    m.add_argument(
        "--chisq-bins", type=int, default=16, metavar="P",
        help="frequency bins of the veto (2P-2 degrees of freedom)",
    )  # fmt: skip
    m.add_argument(
        "--gate", type=float, default=None, metavar="THRESHOLD",
        help="autogate the whitened data at THRESHOLD robust sigmas (7 is g2res's default; "
        "adds gated_<det> to the .raw.csv)",
    )  # fmt: skip
    m.add_argument(
        "--gate-window", type=float, default=0.1, metavar="S", help="s, half-width of a gate"
    )
    m.add_argument("--gate-taper", type=float, default=0.05, metavar="S", help="s, gate tapers")
    m.add_argument(
        "--psd-var", action="store_true",
        help="correct each sample for its own PSD variation (scale and tilt per detector; "
        "adds psd_var_<det>, its noise power over --psd's, to the .raw.csv)",
    )  # fmt: skip
    m.add_argument(
        "--coherent", type=int, default=0, metavar="K",
        help="rank by the coherent SNR of each sample's K best templates (0: off; not with "
        "--chisq or --oracle)",
    )  # fmt: skip
    m.add_argument(
        "--marginal", action="store_true",
        help="rank by the bank-marginalised log likelihood ratio (the .raw.csv marginal "
        "column) instead of the best template's statistic (not with --coherent or --oracle)",
    )  # fmt: skip
    m.add_argument(
        "--time-window", type=float, nargs=2, default=None, metavar=("START", "END"),
        help="s: the bank's statistic peaks only at H1 merger times within START-END "
        "(none: every lag; with --oracle, each injected template's own merger time)",
    )  # fmt: skip
    m.add_argument(
        "--time-window-from", default=None, metavar="RAW_CSV",
        help="estimate --time-window from the train split's .raw.csv and DATA_DIR's "
        "training_labels.csv",
    )  # fmt: skip
    m.add_argument("--batch-size", type=int, default=8, help="samples per batch")
    m.add_argument("--template-batch", type=int, default=64, help="templates per batch")
    m.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    m.add_argument("--force", action="store_true", help="overwrite OUT")
    common_args(m)
    m.set_defaults(func=run)


def run(args) -> int:
    from g2res.baselines.matched_filter import matched_filter
    from g2res.baselines.time_window import data_time_window

    window = args.time_window
    if args.time_window_from is not None:
        if window is not None:
            raise ValueError("--time-window and --time-window-from: give one of them")
        window = data_time_window(args.time_window_from, args.data_dir)
        print(f"merger-time window from {args.time_window_from}: "
              f"{window[0]:.3f}-{window[1]:.3f} s")  # fmt: skip
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
        chisq_bins=args.chisq_bins if args.chisq else 0,
        gate=args.gate,
        gate_window=args.gate_window,
        gate_taper=args.gate_taper,
        coherent=args.coherent,
        marginal=args.marginal,
        psd_var=args.psd_var,
        time_window=None if window is None else tuple(window),
    )
    return 0
