"""``model.normalise: mad``: each sample's detector series over its own robust std, so a
drifting noise level is not read as power."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from g2res.config import Config, ModelConfig
from g2res.models import build_model
from g2res.models.checkpoint import load_fold_model, save_checkpoint
from g2res.signal.normalise import RobustNormalise, robust_normalise

N = 4096
TINY = dict(frontend={"name": "cqt"}, backbone={"name": "resnet18", "base_width": 4})


def test_noise_comes_out_at_unit_std_whatever_its_level(rng):
    x = torch.as_tensor(rng.normal(size=(64, 3, N)), dtype=torch.float32)
    level = torch.as_tensor(rng.uniform(0.5, 2.0, size=(64, 3, 1)), dtype=torch.float32)
    y = robust_normalise(x * level)
    std = y.std(dim=-1)
    # 4,096 samples: the MAD-based sigma scatters by ~1.2% around the true one
    assert float((std - 1).abs().max()) < 0.06
    assert float((std - 1).abs().mean()) < 0.015
    # the level is gone: the same noise at any level gives the same output
    torch.testing.assert_close(y, robust_normalise(x), rtol=1e-5, atol=1e-5)


def test_a_loud_glitch_moves_the_level_by_its_share_of_the_duration_only(rng):
    x = torch.as_tensor(rng.normal(size=(1, 3, N)), dtype=torch.float32)
    t = torch.arange(N) / 2048.0
    glitchy = x.clone()
    # a sine-Gaussian of amplitude 30 sigma over ~0.05 s in H1 (SNR ~ 100)
    glitchy[0, 0] += 30 * torch.exp(-(((t - 1.0) / 0.02) ** 2)) * torch.sin(2 * np.pi * 150 * t)
    ratio = robust_normalise(x)[0, 1:] / robust_normalise(glitchy)[0, 1:]
    torch.testing.assert_close(ratio, torch.ones_like(ratio))  # other detectors untouched
    clean, with_glitch = robust_normalise(x)[0, 0, :100], robust_normalise(glitchy)[0, 0, :100]
    # the glitch covers ~3% of the 2 s (|x| > 1 sigma over ~0.06 s): the median moves by
    # about that share, where a plain standard deviation grows 2.5-fold
    assert float((with_glitch / clean).mean()) == pytest.approx(1.0, abs=0.04)
    assert float(glitchy[0, 0].std() / x[0, 0].std()) > 2
    zero = torch.zeros(2, 3, 64)
    torch.testing.assert_close(robust_normalise(zero), zero)  # a zeroed channel stays zero


def test_normalised_model_ignores_each_detectors_level_and_round_trips(tmp_path, rng):
    assert ModelConfig().normalise is None and build_model(ModelConfig(**TINY)).normalise is None
    cfg = Config().replace({**{f"model.{k}": v for k, v in TINY.items()}, "model.normalise": "mad"})
    torch.manual_seed(0)
    model = build_model(cfg.model).eval()
    assert isinstance(model.normalise, RobustNormalise)
    x = torch.as_tensor(rng.normal(size=(4, 3, N)), dtype=torch.float32)
    scale = torch.tensor([1.3, 0.8, 1.15]).view(1, 3, 1)  # a PSD drift of +-30% in level
    with torch.no_grad():
        logits = model(x)
        torch.testing.assert_close(model(x * scale), logits, rtol=1e-4, atol=1e-4)
        plain = build_model(ModelConfig(**TINY)).eval()
        plain.load_state_dict(model.state_dict())  # the same weights without the step
        assert float((plain(x * scale) - plain(x)).abs().max()) > 1e-3
    path = tmp_path / "best.pt"
    save_checkpoint(path, {"model": model.state_dict(), "config": cfg.to_dict(),
                           "sample_rate": 2048.0, "n_time": N})  # fmt: skip
    again, cfg2 = load_fold_model(path)
    assert cfg2.model.normalise == "mad" and isinstance(again.normalise, RobustNormalise)
    with torch.no_grad():
        torch.testing.assert_close(again(x), logits)
    with pytest.raises(ValueError, match="model.normalise 'std'"):
        build_model(ModelConfig(**TINY, normalise="std"))
