"""Saved stackers scored in the cells of ``benchmarks/generalise.py`` (``--stack``).

A stacker fitted once on a training set's out-of-fold predictions (``g2res submit
--stack``, saved as ``NAME.stack.json``) is applied unchanged in every cell: each of its
runs is submitted alone on the cell's cache, and each of its statistics is recomputed
on the cell's test split with the cell's bank: ``coherent`` is the bank's coherent SNR
(``g2res baseline matched-filter --coherent K``), ``bank_window`` the bank's with the
merger-time window the stacker's training set gave (``--time-window``), any other
statistic the bank's own (its companion ``template_bank.raw.csv``), read from the column
the stacker was fitted on. Nothing is refitted on a cell.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

COHERENT = "coherent"
WINDOW = "bank_window"  # the stacking benchmark's name for the windowed bank's statistic


def parse_stacks(items: list[str], taken) -> dict[str, dict]:
    """``["NAME=STACK_JSON", ...]`` -> {NAME: the saved stacker}; SystemExit on a clash, a
    missing file or an hgb stacker (only logistic ones keep their coefficients)."""
    stacks = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or name in taken or name in stacks:
            raise SystemExit(f"--stack {item!r}: need NAME=STACK_JSON with a new name")
        if not Path(path).is_file():
            raise SystemExit(f"--stack {item!r}: {path} does not exist")
        doc = json.loads(Path(path).read_text())
        if doc.get("stacker") != "logistic" or "coefficients" not in doc:
            raise SystemExit(f"--stack {item!r}: only a logistic stacker can be applied")
        stacks[name] = {"path": str(Path(path).resolve()), **doc}
    return stacks


def stack_runs(stacks: dict[str, dict]) -> dict[str, list[Path]]:
    """{stack name: its run directories} (each run's ``oof.csv`` folder)."""
    return {
        n: [Path(i["oof"]).parent for i in s["inputs"] if i["kind"] == "run"]
        for n, s in stacks.items()
    }


def needs_bank(stacks: dict[str, dict]) -> bool:
    return any(i["kind"] == "statistic" for s in stacks.values() for i in s["inputs"])


def needs_window(stacks: dict[str, dict]) -> list[str]:
    """The stackers with a windowed-bank input."""
    return [n for n, s in stacks.items() if any(i["name"] == WINDOW for i in s["inputs"])]


def window_companion(data: Path, cache: Path, folder: Path, bank, window, seed: int, timer) -> Path:
    """The cell's test split filtered by ``bank`` with the merger-time ``window`` (s)
    -> CELL/bank_window.csv (its ``.raw.csv`` beside it), kept when it exists."""
    from g2res.baselines.matched_filter import companion_path, matched_filter

    out = folder / "bank_window.csv"
    if not companion_path(out).is_file():
        timer(
            "template bank, merger-time window",
            lambda: matched_filter(data, cache / "psd.npz", out, split="test", bank=bank,
                                   seed=seed, time_window=tuple(window)),
        )  # fmt: skip
    return out


def _scores(csv: Path, column: str | None, ids: pd.Index) -> np.ndarray:
    table = pd.read_csv(csv, dtype={"id": str}).set_index("id")
    if column is not None and column not in table.columns:
        # Never another column in its place: a stacker fitted on the marginal statistic
        # fed the network SNR would score silently wrong.
        raise SystemExit(
            f"{csv}: no column {column!r}, which the stacker was fitted on (a companion "
            "made before that statistic existed: delete it to filter the cell again)"
        )
    col = column if column is not None else "stat" if "stat" in table else "target"
    missing = ids.difference(table.index)
    if len(missing):
        raise SystemExit(f"{csv}: {len(missing)} test ids missing (e.g. {missing[0]})")
    return table.loc[ids, col].to_numpy(np.float64)


def stack_cell(
    name: str,
    stack: dict,
    cache: Path,
    data: Path,
    folder: Path,
    bank: str | None,
    coherent: int,
    seed: int,
    timer,
    submit_group,
    window=None,
) -> Path:
    """The saved stacker ``stack`` applied in one cell -> CELL/stack-NAME-<hash>.csv
    (``window``: the merger-time window (s) of a ``bank_window`` input)."""
    from _stacking import coherent_companion

    from g2res.baselines.matched_filter import companion_path
    from g2res.ensemble.stack import apply_saved_stack
    from g2res.ensemble.submit import fold_predictions
    from g2res.utils import atomic_open

    extra = "" if window is None else f"\n{tuple(window)}"  # earlier cells keep their names
    key = hashlib.sha1(f"{stack['path']}\n{coherent}{extra}".encode()).hexdigest()[:8]
    out = folder / f"stack-{name}-{key}.csv"
    if out.is_file():
        return out
    sample = pd.read_csv(data / "sample_submission.csv", dtype={"id": str})
    ids = pd.Index(sample["id"])
    features = {}
    for item in stack["inputs"]:
        if item["kind"] == "run":
            run = Path(item["oof"]).parent
            csv = submit_group([run], cache, folder, f"{name}-{item['name']}", timer)
            features[item["name"]] = _scores(csv, "target", ids)
            if "fold_scale" in item:  # each fold model's probabilities (kept by that submit)
                test_ids, folds = fold_predictions(run, cache, progress=False, log=None)
                order = pd.Series(range(len(test_ids)), index=test_ids).loc[ids].to_numpy()
                features[item["name"]] = {k: p[order] for k, p in folds.items()}
            continue
        if bank is None:
            raise SystemExit(f"--stack {name}: statistic {item['name']} needs the bank")
        if item["name"] == COHERENT:
            csv = folder / f"coherent_bank_{coherent}.csv"
            raw = coherent_companion(data, cache, csv, bank, coherent, seed, timer)
        elif item["name"] == WINDOW:
            if window is None:
                raise SystemExit(f"--stack {name}: its {WINDOW} input needs --time-window")
            csv = window_companion(data, cache, folder, bank, window, seed, timer)
            raw = companion_path(csv)
        else:
            raw = companion_path(folder / "template_bank.csv")
        features[item["name"]] = _scores(raw, item.get("column"), ids)
    target = apply_saved_stack(stack, features)
    with atomic_open(out, "w", newline="") as fh:
        pd.DataFrame({"id": ids, "target": target}).to_csv(fh, index=False)
    return out
