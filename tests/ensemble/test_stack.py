"""Stacking runs (and other statistics) on their out-of-fold predictions, leak-free."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import load_fake, make_energy_run, random_ids
from sklearn.metrics import roc_auc_score

from g2res.ensemble import stack as stacking
from g2res.ensemble.metrics import efficiency_at_fpr
from g2res.ensemble.stack import fit_stack, logit
from g2res.ensemble.submission import read_sample_submission, read_submission


def write_oof(path, ids, y, p, folds):
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"id": ids, "target": y, "prediction": p, "fold": folds}).to_csv(path, index=False)
    return path


@pytest.fixture
def oof_set(tmp_path, rng):
    """600 labelled ids in 5 stratified-like folds, and a helper writing run oof.csv files."""
    n = 600
    ids = random_ids(rng, n)
    y = (rng.uniform(size=n) < 0.5).astype(np.int64)
    folds = rng.permutation(np.arange(n) % 5)

    def run(name, p, fold=folds, rows=slice(None)):
        return write_oof(tmp_path / name / "oof.csv", np.array(ids)[rows], y[rows], p, fold[rows])

    return {"dir": tmp_path, "ids": ids, "y": y, "folds": folds, "run": run, "n": n}


def test_efficiency_at_fpr_counts_signals_above_the_noise_quantile():
    from g2res.ensemble.metrics import threshold_at_fpr

    noise = np.arange(100.0)  # FAP 1e-2 of 100 noise samples: one may lie above -> t = 98
    signal = np.array([97.5, 98.0, 98.5, 200.0])
    y = np.r_[np.zeros(100), np.ones(4)]
    s = np.r_[noise, signal]
    assert efficiency_at_fpr(y, s, 1e-2) == 0.5  # 98.5 and 200 are strictly above 98
    assert efficiency_at_fpr(y, s, 2e-2) == 1.0  # two noise above -> t = 97
    assert efficiency_at_fpr(y, s, 0.0) == 0.25  # above the loudest noise only
    # Same threshold as the metrics module's for probabilities.
    p = s / 201
    t = threshold_at_fpr(y, p, 1e-2)
    assert efficiency_at_fpr(y, p, 1e-2) == np.mean(p[y == 1] > t)
    assert np.isnan(efficiency_at_fpr(np.zeros(5), np.arange(5.0)))


def test_stacking_never_sees_the_labels_of_the_fold_it_predicts(oof_set, rng, monkeypatch):
    """Two runs whose OOF predictions are pure noise, unrelated to the labels.

    A gradient-boosted stacker fitted on rows that include the fold it predicts
    memorises those rows' labels from the random per-row values (AUC ~0.9 here);
    fitted on the other folds only it cannot beat chance: 600 rows give an AUC
    standard deviation of ~0.024 around 0.5, so 0.65 is > 6 sigma away.
    """
    n = oof_set["n"]
    paths = [oof_set["run"](name, rng.uniform(size=n)) for name in ("a", "b")]
    for kind in ("hgb", "logistic"):
        cv = fit_stack(paths, ["a", "b"], kind, test_ids=[]).cv
        assert cv["stack"]["auc"] < 0.65, f"{kind} stacker leaks labels: {cv['stack']}"
        assert cv["inputs"]["a"]["auc"] < 0.65

    # The same code with the fold's own rows in its training set: the leak shows.
    monkeypatch.setattr(stacking, "_train_rows", lambda folds, k: np.ones(len(folds), bool))
    leaky = fit_stack(paths, ["a", "b"], "hgb", test_ids=[]).cv
    assert leaky["stack"]["auc"] > 0.65, leaky["stack"]


def test_stack_of_two_informative_runs_and_a_statistic_beats_each(oof_set, rng):
    """Each run sees the label through its own independent noise; so does an SNR-like
    statistic. Together they are better than any one, by far more than the noise."""
    y, n = oof_set["y"], oof_set["n"]
    p_a = 1 / (1 + np.exp(-(1.2 * y + rng.normal(size=n))))
    p_b = 1 / (1 + np.exp(-(1.2 * y + rng.normal(size=n))))
    snr = 6 + 1.2 * y + rng.normal(size=n)
    paths = [oof_set["run"]("a", p_a), oof_set["run"]("b", p_b)]
    d = oof_set["dir"]
    test_ids = random_ids(rng, 50)
    pd.DataFrame({"id": oof_set["ids"], "snr": snr}).to_csv(d / "mf_train.raw.csv", index=False)
    pd.DataFrame({"id": test_ids, "snr": rng.normal(6, 1, 50)}).to_csv(
        d / "mf_test.csv", index=False
    )
    for kind in ("logistic", "hgb"):
        two = fit_stack(paths, ["a", "b"], kind, test_ids=test_ids).cv
        best = max(two["inputs"][k]["auc"] for k in ("a", "b"))
        assert two["stack"]["auc"] > best + 0.03, (kind, two)
        three = fit_stack(
            paths,
            ["a", "b"],
            kind,
            {"mf": d / "mf_train.raw.csv"},
            {"mf": d / "mf_test.csv"},
            test_ids=test_ids,
        )
        assert three.cv["stack"]["auc"] > two["stack"]["auc"] + 0.01, (kind, three.cv)
        assert three.cv["inputs"]["mf"]["auc"] == pytest.approx(roc_auc_score(y, snr))
        assert three.inputs[-1]["column"] == "snr" and three.inputs[-1]["transform"] == "identity"
        assert three.predict(rng.uniform(size=(50, 2))).shape == (50,)
    # Logistic weights on the raw features: ~equal for the two symmetric runs.
    coef, _ = fit_stack(paths, ["a", "b"], test_ids=[]).coefficients()
    assert coef["a"] == pytest.approx(coef["b"], rel=0.3) and coef["a"] > 0.3


def test_bad_stacking_inputs_are_named_errors(oof_set, rng):
    d, n, ids = oof_set["dir"], oof_set["n"], oof_set["ids"]
    a = oof_set["run"]("a", rng.uniform(size=n))
    test_ids = random_ids(rng, 20)
    good_test = d / "s_test.csv"
    pd.DataFrame({"id": test_ids, "score": rng.normal(size=20)}).to_csv(good_test, index=False)
    good_train = d / "s_train.csv"
    pd.DataFrame({"id": ids, "score": rng.normal(size=n)}).to_csv(good_train, index=False)

    def fit(paths=(a,), train=None, test=None, **kw):
        kw.setdefault("test_ids", test_ids)
        return fit_stack(list(paths), [p.parent.name for p in paths], "logistic", train, test, **kw)

    # Runs with other folds, other ids.
    other_folds = np.roll(oof_set["folds"], 1)
    b = oof_set["run"]("b", rng.uniform(size=n), fold=other_folds)
    with pytest.raises(ValueError, match=rf"{b}.*different folds.*same cv.folds"):
        fit([a, b])
    c = oof_set["run"]("c", rng.uniform(size=n - 1), rows=slice(1, None))
    with pytest.raises(ValueError, match=rf"{c}.*lacks 1 id.*{ids[0]}"):
        fit([a, c])
    # folds.csv of a run disagreeing with its oof.csv.
    pd.DataFrame({"id": ids, "target": oof_set["y"], "fold": other_folds}).to_csv(
        a.parent / "folds.csv", index=False
    )
    with pytest.raises(ValueError, match="disagree on the fold"):
        fit()
    (a.parent / "folds.csv").unlink()

    # A statistic for one split only.
    with pytest.raises(ValueError, match="statistic s has test scores.*no train scores"):
        fit(test={"s": good_test})
    with pytest.raises(ValueError, match="statistic s has train scores.*no test scores"):
        fit(train={"s": good_train})
    # Train ids not those of the OOF rows.
    short = d / "short.csv"
    pd.read_csv(good_train, dtype={"id": str}).iloc[1:].to_csv(short, index=False)
    with pytest.raises(ValueError, match=rf"{short}.*lacks 1 id.*{ids[0]}"):
        fit(train={"s": short}, test={"s": good_test})
    # Test ids outside the sample submission, or lacking a predicted id.
    with pytest.raises(ValueError, match=rf"{good_test}: 20 id.*not in the sample submission"):
        fit(train={"s": good_train}, test={"s": good_test}, sample_ids=random_ids(rng, 20))
    with pytest.raises(ValueError, match=rf"{good_test}: lacks 1 predicted test id"):
        fit(train={"s": good_train}, test={"s": good_test}, test_ids=[*test_ids, "zz"])
    # NaN / inf / text in a statistic.
    for bad in ("nan", "inf", "loud"):
        f = d / f"bad_{bad}.csv"
        f.write_text("id,score\n" + "".join(f"{i},{bad if k == 3 else 1.0}\n" for k, i in
                                            enumerate(ids)))  # fmt: skip
        with pytest.raises(ValueError, match=rf"{f}: 1 score.*NaN, infinite.*{ids[3]}"):
            fit(train={"s": f}, test={"s": good_test})
    # No score column; repeated ids; a name that is also a run's.
    f = d / "two.csv"
    pd.DataFrame({"id": ids, "x": 1.0, "z": 2.0}).to_csv(f, index=False)
    with pytest.raises(ValueError, match=rf"{f}: no score column"):
        fit(train={"s": f}, test={"s": good_test})
    f = d / "dup.csv"
    pd.DataFrame({"id": [*ids, ids[0]], "score": 1.0}).to_csv(f, index=False)
    with pytest.raises(ValueError, match=rf"{f}: 1 id.*repeated"):
        fit(train={"s": f}, test={"s": good_test})
    with pytest.raises(ValueError, match="also the name of a run"):
        fit(train={"a": good_train}, test={"a": good_test})
    with pytest.raises(ValueError, match="NAME=FILE"):
        stacking.parse_named_files(["mf"], "--stat-train")
    with pytest.raises(ValueError, match="unknown stacker"):
        fit_stack([a], ["a"], "forest")


# ------------------------------------------------------------------ g2res submit --stack
@pytest.fixture
def two_runs(tmp_path, rng):
    a = make_energy_run(tmp_path / "runs", "a", (1.0, 1.0, 0.0), rng)
    b = make_energy_run(tmp_path / "runs", "b", (0.0, 1.0, 1.0), rng)
    return a, b


def test_submit_stack_end_to_end(two_runs, fake_cache, tmp_path, rng, monkeypatch, capsys):
    from g2res import cli
    from g2res.ensemble import predict
    from g2res.ensemble.submit import submit

    monkeypatch.setattr(predict, "load_checkpoint_model", load_fake)
    oof_ids = pd.read_csv(two_runs[0] / "oof.csv", dtype={"id": str})["id"]
    # A weak extra statistic (the cache's test labels plus a lot of noise).
    truth = dict(zip(fake_cache["ids"], fake_cache["y"]))
    y_oof = pd.read_csv(two_runs[0] / "oof.csv")["target"].to_numpy()
    stat_train, stat_test = tmp_path / "stat_train.csv", tmp_path / "stat_test.csv"
    pd.DataFrame({"id": oof_ids, "score": y_oof + rng.normal(0, 2, len(y_oof))}).to_csv(
        stat_train, index=False
    )
    y_test = np.array([truth[i] for i in fake_cache["ids"]])
    pd.DataFrame({"id": fake_cache["ids"], "score": y_test + rng.normal(0, 2, len(y_test))}).to_csv(
        stat_test, index=False
    )
    out = tmp_path / "sub.csv"
    argv = ["submit", *map(str, two_runs), "--cache", str(fake_cache["cache"]), "--out", str(out)]
    argv += ["--tta", "--device", "cpu", "-q", "--stack"]
    argv += ["--stat-train", f"mf={stat_train}", "--stat-test", f"mf={stat_test}"]
    assert cli.main([*argv, "--json", str(tmp_path / "s.json")]) == 0
    printed = capsys.readouterr().out
    assert "stack (logistic, CV)" in printed and "eff@FAP 0.01" in printed
    assert "standardised per fold" in printed  # the runs' OOF figures are fold-scaled ones
    sample = read_sample_submission(fake_cache["data"] / "sample_submission.csv")
    sub = read_submission(out, sample)
    assert roc_auc_score([truth[i] for i in sub["id"]], sub["target"]) > 0.75

    # The saved coefficients reproduce the submission from the single runs' predictions.
    saved = json.loads((tmp_path / "sub.stack.json").read_text())
    assert [i["name"] for i in saved["inputs"]] == ["a", "b", "mf"]
    assert saved["cv"]["stack"]["auc"] > 0.5 and set(saved["cv"]["inputs"]) == {"a", "b", "mf"}
    # By default each fold model's logits are standardised by its fold's OOF median and IQR.
    from g2res.data.cache import Cache
    from g2res.ensemble.predict import find_run, predict_run_folds

    cache = Cache(fake_cache["cache"])
    order = pd.Series(range(len(cache.ids("test"))), index=cache.ids("test")).loc[sub["id"]]
    z = np.full(len(sub), saved["intercept"])
    for run, entry in zip(two_runs, saved["inputs"]):
        found = find_run(run)
        folds = predict_run_folds(found, cache.array("test"), [], device="cpu", progress=False,
                                  load_model=load_fake)[:, order.to_numpy()]  # fmt: skip
        oof = pd.read_csv(run / "oof.csv")
        feature = 0.0
        for k, p_k in zip(found.checkpoints, folds):
            scale = entry["fold_scale"][str(k)]
            assert scale["median"] == pytest.approx(
                np.median(logit(oof["prediction"][oof["fold"] == k]))
            )
            feature = feature + (logit(p_k) - scale["median"]) / scale["iqr"] / len(folds)
        z += saved["coefficients"][run.name] * feature
    stat = pd.read_csv(stat_test, dtype={"id": str}).set_index("id").loc[sub["id"], "score"]
    z += saved["coefficients"]["mf"] * stat.to_numpy()
    np.testing.assert_allclose(sub["target"], 1 / (1 + np.exp(-z)), rtol=1e-6, atol=1e-9)
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["method"] == "stack:logistic" and summary["stack"]["stacker"] == "logistic"

    # --no-stack-fold-scale: the raw logits of the runs' mean probabilities.
    raw = tmp_path / "raw.csv"
    assert cli.main([*argv[:6], str(raw), *argv[7:], "--no-stack-fold-scale"]) == 0
    saved = json.loads((tmp_path / "raw.stack.json").read_text())
    assert all("fold_scale" not in i for i in saved["inputs"])
    kw = dict(tta=[], device="cpu", progress=False, load_model=load_fake, log=None)
    z = np.full(len(sub), saved["intercept"])
    for run in two_runs:
        single = tmp_path / f"{run.name}.csv"
        submit([run], fake_cache["cache"], single, **kw)
        z += saved["coefficients"][run.name] * logit(pd.read_csv(single)["target"].to_numpy())
    z += saved["coefficients"]["mf"] * stat.to_numpy()
    got = read_submission(raw, sample)["target"]
    np.testing.assert_allclose(got, 1 / (1 + np.exp(-z)), rtol=1e-6, atol=1e-9)

    # Existing outputs need --force; hgb writes its settings; bad combinations are refused.
    out.unlink()
    assert cli.main(argv) == 1 and "sub.stack.json already exists" in capsys.readouterr().err
    assert cli.main([*argv[:-4], "hgb", "--force", "--seed", "3"]) == 0
    saved = json.loads((tmp_path / "sub.stack.json").read_text())
    assert saved["stacker"] == "hgb" and saved["seed"] == 3 and "refit" in saved
    with pytest.raises(SystemExit):
        cli.main([*argv, "--fit-weights"])
    assert cli.main([*argv[:-5], "--stat-test", f"mf={stat_test}", "--force"]) == 1
    assert "inputs of --stack only" in capsys.readouterr().err
    (two_runs[1] / "oof.csv").unlink()
    assert cli.main([*argv, "--force"]) == 1
    assert "--stack needs out-of-fold predictions" in capsys.readouterr().err


def test_fold_scaling_undoes_folds_calibrated_apart(oof_set, rng):
    """One run whose fold 0 model puts every logit 8 higher (and 3x wider) than the other
    folds': each fold ranks as well as the others, but the pooled OOF logits do not. The
    fold-scaled stacker sees through it on the OOF rows and on test predictions made with
    the same miscalibrated fold model; the plain one does not."""
    y, folds = oof_set["y"], oof_set["folds"]

    def miscalibrated(labels, fold_zero):
        z = 1.5 * (2 * labels - 1) + rng.normal(size=len(labels))
        z = np.where(fold_zero, 3 * z + 8, z)
        return 1 / (1 + np.exp(-z))

    path = oof_set["run"]("shifted", miscalibrated(y, folds == 0))
    oof = pd.read_csv(path)["prediction"].to_numpy()
    within = np.mean([roc_auc_score(y[folds == k], oof[folds == k]) for k in range(5)])
    pooled = roc_auc_score(y, oof)
    assert pooled < within - 0.05  # the pooled OOF ranking is blurred
    plain = fit_stack([path], ["shifted"], test_ids=[])
    scaled = fit_stack([path], ["shifted"], test_ids=[], fold_scale=True)
    assert scaled.cv["stack"]["auc"] == pytest.approx(within, abs=0.02)
    assert scaled.cv["stack"]["auc"] > plain.cv["stack"]["auc"] + 0.04
    # Test predictions of the five fold models, fold 0's miscalibrated as on its OOF rows.
    y_test = (rng.uniform(size=400) < 0.5).astype(np.int64)
    per_fold = {k: miscalibrated(y_test, np.full(400, k == 0)) for k in range(5)}
    p = scaled.predict_folds([per_fold])
    assert roc_auc_score(y_test, p) > 0.93
    with pytest.raises(ValueError, match="folds"):
        scaled.predict(np.mean(list(per_fold.values()), axis=0)[:, None])
    with pytest.raises(ValueError, match=r"folds \[0, 1, 2, 3\]"):
        scaled.predict_folds([{k: v for k, v in per_fold.items() if k != 4}])
    # The saved stacker applied to the same fold predictions gives the same numbers.
    doc = scaled.to_json()
    assert set(doc["inputs"][0]["fold_scale"]) == {"0", "1", "2", "3", "4"}
    np.testing.assert_allclose(stacking.apply_saved_stack(doc, {"shifted": per_fold}), p,
                               rtol=1e-9, atol=1e-12)  # fmt: skip
    with pytest.raises(ValueError, match="fold-scaled"):
        stacking.apply_saved_stack(doc, {"shifted": per_fold[0]})


def test_a_saved_logistic_stacker_applied_to_new_data_predicts_as_fitted(oof_set, rng):
    """apply_saved_stack on the saved JSON gives the fitted stacker's own test
    probabilities (runs' probabilities and the raw statistic in, same transforms), and
    refuses missing inputs, NaN scores and hgb stackers by name."""
    y, n, d = oof_set["y"], oof_set["n"], oof_set["dir"]
    p_a = 1 / (1 + np.exp(-(1.2 * y + rng.normal(size=n))))
    snr = 6 + 1.2 * y + rng.normal(size=n)
    test_ids = random_ids(rng, 40)
    test_snr, test_p = rng.normal(6, 1, 40), rng.uniform(0.01, 0.99, 40)
    pd.DataFrame({"id": oof_set["ids"], "snr": snr}).to_csv(d / "mf_train.raw.csv", index=False)
    pd.DataFrame({"id": test_ids, "snr": test_snr}).to_csv(d / "mf_test.raw.csv", index=False)
    fitted = fit_stack(
        [oof_set["run"]("a", p_a)], ["a"], "logistic",
        {"mf": d / "mf_train.raw.csv"}, {"mf": d / "mf_test.raw.csv"}, test_ids=test_ids,
    )  # fmt: skip
    saved = fitted.save(d / "s.stack.json")
    got = stacking.apply_saved_stack(saved, {"a": test_p, "mf": test_snr})
    np.testing.assert_allclose(got, fitted.predict(test_p[:, None]), rtol=1e-9, atol=1e-12)
    assert roc_auc_score(y, stacking.apply_saved_stack(saved, {"a": p_a, "mf": snr})) > 0.85
    with pytest.raises(ValueError, match="missing \\['mf'\\]"):
        stacking.apply_saved_stack(saved, {"a": test_p})
    with pytest.raises(ValueError, match="input mf: .*NaN"):
        stacking.apply_saved_stack(saved, {"a": test_p, "mf": np.full(40, np.nan)})
    with pytest.raises(ValueError, match="only a saved logistic"):
        stacking.apply_saved_stack({**fitted.to_json(), "stacker": "hgb"}, {})
