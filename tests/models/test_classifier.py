"""Classifier/build_model: pairing checks, heads, freezing, parameter groups."""

from __future__ import annotations

import pytest
import torch

from g2res.config import ModelConfig
from g2res.models import Classifier, build_model
from g2res.models.heads import MLPHead

N = 2048


def _tiny(**kwargs) -> Classifier:
    cfg = dict(frontend={"name": "cqt"}, backbone={"name": "resnet18", "base_width": 4})
    return build_model(ModelConfig(**{**cfg, **kwargs}), n_time=N)


def test_default_recipe_builds_cqt_resnet18():
    model = build_model(ModelConfig())
    assert model.is_2d and type(model.backbone).__name__ == "ResNet"
    assert model.backbone.num_features == 512
    assert model(torch.randn(2, 3, 4096)).shape == (2, 1)


def test_mismatched_front_end_and_backbone_name_both():
    with pytest.raises(ValueError, match="'identity'.*'resnet18'"):
        build_model(ModelConfig(frontend={"name": "identity"}))
    with pytest.raises(ValueError, match="'stft'.*'resnet1d_18'"):
        build_model(ModelConfig(frontend={"name": "stft"}, backbone={"name": "resnet1d_18"}))
    with pytest.raises(ValueError, match="3 channels.*in_chans=1"):
        build_model(
            ModelConfig(
                frontend={"name": "identity"}, backbone={"name": "resnet1d_18", "in_chans": 1}
            )
        )


def test_mlp_head_from_config():
    model = _tiny(head={"name": "mlp", "hidden": [16, 8], "dropout": 0.3})
    linears = [m for m in model.head if isinstance(m, torch.nn.Linear)]
    assert isinstance(model.head, MLPHead)
    assert [(m.in_features, m.out_features) for m in linears] == [(32, 16), (16, 8), (8, 1)]
    assert model(torch.randn(2, 3, N)).shape == (2, 1)


def _step(model: Classifier) -> None:
    opt = torch.optim.AdamW(model.param_groups(lr=0.1, weight_decay=0.01))
    model.train()
    x = torch.randn(4, 3, N, generator=torch.Generator().manual_seed(0))
    model(x).square().mean().backward()
    opt.step()


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_freeze_backbone_keeps_weights_and_batchnorm_statistics():
    model = _tiny(freeze="backbone")
    before, head_before = _snapshot(model.backbone), _snapshot(model.head)
    _step(model)
    after = model.backbone.state_dict()
    # Weights and BatchNorm running statistics alike: frozen BNs stay in eval mode.
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not torch.equal(head_before["0.weight"], model.head.state_dict()["0.weight"])
    bns = [m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns) and model.head.training


def test_freeze_first_stages_only():
    model = _tiny(freeze=2)  # stem and layer1
    stages = model.backbone.stages
    before = [_snapshot(s) for s in stages]
    _step(model)
    unchanged = [
        all(torch.equal(b[k], s.state_dict()[k]) for k in b) for b, s in zip(before, stages)
    ]
    assert unchanged == [True, True, False, False, False]
    model.freeze(None)
    assert all(p.requires_grad for p in model.parameters())


def test_freeze_out_of_range_raises():
    with pytest.raises(ValueError, match="has 5 stages"):
        _tiny(freeze=9)


def test_param_groups_split_lrs_and_weight_decay():
    model = _tiny(freeze=1)
    groups = model.param_groups(lr=1e-3, backbone_lr=1e-4, weight_decay=0.05)
    by_name = {g["name"]: g for g in groups}
    assert by_name["head"]["lr"] == 1e-3 and by_name["backbone"]["lr"] == 1e-4
    assert by_name["backbone_no_decay"]["weight_decay"] == 0.0
    assert by_name["backbone"]["weight_decay"] == 0.05
    assert all(p.ndim > 1 for p in by_name["backbone"]["params"])
    assert all(p.ndim <= 1 for p in by_name["backbone_no_decay"]["params"])
    grouped = [p for g in groups for p in g["params"]]
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert len(grouped) == len(set(map(id, grouped))) == len(trainable)
    torch.optim.AdamW(groups)  # accepted as is


def test_front_end_buffers_follow_the_model():
    model = _tiny()
    names = dict(model.named_buffers())
    assert any(n.startswith("frontend.") for n in names)
    model.double()
    assert model.frontend.noise_power.dtype == torch.float64


@pytest.mark.gpu
def test_runs_on_cuda():
    model = _tiny().cuda()
    assert model(torch.randn(2, 3, N, device="cuda")).shape == (2, 1)
