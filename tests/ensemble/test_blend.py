"""Blending runs and the whole `submit` step on hand-made runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import load_fake, make_energy_run
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score

from g2res.ensemble.blend import (
    align_oof,
    blend,
    fit_weights,
    oof_report,
    rank_normalise,
    read_oof,
)
from g2res.ensemble.submission import read_sample_submission, read_submission
from g2res.ensemble.submit import submit


def test_mean_and_rank_blends(rng):
    p = rng.uniform(size=(50, 3))
    np.testing.assert_allclose(blend(p), p.mean(1))
    np.testing.assert_allclose(blend(p, weights=[2, 1, 1]), p @ [0.5, 0.25, 0.25])
    r = blend(p, "rank")
    np.testing.assert_allclose(r, np.mean([rankdata(p[:, k]) for k in range(3)], 0) / 50)
    assert r.min() > 0 and r.max() <= 1
    # A rank blend of monotone transforms of one score keeps that score's order.
    q = np.stack([p[:, 0], p[:, 0] ** 3, np.sqrt(p[:, 0])], 1)
    np.testing.assert_array_equal(rankdata(blend(q, "rank")), rankdata(p[:, 0]))
    np.testing.assert_allclose(rank_normalise(p[:, 0]), rankdata(p[:, 0]) / 50)
    with pytest.raises(ValueError, match="2 weights given for 3 runs"):
        blend(p, weights=[1, 1])
    with pytest.raises(ValueError, match="non-negative"):
        blend(p, weights=[1, -1, 1])
    with pytest.raises(ValueError, match="unknown blend 'median'"):
        blend(p, "median")


def test_fitted_weights_find_the_informative_run(rng):
    n = 2000
    y = rng.integers(0, 2, n)
    good = y + rng.normal(0, 0.7, n)
    noise = rng.normal(0, 1, n)
    p = np.stack([noise, good, 0.5 * good + noise], 1)
    w = fit_weights(y, p)
    assert w.sum() == pytest.approx(1) and (w >= 0).all()
    assert w[1] > 0.8, f"weights {w} should favour the informative run"
    blended = roc_auc_score(y, p @ w)
    assert blended >= max(roc_auc_score(y, p[:, k]) for k in range(3)) - 1e-12
    assert blended >= roc_auc_score(y, p.mean(1)) - 1e-12


def test_two_independent_views_blend_better_than_either(rng):
    n = 3000
    y = rng.integers(0, 2, n)
    a = y + rng.normal(0, 1, n)
    b = y + rng.normal(0, 1, n)
    rep = oof_report(y, np.stack([a, b], 1), ["a", "b"])
    # Averaging two independent noisy views: sqrt(2) more separation, a real gain.
    assert rep["blend"] > max(rep["runs"].values()) + 0.02
    assert rep["weights"] == {"a": 0.5, "b": 0.5}


def _oof(ids, y, pred, fold):
    return pd.DataFrame({"id": ids, "target": y, "prediction": pred, "fold": fold})


def test_oof_alignment_by_id_and_refusals(rng):
    ids = [f"{i:04x}" for i in range(10)]
    y = rng.integers(0, 2, 10)
    fold = np.arange(10) % 2
    a = _oof(ids, y, rng.uniform(size=10), fold)
    b = a.assign(prediction=rng.uniform(size=10)).sample(frac=1, random_state=1)  # shuffled
    got_ids, got_y, p = align_oof([a, b], ["a", "b"])
    back = dict(zip(b["id"], b["prediction"]))
    np.testing.assert_array_equal(p[:, 1], [back[i] for i in got_ids])
    np.testing.assert_array_equal(got_y, [dict(zip(ids, y))[i] for i in got_ids])

    with pytest.raises(ValueError, match="different ids"):
        align_oof([a, b.iloc[1:]], ["a", "b"])
    with pytest.raises(ValueError, match="different folds"):
        align_oof([a, b.assign(fold=1 - b["fold"])], ["a", "b"])
    with pytest.raises(ValueError, match="disagree on the targets"):
        align_oof([a, b.assign(target=1 - b["target"])], ["a", "b"])


def test_read_oof_refuses_incomplete_files(tmp_path):
    (tmp_path / "oof.csv").write_text("id,target,prediction\n00a,1,0.3\n")
    with pytest.raises(ValueError, match=r"oof.csv: missing column.*fold"):
        read_oof(tmp_path / "oof.csv")
    (tmp_path / "oof.csv").write_text("id,target,prediction,fold\n00a,1,nan,0\n")
    with pytest.raises(ValueError, match="not finite"):
        read_oof(tmp_path / "oof.csv")


# ------------------------------------------------------------------ submit on two tiny runs
@pytest.fixture
def two_runs(tmp_path, rng):
    # Run a listens to H1 and L1, run b to L1 and V1: partly independent evidence.
    a = make_energy_run(tmp_path / "runs", "a", (1.0, 1.0, 0.0), rng)
    b = make_energy_run(tmp_path / "runs", "b", (0.0, 1.0, 1.0), rng)
    return a, b


@pytest.mark.parametrize("method", ["mean", "rank"])
def test_ensemble_of_two_runs_writes_a_valid_submission(two_runs, fake_cache, tmp_path, method):
    out = tmp_path / "submission.csv"
    summary = submit(
        two_runs,
        fake_cache["cache"],
        out,
        method=method,
        tta=["swap_h1l1", "sign_flip"],
        device="cpu",
        progress=False,
        load_model=load_fake,
        log=None,
    )
    sample = read_sample_submission(fake_cache["data"] / "sample_submission.csv")
    sub = read_submission(out, sample)  # validates ids, order, range
    assert list(sub["id"]) == fake_cache["ids"]
    truth = dict(zip(fake_cache["ids"], fake_cache["y"]))
    test_auc = roc_auc_score([truth[i] for i in sub["id"]], sub["target"])
    assert test_auc > 0.75, f"test AUC {test_auc}"
    oof = summary["oof"]
    assert set(oof["runs"]) == {"a", "b"}
    assert oof["blend"] >= max(oof["runs"].values()) - 0.01
    assert summary["tta"] == ["identity", "swap_h1l1", "sign_flip"]
    assert summary["n_test"] == len(fake_cache["ids"]) and summary["n_filled"] == 0


def test_submit_blend_equals_the_mean_of_single_run_submissions(two_runs, fake_cache, tmp_path):
    kw = dict(device="cpu", progress=False, load_model=load_fake, log=None)
    singles = []
    for run in two_runs:
        submit([run], fake_cache["cache"], tmp_path / f"{run.name}.csv", **kw)
        singles.append(pd.read_csv(tmp_path / f"{run.name}.csv")["target"].to_numpy())
    submit(two_runs, fake_cache["cache"], tmp_path / "w.csv", weights=[3, 1], **kw)
    got = pd.read_csv(tmp_path / "w.csv")["target"].to_numpy()
    np.testing.assert_allclose(got, 0.75 * singles[0] + 0.25 * singles[1], rtol=1e-12)


def test_fit_weights_reports_oof_auc_not_worse_than_each_run(two_runs, fake_cache, tmp_path):
    summary = submit(
        two_runs,
        fake_cache["cache"],
        tmp_path / "s.csv",
        fit_weights=True,
        device="cpu",
        progress=False,
        load_model=load_fake,
        log=None,
    )
    oof = summary["oof"]
    assert oof["blend"] >= max(oof["runs"].values())
    assert sum(summary["weights"].values()) == pytest.approx(1)


def test_submit_refuses_before_predicting(two_runs, fake_cache, tmp_path):
    kw = dict(device="cpu", progress=False, load_model=load_fake, log=None)
    out = tmp_path / "s.csv"
    out.write_text("keep me\n")
    with pytest.raises(FileExistsError, match="--force"):
        submit(two_runs, fake_cache["cache"], out, **kw)
    assert out.read_text() == "keep me\n"

    # A test file dropped by preprocess --skip-bad: refused unless --fill-missing.
    cache = fake_cache["cache"]
    ids = (cache / "test_ids.txt").read_text().split()
    x = np.load(cache / "test.npy")
    np.save(cache / "test.npy", x[1:])
    (cache / "test_ids.txt").write_text("\n".join(ids[1:]) + "\n")
    with pytest.raises(ValueError, match=f"1 id.*{ids[0]}.*--fill-missing"):
        submit(two_runs, cache, tmp_path / "t.csv", **kw)
    assert not (tmp_path / "t.csv").exists()
    summary = submit(two_runs, cache, tmp_path / "t.csv", fill_missing=0.5, **kw)
    assert summary["n_filled"] == 1
    sub = pd.read_csv(tmp_path / "t.csv", dtype={"id": str}).set_index("id")
    assert sub.loc[ids[0], "target"] == 0.5

    with pytest.raises(ValueError, match="either weights or fit_weights"):
        submit(two_runs, cache, tmp_path / "u.csv", weights=[1, 1], fit_weights=True, **kw)
    with pytest.raises(ValueError, match="unknown test-time augmentation"):
        submit(two_runs, cache, tmp_path / "u.csv", tta=["mirror"], **kw)
    (two_runs[1] / "oof.csv").unlink()
    with pytest.raises(FileNotFoundError, match="--fit-weights needs"):
        submit(two_runs, cache, tmp_path / "u.csv", fit_weights=True, fill_missing=0.5, **kw)


def test_submit_command_line(two_runs, fake_cache, tmp_path, monkeypatch, capsys):
    from g2res import cli
    from g2res.ensemble import predict

    monkeypatch.setattr(predict, "load_checkpoint_model", load_fake)
    out = tmp_path / "sub.csv"
    argv = ["submit", *map(str, two_runs), "--cache", str(fake_cache["cache"]), "--out", str(out)]
    argv += ["--tta", "swap_h1l1", "--fit-weights", "--device", "cpu", "-q"]
    assert cli.main([*argv, "--json", str(tmp_path / "s.json")]) == 0
    printed = capsys.readouterr().out
    assert "OOF AUC a:" in printed and "OOF AUC of the fitted-weight blend" in printed
    sample = read_sample_submission(fake_cache["data"] / "sample_submission.csv")
    read_submission(out, sample)
    assert cli.main(argv) == 1  # exists, no --force
    assert "--force" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # --weights and --fit-weights exclude each other
        cli.main([*argv, "--weights", "1", "1"])


def test_submit_command_line_takes_tta_from_the_recipe(
    two_runs, fake_cache, tmp_path, monkeypatch, capsys
):
    import json

    from g2res import cli
    from g2res.ensemble import predict

    monkeypatch.setattr(predict, "load_checkpoint_model", load_fake)
    (two_runs[0] / "config.yaml").write_text("submit:\n  tta: [sign_flip, permute_detectors]\n")
    base = ["submit", *map(str, two_runs), "--cache", str(fake_cache["cache"]), "--device", "cpu"]
    argv = [*base, "--out", str(tmp_path / "a.csv"), "--json", str(tmp_path / "a.json")]
    assert cli.main(argv) == 0
    assert "TTA from the recipe" in capsys.readouterr().out
    per_run = json.loads((tmp_path / "a.json").read_text())["tta_per_run"]
    tta = per_run[two_runs[0].name]
    assert tta[:2] == ["identity", "sign_flip"] and len(tta) == 7  # + the 5 other orders
    assert per_run[two_runs[1].name] == ["identity"]  # its recipe names none
    # --tta alone: the identity only, whatever the recipe says.
    argv = [*base, "--out", str(tmp_path / "b.csv"), "--json", str(tmp_path / "b.json"), "--tta"]
    assert cli.main([*argv, "-q"]) == 0
    assert json.loads((tmp_path / "b.json").read_text())["tta"] == ["identity"]


def test_each_run_keeps_its_own_recipe_tta(two_runs, fake_cache, tmp_path):
    """Without --tta every run is averaged over its own recipe's transforms: a model whose
    detectors may not be swapped (a per-detector bank front-end) stays unswapped when it
    is blended with one that swaps."""
    a, b = two_runs
    (a / "config.yaml").write_text("submit:\n  tta: [swap_h1l1]\n")
    kw = dict(load_model=load_fake, device="cpu", progress=False, log=None)
    both = submit(two_runs, fake_cache["cache"], tmp_path / "ab.csv", **kw)
    assert both["tta"] is None
    assert both["tta_per_run"] == {"a": ["identity", "swap_h1l1"], "b": ["identity"]}
    submit([a], fake_cache["cache"], tmp_path / "a.csv", tta=["swap_h1l1"], **kw)
    only_b = submit([b], fake_cache["cache"], tmp_path / "b.csv", tta=[], **kw)
    swapped_b = submit([b], fake_cache["cache"], tmp_path / "b2.csv", tta=["swap_h1l1"], **kw)
    assert only_b["tta"] == ["identity"]

    def read(name):
        return pd.read_csv(tmp_path / name).set_index("id")["target"]

    expected = (read("a.csv") + read("b.csv")) / 2
    np.testing.assert_allclose(read("ab.csv").loc[expected.index], expected, rtol=1e-6)
    # Run b listens to L1 and V1: swapping H1/L1 changes its output, so the check bites.
    assert np.abs(read("b2.csv") - read("b.csv")).max() > 1e-3
    assert swapped_b["tta_per_run"] == {"b": ["identity", "swap_h1l1"]}
