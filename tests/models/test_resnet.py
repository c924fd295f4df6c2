"""2D ResNets against torchvision: parameter counts, identical features from the same
weights, first-conv adaptation; tiny forward/backward for every depth."""

from __future__ import annotations

import pytest
import torch
import torchvision

from g2res.models import create_model
from g2res.models.resnet import BasicBlock, Bottleneck

DEPTHS = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]


def _n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("name", DEPTHS)
def test_parameter_count_matches_torchvision(name):
    ref = getattr(torchvision.models, name)(weights=None)
    ref.fc = torch.nn.Identity()  # our backbones end at the pooled features
    ours = create_model(name)
    assert _n_params(ours) == _n_params(ref)
    assert ours.num_features == (512 if name in ("resnet18", "resnet34") else 2048)


def test_resnet16_is_resnet18_minus_one_first_stage_block():
    r16, r18 = create_model("resnet16"), create_model("resnet18")
    assert r16.layers == (1, 2, 2, 2)
    one_block = _n_params(BasicBlock(64, 64))
    assert _n_params(r18) - _n_params(r16) == one_block


def test_torchvision_weights_give_identical_features(tmp_path):
    torch.manual_seed(0)
    ref = torchvision.models.resnet18(weights=None)
    ref.fc = torch.nn.Identity()
    path = tmp_path / "tv_resnet18.pt"
    torch.save(torchvision.models.resnet18(weights=None).state_dict() | ref.state_dict(), path)
    ours = create_model("resnet18", pretrained=str(path)).eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref.eval()(x), rtol=1e-4, atol=1e-5)
    # One input channel: the summed first-conv kernel sees x as 3 identical channels.
    mono = create_model("resnet18", pretrained=str(path), in_chans=1).eval()
    with torch.no_grad():
        torch.testing.assert_close(
            mono(x[:, :1]), ref(x[:, :1].expand(-1, 3, -1, -1)), rtol=1e-4, atol=1e-5
        )


def test_bad_pretrained_files_raise(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        create_model("resnet18", pretrained=str(tmp_path / "missing.pt"))
    other = tmp_path / "other.pt"
    torch.save({"foo.weight": torch.zeros(3)}, other)
    with pytest.raises(ValueError, match="share no parameter names"):
        create_model("resnet18", pretrained=str(other))
    wrong = tmp_path / "wrong.pt"
    torch.save(create_model("resnet18", base_width=8).state_dict(), wrong)
    with pytest.raises(ValueError, match="do not fit"):
        create_model("resnet18", pretrained=str(wrong))


@pytest.mark.parametrize("name", ["resnet16", *DEPTHS])
def test_tiny_forward_backward(name):
    torch.manual_seed(0)
    m = create_model(name, base_width=4)
    expansion = Bottleneck.expansion if name in ("resnet50", "resnet101", "resnet152") else 1
    assert m.num_features == 4 * 8 * expansion
    x = torch.randn(2, 3, 38, 65)
    y = m(x)
    assert y.shape == (2, m.num_features)
    y.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())
    assert len(m.stages) == 5


@pytest.mark.parametrize("pool", ["gem", "attention", "max"])
def test_pooling_options(pool):
    m = create_model("resnet18", base_width=4, pool=pool, stem_stride=1, drop_rate=0.2)
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 32)


def test_wrong_input_rank_raises():
    with pytest.raises(ValueError, match=r"\(batch, chan, H, W\)"):
        create_model("resnet18", base_width=4)(torch.randn(2, 3, 64))
