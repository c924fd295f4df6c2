"""Augmentations: each operation's effect, probabilities, seeding, eval mode, TTA."""

from __future__ import annotations

import pytest
import torch

from g2res.config import AugmentConfig
from g2res.transforms.augment import TTA_GROUPS, TTA_TRANSFORMS, Augment

SR = 2048.0
T = 1024


@pytest.fixture
def x():
    return torch.randn(16, 3, T, generator=torch.Generator().manual_seed(0))


def _gen(seed: int = 7) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


ALL = AugmentConfig(
    time_shift=0.5,
    swap_h1l1=0.5,
    sign_flip=0.5,
    time_mask=0.5,
    detector_dropout=0.5,
    permute_detectors=0.5,
)


def test_same_seed_same_result_other_seed_differs(x):
    aug = Augment(ALL, SR).train()
    a, b, c = aug(x, _gen(1)), aug(x, _gen(1)), aug(x, _gen(2))
    assert torch.equal(a, b) and not torch.equal(a, c) and not torch.equal(a, x)


def test_eval_mode_and_zero_probabilities_are_identity(x):
    assert Augment(ALL, SR).eval()(x, _gen()) is x
    assert torch.equal(Augment(AugmentConfig(), SR).train()(x, _gen()), x)


def test_time_shift_is_a_common_circular_roll(x):
    cfg = AugmentConfig(time_shift=1.0, max_shift=0.05)
    y = Augment(cfg, SR).train()(x, _gen())
    max_shift = round(0.05 * SR)
    shifts = []
    for i in range(len(x)):
        found = [
            s
            for s in range(-max_shift, max_shift + 1)
            if torch.equal(torch.roll(x[i], s, -1), y[i])
        ]
        assert len(found) == 1, "each sample is one roll of all detectors together"
        shifts.append(found[0])
    assert len(set(shifts)) > 4


def test_swap_sign_flip_and_dropout_at_probability_one(x):
    y = Augment(AugmentConfig(swap_h1l1=1.0), SR).train()(x, _gen())
    assert torch.equal(y[:, 0], x[:, 1]) and torch.equal(y[:, 1], x[:, 0])
    assert torch.equal(y[:, 2], x[:, 2])
    assert torch.equal(Augment(AugmentConfig(sign_flip=1.0), SR).train()(x, _gen()), -x)
    y = Augment(AugmentConfig(detector_dropout=1.0), SR).train()(x, _gen())
    zeroed = (y == 0).all(dim=-1)  # (batch, detector)
    assert (zeroed.sum(dim=1) == 1).all()
    assert torch.equal(y[~zeroed], x[~zeroed])


def test_permute_detectors_draws_every_order_uniformly():
    # Channel k holds the constant k, so each sample shows its order directly.
    n = 6000
    big = torch.arange(3.0)[None, :, None].expand(n, 3, 4).clone()
    y = Augment(AugmentConfig(permute_detectors=1.0), SR).train()(big, _gen(5))
    orders = y[:, :, 0].long()
    assert torch.equal(orders.sort(dim=1).values, torch.arange(3).expand(n, 3))
    assert torch.equal(y, orders[:, :, None].float().expand(n, 3, 4))  # whole rows move
    counts = torch.unique(orders, dim=0, return_counts=True)[1]
    assert len(counts) == 6
    expected = n / 6
    assert ((counts - expected).abs() < 5 * (expected * 5 / 6) ** 0.5).all()
    # At probability 0.5 half the samples keep their order plus a sixth of the rest.
    y = Augment(AugmentConfig(permute_detectors=0.5), SR).train()(big, _gen(6))
    kept = (y[:, :, 0].long() == torch.arange(3)).all(dim=1).float().mean().item()
    assert abs(kept - (0.5 + 0.5 / 6)) < 0.03


def test_time_mask_zeros_one_stretch_in_all_detectors(x):
    width = 0.05
    y = Augment(AugmentConfig(time_mask=1.0, mask_width=width), SR).train()(x, _gen())
    for i in range(len(x)):
        zero = (y[i] == 0).all(dim=0)
        idx = torch.nonzero(zero).flatten()
        assert len(idx) <= round(width * SR)
        if len(idx):
            assert idx[-1] - idx[0] + 1 == len(idx), "one contiguous stretch"
        assert torch.equal(y[i][:, ~zero], x[i][:, ~zero])


def test_probability_sets_the_fraction_of_samples(x):
    big = torch.randn(4000, 3, 8)
    y = Augment(AugmentConfig(sign_flip=0.3), SR).train()(big, _gen(3))
    flipped = (y[:, 0, 0] == -big[:, 0, 0]).float().mean().item()
    assert abs(flipped - 0.3) < 0.03  # 4.4 binomial sigmas


def test_changing_one_probability_keeps_the_others_draws(x):
    a = Augment(AugmentConfig(sign_flip=0.5), SR).train()(x, _gen(4))
    b = Augment(AugmentConfig(sign_flip=0.5, swap_h1l1=1e-9), SR).train()(x, _gen(4))
    assert torch.equal(a, b)
    c = Augment(AugmentConfig(sign_flip=0.5, permute_detectors=1e-9), SR).train()(x, _gen(4))
    assert torch.equal(a, c)


def test_tta_transforms():
    z = torch.randn(2, 3, 16)
    assert {"identity", "swap_h1l1", "sign_flip"} <= set(TTA_TRANSFORMS)
    assert torch.equal(TTA_TRANSFORMS["identity"](z), z)
    swapped = TTA_TRANSFORMS["swap_h1l1"](z)
    assert torch.equal(swapped[:, [1, 0, 2]], z)
    assert torch.equal(TTA_TRANSFORMS["sign_flip"](z), -z)
    # detectors_<initials>: the channels in that order.
    torch.testing.assert_close(TTA_TRANSFORMS["detectors_lvh"](z), z[:, [1, 2, 0]])
    torch.testing.assert_close(TTA_TRANSFORMS["detectors_vhl"](z), z[:, [2, 0, 1]])
    assert len(set(TTA_GROUPS["permute_detectors"])) == 5
    assert set(TTA_GROUPS["permute_detectors"]) <= set(TTA_TRANSFORMS)
    # TTA and training augmentation agree at probability one.
    aug = Augment(AugmentConfig(swap_h1l1=1.0), SR).train()
    assert torch.equal(aug(z, _gen()), swapped)


@pytest.mark.parametrize(
    "field, value", [("sign_flip", 1.5), ("time_mask", -0.1), ("max_shift", -1.0)]
)
def test_bad_config_raises(field, value):
    with pytest.raises(ValueError, match=field):
        Augment(AugmentConfig(**{field: value}), SR)
