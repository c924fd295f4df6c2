"""``g2res pseudo-label``: a new cache whose training split adds test samples labelled
by trained runs."""

from __future__ import annotations

from g2res.cli._common import Formatter


def add_parser(sub) -> None:
    p = sub.add_parser(
        "pseudo-label",
        formatter_class=Formatter,
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
    p.set_defaults(func=run)


def run(args) -> int:
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
