"""The ``--help`` text of ``g2res`` and of every command, compared byte for byte with
``tests/fixtures/cli_help/`` (one file per command, rendered 100 columns wide).

When a command's options change on purpose, regenerate the fixture and review the diff:

    G2RES_UPDATE_HELP=1 python -m pytest tests/test_cli_help.py
    # or: python tests/test_cli_help.py
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures" / "cli_help"
COLUMNS = "100"


def _walk(parser: argparse.ArgumentParser, name: str):
    """(name, parser) for ``parser`` and every (sub-)subcommand below it."""
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for cmd, sub in action.choices.items():
                yield from _walk(sub, f"{name}_{cmd}" if name != "g2res" else cmd)


def help_texts() -> dict[str, str]:
    """File stem -> help text of every parser of ``g2res``, at a fixed terminal width."""
    from g2res.cli import build_parser

    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = COLUMNS
    try:
        return {name: p.format_help() for name, p in _walk(build_parser(), "g2res")}
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old


def write_fixtures() -> list[Path]:
    """Rewrite the fixture from the current parser (stale files are removed)."""
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for old in FIXTURES.glob("*.txt"):
        old.unlink()
    paths = []
    for name, text in help_texts().items():
        path = FIXTURES / f"{name}.txt"
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def texts() -> dict[str, str]:
    if os.environ.get("G2RES_UPDATE_HELP") == "1":
        write_fixtures()
    return help_texts()


def test_every_command_has_a_fixture(texts):
    stored = sorted(p.stem for p in FIXTURES.glob("*.txt"))
    assert stored == sorted(texts), "regenerate with G2RES_UPDATE_HELP=1 (see module docstring)"
    assert {"g2res", "simulate", "preprocess", "cv-train", "submit"} <= set(texts)


@pytest.mark.parametrize("name", sorted(p.stem for p in FIXTURES.glob("*.txt")))
def test_help_text_unchanged(texts, name):
    expected = (FIXTURES / f"{name}.txt").read_text(encoding="utf-8")
    assert texts.get(name) == expected, f"`{name}` --help changed; see the module docstring"


if __name__ == "__main__":
    for p in write_fixtures():
        print(p)
