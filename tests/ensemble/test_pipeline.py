"""`g2res evaluate` and `g2res run` (the whole pipeline)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from g2res.ensemble.evaluate import align_labels, read_snr
from g2res.ensemble.submission import SubmissionError


@pytest.fixture
def scored(tmp_path, rng):
    """Labels, SNRs and a submission whose score grows with the injected SNR."""
    n = 400
    ids = [f"{v:010x}" for v in rng.choice(2**36, n, replace=False)]
    y = (rng.uniform(size=n) < 0.5).astype(int)
    snr = np.where(y == 1, rng.uniform(2, 20, n), 0.0)
    score = 1 / (1 + np.exp(-(snr - 8 + rng.normal(0, 1.5, n))))
    pd.DataFrame({"id": ids, "target": y}).to_csv(tmp_path / "labels.csv", index=False)
    inj = pd.DataFrame({"id": ids, "target": y, "snr_network": snr})
    inj.sample(frac=1, random_state=0).to_csv(tmp_path / "injections.csv", index=False)
    order = rng.permutation(n)  # a submission may list ids in any order
    sub = pd.DataFrame({"id": np.array(ids)[order], "target": score[order]})
    sub.to_csv(tmp_path / "sub.csv", index=False)
    return {"dir": tmp_path, "y": y, "snr": snr, "score": score, "ids": ids}


def test_labels_are_aligned_by_id_and_mismatches_refused(scored):
    sub = pd.read_csv(scored["dir"] / "sub.csv", dtype={"id": str})
    labels = pd.read_csv(scored["dir"] / "labels.csv", dtype={"id": str})
    y = align_labels(sub, labels)
    truth = dict(zip(scored["ids"], scored["y"]))
    np.testing.assert_array_equal(y, [truth[i] for i in sub["id"]])
    snr = read_snr(scored["dir"] / "injections.csv", sub["id"])
    want = dict(zip(scored["ids"], scored["snr"]))
    np.testing.assert_array_equal(snr, [want[i] for i in sub["id"]])

    with pytest.raises(SubmissionError, match="1 labelled id"):
        align_labels(sub.iloc[1:], labels)
    with pytest.raises(SubmissionError, match="have no label"):
        align_labels(sub, labels.iloc[1:])
    with pytest.raises(SubmissionError, match=r"\[0, 1\]"):
        align_labels(sub.assign(target=sub["target"] * 2), labels)
    with pytest.raises(SubmissionError, match="columns"):
        align_labels(sub.rename(columns={"target": "p"}), labels)


def test_evaluate_matches_sklearn_and_efficiency_grows_with_snr(scored):
    pytest.importorskip("g2res.train.metrics")
    from g2res.ensemble.evaluate import evaluate, format_report

    d = scored["dir"]
    res = evaluate(d / "sub.csv", d / "labels.csv", injections=d / "injections.csv", fpr=0.05)
    assert res["n"] == len(scored["y"])
    assert res["metrics"]["auc"] == pytest.approx(roc_auc_score(scored["y"], scored["score"]))
    eff = pd.DataFrame(res["efficiency"])
    col = next(c for c in eff.columns if "eff" in c)
    values = eff[col].dropna().to_numpy()
    assert len(values) >= 2
    # Scores rise with SNR: the loudest bin is found far more often than the quietest.
    assert values[-1] > values[0] + 0.3
    assert "auc" in format_report(res)


def test_run_refuses_a_foreign_or_different_work_directory(tmp_path):
    from g2res.config import Config
    from g2res.pipeline import _check_workdir, run_pipeline

    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(FileExistsError, match="not a g2res work directory"):
        run_pipeline(Config(), foreign, log=None)
    assert (foreign / "thesis.tex").read_text() == "precious"
    assert not (foreign / "config.yaml").exists()

    work = tmp_path / "work"
    cfg = Config().replace({"data_dir": str(work / "data"), "cache": str(work / "cache")})
    work.mkdir()
    cfg.save(work / "config.yaml")
    _check_workdir(cfg, work, force=False)  # the same recipe: resume
    with pytest.raises(FileExistsError, match="another recipe"):
        run_pipeline(Config().replace(["train.epochs=3"]), work, log=None)


def test_evaluate_against_a_worse_run_resolves_the_difference(scored, rng, capsys):
    """A run with twice the score noise loses AUC; the paired interval says so, and an
    identical run is 'not resolved' from it."""
    from g2res.cli import main
    from g2res.ensemble.evaluate import evaluate

    d, y, snr = scored["dir"], scored["y"], scored["snr"]
    noisy = 1 / (1 + np.exp(-(snr - 8 + rng.normal(0, 4.0, len(y)))))
    pd.DataFrame({"id": scored["ids"], "target": noisy}).to_csv(d / "noisy.csv", index=False)
    res = evaluate(
        d / "sub.csv", d / "labels.csv", injections=d / "injections.csv", against=d / "noisy.csv"
    )
    vs = res["against"]["overall"]
    want = roc_auc_score(y, scored["score"]) - roc_auc_score(y, noisy)
    assert vs["diff"] == pytest.approx(want) and want > 0.02
    assert 0 < vs["low"] < vs["diff"] < vs["high"]
    by_snr = pd.DataFrame(res["against"]["by_snr"])
    assert by_snr["n_signals"].sum() == y.sum()
    # the difference lives at low SNR; loud signals are found by both runs
    assert by_snr["diff"].iloc[0] > by_snr["diff"].iloc[-1]

    rc = main(["evaluate", str(d / "sub.csv"), "--labels", str(d / "labels.csv"),
               "--against", str(d / "sub.csv"), "--n-boot", "200"])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0 and "+0.0000  [+0.0000, +0.0000]  not resolved" in out
    main(["evaluate", str(d / "sub.csv"), "--labels", str(d / "labels.csv"),
          "--against", str(d / "noisy.csv"), "--n-boot", "200"])  # fmt: skip
    assert "better" in capsys.readouterr().out

    pd.read_csv(d / "noisy.csv").iloc[1:].to_csv(d / "short.csv", index=False)
    with pytest.raises(SubmissionError, match="short.csv.*not predicted"):
        evaluate(d / "sub.csv", d / "labels.csv", against=d / "short.csv")


def test_evaluate_lists_the_signals_one_run_misses_and_another_finds(scored, capsys):
    """Two loud signals scored as noise: ``--misses`` puts them first, with their source
    parameters; against a run that also misses one of them, only the other one leads."""
    from g2res.cli import main
    from g2res.ensemble.evaluate import evaluate

    d, y, snr = scored["dir"], scored["y"], scored["snr"]
    inj = pd.read_csv(d / "injections.csv", dtype={"id": str})
    inj["mass1"] = np.where(inj["target"] == 1, 30.0, np.nan)
    inj.to_csv(d / "injections.csv", index=False)
    loud = np.flatnonzero((y == 1) & (snr > 14))[:2]
    both, only_here = (scored["ids"][i] for i in loud)
    score = scored["score"].copy()
    score[loud] = 0.0  # below every noise sample
    pd.DataFrame({"id": scored["ids"], "target": score}).to_csv(d / "miss.csv", index=False)
    other = scored["score"].copy()
    other[loud[0]] = 0.0
    pd.DataFrame({"id": scored["ids"], "target": other}).to_csv(d / "other.csv", index=False)

    args = (d / "miss.csv", d / "labels.csv")
    res = evaluate(*args, injections=d / "injections.csv", misses=3)
    worst = pd.DataFrame(res["misses"])
    assert set(worst["id"][:2]) == {both, only_here} and (worst["cost"][:2] == 1.0).all()
    assert worst["cost"].iloc[2] < 1.0 and (worst["mass1"] == 30.0).all()
    # the costs are what the AUC lost: all signals' mean is 1 - AUC
    full = evaluate(*args, misses=int(y.sum()))
    assert pd.DataFrame(full["misses"])["cost"].mean() == pytest.approx(1 - roc_auc_score(y, score))

    res = evaluate(*args, injections=d / "injections.csv", against=d / "other.csv",
                   n_boot=50, misses=2, misses_snr=(14.0, 30.0))  # fmt: skip
    worst = pd.DataFrame(res["misses"])
    assert worst["id"][0] == only_here and worst["cost_diff"][0] == 1.0
    assert worst["cost_diff"][1] < 0.05 and (worst["snr_network"] >= 14).all()

    rc = main(["evaluate", str(d / "miss.csv"), "--labels", str(d / "labels.csv"),
               "--injections", str(d / "injections.csv"), "--misses", "2"])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0 and "cost the most AUC" in out and both in out and only_here in out
    with pytest.raises(ValueError, match="injections table"):
        evaluate(*args, misses=2, misses_snr=(8.0, 10.0))


def test_evaluate_reports_efficiency_at_fixed_false_alarm_probabilities(tmp_path, rng, capsys):
    """evaluation.json holds the efficiency at FAP 1e-2 and 1e-3 per SNR bin with intervals
    (noise scores N(0,1), signals shifted by 0.4 SNR: the Gaussian formula per bin), the
    paired differences with --against, and the efficiency_fap.png plot."""
    import json

    from scipy.stats import norm

    from g2res.cli import main

    n_noise, n_sig = 2000, 1000
    ids = [f"{v:010x}" for v in rng.choice(2**36, n_noise + n_sig, replace=False)]
    y = np.r_[np.zeros(n_noise, int), np.ones(n_sig, int)]
    snr = np.r_[np.zeros(n_noise), rng.uniform(4, 12, n_sig)]
    stat = rng.normal(size=len(y)) + 0.4 * snr
    pd.DataFrame({"id": ids, "target": y}).to_csv(tmp_path / "labels.csv", index=False)
    pd.DataFrame({"id": ids, "snr_network": snr}).to_csv(tmp_path / "inj.csv", index=False)
    for name, s in (("a", stat), ("b", stat - 1.0 * y)):  # b: quieter signals
        pd.DataFrame({"id": ids, "target": norm.cdf(s - 3)}).to_csv(
            tmp_path / f"{name}.csv", index=False
        )
    rc = main(["evaluate", str(tmp_path / "a.csv"), "--labels", str(tmp_path / "labels.csv"),
               "--injections", str(tmp_path / "inj.csv"), "--against", str(tmp_path / "b.csv"),
               "--plots", str(tmp_path / "plots"), "--n-boot", "300",
               "--json", str(tmp_path / "evaluation.json")])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0 and "efficiency at FAP 0.001" in out and "efficiency at FAP 0.01" in out
    res = json.loads((tmp_path / "evaluation.json").read_text())
    reports = res["efficiency_at_fap"]
    assert [r["fap"] for r in reports] == [0.01, 0.001]
    for r in reports:
        assert r["n_noise"] == n_noise and 0 < r["fap_achieved"] <= r["fap"]
        effs = [b["efficiency"] for b in r["by_snr"]]
        assert effs == sorted(effs) and sum(b["n_signals"] for b in r["by_snr"]) == n_sig
        for b in r["by_snr"]:
            assert 0 <= b["low"] <= b["efficiency"] <= b["high"] <= 1
            mid = 0.4 * 0.5 * (b["snr_low"] + b["snr_high"])
            assert abs(b["efficiency"] - (1 - norm.cdf(norm.isf(r["fap"]) - mid))) < 0.15
    at2 = reports[0]["overall"]["efficiency"]
    assert reports[1]["overall"]["efficiency"] < at2  # a lower FAP finds fewer signals
    paired = res["against"]["efficiency_at_fap"]
    assert [r["fap"] for r in paired] == [0.01, 0.001]
    assert paired[0]["overall"]["verdict"] == "better" and paired[0]["overall"]["diff"] > 0.1
    assert paired[0]["overall"]["efficiency_a"] == pytest.approx(at2)
    assert (tmp_path / "plots" / "efficiency_fap.png").stat().st_size > 1000
    assert str(tmp_path / "plots" / "efficiency_fap.png") in res["plots"]

    # too few noise samples for 1e-3: skipped with a warning, 1e-2 still reported
    keep = np.r_[np.arange(500), np.arange(n_noise, n_noise + n_sig)]
    lab = pd.read_csv(tmp_path / "labels.csv", dtype={"id": str}).iloc[keep]
    lab.to_csv(tmp_path / "few.csv", index=False)
    sub = pd.read_csv(tmp_path / "a.csv", dtype={"id": str}).iloc[keep]
    sub.to_csv(tmp_path / "a_few.csv", index=False)
    from g2res.ensemble.evaluate import evaluate

    with pytest.warns(UserWarning, match="needs at least 1000 noise samples"):
        few = evaluate(tmp_path / "a_few.csv", tmp_path / "few.csv", n_boot=50)
    assert "skipped" in few["efficiency_at_fap"][1] and few["efficiency_at_fap"][0]["overall"]
