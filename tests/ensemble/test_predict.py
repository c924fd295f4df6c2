"""Predicting with fold models and test-time augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import AbsSumH1L1, EnergyDetector, RawConv, load_fake, make_split, save_fold
from sklearn.metrics import roc_auc_score

from g2res.ensemble.predict import (
    available_tta,
    find_run,
    predict_array,
    predict_run,
    tta_transforms,
)

TTA = ["swap_h1l1", "sign_flip"]


@pytest.fixture
def batch(rng):
    return make_split(rng, 40, amplitude=2.0)


def test_tta_transforms_do_what_their_names_say(batch):
    x = torch.from_numpy(batch[0])
    table = available_tta()
    assert {"identity", *TTA} <= set(table)
    swapped = table["swap_h1l1"](x)
    torch.testing.assert_close(swapped[:, 0], x[:, 1], rtol=0, atol=0)
    torch.testing.assert_close(swapped[:, 1], x[:, 0], rtol=0, atol=0)
    torch.testing.assert_close(swapped[:, 2], x[:, 2], rtol=0, atol=0)
    torch.testing.assert_close(table["sign_flip"](x), -x, rtol=0, atol=0)


def test_tta_leaves_a_symmetric_model_unchanged(batch):
    torch.manual_seed(0)
    model = AbsSumH1L1()
    plain = predict_array([model], batch[0], progress=False, device="cpu")
    for tta in (["swap_h1l1"], ["sign_flip"], TTA):
        with_tta = predict_array([model], batch[0], tta=tta, progress=False, device="cpu")
        # Averaging identical probabilities: equal up to the last bit of the mean.
        np.testing.assert_allclose(with_tta, plain, rtol=0, atol=1e-15)


def test_tta_changes_an_asymmetric_model_and_equals_the_manual_average(batch):
    torch.manual_seed(0)
    model = RawConv().eval()
    x = batch[0]
    plain = predict_array([model], x, progress=False, device="cpu")[0]
    with_tta = predict_array([model], x, tta=TTA, progress=False, device="cpu")[0]
    assert np.abs(with_tta - plain).max() > 1e-3
    xt = torch.from_numpy(x)
    with torch.no_grad():
        views = [xt, xt[:, [1, 0, 2]], -xt]
        manual = torch.stack([torch.sigmoid(model(v))[:, 0] for v in views]).mean(0)
    np.testing.assert_allclose(with_tta, manual.double().numpy(), rtol=1e-6, atol=1e-7)


def test_permute_detectors_tta_averages_over_all_six_orders(batch):
    x = batch[0]
    chosen = tta_transforms(["swap_h1l1", "permute_detectors", "sign_flip"])
    names = [name for name, _ in chosen]
    assert names[0] == "identity" and names[-1] == "sign_flip" and len(names) == 7
    probe = torch.arange(3.0)[None, :, None]
    orders = {tuple(fn(probe)[0, :, 0].long().tolist()) for _, fn in chosen[:-1]}
    assert len(orders) == 6 and all(sorted(o) == [0, 1, 2] for o in orders)
    # A model that sees only the third channel: under the six orders every detector sits
    # there twice, so the TTA probability is the mean over detectors of its probability.
    v1_only = EnergyDetector((0.0, 0.0, 1.0), 0.5)
    got = predict_array([v1_only], x, tta=["permute_detectors"], progress=False, device="cpu")
    energy = np.log(np.mean(x.astype(np.float64) ** 2, axis=-1))  # (n, 3)
    expected = (1 / (1 + np.exp(-(energy + 0.5)))).mean(axis=1)
    np.testing.assert_allclose(got[0], expected, rtol=1e-5)
    with pytest.raises(ValueError, match="permute_detectors"):
        tta_transforms(["permute"])


def test_prediction_does_not_depend_on_batch_size_and_detects_signals(batch):
    x, y = batch
    models = [EnergyDetector((1.0, 1.0, 1.0), -0.3), EnergyDetector((2.0, 0.5, 0.0))]
    a = predict_array(models, x, batch_size=7, progress=False, device="cpu")
    b = predict_array(models, x, batch_size=64, progress=False, device="cpu")
    assert a.shape == (2, len(x))
    np.testing.assert_allclose(a, b, rtol=1e-6)
    assert ((a >= 0) & (a <= 1)).all()
    assert roc_auc_score(y, a[0]) > 0.9, "an energy detector must find loud bursts"


def test_bad_inputs_are_refused(batch):
    with pytest.raises(ValueError, match="unknown test-time augmentation 'flip'"):
        predict_array([EnergyDetector()], batch[0], tta=["flip"], progress=False)
    with pytest.raises(ValueError, match="shape"):
        predict_array([EnergyDetector()], batch[0][0], progress=False)

    class TwoOutputs(torch.nn.Module):
        def forward(self, x):
            return x[:, :2, 0]

    with pytest.raises(ValueError, match="2 outputs"):
        predict_array([TwoOutputs()], batch[0], progress=False, device="cpu")


def test_run_prediction_is_the_mean_of_its_folds(tmp_path, batch):
    x = batch[0]
    models = [EnergyDetector((1.0, 0.5, 0.2), 0.1), EnergyDetector((0.3, 1.0, 0.0), -0.2)]
    for k, m in enumerate(models):
        save_fold(tmp_path / "run" / f"fold{k}" / "best.pt", m, k, "energy")
    run = find_run(tmp_path / "run")
    assert list(run.checkpoints) == [0, 1]
    got = predict_run(run, x, progress=False, device="cpu", load_model=load_fake)
    want = predict_array(models, x, progress=False, device="cpu").mean(0)
    np.testing.assert_allclose(got, want, rtol=1e-12)

    with pytest.raises(FileNotFoundError, match="no fold<k>/best.pt"):
        find_run(tmp_path)
    (tmp_path / "run" / "fold1" / "best.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="fold 1 of run"):
        predict_run(run, x, progress=False, device="cpu", load_model=load_fake)


@pytest.mark.gpu
def test_cuda_prediction_matches_cpu(batch):
    model = EnergyDetector((1.0, 0.5, 0.2), 0.1)
    cpu = predict_array([model], batch[0], progress=False, device="cpu")
    gpu = predict_array([model], batch[0], progress=False, device="cuda")
    np.testing.assert_allclose(gpu, cpu, atol=2e-3)
