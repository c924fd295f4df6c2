"""``g2res cv-train``: K-fold training of one recipe on a preprocessed cache."""

from __future__ import annotations

from g2res.cli._common import Formatter, recipe_args, recipe_with, run_dir_args


def add_parser(sub) -> None:
    p = sub.add_parser(
        "cv-train",
        formatter_class=Formatter,
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
    recipe_args(p)
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
    run_dir_args(p, "train a non-empty RUN from scratch")
    p.set_defaults(func=run)


def run(args) -> int:
    from g2res.train.cv import cv_train

    cfg = recipe_with(args, {
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
