"""The ``residual`` switch of ResNet/ResNet1d: a plain twin is the same network minus
the projection shortcuts and the skip path (He et al. 2016, plain vs residual)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from g2res.config import ModelConfig
from g2res.models import build_model, create_model
from g2res.models.resnet import BasicBlock, Bottleneck
from g2res.models.resnet1d import BasicBlock1d, Bottleneck1d


def _n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _shortcut_params(m: nn.Module) -> int:
    return sum(_n_params(sub) for name, sub in m.named_modules() if name.endswith("downsample"))


@pytest.mark.parametrize(
    "name", ["resnet18", "resnet34", "resnet50", "resnet1d_18", "resnet1d_34", "resnet1d_50"]
)
def test_plain_is_residual_minus_projection_shortcuts(name):
    res = create_model(name, base_width=8)
    plain = create_model(name, base_width=8, residual=False)
    n_short = _shortcut_params(res)
    assert n_short > 0  # every depth has strided stages, hence projections
    assert _n_params(plain) == _n_params(res) - n_short
    assert not any(n.endswith("downsample") and s is not None for n, s in plain.named_modules())
    # Every other weight is there with the same shape, under the same name.
    res_shapes = {k: v.shape for k, v in res.state_dict().items() if ".downsample." not in k}
    assert {k: v.shape for k, v in plain.state_dict().items()} == res_shapes
    assert res.residual and not plain.residual
    assert all(not b.residual for st in plain.stages[1:] for b in st)


BLOCKS = [
    (BasicBlock, "bn2", (2, 8, 9, 9)),
    (Bottleneck, "bn3", (2, 32, 9, 9)),
    (BasicBlock1d, "bn2", (2, 8, 33)),
    (Bottleneck1d, "bn3", (2, 32, 33)),
]


@pytest.mark.parametrize("block, last_bn, shape", BLOCKS)
@pytest.mark.parametrize("zero", ["bn", "conv"])
def test_zeroed_body_residual_passes_input_plain_does_not(block, last_bn, shape, zero):
    torch.manual_seed(0)
    cin = shape[1]
    width = cin // block.expansion
    blocks = {r: block(cin, width, residual=r).eval() for r in (True, False)}
    blocks[False].load_state_dict(blocks[True].state_dict())  # identical bodies
    for b in blocks.values():
        with torch.no_grad():
            if zero == "bn":
                getattr(b, last_bn).weight.zero_()
            else:  # the last conv: eval BN of a zero map gives its bias (0 at init)
                getattr(b, "conv" + last_bn[-1]).weight.zero_()
    x = torch.randn(shape)
    with torch.no_grad():
        y_res, y_plain = blocks[True](x.clone()), blocks[False](x.clone())
    # Residual block outputs relu(x) -- it passes its (post-relu) input on unchanged.
    torch.testing.assert_close(y_res, torch.relu(x))
    xr = torch.relu(x)
    torch.testing.assert_close(blocks[True](xr.clone()), xr)
    # The plain one outputs relu(bias) = 0: the signal is gone.
    assert torch.count_nonzero(y_plain) == 0
    assert not torch.allclose(y_plain, torch.relu(x))


def test_projection_shortcut_passes_projected_input():
    torch.manual_seed(0)
    down = nn.Sequential(nn.Conv2d(8, 16, 1, stride=2, bias=False), nn.BatchNorm2d(16))
    b = BasicBlock(8, 16, stride=2, downsample=down).eval()
    with torch.no_grad():
        b.bn2.weight.zero_()
    x = torch.randn(2, 8, 10, 10)
    with torch.no_grad():
        torch.testing.assert_close(b(x), torch.relu(down(x)))


def test_plain_block_refuses_a_shortcut():
    with pytest.raises(ValueError, match="plain block"):
        BasicBlock(8, 16, stride=2, downsample=nn.Identity(), residual=False)
    with pytest.raises(ValueError, match="plain block"):
        Bottleneck1d(8, 4, downsample=nn.Identity(), residual=False)


def test_plain_resnet18_forward_shape_and_gradients():
    torch.manual_seed(0)
    m = create_model("resnet18", base_width=8, residual=False)
    x = torch.randn(3, 3, 64, 64)
    y = m(x)
    assert y.shape == (3, 64)
    y.sum().backward()
    assert m.conv1.weight.grad is not None and torch.isfinite(m.conv1.weight.grad).all()


def test_recipe_reaches_the_switch():
    cfg = ModelConfig(
        frontend={"name": "identity"},
        backbone={"name": "resnet1d_18", "base_width": 4, "residual": False},
    )
    model = build_model(cfg)
    assert model.backbone.residual is False
    assert _shortcut_params(model.backbone) == 0
    out = model(torch.randn(2, 3, 4096))
    assert out.shape[0] == 2
