"""``g2res study``: controlled studies: several trainings of one recipe differing in one switch."""

from __future__ import annotations

from g2res.cli._common import Formatter, recipe_args, recipe_with, run_dir_args


def add_parser(sub) -> None:
    p = sub.add_parser(
        "study",
        formatter_class=Formatter,
        help="controlled studies: several trainings of one recipe differing in one switch",
        description="Controlled studies on a preprocessed cache. Run `g2res study STUDY --help`.",
    )
    studies = p.add_subparsers(dest="study", metavar="STUDY")
    q = studies.add_parser(
        "residual-vs-plain",
        formatter_class=Formatter,
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
    recipe_args(q)
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
    run_dir_args(q, "run the study again from scratch in a non-empty DIR")
    q.set_defaults(func=run)
    p.set_defaults(func=lambda _args: p.print_help() or 2)


def run(args) -> int:
    from g2res.studies import residual_vs_plain

    cfg = recipe_with(
        args, {"cache": args.cache, "train.epochs": args.epochs, "cv.folds": args.folds}
    )
    residual_vs_plain(cfg, args.depths, args.out, kind=args.kind, fold=args.fold,
                      resume=args.resume, force=args.force, progress=not args.quiet)  # fmt: skip
    return 0
