"""``g2res scan`` end to end: a small trained model (saved as a cv-train run) scans 96 s of
simulated strain in GWOSC-style HDF5 written by gwpy, with two loud injections and a NaN gap."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import GAP, GPS0, INJECTIONS, write_gwpy_hdf5

from g2res import DETECTORS, SAMPLE_RATE
from g2res.cli import main
from g2res.config import Config
from g2res.scan import (
    Conditioning,
    ScanSettings,
    Scorer,
    load_strain,
    run_conditioning,
    scan_strain,
)

TINY = {
    "frontend": {"name": "identity"},
    "backbone": {"name": "resnet1d_18", "base_width": 8, "stem_stride": 4},
}
CHANNEL = "{ifo}:GWOSC-4KHZ_R1_STRAIN"


def train_tiny_model(seed: int = 5, n: int = 256, epochs: int = 5):
    """resnet1d_18 (width 8, stride-4 stem) trained on 2-s windows conditioned like
    preprocess: coloured noise, half with a BBH merging 1.5-1.9 s into the window at
    network SNR 12-25."""
    from g2res.data.noise import ColoredNoise, design_psd, rfft_frequencies
    from g2res.data.waveforms import Injector
    from g2res.models import build_model
    from g2res.signal import WhitenBandpass

    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    x = ColoredNoise()(rng, batch=n)
    freqs = rfft_frequencies(4096)
    psd = design_psd(freqs)
    injector = Injector(
        psd, approximant="IMRPhenomD", mass_range=(20.0, 45.0), snr_range=(12.0, 25.0)
    )
    y = np.arange(n) % 2
    for i in np.flatnonzero(y):
        x[i] += injector.render(injector.draw(rng))[0]
    x = WhitenBandpass(freqs, psd, SAMPLE_RATE, 4096)(torch.from_numpy(x).float()).float()
    cfg = Config(name="tiny").replace({"model": TINY})
    model = build_model(cfg.model)
    opt = torch.optim.AdamW(model.parameters(), 3e-3)
    target = torch.from_numpy(y).float()
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(n).split(32):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                model(x[idx]).reshape(-1), target[idx]
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval(), cfg


@pytest.fixture(scope="module")
def scan_inputs(tmp_path_factory, long_strain):
    """A run directory holding the tiny model as fold 0, and the strain as gwpy HDF5."""
    from g2res.train.checkpoint import save_checkpoint

    root = tmp_path_factory.mktemp("scan")
    model, cfg = train_tiny_model()
    run = root / "runs" / "tiny"
    run.mkdir(parents=True)
    cfg.save(run / "config.yaml")
    state = {"model": model.state_dict(), "config": cfg.to_dict(), "sample_rate": 2048.0}
    save_checkpoint(run / "fold0" / "best.pt", dict(state, n_time=4096, fold=0, epoch=4))
    files = {}
    for det, row in zip(DETECTORS, long_strain["data"]):
        files[det] = root / f"{det[0]}-{det}_GWOSC_4KHZ.hdf5"
        write_gwpy_hdf5(files[det], row, GPS0, SAMPLE_RATE, det)
    return {"root": root, "run": run, "files": files, "model": model}


def _argv(inputs, out, *extra):
    f = inputs["files"]
    return [
        "scan", "--h1", str(f["H1"]), "--l1", str(f["L1"]), "--v1", str(f["V1"]),
        "--runs", str(inputs["run"]), "--channel", CHANNEL, "--out", str(out), "-q", *extra,
    ]  # fmt: skip


@pytest.mark.slow
def test_cli_scan_finds_injections_with_a_trained_model(scan_inputs, capsys):
    out = scan_inputs["root"] / "triggers.csv"
    assert main(_argv(scan_inputs, out, "--stride", "0.25", "--psd-length", "32")) == 0
    triggers = pd.read_csv(out)
    assert list(triggers.columns[:5]) == [
        "gps_time", "score", "window_start", "window_end", "n_windows"
    ]  # fmt: skip
    # Both injections are the two loudest clusters, each found within a quarter second.
    found = np.sort(triggers["gps_time"].to_numpy()[:2]) - GPS0
    np.testing.assert_allclose(found, INJECTIONS, atol=0.25)
    assert triggers["score"].iloc[1] > triggers["score"].iloc[2:].max()

    windows = pd.read_csv(out.with_name("triggers_windows.csv"))
    gap = (GPS0 + GAP[0], GPS0 + GAP[1])
    start = windows["window_start"].to_numpy()
    assert not np.any((start < gap[1]) & (start + 2.0 > gap[0]))
    report = json.loads(out.with_name("triggers_report.json").read_text())
    assert report["windows_scored"] == len(windows) == triggers["n_windows"].sum()
    assert report["skipped"][0]["detectors"] == ["L1"]
    assert report["skipped"][0]["gps_start"] == pytest.approx(gap[0])
    assert report["skipped_duration"] == pytest.approx(GAP[1] - GAP[0])
    assert report["live_time"] == pytest.approx(96.0 - (GAP[1] - GAP[0]))
    assert report["conditioning"] == [Conditioning().__dict__]  # the recipe's preprocess section
    png = out.with_suffix(".png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert "skipped" in capsys.readouterr().out

    # The checkpoint round trip and file reading change nothing: the same scores as the
    # in-memory model on the strain read back from the files.
    model = scan_inputs["model"]

    def score(x):
        with torch.inference_mode():
            return torch.sigmoid(model(x)).reshape(-1).numpy()

    strain = load_strain(scan_inputs["files"], {d: CHANNEL.format(ifo=d) for d in DETECTORS})
    strain.data = strain.data[:, : int(GAP[0] * SAMPLE_RATE)]  # the segment before the gap
    direct = scan_strain(strain, Scorer(score), ScanSettings(psd_length=32.0), progress=False)
    first = windows[start < gap[0]]
    np.testing.assert_allclose(first["window_start"], direct.window_start, atol=1e-6)
    np.testing.assert_allclose(first["score"], direct.scores, atol=2e-6)


def test_cli_refuses_to_overwrite_and_adds_far_with_timeslides(scan_inputs, capsys):
    out = scan_inputs["root"] / "slides" / "t.csv"
    out.parent.mkdir()
    out.with_suffix(".png").write_bytes(b"mine")
    assert main(_argv(scan_inputs, out, "--stride", "1")) == 1
    assert "t.png exist(s); pass --force" in capsys.readouterr().err
    assert out.with_suffix(".png").read_bytes() == b"mine"
    argv = _argv(scan_inputs, out, "--stride", "1", "--timeslides", "2", "--force")
    assert main(argv) == 0
    triggers = pd.read_csv(out)
    report = json.loads(out.with_name("t_report.json").read_text())
    assert report["timeslides"]["slides"] == 2
    live = report["timeslides"]["background_live_time"]
    # L1's gap moves with the slides: each slide scans about as much as the foreground.
    assert live == pytest.approx(2 * report["live_time"], rel=0.1)
    far = triggers["far_per_year"].to_numpy()
    assert np.all(np.diff(far) >= 0)  # louder triggers never have a higher false-alarm rate
    assert far[0] == pytest.approx(365.25 * 86400 / live)  # louder than all background


def test_cli_errors_name_the_problem(scan_inputs, tmp_path, capsys):
    argv = _argv(scan_inputs, tmp_path / "t.csv")
    argv[argv.index("--runs") + 1] = str(tmp_path / "nope")
    assert main(argv) == 1
    assert "run directory" in capsys.readouterr().err
    np.save(tmp_path / "h1.npy", np.zeros(4096 * 4))
    argv = _argv(scan_inputs, tmp_path / "t.csv")
    argv[argv.index("--h1") + 1] = str(tmp_path / "h1.npy")
    assert main(argv) == 1
    assert "h1.npy: .npy strain needs --sample-rate" in capsys.readouterr().err


def test_run_conditioning_follows_the_cache_manifest(tmp_path):
    run = tmp_path / "run"
    (run / "fold0").mkdir(parents=True)
    (run / "fold0" / "best.pt").write_bytes(b"")
    cfg = Config().replace({"preprocess.fmin": 25.0})
    cfg.save(run / "config.yaml")
    assert run_conditioning(run).fmin == 25.0  # no cache: the recipe
    cache = tmp_path / "cache"
    cache.mkdir()
    settings = dict(Conditioning(fmin=30.0, window_alpha=0.1).__dict__, dtype="float32")
    (cache / "manifest.json").write_text(json.dumps({"settings": settings}))
    cfg.replace({"cache": str(cache)}).save(run / "config.yaml")
    assert run_conditioning(run) == Conditioning(fmin=30.0, window_alpha=0.1)


def test_cli_scans_a_subset_of_detectors_only_when_asked(scan_inputs, tmp_path, capsys):
    argv = _argv(scan_inputs, tmp_path / "two.csv", "--stride", "1")
    i = argv.index("--v1")
    del argv[i : i + 2]  # no V1 data
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "no strain file for V1" in err and "--detectors H1 L1" in err
    assert main([*argv, "--detectors", "H1", "L1"]) == 0
    report = json.loads((tmp_path / "two_report.json").read_text())
    assert report["detectors"] == ["H1", "L1"] and report["absent_detectors"] == ["V1"]
    assert report["skipped"][0]["detectors"] == ["L1"]  # the L1 gap, named by its detector
    # One second of data: refused, naming the length a window needs.
    for det in ("h1", "l1", "v1"):
        np.save(tmp_path / f"{det}.npy", np.zeros(2048))
    short = ["scan", "--runs", str(scan_inputs["run"]), "--sample-rate", "2048", "-q"]
    short += [x for d in ("h1", "l1", "v1") for x in (f"--{d}", str(tmp_path / f"{d}.npy"))]
    assert main([*short, "--out", str(tmp_path / "short.csv")]) == 1
    err = capsys.readouterr().err
    assert "too short: a scan needs at least 2 s" in err and "is 1 s" in err
