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
