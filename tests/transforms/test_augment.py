"""Augmentations: each operation's effect, probabilities, seeding, eval mode, TTA."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from g2res.config import AugmentConfig
from g2res.transforms.augment import TTA_GROUPS, TTA_TRANSFORMS, Augment, GlitchInjector

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


# ---------------------------------------------------------------------------- glitches
N = 4096
FREQS = np.fft.rfftfreq(N, 1 / SR)


@pytest.fixture(scope="module")
def glitch_cache(tmp_path_factory):
    """A cache directory with only what glitches need: a design PSD on a 2-Hz grid and a
    manifest whose bandpass (20-300 Hz, order 4) is not the default."""
    from g2res.data.noise import design_psd

    root = tmp_path_factory.mktemp("glitch_cache")
    freqs = np.arange(0, 1024.1, 2.0)
    np.savez(root / "psd.npz", frequencies=freqs, psd=design_psd(freqs), sample_rate=SR)
    settings = dict(fmin=20.0, fmax=300.0, filter_order=4, window="tukey", window_alpha=0.1)
    manifest = dict(sample_rate=SR, n_time=N, settings=settings)
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def glitch_config(**kwargs) -> AugmentConfig:
    return AugmentConfig(**{"glitch": 1.0, **kwargs})


def test_glitch_in_one_detector_of_every_sample(glitch_cache):
    x = torch.randn(32, 3, N, generator=_gen(0))
    aug = Augment(glitch_config(), SR, cache=glitch_cache).train()
    added = aug(x, _gen(3)) - x
    power = added.square().sum(-1)  # (batch, detector)
    assert torch.all((power > 0).sum(1) == 1)  # exactly one detector, in every sample
    assert torch.all(added[power == 0] == 0)
    assert set((power > 0).float().argmax(1).tolist()) == {0, 1, 2}
    assert torch.equal(Augment(glitch_config(), SR, cache=glitch_cache).eval()(x, _gen(3)), x)


def test_glitch_reproducible_and_probability(glitch_cache):
    x = torch.zeros(400, 3, N)
    aug = Augment(glitch_config(glitch=0.3), SR, cache=glitch_cache).train()
    a, b, c = aug(x, _gen(5)), aug(x, _gen(5)), aug(x, _gen(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    hit = (a.abs().sum((1, 2)) > 0).float().mean().item()
    assert abs(hit - 0.3) < 3 * (0.3 * 0.7 / 400) ** 0.5


def test_glitch_keeps_the_other_augmentations_draws(glitch_cache):
    """Samples without a glitch get exactly what the recipe without glitches gives; the
    glitch comes first, so the other augmentations move it with the data."""
    xs = torch.randn(64, 3, N, generator=_gen(1))
    plain = Augment(ALL, SR).train()(xs, _gen(9))
    cfg = AugmentConfig(**{**vars(ALL), "glitch": 0.5})
    glitchy = Augment(cfg, SR, cache=glitch_cache).train()(xs, _gen(9))
    same = (plain == glitchy).all(-1).all(-1)
    assert 16 < int((~same).sum()) < 48
    changed = (glitchy - plain)[~same]
    # Zero-masked stretches and dropped detectors stay zero in both.
    assert torch.all(changed.square().sum(-1).gt(0).sum(1) <= 1)


def test_glitch_snr_is_the_whitened_norm_and_matches_the_simulator(glitch_cache):
    """A conditioned glitch is the simulator's glitch (same generator, same draws) put
    through the cache's conditioning; in band and away from the taper its whitened norm
    is its optimal SNR."""
    from g2res.data.glitches import make_glitch
    from g2res.signal import WhitenBandpass, interpolate_psd

    injector = GlitchInjector.from_cache(glitch_cache, ["sine_gaussian"], (10.0, 40.0))
    dets = [0, 1, 2] * 60
    y = injector(dets, np.random.default_rng(4))
    strain, records = injector.render(dets, np.random.default_rng(4))
    # Reference: the simulator's make_glitch against the same PSD (interpolated as the
    # cache's whitening does), conditioned with the manifest's taper and band.
    with np.load(glitch_cache / "psd.npz") as z:
        freqs, psd = z["frequencies"], z["psd"]
    grid = interpolate_psd(freqs, psd, N, SR).numpy()
    rng = np.random.default_rng(4)
    cond = WhitenBandpass(freqs, psd, SR, N, fmin=20.0, fmax=300.0, order=4)
    n_checked = 0
    for i, (det, g) in enumerate(zip(dets, records)):
        series, again = make_glitch(rng, grid[det], SR, N, ["sine_gaussian"], (10.0, 40.0))
        assert again == g
        np.testing.assert_array_equal(strain[i, det], series)
        expected = cond(torch.from_numpy(strain[i : i + 1]))[0].float()
        torch.testing.assert_close(y[i], expected, rtol=1e-5, atol=1e-5)
        assert torch.all(y[i, [d for d in range(3) if d != det]] == 0)
        bandwidth = g.f0 / g.Q * 2
        if 0.4 < g.time < 1.6 and 40 < g.f0 - bandwidth and g.f0 + bandwidth < 150:
            norm = float(y[i, det].double().norm())
            assert abs(norm - g.snr) < 0.05 * g.snr, (g, norm)
            n_checked += 1
    assert n_checked >= 10
    # Above the manifest's fmax the glitches are bandpassed away.
    spectrum = torch.fft.rfft(y.double(), dim=-1).abs().square().sum((0, 1))
    f = torch.fft.rfftfreq(N, 1 / SR)
    assert spectrum[f > 400].sum() < 1e-3 * spectrum[(f > 20) & (f < 300)].sum()


def test_glitch_needs_a_cache_and_valid_settings(glitch_cache):
    with pytest.raises(ValueError, match="needs the cache"):
        Augment(glitch_config(), SR)
    with pytest.raises(ValueError, match="koi_fish"):
        Augment(glitch_config(glitch_kinds=["koi_fish"]), SR, cache=glitch_cache)
    with pytest.raises(ValueError, match="glitch_snr"):
        Augment(glitch_config(glitch_snr=(9.0, 3.0)), SR, cache=glitch_cache)
    with pytest.raises(ValueError, match="augment.glitch"):
        Augment(glitch_config(glitch=1.5), SR, cache=glitch_cache)


def test_glitch_from_the_recipe_in_pretrain(glitch_cache):
    from g2res.config import load_config
    from g2res.data.cache import Cache
    from g2res.train.pretrain import _augmenter

    cfg = load_config(None, ["augment.glitch=0.25", "augment.glitch_kinds=[blip]",
                             "augment.glitch_snr=[20,30]"])  # fmt: skip
    aug = _augmenter(cfg, SR, torch.device("cpu"), Cache(glitch_cache))
    assert aug.glitches is not None and aug.glitches.kinds == ("blip",)
    assert aug.glitches.snr_range == (20.0, 30.0) and aug.glitches.conditioner.fmax == 300.0
