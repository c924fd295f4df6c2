"""``g2res evaluate``: score a submission against known test labels."""

from __future__ import annotations

from g2res.cli._common import Formatter


def add_parser(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        formatter_class=Formatter,
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
    p.set_defaults(func=run)


def run(args) -> int:
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
