"""What the commands of ``g2res`` share: the help formatter, the recipe options
(``--config`` and ``KEY=VALUE`` overrides), the run-directory options and ``--seed``/``-q``."""

from __future__ import annotations

import argparse

from g2res.config import Config, load_config

DEFAULTS = Config()


class Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Show defaults and keep the layout of descriptions."""


def recipe_args(p: argparse.ArgumentParser) -> None:
    """Options shared by every command that reads a recipe."""
    p.add_argument(
        "--config",
        metavar="YAML",
        default=None,
        help="recipe file (see pipelines/); its values are the defaults below it",
    )
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="override any recipe field, e.g. train.lr=3e-4 model.backbone.name=resnet34",
    )


def run_dir_args(p: argparse.ArgumentParser, force_help: str) -> None:
    """--device, --resume, --force, --seed and -q of the commands that train into RUN."""
    p.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N (default: recipe)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in RUN")
    p.add_argument("--force", action="store_true", help=force_help)
    common_args(p)


def recipe_with(args, flags: dict) -> Config:
    """The recipe with the command line's flags (None: not given), --device and --seed."""
    flags = {**flags, "device": args.device, "seed": args.seed}
    return load_recipe(args).replace({k: v for k, v in flags.items() if v is not None})


def common_args(p: argparse.ArgumentParser) -> None:
    """--seed and -q/--quiet."""
    p.add_argument("--seed", type=int, default=None, help="seed for every random choice")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def load_recipe(args) -> Config:
    """The recipe named by ``--config`` (``run``: RECIPE) with the command line's overrides."""
    path = getattr(args, "config", None) or getattr(args, "recipe", None)
    return load_config(path, getattr(args, "overrides", None))
