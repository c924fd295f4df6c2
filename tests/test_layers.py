"""The house rules of ``g2res/``, read from the source with ``ast``: imports point down the
layers of the design (cli -> pipeline/studies -> train, scan -> models, ensemble ->
transforms, baselines -> data -> config -> signal, utils), no modules import each other
in a circle (function-level imports included), and no module is over 450 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "g2res"
MAX_LINES = 450

# Top-level part of g2res -> layer (higher imports lower or equal, never the reverse).
LAYERS = {
    "cli": 7,
    "__main__": 7,
    "pipeline": 6,
    "studies": 6,
    "train": 5,
    "scan": 5,
    "models": 4,
    "ensemble": 4,
    "transforms": 3,
    "baselines": 3,
    "data": 2,
    "config": 1,
    "signal": 0,
    "utils": 0,
    "__init__": 0,  # g2res/__init__.py: the version only
}


def _module_name(path: Path) -> str:
    parts = ("g2res", *path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of g2res."""
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    """The g2res module ``name`` refers to (its longest known prefix), None outside g2res."""
    if name != "g2res" and not name.startswith("g2res."):
        return None
    while name not in known:
        name = name.rpartition(".")[0]
    return name


def import_graph(known: dict[str, Path] | None = None) -> dict[str, dict[str, int]]:
    """Module -> {imported g2res module: line of the first import}, at any depth of the code."""
    known = modules() if known is None else known
    graph: dict[str, dict[str, int]] = {}
    for mod, path in known.items():
        is_pkg = path.name == "__init__.py"
        edges: dict[str, int] = {}
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    pkg = mod if is_pkg else mod.rpartition(".")[0]
                    for _ in range(node.level - 1):
                        pkg = pkg.rpartition(".")[0]
                    base = f"{pkg}.{base}" if base else pkg
                # `from pkg import sub` imports the module pkg.sub when there is one.
                targets = [f"{base}.{a.name}" for a in node.names]
            for t in targets:
                r = _resolve(t, known)
                if r is not None and r != mod:
                    edges.setdefault(r, node.lineno)
        graph[mod] = edges
    return graph


def layer(mod: str) -> int:
    part = mod.split(".")[1] if "." in mod else "__init__"
    if part not in LAYERS:
        raise AssertionError(f"{mod}: g2res.{part} has no layer; add it to LAYERS in {__file__}")
    return LAYERS[part]


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


@pytest.fixture(scope="module")
def graph():
    return import_graph()


def test_graph_sees_function_level_imports(graph):
    # the CLI imports its library code inside the runners; the graph must see them
    cli = {m: e for m, e in graph.items() if m == "g2res.cli" or m.startswith("g2res.cli.")}
    seen = set().union(*(e for e in cli.values()))
    assert "g2res.data.simulate" in seen and "g2res.train.cv" in seen


def test_no_import_circles(graph):
    found = cycles(graph)
    assert not found, "modules importing each other in a circle:\n" + "\n".join(
        " <-> ".join(c) for c in found
    )


def test_imports_point_down(graph):
    bad = [
        f"{modules()[m].relative_to(ROOT.parent)}:{line}: {m} (layer {layer(m)}) imports "
        f"{t} (layer {layer(t)})"
        for m, edges in graph.items()
        for t, line in edges.items()
        if layer(t) > layer(m)
    ]
    assert not bad, "imports from a lower layer to a higher one:\n" + "\n".join(bad)


def test_modules_are_small():
    big = {
        str(p.relative_to(ROOT.parent)): n
        for p in ROOT.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not big, f"modules over {MAX_LINES} lines: {big}"
