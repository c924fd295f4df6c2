"""benchmarks/generalise.py end to end on a tiny matrix (2 noise curves x 1 approximant,
130 test samples per cell, a 4-template bank, a tiny run trained here): every cell is in
the table, the worst cell is the one with the lowest ratio to its oracle, the `lines`
noise really carries its lines (the PSD the cell's cache estimated shows them), and a
second call reuses every output. The matrix tests are `slow` (~20-30 s on 2 cores)."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from g2res.baselines.bank import TemplateBank
from g2res.config import Config, SimulateConfig
from g2res.train.cv import cv_train

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import _generalise_cells as gc  # noqa: E402
import generalise  # noqa: E402

MODEL_1D = {
    "frontend": {"name": "identity"},
    "backbone": {"name": "resnet1d_18", "base_width": 8},
    "head": {"name": "linear"},
}
CELLS = ("design-IMRPhenomD", "lines-IMRPhenomD")
WINDOW = (1.4, 2.0)  # s, the merger-time window of the windowed stacker


@pytest.fixture(scope="module")
def matrix(tiny_dataset, tiny_cache, tmp_path_factory):
    """The tiny matrix run once: (workdir, argv, result)."""
    root = tmp_path_factory.mktemp("generalise")
    t = {"epochs": 1, "batch_size": 32, "lr": 2e-3, "num_workers": 0}
    cfg = Config().replace({
        "name": "tiny", "cache": str(tiny_cache), "model": MODEL_1D,
        "train": {**Config().train.__dict__, **t}, "cv.folds": 2, "seed": 3,
    })  # fmt: skip
    cv_train(cfg, root / "run", progress=False, log=None)
    # 4 templates: MatchedFilter.template_spectra reads a (3, n) array as one template per
    # detector, so a bank of exactly 3 is filtered wrongly
    bank = TemplateBank(
        mass1=np.array([12.0, 20.0, 30.0, 45.0]),
        mass2=np.array([10.0, 15.0, 25.0, 35.0]),
        spin1z=np.zeros(4),
        spin2z=np.zeros(4),
    ).save(root / "bank.npz")
    # a logistic stacker of the run and the bank SNR, fitted on the tiny set's train split
    from g2res.baselines.matched_filter import companion_path, matched_filter
    from g2res.ensemble.stack import fit_stack

    stats, coh, win = {}, {}, {}
    for split in ("train", "test"):
        matched_filter(tiny_dataset, tiny_cache / "psd.npz", root / f"{split}_bank.csv",
                       split=split, bank=bank, progress=False)  # fmt: skip
        stats[split] = {"bank": companion_path(root / f"{split}_bank.csv")}
        matched_filter(tiny_dataset, tiny_cache / "psd.npz", root / f"{split}_coh.csv",
                       split=split, bank=bank, progress=False, coherent=2)  # fmt: skip
        coh[split] = {"coherent": companion_path(root / f"{split}_coh.csv")}
        matched_filter(tiny_dataset, tiny_cache / "psd.npz", root / f"{split}_win.csv",
                       split=split, bank=bank, progress=False, time_window=WINDOW)  # fmt: skip
        win[split] = {"bank_window": companion_path(root / f"{split}_win.csv")}
    test_ids = pd.read_csv(tiny_dataset / "sample_submission.csv", dtype={"id": str})["id"]
    stack = fit_stack([root / "run" / "oof.csv"], ["tiny"], "logistic", stats["train"],
                      stats["test"], test_ids=list(test_ids))  # fmt: skip
    saved_stack = stack.save(root / "st.stack.json")
    # and one of the run (fold-scaled, as `submit --stack` fits) and the coherent SNR of
    # the 2 best templates
    stack = fit_stack([root / "run" / "oof.csv"], ["tiny"], "logistic", coh["train"],
                      coh["test"], test_ids=list(test_ids), fold_scale=True)  # fmt: skip
    coh_stack = stack.save(root / "stc.stack.json")
    # and one with the bank's statistic in a merger-time window
    stack = fit_stack([root / "run" / "oof.csv"], ["tiny"], "logistic", win["train"],
                      win["test"], test_ids=list(test_ids))  # fmt: skip
    win_stack = stack.save(root / "stw.stack.json")
    work = root / "work"
    argv = [
        "--workdir", str(work), "--runs", f"tiny={root / 'run'}",
        "--noise-curves", "design", "lines", "--approximants", "IMRPhenomD",
        "--n-train", "32", "--n-test-noise", "100", "--n-test-signals", "30",
        "--bank", str(bank), "--workers", "1", "--seed", "5",
        "--out", str(root / "out.json"), "--plot", str(root / "out.png"),
        "--stack", f"st={saved_stack}", "--stack", f"stc={coh_stack}", "--coherent", "2",
        "--stack", f"stw={win_stack}", "--time-window", *map(str, WINDOW),
    ]  # fmt: skip
    return work, argv, generalise.main(argv)


@pytest.mark.slow  # ~20-30 s: a run trained, 2 cells simulated and filtered
def test_every_cell_is_scored_and_the_worst_is_the_minimum(matrix):
    work, argv, result = matrix
    assert tuple(result["cells"]) == CELLS
    for cell in result["cells"].values():
        methods = [r["method"] for r in cell["table"]]
        assert methods == [
            "oracle", "template bank", "tiny", "template bank, merger-time window", "st", "stc",
            "stw",
        ]  # fmt: skip
        assert cell["ratio"]["oracle"] == pytest.approx(1.0)
        for r in cell["table"]:
            assert r["n_noise"] == 100 and r["n_signals"] == 30
            assert 0.0 <= r["auc"] <= 1.0
            assert r["eff_fap"]["0.01"]["all"]["n_signals"] == 30  # FAP 1e-2 is resolved
        assert cell["vs_bank"]["tiny"]["verdict"] in ("better", "worse", "not resolved")
    # the two cells are different data sets (a seed per cell)
    seeds = {c["seed"] for c in result["cells"].values()}
    assert len(seeds) == 2
    ratios = {n: c["ratio"]["tiny"] for n, c in result["cells"].items()}
    goal = result["goal"]["tiny"]
    assert goal["worst_cell"] == min(ratios, key=ratios.get)
    assert goal["worst_ratio"] == pytest.approx(min(ratios.values()))
    assert goal["ratio_met"] == (goal["worst_ratio"] >= 0.97)
    worst = result["cells"][goal["worst_cell"]]["vs_bank"]["tiny"]["bank_better"]
    assert goal["not_below_bank"] == (not worst["auc"] and not worst.get("eff@0.01"))
    saved = json.loads(Path(argv[argv.index("--out") + 1]).read_text())
    assert saved["headline"] == goal
    assert Path(argv[argv.index("--plot") + 1]).stat().st_size > 10_000


def _check_stack_formula(cell: Path, name: str, doc: dict, stat: str, raw: str) -> None:
    """CELL/stack-NAME-*.csv is the saved logistic ``doc`` applied to the run's cell
    submission (each fold model's cell predictions when fold-scaled) and the ``stat``
    column of CELL/``raw`` (the cell's own bank statistic)."""
    from g2res.ensemble.stack import logit
    from g2res.ensemble.submit import fold_predictions

    (csv,) = cell.glob(f"stack-{name}-*.csv")
    (run,) = cell.glob(f"runs-{name}-tiny-*.csv")
    got = pd.read_csv(csv, dtype={"id": str}).set_index("id")["target"]
    p = pd.read_csv(run, dtype={"id": str}).set_index("id").loc[got.index, "target"]
    scores = pd.read_csv(cell / raw, dtype={"id": str}).set_index("id")
    feature = logit(p.to_numpy())
    if "fold_scale" in doc["inputs"][0]:
        ids, folds = fold_predictions(Path(doc["inputs"][0]["oof"]).parent, cell / "cache",
                                      progress=False, log=None)  # fmt: skip
        order = pd.Series(range(len(ids)), index=ids).loc[got.index].to_numpy()
        scale = doc["inputs"][0]["fold_scale"]
        feature = np.mean([(logit(folds[int(k)][order]) - v["median"]) / v["iqr"]
                           for k, v in scale.items()], axis=0)  # fmt: skip
        assert not np.allclose(feature, logit(p.to_numpy()))  # scaling changes the feature
    z = doc["intercept"] + doc["coefficients"]["tiny"] * feature
    z = z + doc["coefficients"][stat] * scores.loc[got.index, "stat"].to_numpy()
    np.testing.assert_allclose(got.to_numpy(), 1 / (1 + np.exp(-z)), rtol=1e-9)


@pytest.mark.slow  # ~20-30 s: a run trained, 2 cells simulated and filtered
def test_a_saved_stacker_is_applied_unchanged_in_every_cell(matrix):
    """The stacker's cell submission is its formula on the run's cell submission and the
    cell's bank SNR (or the cell's coherent SNR, --coherent 2): nothing refitted; it gets
    its own worst cell and goal."""
    work, argv, result = matrix
    docs = [json.loads(Path(argv[i + 1].split("=", 1)[1]).read_text())
            for i, a in enumerate(argv) if a == "--stack"]  # fmt: skip
    doc, doc_coh, doc_win = docs
    for name in CELLS:
        cell = work / "cells" / name
        _check_stack_formula(cell, "st", doc, "bank", "template_bank.raw.csv")
        coh = pd.read_csv(cell / "coherent_bank_2.raw.csv")
        np.testing.assert_array_equal(coh["stat"], coh["coh_snr"])
        _check_stack_formula(cell, "stc", doc_coh, "coherent", "coherent_bank_2.raw.csv")
        # the windowed bank: the cell's test split filtered with --time-window's window
        windowed = pd.read_csv(cell / "bank_window.raw.csv")
        assert windowed["time"].between(*WINDOW).all()
        plain = pd.read_csv(cell / "template_bank.raw.csv")
        assert (windowed["snr"] <= plain["snr"] + 1e-6).all()
        assert not (plain["time"].between(*WINDOW)).all()  # noise peaks outside it too
        _check_stack_formula(cell, "stw", doc_win, "bank_window", "bank_window.raw.csv")
        assert {"st", "stc"} <= set(result["cells"][name]["ratio"])
    assert result["goal"]["st"]["worst_cell"] in CELLS
    at = argv.index("--time-window")
    with pytest.raises(SystemExit, match="stw: a windowed-bank input needs --time-window"):
        generalise.main(argv[:at] + argv[at + 3 :])
    with pytest.raises(SystemExit, match="only a logistic"):
        bad = work / "hgb.stack.json"
        bad.write_text(json.dumps({**doc, "stacker": "hgb"}))
        generalise.main([*argv, "--stack", f"st2={bad}"])


def _line_contrast(cache: Path, detector: int, f0: float) -> float:
    """Estimated PSD at ``f0`` Hz over the mean at f0 +- 8 Hz."""
    with np.load(cache / "psd.npz", allow_pickle=False) as z:
        f, psd = z["frequencies"], z["psd"][detector]
    at = lambda x: psd[np.argmin(np.abs(f - x))]  # noqa: E731
    return at(f0) / (0.5 * (at(f0 - 8.0) + at(f0 + 8.0)))


@pytest.mark.slow  # ~20-30 s: a run trained, 2 cells simulated and filtered
def test_the_lines_curve_has_its_lines_in_the_estimated_psd(matrix):
    work = matrix[0]
    lines, design = (
        work / "cells" / c / "cache" for c in ("lines-IMRPhenomD", "design-IMRPhenomD")
    )
    for det in (0, 1):  # H1, L1: 60 Hz mains and the 35 Hz calibration line
        assert _line_contrast(lines, det, 60.0) > 5.0
        assert _line_contrast(lines, det, 35.0) > 3.0
        assert _line_contrast(design, det, 60.0) < 1.5
    assert _line_contrast(lines, 2, 50.0) > 5.0  # V1: 50 Hz mains
    # the tilt: relative to design, the lines curve is quieter at 30 Hz than at 300 Hz
    with np.load(lines / "psd.npz") as a, np.load(design / "psd.npz") as b:
        f, ratio = a["frequencies"], a["psd"][0] / b["psd"][0]
    r30, r300 = ratio[np.argmin(np.abs(f - 30))], ratio[np.argmin(np.abs(f - 300))]
    assert r300 / r30 == pytest.approx(10.0**0.7, rel=0.3)


@pytest.mark.slow  # ~20-30 s: a run trained, 2 cells simulated and filtered
def test_a_second_call_reuses_every_output(matrix):
    work, argv, first = matrix
    files = sorted(p for p in work.rglob("*") if p.is_file() and p.name != "out.json")
    before = {p: p.stat().st_mtime_ns for p in files}
    second = generalise.main(argv)
    assert {p: p.stat().st_mtime_ns for p in files} == before
    cell = work / "cells" / CELLS[1]
    pre = gc.runs_preprocess({"tiny": [Path(argv[argv.index("--runs") + 1].split("=")[1])]})
    gc.check_cache(cell / "cache", pre)  # the cache the runs expect
    with pytest.raises(SystemExit, match="fmax"):
        gc.check_cache(cell / "cache", dataclasses.replace(pre, fmax=400.0))
    with pytest.raises(SystemExit, match="template_bank.csv"):
        generalise.check_bank_source(cell, work / "another_bank.npz")
    with pytest.raises(SystemExit, match="SEOBNRv4_opt"):
        generalise.check_data(cell / "data", SimulateConfig(approximant="SEOBNRv4_opt"))
    assert sorted(p for p in work.rglob("*") if p.is_file()) == files
    assert second["seconds_wall"] == first["seconds_wall"]
    for name in CELLS:
        assert second["cells"][name]["ratio"] == first["cells"][name]["ratio"]


def test_options_are_checked(tmp_path):
    with pytest.raises(SystemExit, match="unknown"):
        gc.noise_curve_files(["design", "pink"], tmp_path)
    args = generalise.parse_args(
        ["--workdir", "w", "--runs", "a", "--cell-size", "SEOBNRv4_opt=2000,500"]
    )
    assert generalise.cell_sizes(args)["SEOBNRv4_opt"] == (2000, 500)
    assert generalise.cell_sizes(args)["IMRPhenomD"] == (2000, 1000)
    groups = generalise.run_groups([["a", "b,c"], ["ft=d"]])
    assert groups == {"g2res": [Path("a"), Path("b"), Path("c")], "ft": [Path("d")]}
    with pytest.raises(SystemExit, match="oracle"):
        generalise.run_groups([["oracle=a"]])
    assert gc.cell_seed(0, "design", "IMRPhenomD") != gc.cell_seed(0, "lines", "IMRPhenomD")
    assert gc.cell_seed(0, "design", "IMRPhenomD") == gc.cell_seed(0, "design", "IMRPhenomD")


def _cell(ratio: float, bank_better: dict | None) -> dict:
    vs = {} if bank_better is None else {"g": {"bank_better": bank_better}}
    return {"ratio": {"g": ratio, "oracle": 1.0}, "vs_bank": vs}


def test_goal_reads_the_worst_cell_and_the_bank_verdicts():
    fine = {"auc": [], "eff@0.01": []}
    cells = {"a": _cell(0.99, fine), "b": _cell(0.975, fine), "c": _cell(0.98, {"auc": ["6-8"]})}
    g = gc.goal(cells, "g")
    assert (g["worst_cell"], g["worst_ratio"], g["met"]) == ("b", 0.975, True)
    assert g["cells_below_bank"] == ["c"]
    cells["b"] = _cell(0.975, {"auc": [], "eff@0.01": ["all"]})  # bank finds more at 1e-2
    g = gc.goal(cells, "g")
    assert g["not_below_bank"] is False and g["ratio_met"] and not g["met"]
    cells["b"] = _cell(0.96, fine)
    assert not gc.goal(cells, "g")["met"]
    no_bank = gc.goal({"a": _cell(0.98, None)}, "g")
    assert no_bank["not_below_bank"] is None and no_bank["met"]


def test_lines_factor_peaks_at_the_line_heights():
    f = np.arange(0, 1024, gc.LINES_DF)
    k = gc.lines_factor(f, gc.LIGO_LINES)
    for f0, height in gc.LIGO_LINES:
        assert k[np.argmin(np.abs(f - f0))] == pytest.approx(height, rel=0.01)
        half = k[np.argmin(np.abs(f - f0 - gc.LINE_WIDTH / 2))]
        assert half == pytest.approx(1 + (height - 1) / 2, rel=0.02)  # FWHM 1 Hz
    assert k[np.argmin(np.abs(f - 90.0))] == pytest.approx(1.0, abs=1e-9)


def test_a_stacker_statistic_is_read_from_its_own_column_or_refused(tmp_path):
    """A cell companion without the column a stacker was fitted on (``marginal``) is an
    error naming it, never silently replaced by the SNR; with it, that column is read.
    ``_stacking.marginal_statistics`` writes the bank's marginal column for stacking."""
    import _generalise_stacks as gs
    import _stacking

    ids = pd.Index(["a1", "b2", "c3"])
    old = tmp_path / "old.raw.csv"
    pd.DataFrame({"id": ids, "snr": [5.0, 9.0, 6.0], "stat": [5.0, 9.0, 6.0]}).to_csv(
        old, index=False
    )
    with pytest.raises(SystemExit, match="no column 'marginal'"):
        gs._scores(old, "marginal", ids)
    with pytest.raises(SystemExit, match="no marginal column"):
        _stacking.marginal_statistics(tmp_path, old, old)
    new = tmp_path / "new.raw.csv"
    marg = [1.0, 30.0, 4.0]
    pd.DataFrame({"id": ids, "stat": [5.0, 9.0, 6.0], "marginal": marg}).to_csv(new, index=False)
    np.testing.assert_array_equal(gs._scores(new, "marginal", ids[::-1]), marg[::-1])
    sub, test_csv, train_csv = _stacking.marginal_statistics(tmp_path, new, new)
    assert list(pd.read_csv(test_csv).columns) == ["id", "marginal"]
    assert pd.read_csv(sub)["target"].rank().tolist() == pd.Series(marg).rank().tolist()
    assert pd.read_csv(train_csv)["marginal"].tolist() == marg
