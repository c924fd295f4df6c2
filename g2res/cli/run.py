"""``g2res run``: the whole pipeline from one recipe: simulate ... evaluate."""

from __future__ import annotations

from g2res.cli._common import Formatter, load_recipe


def add_parser(sub) -> None:
    p = sub.add_parser(
        "run",
        formatter_class=Formatter,
        help="the whole pipeline from one recipe: simulate ... evaluate",
        description=(
            "Run simulate -> preprocess -> cv-train -> submit -> evaluate from one recipe\n"
            "in WORKDIR (data/, cache/, runs/NAME/, submission.csv, evaluation.json).\n"
            "Complete steps are skipped and interrupted ones resume: run the same command\n"
            "again to continue. A recipe with data_dir (or cache) set uses that data\n"
            "instead of simulating (or preprocessing)."
        ),
    )
    p.add_argument("recipe", metavar="RECIPE", help="recipe YAML, e.g. pipelines/quickstart.yaml")
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="override any recipe field, e.g. train.epochs=2 simulate.n_train=500",
    )
    p.add_argument("--out", required=True, metavar="WORKDIR", help="work directory")
    p.add_argument("--seed", type=int, default=None, help="seed for every random choice")
    p.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N (default: recipe)")
    p.add_argument("--force", action="store_true", help="start every step over")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args) -> int:
    from g2res.pipeline import run_pipeline

    cfg = load_recipe(args)
    if args.seed is not None:
        cfg = cfg.replace({"seed": args.seed})
    if args.device is not None:
        cfg = cfg.replace({"device": args.device})
    run_pipeline(cfg, args.out, force=args.force, progress=not args.quiet)
    return 0
