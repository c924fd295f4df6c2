"""pipelines/regression-resnet50.yaml: the recipe loads, its targets are the physical
quantities of the truth table, and its ResNet-50 gives one output per target."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from g2res.config import load_config

RECIPE = Path(__file__).resolve().parents[1] / "pipelines" / "regression-resnet50.yaml"


def test_recipe_builds_a_resnet50_with_one_output_per_target():
    from g2res.models import ResNet, build_model
    from g2res.train.tasks import Task, task_model_config

    cfg = load_config(RECIPE)
    assert cfg.task == "regression" and cfg.targets == ["chirp_mass", "network_snr"]
    task = Task(cfg)
    assert not task.detect and task.names == ["chirp_mass", "network_snr"]
    model = build_model(task_model_config(cfg), sample_rate=2048.0, n_time=4096).eval()
    assert isinstance(model.backbone, ResNet) and model.is_2d
    n_params = sum(p.numel() for p in model.parameters())
    assert 23e6 < n_params < 26e6, n_params  # a full-width ResNet-50 (23.5 M) + MLP head
    x = torch.randn(2, 3, 4096, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, 2) and torch.isfinite(out).all()


def test_recipe_targets_are_chirp_mass_and_network_snr_of_the_signals(tiny_cache):
    from g2res.data.cache import Cache
    from g2res.train.tasks import regression_targets

    cache = Cache(tiny_cache)
    ids = cache.ids("train")
    cfg = load_config(RECIPE, [f"cache={tiny_cache}"])
    y = regression_targets(cfg, cache, ids)
    truth = pd.read_csv(cache.data_dir / "truth" / "injections.csv", dtype={"id": str})
    truth = truth.set_index("id").loc[ids]
    signal = truth["target"].to_numpy() == 1
    m1, m2 = truth["mass1"].to_numpy(), truth["mass2"].to_numpy()
    mc = (m1 * m2) ** 0.6 / (m1 + m2) ** 0.2
    np.testing.assert_allclose(y[signal, 0], mc[signal])
    np.testing.assert_allclose(y[signal, 1], truth["snr_network"].to_numpy()[signal])
    assert np.isnan(y[~signal]).all()  # samples: positives, noise carries no target
    # the tiny set's injections: SNR 10-20, component masses 7-50 Msun (chirp mass 6-44)
    assert (y[signal, 1] >= 10 - 1e-9).all() and (y[signal, 1] <= 20 + 1e-9).all()
    assert (y[signal, 0] > 6.0).all() and (y[signal, 0] < 44.0).all()
