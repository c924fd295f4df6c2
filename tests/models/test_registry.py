"""Registry: names, every registered model trains a step at tiny size, timm backbones."""

from __future__ import annotations

import pytest
import torch

from g2res.config import ModelConfig
from g2res.models import build_model, create_model, is_model, list_models

REQUIRED = [
    "resnet16",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnet1d_18",
    "resnet1d_34",
    "resnet1d_50",
    "resnet1d_audio",
]


def test_required_names_are_registered():
    assert set(REQUIRED) <= set(list_models())
    assert list_models() == sorted(list_models())
    assert is_model("timm:efficientnet_b0") and not is_model("timm:no_such_net")


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_forward_backward(name):
    """Through build_model: front-end -> backbone -> head gives (batch, 1) and gradients."""
    torch.manual_seed(0)
    is_1d = name.startswith("resnet1d")
    frontend = {"name": "identity"} if is_1d else {"name": "cqt", "hop_length": 64}
    backbone = {"name": name, "base_width": 4}
    if name == "resnet1d_audio":
        backbone["in_chans"] = 3
    model = build_model(ModelConfig(frontend=frontend, backbone=backbone), n_time=2048)
    x = torch.randn(2, 3, 2048)
    y = model(x)
    assert y.shape == (2, 1) and torch.isfinite(y).all()
    y.sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("timm_name", ["efficientnet_b0", "resnet18"])
def test_timm_backbone_by_name(timm_name):
    model = build_model(ModelConfig(backbone={"name": f"timm:{timm_name}"}), n_time=2048)
    y = model(torch.randn(2, 3, 2048))
    assert y.shape == (2, 1)
    y.sum().backward()
    stages = model.backbone.stages
    assert len(stages) >= 2
    in_stages = sum(p.numel() for s in stages for p in s.parameters())
    assert in_stages == sum(p.numel() for p in model.backbone.parameters())


def test_timm_pretrained_from_local_file_adapts_first_conv(tmp_path):
    import timm

    torch.manual_seed(0)
    ref = timm.create_model("resnet18", pretrained=False, num_classes=1000)
    path = tmp_path / "timm_resnet18.pth"
    torch.save({"state_dict": ref.state_dict()}, path)
    mono = create_model("timm:resnet18", pretrained=str(path), in_chans=1).eval()
    ref.reset_classifier(0)
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(
            mono(x), ref.eval()(x.expand(-1, 3, -1, -1)), rtol=1e-4, atol=1e-5
        )


def test_unknown_names_raise_clearly():
    with pytest.raises(ValueError, match="did you mean 'resnet18'"):
        create_model("resnet81")
    with pytest.raises(ValueError, match="timm has no model 'nope'"):
        create_model("timm:nope")
    with pytest.raises(TypeError, match="model 'resnet18'"):
        create_model("resnet18", wdith=4)
