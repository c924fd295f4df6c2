"""``g2res runs``: one table of every training run found under some folders."""

from __future__ import annotations

import sys

from g2res.cli._common import Formatter


def add_parser(sub) -> None:
    p = sub.add_parser(
        "runs",
        formatter_class=Formatter,
        help="a table of every run under some folders (scores, state)",
        description=(
            "List every run found at or below DIR (a folder with config.yaml and fold<k>/\n"
            "folders, or a metrics.json): recipe, model, parameters, folds, per-fold AUC\n"
            "mean and spread, pooled out-of-fold AUC, out-of-fold efficiency at a\n"
            "false-alarm probability of 1e-2, epochs, wall time, date and state\n"
            "(complete; resumable: continue it with --resume; broken, with the reason).\n\n"
            "example:\n"
            "  g2res runs runs --sort oof_auc --markdown"
        ),
    )
    p.add_argument("dirs", nargs="+", metavar="DIR", help="folders to search for runs")
    p.add_argument(
        "--sort",
        default=None,
        metavar="COLUMN",
        help="sort by this column (scores auc_mean, oof_auc, eff_fap_1e-2: highest first;\n"
        "others ascending), e.g. oof_auc",
    )
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--csv", action="store_true", help="print CSV (raw values)")
    fmt.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p.set_defaults(func=run)


def run(args) -> int:
    from g2res.ensemble.runs import format_table, runs_table, sort_runs

    table = runs_table(args.dirs)
    if args.sort:
        table = sort_runs(table, args.sort)
    style = "csv" if args.csv else "markdown" if args.markdown else "text"
    sys.stdout.write(format_table(table, style))
    if not len(table) and style == "text":
        print(f"no runs under {' '.join(args.dirs)}", file=sys.stderr)
    return 0
