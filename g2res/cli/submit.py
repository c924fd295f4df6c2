"""``g2res submit``: ensemble trained runs into a validated submission.csv."""

from __future__ import annotations

from g2res.cli._common import Formatter
from g2res.config import SubmitConfig


def add_parser(sub) -> None:
    d = SubmitConfig()
    p = sub.add_parser(
        "submit",
        formatter_class=Formatter,
        help="ensemble trained runs into a validated submission.csv",
        description=(
            "Predict the test split of a cache with every fold model of every RUN (each\n"
            "averaged over the identity and the --tta transforms), average the folds of a\n"
            "run, blend the runs, check the result against sample_submission.csv (same ids,\n"
            "same order, finite probabilities in [0, 1]) and write it atomically.\n"
            "With OOF predictions (oof.csv) in every run, the OOF AUC of each run and of\n"
            "the blend is reported. --stack replaces the blend by a stacker fitted on the\n"
            "runs' OOF predictions (and --stat-train/--stat-test statistics), cross-validated\n"
            "over the runs' folds and saved as OUT's .stack.json companion.\n"
            "Each RUN's test probabilities are kept in RUN/predictions/ and reused by the\n"
            "next submit of the same data, checkpoints and TTA (--no-prediction-cache: not)."
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
        "permute_detectors (all six detector orders), for every RUN; default: each RUN's "
        "own recipe (submit.tta); --tta alone: none",
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
    w.add_argument(
        "--stack",
        nargs="?",
        const="logistic",
        choices=["logistic", "hgb"],
        metavar="STACKER",
        help="stack the runs instead of blending: logistic regression on logits (--stack) "
        "or a gradient-boosted tree model (--stack hgb), fitted on the runs' oof.csv",
    )
    for split in ("train", "test"):
        p.add_argument(
            f"--stat-{split}",
            action="append",
            default=None,
            metavar="NAME=CSV",
            help=f"with --stack: scores of a statistic on the {split} split (id and snr, score "
            "or target; e.g. a matched filter's .raw.csv); repeatable, once per NAME and split",
        )
    p.add_argument(
        "--no-stack-fold-scale",
        action="store_true",
        help="with --stack: feed each run's raw logits; by default they are standardised per "
        "fold model by the median and IQR of that fold's OOF logits (folds calibrated "
        "apart no longer blur the run's OOF ranking)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the hgb stacker")
    p.add_argument(
        "--fill-missing",
        type=float,
        default=None,
        metavar="VALUE",
        help="probability written for sample ids absent from the cache (e.g. files dropped "
        "by preprocess --skip-bad); without it such ids are an error",
    )
    p.add_argument(
        "--no-prediction-cache",
        action="store_true",
        help="predict every RUN again and keep nothing; by default each RUN's test "
        "probabilities are kept in RUN/predictions/ and reused by the next submit of the "
        "same data, checkpoints, TTA and device",
    )
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="samples per batch")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--json", metavar="FILE", default=None, help="also write the summary as JSON")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args) -> int:
    from g2res.ensemble.stack import parse_named_files
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
        stack=args.stack,
        stat_train=parse_named_files(args.stat_train, "--stat-train"),
        stat_test=parse_named_files(args.stat_test, "--stat-test"),
        stack_fold_scale=not args.no_stack_fold_scale,
        seed=args.seed,
        batch_size=args.batch_size,
        device=args.device,
        force=args.force,
        progress=not args.quiet,
        cache_predictions=not args.no_prediction_cache,
    )
    if args.json:
        write_json(args.json, summary)
    return 0
