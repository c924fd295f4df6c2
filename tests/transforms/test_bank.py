"""Bank front-end: matched-filter SNR of an injected template peaks at its SNR and time,
with the cache's own conditioning; features; buffers move and come with checkpoints; a
model trains, is saved with its bank, and predicts from the run alone."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from g2res.baselines.bank import template_waveform
from g2res.config import Config, ModelConfig
from g2res.data.noise import ColoredNoise, design_psd, rfft_frequencies
from g2res.models import build_model
from g2res.signal.whiten import WhitenBandpass
from g2res.transforms.bank import (
    BANK_FILE,
    BankFrontend,
    WhitenedBank,
    chirp_mass,
    whiten_templates,
)

CONDITIONING = {"fmin": 20.0, "fmax": 500.0, "filter_order": 8, "sample_rate": 2048.0,
                "n_time": 4096}  # fmt: skip
MASSES = np.array([[12.0, 9.0], [30.0, 20.0], [45.0, 40.0], [22.0, 8.0], [35.0, 34.0]])


@pytest.fixture(scope="module")
def bank() -> WhitenedBank:
    """Five IMRPhenomD templates whitened like a cache of design-PSD noise."""
    freqs = rfft_frequencies()
    psd = design_psd(freqs)
    waves = np.stack([template_waveform(m1, m2) for m1, m2 in MASSES])
    order = np.argsort(chirp_mass(MASSES[:, 0], MASSES[:, 1]))
    params = {"mass1": MASSES[order, 0], "mass2": MASSES[order, 1],
              "spin1z": np.zeros(5), "spin2z": np.zeros(5)}  # fmt: skip
    return WhitenedBank(whiten_templates(waves[order], freqs, psd, CONDITIONING), params)


def test_injected_template_peaks_at_its_snr_and_time(bank):
    """A whitened template at SNR 10 in unit-variance whitened Gaussian noise: |z| of that
    template peaks at 10 +/- 0.5 at the injected sample, in every detector."""
    front = BankFrontend(bank, features="topk", k=1)
    j, t0, snr = 2, 2900, 10.0
    gen = torch.Generator().manual_seed(3)
    noise = torch.randn(32, 3, 4096, generator=gen)
    signal = torch.roll(torch.as_tensor(bank.templates[:, j]), t0, dims=-1)  # (3, n)
    z = front.snr(noise + snr * signal).abs()  # (32, T, 3, n)
    series = z[:, j]
    peak, at = series.max(-1)
    # A noise quadrature has unit variance: the mean of 32 x 3 peaks is 10 within ~0.1.
    assert peak.mean().item() == pytest.approx(snr, abs=0.5)
    assert peak.min().item() > snr - 3.5 and peak.max().item() < snr + 3.5
    # |z| is an envelope (flat within a sample of its top): most peaks on t0, all within 2.
    assert (at == t0).float().mean() > 0.5 and (at - t0).abs().max() <= 2
    assert series.mean(0).argmax(-1).tolist() == [t0, t0, t0]
    assert series[..., t0].mean().item() == pytest.approx(snr, abs=0.5)
    # Pure noise: unit-variance quadratures, so E|z|^2 = 2.
    assert front.snr(noise).abs().square().mean().item() == pytest.approx(2.0, rel=0.02)
    # The top template of every sample is the injected one, and its |z| is the output.
    out = front(noise + snr * signal)
    assert out.shape == (32, 3, 4096)
    torch.testing.assert_close(out, series, rtol=1e-5, atol=1e-5)


def test_conditioned_signal_in_coloured_noise_peaks_at_its_snr(bank, rng):
    """Templates whitened with the cache's conditioning match a signal whitened and
    bandpassed by the preprocessing transform (taper included): peak ~ its whitened norm."""
    freqs = rfft_frequencies()
    psd = design_psd(freqs)
    cond = WhitenBandpass(freqs, psd, 2048.0, 4096, fmin=20.0, fmax=500.0, order=8)
    t0 = 3400  # merger at 1.66 s
    h = np.roll(template_waveform(30.0, 20.0), t0)
    s = cond(torch.as_tensor(np.broadcast_to(h, (1, 3, 4096)).copy())).float()
    s = s * (10.0 / s.square().sum(-1, keepdim=True).sqrt())  # SNR 10 in each detector
    x = cond(torch.as_tensor(ColoredNoise(design_psd)(rng, batch=24))).float() + s
    j = int(np.flatnonzero(bank.parameters["mass1"] == 30.0)[0])  # sorted by chirp mass
    z = BankFrontend(bank).snr(x).abs()[:, j]
    peak, at = z.max(-1)
    assert peak.mean().item() == pytest.approx(10.0, abs=0.5)
    assert (at - t0).abs().max() <= 2


def test_group_features_are_maxima_over_chirp_mass_groups(bank):
    x = torch.randn(4, 3, 4096, generator=torch.Generator().manual_seed(0))
    front = BankFrontend(bank, features="groups", groups=2, pool=4)
    out = front(x)
    z = front.snr(x).abs()  # templates sorted by chirp mass: groups [0, 1, 2) and [2, 5)
    want = torch.stack([z[:, :2].amax(1), z[:, 2:].amax(1)], 1).reshape(4, 6, 4096)
    want = torch.nn.functional.max_pool1d(want, 4, 4)
    assert out.shape == (4, 6, 1024) == (4, *front.output_shape(4096))
    torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-5)
    # topk keeps whole templates, best first, chunk by chunk as at once.
    top = BankFrontend(bank, k=3, chunk_bytes=1)(x).reshape(4, 3, 3, 4096)
    score = z.square().amax(-1).sum(-1)  # (4, T)
    keep = score.argsort(1, descending=True)[:, :3]
    torch.testing.assert_close(top, z[torch.arange(4)[:, None], keep], rtol=1e-5, atol=1e-5)


def test_state_dict_carries_the_bank_and_to_moves_it(bank):
    front = BankFrontend(bank, k=2)
    empty = BankFrontend(k=2)
    with pytest.raises(RuntimeError, match="no templates"):
        empty(torch.zeros(1, 3, 4096))
    empty.load_state_dict(front.state_dict())
    x = torch.randn(2, 3, 4096, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(empty(x), front(x))
    moved = front.to("meta")
    assert moved.kernels.device.type == "meta" and moved.chirp_mass.device.type == "meta"
    with pytest.raises(ValueError, match=r"templates must be \(1 or 3"):
        BankFrontend(np.zeros((2, 4, 4096)))
    with pytest.raises(ValueError, match="k=9"):
        BankFrontend(bank, k=9)


def test_saved_bank_round_trips(bank, tmp_path):
    path = bank.save(tmp_path / "b.npz")
    back = WhitenedBank.load(path)
    np.testing.assert_array_equal(back.templates, bank.templates)
    np.testing.assert_array_equal(back.parameters["mass1"], bank.parameters["mass1"])
    (tmp_path / "bad.npz").write_bytes(b"not a bank")
    with pytest.raises(ValueError, match="bad.npz cannot be read"):
        WhitenedBank.load(tmp_path / "bad.npz")


def _model(bank, **front) -> torch.nn.Module:
    cfg = ModelConfig(
        frontend={"name": "bank", "k": 2, "pool": 8, **front},
        backbone={"name": "resnet1d_18", "base_width": 8},
    )
    model = build_model(cfg)
    model.frontend.set_bank(bank)
    return model


def test_model_trains_and_predicts_on_cpu(bank):
    model = _model(bank)
    assert model.backbone.in_chans == 6
    gen = torch.Generator().manual_seed(0)
    y = torch.tensor([0.0, 1.0] * 4)
    x = torch.randn(8, 3, 4096, generator=gen) + 12 * y[:, None, None] * torch.roll(
        torch.as_tensor(bank.templates[:, 1]), 3000, -1
    )
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(6):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x).reshape(-1), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    model.eval()
    with torch.no_grad():
        p = torch.sigmoid(model(x)).reshape(-1)
    assert p.shape == (8,) and torch.isfinite(p).all()


@pytest.mark.gpu
def test_model_on_cuda_under_autocast(bank):
    model = _model(bank).cuda().eval()
    assert model.frontend.kernels.is_cuda
    x = torch.randn(4, 3, 4096, device="cuda")
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16):
        feats = model.frontend(x)
        out = model(x)
    assert feats.dtype == torch.float32  # the correlation stays fp32
    cpu = _model(bank).eval()
    cpu.load_state_dict({k: v.cpu() for k, v in model.state_dict().items()})
    torch.testing.assert_close(feats.cpu(), cpu.frontend(x.cpu()), rtol=1e-3, atol=1e-3)
    assert torch.isfinite(out).all()


def test_cv_train_saves_the_bank_and_submit_uses_it(tiny_cache, tmp_path):
    """A tiny cv-train of pipelines/bank-resnet1d.yaml: the bank is placed for the cache's
    PSD, written beside the run and in every checkpoint; prediction needs nothing else."""
    from pathlib import Path

    from g2res.cli import main
    from g2res.config import load_config
    from g2res.data.cache import Cache
    from g2res.ensemble.predict import predict_run
    from g2res.train.checkpoint import load_checkpoint
    from g2res.train.cv import cv_train

    recipe = Path(__file__).parents[2] / "pipelines" / "bank-resnet1d.yaml"
    cfg = load_config(recipe, [
        f"cache={tiny_cache}", "cv.folds=2", "train.epochs=1", "train.batch_size=32",
        "train.num_workers=0", "model.bank.templates=6", "model.bank.minimal_match=0.8",
        "model.backbone.base_width=8", "train.ema=null", "model.frontend.k=2",
    ])  # fmt: skip
    out = tmp_path / "run"
    cv_train(cfg, out, progress=False, log=None)
    bank = WhitenedBank.load(out / BANK_FILE)
    assert 1 <= len(bank) <= 6 and bank.templates.shape[0] == 3
    assert bank.settings["conditioning"]["fmax"] == Cache(tiny_cache).manifest["settings"]["fmax"]
    kernels = load_checkpoint(out / "fold0" / "best.pt")["model"]["frontend.kernels"]
    assert kernels.shape[0] == len(bank)
    (out / BANK_FILE).unlink()  # prediction reads the bank from the checkpoints
    x = np.asarray(Cache(tiny_cache).array("test")[:16], np.float32)
    p = predict_run(out, x, batch_size=8, device="cpu", progress=False)
    assert p.shape == (16,) and np.all((p > 0) & (p < 1))
    sub = tmp_path / "submission.csv"
    main(["submit", str(out), "--out", str(sub)])
    frame = pd.read_csv(sub, dtype={"id": str})
    assert len(frame) == 100 and frame["target"].between(0, 1).all()
    np.testing.assert_allclose(frame["target"][:16], p, rtol=1e-4, atol=1e-6)
    oof = pd.read_csv(out / "oof.csv")
    assert len(oof) == 400 and oof["prediction"].between(0, 1).all()
    # Other bank settings into the same run directory: a clear error, no silent reuse.
    from g2res.transforms.bank import run_bank

    bank.save(out / BANK_FILE)
    other = cfg.replace(["model.bank.minimal_match=0.7"]).model.bank
    with pytest.raises(ValueError, match="placed with other settings"):
        run_bank(out, Cache(tiny_cache), other, cfg.seed)
    assert Config().model.bank.templates == 64
