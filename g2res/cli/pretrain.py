"""``g2res pretrain``: train a recipe's model on signals injected on the fly."""

from __future__ import annotations

from g2res.cli._common import Formatter, recipe_args, recipe_with, run_dir_args


def add_parser(sub) -> None:
    p = sub.add_parser(
        "pretrain",
        formatter_class=Formatter,
        help="train a recipe's model on signals injected on the fly",
        description=(
            "Pretrain the recipe's model for injection.steps steps on batches built on the\n"
            "device: signals from the waveform pool (injection.pool, `g2res waveforms`)\n"
            "projected with random sky position and polarisation, conditioned like the\n"
            "cache and scaled to a network SNR, added to the cache's label-0 noise (each\n"
            "detector from a different sample) or to Gaussian noise of the cache's PSD.\n"
            "Then fine-tune from it: train.init_from=RUN/best.pt (or injection.mode=off here)."
        ),
    )
    recipe_args(p)
    p.add_argument("--out", required=True, metavar="RUN", help="run directory to write")
    p.add_argument("--cache", default=None, help="cache directory (recipe: cache)")
    p.add_argument("--pool", default=None, help="waveform pool (recipe: injection.pool)")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps (injection.steps)")
    p.add_argument("--batch-size", type=int, default=None, help="samples per step")
    run_dir_args(p, "overwrite a non-empty RUN")
    p.set_defaults(func=run)


def run(args) -> int:
    from g2res.train.pretrain import pretrain

    cfg = recipe_with(args, {
        "cache": args.cache,
        "injection.pool": args.pool,
        "injection.steps": args.steps,
        "train.batch_size": args.batch_size,
    })  # fmt: skip
    metrics = pretrain(cfg, args.out, resume=args.resume, force=args.force, progress=not args.quiet)
    if not args.quiet:
        print(
            f"g2res pretrain: {metrics['steps']} steps, best held-out AUC "
            f"{metrics['best_val_auc']}, injection {100 * metrics['injection_share']:.0f}% of "
            f"the time -> {args.out}"
        )
    return 0
