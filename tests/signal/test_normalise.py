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


# ------------------------------------------------------------ model.normalise: spectral

FS = 2048.0


def _conditioned(white: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """White noise (..., N) coloured by the PSD ``factor`` (..., f), bandpassed 20-500 Hz
    (order 8, zero phase) and Tukey-tapered like a cached series."""
    from scipy.signal.windows import tukey

    from g2res.signal.filters import butterworth_response

    f = torch.fft.rfftfreq(N, 1 / FS, dtype=torch.float64)
    spec = torch.fft.rfft(white, dim=-1) * factor.sqrt() * butterworth_response(f, 20, 500, 8)
    taper = torch.as_tensor(tukey(N, 0.1), dtype=torch.float64)
    return torch.fft.irfft(spec, n=N, dim=-1) * taper


def _drift(rng, shape):
    """Per-series PSD factor scale * (f / 100 Hz)^tilt, scale 0.7-1.3, tilt -0.4-0.4."""
    f = torch.fft.rfftfreq(N, 1 / FS, dtype=torch.float64).clamp_min(1.0)
    scale = torch.as_tensor(rng.uniform(0.7, 1.3, size=(*shape, 1)))
    tilt = torch.as_tensor(rng.uniform(-0.4, 0.4, size=(*shape, 1)))
    return scale * (f / 100.0) ** tilt, scale, tilt


def test_spectral_normalise_recovers_each_series_scale_and_tilt(rng):
    from g2res.signal.normalise import SpectralNormalise

    white = torch.as_tensor(rng.normal(size=(64, 3, N)))
    factor, scale, tilt = _drift(rng, (64, 3))
    x = _conditioned(white, factor)
    reference = _conditioned(white, torch.ones_like(factor))
    norm = SpectralNormalise(FS, N)
    level = norm.log_level(x.float()).double()  # (64, 3, f) fitted log(P / P0)
    f = torch.fft.rfftfreq(N, 1 / FS, dtype=torch.float64)
    at100 = int(torch.argmin((f - 100).abs()))
    # 2 s of data know the level to ~6% and the tilt to ~0.08 (the drift: 15% and 0.2 on
    # average, 30% and 0.4 at most)
    error = level[..., at100].exp() / scale[..., 0] - 1
    assert float(error.abs().mean()) < 0.08 and float(error.abs().max()) < 0.25
    assert abs(float(error.mean())) < 0.02  # no bias
    slope = (level[..., int(torch.argmin((f - 400).abs()))] - level[..., at100]) / np.log(4)
    assert float((slope - tilt[..., 0]).abs().mean()) < 0.1
    assert float((slope - tilt[..., 0]).abs().max()) < 0.35
    # whitened again: the spread of the noise power between series shrinks from the drift's
    # ~17% to the estimate's ~5%, at unit level on average
    mid = slice(300, N - 300)
    before = x[..., mid].var(-1) / reference[..., mid].var(-1)
    after = norm(x.float()).double()[..., mid].var(-1) / reference[..., mid].var(-1)
    assert float(before.std()) > 0.12 and float(after.std()) < 0.07
    assert float(after.mean()) == pytest.approx(1.0, abs=0.03)
    # a series of the cache's own PSD is left nearly as it is
    same = norm(reference.float()).double()
    assert float((same - reference).norm() / reference.norm()) < 0.06


def test_spectral_normalise_keeps_a_chirps_snr_and_ignores_a_glitch(rng):
    from g2res.signal.normalise import SpectralNormalise

    t = torch.arange(N, dtype=torch.float64) / FS
    # a whitened chirp-like burst (40 -> 250 Hz over the last second) of SNR 12
    phase = 2 * np.pi * (40 * (t - 0.8) + 0.5 * 210 * (t - 0.8) ** 2)
    chirp = torch.where((t > 0.8) & (t < 1.8), torch.sin(phase), torch.zeros_like(t))
    chirp = chirp * torch.hann_window(N, periodic=False, dtype=torch.float64) ** 0.1
    ones = torch.ones(1, N // 2 + 1, dtype=torch.float64)
    chirp = _conditioned(chirp[None], ones)[0]
    chirp = chirp * 12 / chirp.norm()
    white = torch.as_tensor(rng.normal(size=(32, 3, N)))
    noise = _conditioned(white, torch.ones(32, 3, N // 2 + 1, dtype=torch.float64))
    norm = SpectralNormalise(FS, N)
    y = norm((noise + chirp).float()).double()
    snr_in = ((noise + chirp) @ chirp) / chirp.norm()
    snr_out = (y @ chirp) / chirp.norm()
    # the projection on the chirp (its matched-filter SNR, ~12) is kept within 5%
    assert float((snr_out / snr_in).mean()) == pytest.approx(1.0, abs=0.05)
    # a loud short glitch (SNR ~ 60 in 0.05 s) in H1 barely moves H1's level estimate
    glitch = 40 * torch.exp(-(((t - 1.0) / 0.02) ** 2)) * torch.sin(2 * np.pi * 150 * t)
    glitchy = noise.clone()
    glitchy[:, 0] += glitch
    delta = norm.log_level(glitchy.float()) - norm.log_level(noise.float())
    assert float(delta[:, 0].exp().mean()) == pytest.approx(1.0, abs=0.1)
    torch.testing.assert_close(delta[:, 1:], torch.zeros_like(delta[:, 1:]))


def test_spectral_model_carries_the_caches_band_through_its_checkpoint(tmp_path, rng):
    from g2res.signal.normalise import SpectralNormalise

    cfg = Config().replace(
        {**{f"model.{k}": v for k, v in TINY.items()}, "model.normalise": "spectral"}
    )
    band = {"fmin": 30.0, "fmax": 400.0, "filter_order": 8, "window": "tukey",
            "window_alpha": 0.2}  # fmt: skip
    torch.manual_seed(0)
    model = build_model(cfg.model, conditioning=band).eval()
    assert isinstance(model.normalise, SpectralNormalise)
    default = build_model(cfg.model).normalise
    assert int(model.normalise.fit_mask.sum()) < int(default.fit_mask.sum())  # its band
    x = torch.as_tensor(rng.normal(size=(2, 3, N)), dtype=torch.float32)
    path = tmp_path / "best.pt"
    save_checkpoint(path, {"model": model.state_dict(), "config": cfg.to_dict(),
                           "sample_rate": FS, "n_time": N, "conditioning": band})  # fmt: skip
    again, _ = load_fold_model(path)
    torch.testing.assert_close(again.normalise.fit_mask, model.normalise.fit_mask)
    with torch.no_grad():
        torch.testing.assert_close(again(x), model(x))
    with pytest.raises(ValueError, match="'hann' window"):
        build_model(cfg.model, conditioning={**band, "window": "hann"})
