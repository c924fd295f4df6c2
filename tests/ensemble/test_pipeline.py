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
