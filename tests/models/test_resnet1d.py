"""1D ResNets on raw strain: depths, pooling, the audio preset."""

from __future__ import annotations

import pytest
import torch

from g2res.models import create_model
from g2res.models.pooling import AttentionPool, GeM


@pytest.mark.parametrize(
    "name, features", [("resnet1d_18", 64), ("resnet1d_34", 64), ("resnet1d_50", 256)]
)
def test_forward_backward_and_downsampling(name, features):
    torch.manual_seed(0)
    m = create_model(name, base_width=8)
    x = torch.randn(2, 3, 4096)
    # stem stride 2, max-pool 2, stages 1/2/2/2: 4096 -> 128 positions.
    assert m.forward_features(x).shape == (2, features, 128)
    y = m(x)
    assert y.shape == (2, features) == (2, m.num_features)
    y.sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    assert len(m.stages) == 5 and not m.is_2d


def test_depths_grow():
    counts = [
        sum(p.numel() for p in create_model(n, base_width=8).parameters())
        for n in ("resnet1d_18", "resnet1d_34", "resnet1d_50")
    ]
    assert counts[0] < counts[1] < counts[2]


def test_audio_preset_takes_one_channel_at_16k():
    m = create_model("resnet1d_audio", base_width=8)
    assert m.in_chans == 1 and isinstance(m.global_pool, AttentionPool)
    y = m(torch.randn(2, 1, 16000))
    assert y.shape == (2, 64)
    with pytest.raises(RuntimeError):
        m(torch.randn(2, 3, 16000))
    # Same class, overridable preset.
    assert create_model("resnet1d_audio", base_width=8, in_chans=2)(
        torch.randn(1, 2, 8000)
    ).shape == (1, 64)


def test_gem_and_attention_pooling_reduce_correctly():
    x = torch.rand(2, 5, 40) + 0.1
    gem = GeM(p=1.0)
    torch.testing.assert_close(gem(x), x.mean(-1))
    gem.p.data.fill_(50.0)
    assert (gem(x) <= x.amax(-1) + 1e-5).all() and (gem(x) > x.mean(-1)).all()
    const = torch.full((2, 5, 40), 3.0)
    torch.testing.assert_close(AttentionPool(5)(const), torch.full((2, 5), 3.0))


@pytest.mark.parametrize("kwargs, match", [({"kernel_size": 6}, "odd"), ({"pool": "sum"}, "pool")])
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        create_model("resnet1d_18", **kwargs)
