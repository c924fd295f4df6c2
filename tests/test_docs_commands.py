"""Every `g2res ...` command the documentation shows must parse and resolve.

Commands come from README.md's code blocks (```text blocks are pictures, not
commands) and from the comment headers of pipelines/*.yaml (indented command lines
and `backquoted` commands). Each is parsed by the CLI's own parser and its KEY=VALUE
overrides are applied to its recipe (--config, RUN's RECIPE, or the defaults) by the
CLI's own code; nothing is run.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from g2res.cli import load_recipe, parse_args
from g2res.config import ConfigError

ROOT = Path(__file__).resolve().parents[1]
SEPARATORS = {"&&", "||", ";", "|", "&"}


def _g2res_argvs(line: str) -> list[list[str]]:
    """The g2res argument lists of one shell line (`g2res ...`, `... -m g2res ...`)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    words, segments = list(lexer), [[]]
    for word in words:
        if word in SEPARATORS:
            segments.append([])
        else:
            segments[-1].append(word)
    argvs = []
    for seg in segments:
        if seg and seg[0] == "g2res":
            argvs.append(seg[1:])
        elif any(a == "-m" and b == "g2res" for a, b in zip(seg, seg[1:])):
            argvs.append(seg[[i for i, w in enumerate(seg) if w == "g2res"][0] + 1 :])
    return argvs


def _join_continuations(lines: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Join `\\`-continued lines: (first line number, whole command)."""
    out, pending = [], None
    for number, text in lines:
        if pending is not None:
            pending = (pending[0], pending[1] + " " + text.strip())
        else:
            pending = (number, text.strip())
        if pending[1].endswith("\\"):
            pending = (pending[0], pending[1][:-1].rstrip())
        else:
            out.append(pending)
            pending = None
    if pending is not None:
        out.append(pending)
    return out


def readme_commands() -> list[tuple[str, list[str]]]:
    text = (ROOT / "README.md").read_text()
    found = []
    for match in re.finditer(r"^```(\w*)\n(.*?)^```", text, flags=re.S | re.M):
        if match.group(1) == "text":
            continue
        first = text.count("\n", 0, match.start(2)) + 1
        lines = [(first + i, s) for i, s in enumerate(match.group(2).splitlines())]
        for number, line in _join_continuations(lines):
            for argv in _g2res_argvs(line):
                found.append((f"README.md:{number}", argv))
    return found


def recipe_header_commands() -> list[tuple[str, list[str]]]:
    found = []
    for path in sorted((ROOT / "pipelines").glob("*.yaml")):
        header = []
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.startswith("#"):
                break
            header.append((number, line[1:]))
        where = f"pipelines/{path.name}"
        # Indented lines are code: commands, possibly continued with a backslash.
        code = [(n, s) for n, s in header if s.startswith("   ")]
        for number, line in _join_continuations(code):
            for argv in _g2res_argvs(line):
                found.append((f"{where}:{number}", argv))
        # `g2res ...` in prose must be a whole command too.
        for number, line in header:
            if line.startswith("   "):
                continue
            for span in re.findall(r"`(g2res [^`]*)`", line):
                found.append((f"{where}:{number}", shlex.split(span)[1:]))
    return found


COMMANDS = readme_commands() + recipe_header_commands()


def test_the_documentation_shows_commands():
    """The extraction itself works: the documented steps are all found."""
    readme = {argv[0] for _, argv in readme_commands()}
    assert {"run", "simulate", "preprocess", "cv-train", "submit", "evaluate"} <= readme
    assert {"waveforms", "pretrain", "scan", "pseudo-label"} <= readme
    inject = [a for w, a in recipe_header_commands() if "inject-pretrain" in w]
    assert [a[0] for a in inject] == ["waveforms", "pretrain", "cv-train", "submit"]
    assert inject[2][-3:] == [
        "train.init_from=runs/pre/best.pt",
        "cache=CACHE",
        "injection.mode=off",
    ]
    assert inject[3] == ["submit", "runs/ft", "--out", "submission.csv"], "comments are dropped"


@pytest.mark.parametrize("argv", [c[1] for c in COMMANDS], ids=[c[0] for c in COMMANDS])
def test_documented_command_parses(argv, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)  # recipes are named relative to the repository
    command = "g2res " + shlex.join(argv)
    try:
        args = parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"{command}\nis refused by the parser: {capsys.readouterr().err.strip()}")
        raise AssertionError from exc
    assert getattr(args, "func", None), f"{command}: names no command"
    if hasattr(args, "overrides"):
        recipe = getattr(args, "config", None) or getattr(args, "recipe", None)
        if recipe is not None:
            assert (ROOT / recipe).is_file(), f"{command}: recipe {recipe} does not exist"
        try:
            load_recipe(args)
        except ConfigError as exc:
            pytest.fail(f"{command}\ndoes not resolve: {exc}")
