"""``g2res waveforms``: make a pool of BBH waveforms for on-the-fly injection."""

from __future__ import annotations

from g2res.cli._common import Formatter, common_args


def add_parser(sub) -> None:
    from g2res.data.pool import PoolConfig
    from g2res.data.waveforms import MASS_PRIORS

    d = PoolConfig()
    p = sub.add_parser(
        "waveforms",
        formatter_class=Formatter,
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
    p.add_argument(
        "--approximant",
        nargs="+",
        default=[d.approximant],
        metavar="NAME",
        help="lalsimulation time-domain approximant(s). Several (e.g. IMRPhenomXPHM\n"
        "IMRPhenomD SEOBNRv4_opt) make a mixed pool: each source uses one of them, drawn\n"
        "from --seed with --approximant-weights, with in-plane spins only for the\n"
        "precessing ones; params.csv then has an approximant column. Training on a mix\n"
        "leans on no single waveform model",
    )
    p.add_argument(
        "--approximant-weights",
        nargs="+",
        type=float,
        default=None,
        metavar="W",
        help="relative share of each --approximant, one positive number each; None: equal shares",
    )
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
    common_args(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from g2res.data.pool import PoolConfig, make_pool

    cfg = PoolConfig(
        n=args.n,
        approximant=args.approximant[0] if len(args.approximant) == 1 else tuple(args.approximant),
        approximant_weights=None
        if args.approximant_weights is None
        else tuple(args.approximant_weights),
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
