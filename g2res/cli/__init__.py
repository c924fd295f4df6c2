"""The ``g2res`` command line: parses arguments, then calls library functions.

One module per command (``g2res/cli/simulate.py``, ``cv_train.py``, ...), each with an
``add_parser(sub)`` that declares the command's options and a ``run(args)`` that hands
them to the library; no logic lives here. Shared options are in ``_common.py``.
A new command: write its module and append its ``add_parser`` to ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import os
import sys

from g2res import __version__
from g2res.cli import (
    baseline,
    cv_train,
    evaluate,
    preprocess,
    pretrain,
    pseudo_label,
    run,
    runs,
    scan,
    simulate,
    study,
    submit,
    waveforms,
)
from g2res.cli._common import (
    DEFAULTS,
    Formatter,
    common_args,
    load_recipe,
    recipe_args,
    recipe_with,
    run_dir_args,
)
from g2res.config import ConfigError

# the names these helpers had in the single-module CLI
_Formatter, _common_args, _recipe_args = Formatter, common_args, recipe_args
_recipe_with, _run_dir_args = recipe_with, run_dir_args

# In the order `g2res --help` lists them.
COMMANDS = [
    simulate.add_parser,
    preprocess.add_parser,
    cv_train.add_parser,
    submit.add_parser,
    evaluate.add_parser,
    run.add_parser,
    waveforms.add_parser,
    pretrain.add_parser,
    baseline.add_parser,
    scan.add_parser,
    pseudo_label.add_parser,
    study.add_parser,
    runs.add_parser,
]

__all__ = ["COMMANDS", "DEFAULTS", "build_parser", "load_recipe", "main", "parse_args"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="g2res",
        formatter_class=Formatter,
        description=(
            "g2res: find gravitational-wave signals in H1/L1/V1 strain with deep residual "
            "networks.\n\nPipeline: simulate -> preprocess -> cv-train -> submit. "
            "Run `g2res COMMAND --help` for each step."
        ),
    )
    parser.add_argument("--version", action="version", version=f"g2res {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line parsed as `main` does (nothing is run; bad input exits 2)."""
    parser = build_parser()
    # KEY=VALUE overrides may come after options too (`g2res run R.yaml --out W k=v`).
    args, extra = parser.parse_known_args(argv)
    if extra:
        if hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides = [*(args.overrides or []), *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not getattr(args, "func", None):
        build_parser().print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(
            f"\ng2res {args.command}: interrupted; run the same command again to resume",
            file=sys.stderr,
        )
        return 130
    except (ConfigError, FileExistsError, FileNotFoundError, ValueError, RuntimeError) as exc:
        if os.environ.get("G2RES_DEBUG"):
            raise
        print(f"g2res {args.command}: error: {exc}", file=sys.stderr)
        return 1
