"""``g2res simulate``: layout, truth, SNRs recomputed independently, reproducibility."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import lalsimulation
import numpy as np
import pandas as pd
import pytest

from g2res.cli import main
from g2res.config import SimulateConfig
from g2res.data.simulate import Simulator, sample_rng, simulate

FS = 2048.0
SMALL = SimulateConfig(n_train=12, n_test=6, snr=(8.0, 12.0))
DETS = ("H1", "L1", "V1")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return simulate(tmp_path_factory.mktemp("sim") / "data", SMALL, seed=7, progress=False)


def digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_layout(dataset):
    labels = pd.read_csv(dataset / "training_labels.csv", dtype={"id": str})
    sub = pd.read_csv(dataset / "sample_submission.csv", dtype={"id": str})
    truth = pd.read_csv(dataset / "truth/test_labels.csv", dtype={"id": str})
    assert list(labels.columns) == ["id", "target"] and list(sub.columns) == ["id", "target"]
    assert len(labels) == 12 and len(sub) == 6 and np.all(sub.target == 0.5)
    assert labels.target.sum() == 6 and truth.target.sum() == 3  # balanced 50/50
    assert list(truth.id) == list(sub.id)
    ids = list(labels.id) + list(sub.id)
    assert len(set(ids)) == 18 and all(re.fullmatch(r"[0-9a-f]{10}", i) for i in ids)
    for split, split_ids in (("train", labels.id), ("test", sub.id)):
        for i in split_ids:
            x = np.load(dataset / split / i[0] / i[1] / i[2] / f"{i}.npy", allow_pickle=False)
            assert x.shape == (3, 4096) and x.dtype == np.float64 and np.all(np.isfinite(x))
            assert 1e-23 < x.std() < 1e-19  # strain, not whitened
    assert len(list(dataset.rglob("*.npy"))) == 18 + 1  # + truth/psd.npy
    inj = pd.read_csv(dataset / "truth/injections.csv", dtype={"id": str})
    assert set(inj.id) == set(ids) and len(inj) == 18
    noise = inj[inj.target == 0]
    assert noise[["mass1", "distance", "merger_time", "t_H1"]].isna().all().all()
    assert (noise[["snr_H1", "snr_L1", "snr_V1", "snr_network"]] == 0).all().all()
    signal = inj[inj.target == 1]
    assert signal.drop(columns=["split"]).notna().all().all()
    assert signal.snr_network.between(8, 12).all()
    assert signal.merger_time.between(1.5, 1.9).all()
    assert (signal.mass1 >= signal.mass2).all() and signal.mass2.ge(7).all()
    assert signal.mass1.le(50).all()


def lal_design_psd(freqs: np.ndarray) -> np.ndarray:
    """Reference: lalsimulation's curves called directly (flat below 10 Hz as documented)."""
    f = np.maximum(freqs, 10.0)
    ligo = np.array([lalsimulation.SimNoisePSDaLIGOZeroDetHighPower(x) for x in f])
    virgo = np.array([lalsimulation.SimNoisePSDAdvVirgo(x) for x in f])
    return np.stack([ligo, ligo, virgo])


def check_snrs(root: Path, config: SimulateConfig, seed: int, psd: np.ndarray) -> int:
    """Regenerate each injection from its index, check it is what was written, and
    recompute the optimal SNR with numpy's FFT; returns the number checked."""
    inj = pd.read_csv(root / "truth/injections.csv", dtype={"id": str})
    sim = Simulator(config)
    freqs = np.fft.rfftfreq(4096, 1 / FS)
    band = freqs >= 20.0
    checked = 0
    for row in inj[inj.target == 1].itertuples():
        sample = sim.make_sample(sample_rng(seed, row.index), 1)
        x = np.load(root / row.split / row.id[0] / row.id[1] / row.id[2] / f"{row.id}.npy")
        assert np.array_equal(x, sample.data)
        hf = np.fft.rfft(sample.signal, axis=-1)[:, band] / FS
        snr = np.sqrt(4 * (FS / 4096) * np.sum(np.abs(hf) ** 2 / psd[:, band], axis=-1))
        recorded = np.array([getattr(row, f"snr_{d}") for d in DETS])
        np.testing.assert_allclose(snr, recorded, rtol=0.02)
        np.testing.assert_allclose(np.sqrt(np.sum(snr**2)), row.snr_network, rtol=0.02)
        # The signal is really in the data: data - noise is the signal.
        np.testing.assert_allclose(x - sample.noise, sample.signal, atol=1e-30)
        checked += 1
    return checked


def test_optimal_snr_recomputed(dataset):
    psd = lal_design_psd(np.fft.rfftfreq(4096, 1 / FS))
    recorded = np.load(dataset / "truth/psd.npy", allow_pickle=False)
    np.testing.assert_allclose(recorded[:, 1:].T, psd, rtol=1e-12)
    assert check_snrs(dataset, SMALL, 7, psd) == 9


def test_user_psd_file(tmp_path):
    """A PSD unlike the design: SNRs follow it, and the truth records it."""
    f = np.arange(0, 1024.5, 0.5)  # the window's rfft grid: no interpolation involved
    fs = np.maximum(f, 1.0)
    table = np.column_stack(
        [f, 3e-46 * (1 + (40 / fs) ** 4), 1e-46 * (100 / fs) ** 2 + 5e-47, np.full_like(f, 2e-46)]
    )
    path = tmp_path / "psd.txt"
    np.savetxt(path, table)
    cfg = SimulateConfig(n_train=4, n_test=0, psd=str(path), approximant="IMRPhenomD")
    out = simulate(tmp_path / "data", cfg, seed=3, progress=False)
    recorded = np.load(out / "truth/psd.npy", allow_pickle=False)
    np.testing.assert_allclose(recorded[1:], table[1:], rtol=1e-9)
    psd = table[:, 1:].T.copy()
    psd[:, 0] = psd[:, 1]  # the 0-Hz row is outside the SNR band anyway
    assert check_snrs(out, cfg, 3, psd) == 2


def test_arrival_times(dataset):
    inj = pd.read_csv(dataset / "truth/injections.csv").query("target == 1")
    assert (np.abs(inj.t_H1 - inj.t_L1) <= 0.0101).all()  # H1-L1 light travel time: 10 ms
    for d in DETS:
        assert (np.abs(inj[f"t_{d}"] - inj.merger_time) <= 0.0214).all()  # Earth radius / c


def test_same_seed_same_bytes_any_workers(dataset, tmp_path):
    two = simulate(tmp_path / "two", SimulateConfig(**{**vars(SMALL), "workers": 2}), seed=7,
                   progress=False)  # fmt: skip
    a, b = digest(dataset), digest(two)
    a.pop("truth/simulate.json"), b.pop("truth/simulate.json")  # records the worker count
    assert a == b
    other = simulate(tmp_path / "other", SMALL, seed=8, progress=False)
    c = digest(other)
    assert not set(a.values()) & {
        v for k, v in c.items() if k.endswith(".npy") and "truth" not in k
    }


def test_refuses_non_empty_dir_and_force_replaces(tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    tiny = SimulateConfig(n_train=2, n_test=2)
    with pytest.raises(FileExistsError, match="--force"):
        simulate(out, tiny, progress=False)
    simulate(out, tiny, seed=1, force=True, progress=False)
    first = set(digest(out))
    simulate(out, tiny, seed=2, force=True, progress=False)
    second = set(digest(out))
    assert (out / "notes.txt").read_text() == "mine"  # not ours: kept
    assert len([p for p in second if p.startswith("train/")]) == 2  # old samples removed
    assert first != second


@pytest.mark.parametrize(
    "change, error, message",
    [
        (dict(psd="no_such_psd.txt"), FileNotFoundError, "no_such_psd.txt"),
        (dict(approximant="NoSuchWave"), ValueError, "NoSuchWave"),
        (dict(snr=(5.0, 2.0)), ValueError, "snr"),
        (dict(merger_window=(1.5, 2.5)), ValueError, "merger_window"),
        (dict(signal_fraction=1.5), ValueError, "signal_fraction"),
        (dict(test_signal_fraction=-0.1), ValueError, "test_signal_fraction"),
        (dict(glitch_rate=-1.0), ValueError, "glitch_rate"),
        (dict(glitch_snr=(30.0, 8.0)), ValueError, "glitch_snr"),
        (dict(glitch_kinds=["koi_fish"]), ValueError, "koi_fish"),
        (dict(psd_drift=1.5), ValueError, "psd_drift"),
    ],
)
def test_bad_settings_fail_before_writing(tmp_path, change, error, message):
    out = tmp_path / "data"
    with pytest.raises(error, match=message):
        simulate(out, SimulateConfig(n_train=2, n_test=2, **change), progress=False)
    assert not out.exists()


def test_test_signal_fraction_sets_the_test_split_only(tmp_path):
    """A low-FAP test set: mostly noise in test, the training split keeps signal_fraction."""
    import pandas as pd

    cfg = SimulateConfig(n_train=4, n_test=10, signal_fraction=0.5, test_signal_fraction=0.2)
    out = simulate(tmp_path / "data", cfg, seed=2, progress=False)
    assert pd.read_csv(out / "truth" / "test_labels.csv")["target"].sum() == 2
    assert pd.read_csv(out / "training_labels.csv")["target"].sum() == 2


def test_cli(tmp_path, capsys):
    out = tmp_path / "cli"
    argv = ["simulate", str(out), "--n-train", "4", "--n-test", "2", "--seed", "5", "--quiet"]
    assert main(argv + ["--approximant", "IMRPhenomD", "--snr", "6", "7"]) == 0
    inj = pd.read_csv(out / "truth/injections.csv").query("target == 1")
    assert len(inj) == 3 and inj.snr_network.between(6, 7).all()


def test_cli_test_signal_fraction(tmp_path):
    out = tmp_path / "cli"
    argv = ["simulate", str(out), "--n-train", "2", "--n-test", "4", "--seed", "5", "--quiet"]
    assert main(argv + ["--signal-fraction", "0", "--test-signal-fraction", "0.25"]) == 0
    assert pd.read_csv(out / "training_labels.csv")["target"].sum() == 0
    assert pd.read_csv(out / "truth" / "test_labels.csv")["target"].tolist().count(1) == 1


# ------------------------------------------------------------------ glitches and PSD drift
def test_defaults_leave_the_data_as_before(dataset):
    """glitch_rate 0 and psd_drift 0: every file is what the simulator wrote before glitches
    and drift existed (noise, then the injection, from the sample's generator alone)."""
    from g2res.data.noise import ColoredNoise, design_psd
    from g2res.data.waveforms import Injector

    noise = ColoredNoise(design_psd, FS, 4096)
    injector = Injector(design_psd(np.fft.rfftfreq(4096, 1 / FS)), snr_range=SMALL.snr)
    inj = pd.read_csv(dataset / "truth/injections.csv", dtype={"id": str})
    for row in inj.itertuples():
        rng = sample_rng(7, row.index)
        x = noise(rng)
        if row.target:
            x = x + injector.render(injector.draw(rng))[0]
        path = dataset / row.split / row.id[0] / row.id[1] / row.id[2] / f"{row.id}.npy"
        assert path.read_bytes() == _npy_bytes(x, path)
    glitches = pd.read_csv(dataset / "truth/glitches.csv")
    assert len(glitches) == 0 and list(glitches.columns)[:7] == [
        "id", "split", "detector", "kind", "time", "f0", "Q",
    ]  # fmt: skip
    assert not (dataset / "truth/psd_drift.csv").exists()


def _npy_bytes(x: np.ndarray, like: Path) -> bytes:
    out = like.parent / "_reference.npy"
    np.save(out, x)
    data = out.read_bytes()
    out.unlink()
    return data


GLITCHY = SimulateConfig(
    n_train=24, n_test=12, snr=(8.0, 12.0), approximant="IMRPhenomD", glitch_rate=1.0,
    psd_drift=0.2,
)  # fmt: skip


@pytest.fixture(scope="module")
def glitchy(tmp_path_factory) -> Path:
    return simulate(tmp_path_factory.mktemp("sim") / "glitchy", GLITCHY, seed=5, progress=False)


def _tapered_whitening(x: np.ndarray, psd: np.ndarray) -> np.ndarray:
    """Tukey(0.1) taper, whitening to unit variance and a 20-500 Hz brick-wall band."""
    from scipy.signal.windows import tukey

    freqs = np.fft.rfftfreq(x.shape[-1], 1 / FS)
    xf = np.fft.rfft(x * tukey(x.shape[-1], 0.1), axis=-1) / np.sqrt(psd * FS / 2)
    xf[..., (freqs < 20) | (freqs > 500)] = 0
    return np.fft.irfft(xf, n=x.shape[-1], axis=-1)


def _drifted_psd(root: Path) -> dict[str, np.ndarray]:
    """Each sample's PSD (3, 2049) from truth/psd.npy and truth/psd_drift.csv."""
    from g2res.data.glitches import drift_factor

    table = np.load(root / "truth/psd.npy", allow_pickle=False)
    freqs, psd = table[:, 0], table[:, 1:].T
    drift = pd.read_csv(root / "truth/psd_drift.csv", dtype={"id": str})
    return {
        r.id: psd * drift_factor(freqs, [getattr(r, f"scale_{d}") for d in DETS],
                                 [getattr(r, f"tilt_{d}") for d in DETS])
        for r in drift.itertuples()
    }  # fmt: skip


def inner_snr(h: np.ndarray, psd: np.ndarray) -> float:
    """sqrt(4 df sum_{f >= 20 Hz} |h~|^2 / S), as in check_snrs."""
    band = np.fft.rfftfreq(h.size, 1 / FS) >= 20.0
    hf = np.fft.rfft(h)[band] / FS
    return float(np.sqrt(4 * (FS / h.size) * np.sum(np.abs(hf) ** 2 / psd[band])))


def test_glitches_csv_matches_the_data(glitchy):
    """Every row: a matched filter with the glitch the row describes finds its SNR in its
    detector (at its time) and nothing in the two others."""
    from g2res.data.glitches import Glitch, glitch_waveform

    rows = pd.read_csv(glitchy / "truth/glitches.csv", dtype={"id": str})
    inj = pd.read_csv(glitchy / "truth/injections.csv", dtype={"id": str}).set_index("id")
    psds = _drifted_psd(glitchy)
    assert set(psds) == set(inj.index)
    n = len(inj)
    # Poisson(rate) per sample: the count within 3 sigma, every detector and kind present.
    assert abs(len(rows) - GLITCHY.glitch_rate * n) < 3 * np.sqrt(GLITCHY.glitch_rate * n)
    assert set(rows.detector) == set(DETS) and rows.kind.nunique() == 3
    assert set(inj.loc[rows.id, "target"]) == {0, 1}  # in noise and in signal samples
    assert rows.snr.between(8, 50).all()
    checked = 0
    for sample_id, group in rows.groupby("id"):
        split = inj.loc[sample_id, "split"]
        x = np.load(glitchy / split / sample_id[0] / sample_id[1] / sample_id[2]
                    / f"{sample_id}.npy", allow_pickle=False)  # fmt: skip
        psd = psds[sample_id]
        data_w = _tapered_whitening(x, psd)
        for r in group.itertuples():
            det = DETS.index(r.detector)
            g = Glitch(r.kind, r.time, r.f0, r.Q, r.duration, r.phase, r.snr)
            shape = glitch_waveform(g, FS, 4096)
            near = group[(group.detector == r.detector) & (group.index != r.Index)]
            if (np.abs(near.time - r.time) < (near.duration + r.duration) / 2 + 0.05).any():
                continue  # another glitch overlaps this one in the same detector
            template = _tapered_whitening(shape * (r.snr / inner_snr(shape, psd[det])), psd[det])
            expected = np.linalg.norm(template)  # the SNR left after taper and band
            mf = data_w[det] @ template / expected
            assert abs(mf - expected) < 5, (sample_id, r.kind, r.time, mf, expected)
            for other in set(range(3)) - {det}:
                t_other = _tapered_whitening(shape, psd[other])
                if (group.detector == DETS[other]).any():
                    continue  # that detector has a glitch of its own
                assert abs(data_w[other] @ t_other / np.linalg.norm(t_other)) < 5
            checked += 1
    assert checked >= 0.6 * len(rows)


def test_drift_csv_is_the_drift_applied(glitchy):
    """Noise-only, glitch-free samples are the sample's noise recoloured by the recorded
    scale and tilt (the noise draws themselves do not move with the drift)."""
    from g2res.data.glitches import drift_factor
    from g2res.data.noise import ColoredNoise, design_psd

    noise = ColoredNoise(design_psd, FS, 4096)
    drift = pd.read_csv(glitchy / "truth/psd_drift.csv", dtype={"id": str}).set_index("id")
    inj = pd.read_csv(glitchy / "truth/injections.csv", dtype={"id": str})
    glitched = set(pd.read_csv(glitchy / "truth/glitches.csv", dtype={"id": str}).id)
    scales = drift[[f"scale_{d}" for d in DETS]].to_numpy()
    tilts = drift[[f"tilt_{d}" for d in DETS]].to_numpy()
    assert scales.min() >= 0.8 and scales.max() <= 1.2 and scales.std() > 0.05
    assert np.abs(tilts).max() <= np.log(1.2) / np.log(5) + 1e-12
    checked = 0
    for row in inj[(inj.target == 0) & ~inj.id.isin(glitched)].itertuples():
        d = drift.loc[row.id]
        factor = drift_factor(noise.frequencies, [d[f"scale_{k}"] for k in DETS],
                              [d[f"tilt_{k}"] for k in DETS])  # fmt: skip
        expected = noise(sample_rng(5, row.index), psd_factor=factor)
        x = np.load(glitchy / row.split / row.id[0] / row.id[1] / row.id[2] / f"{row.id}.npy")
        np.testing.assert_allclose(x, expected, rtol=1e-9, atol=1e-30)
        checked += 1
    assert checked >= 3


def test_glitches_same_bytes_any_workers(glitchy, tmp_path):
    two = simulate(tmp_path / "two", SimulateConfig(**{**vars(GLITCHY), "workers": 2}), seed=5,
                   progress=False)  # fmt: skip
    a, b = digest(glitchy), digest(two)
    a.pop("truth/simulate.json"), b.pop("truth/simulate.json")
    assert a == b and "truth/glitches.csv" in a and "truth/psd_drift.csv" in a


def test_cli_glitch_options(tmp_path):
    out = tmp_path / "cli"
    argv = ["simulate", str(out), "--n-train", "6", "--n-test", "0", "--seed", "2", "--quiet",
            "--approximant", "IMRPhenomD", "--glitch-rate", "2", "--glitch-snr", "20", "30",
            "--glitch-kinds", "blip", "sine_gaussian", "--psd-drift", "0.1"]  # fmt: skip
    assert main(argv) == 0
    rows = pd.read_csv(out / "truth/glitches.csv")
    assert len(rows) > 3 and set(rows.kind) <= {"blip", "sine_gaussian"}
    assert rows.snr.between(20, 30).all()
    drift = pd.read_csv(out / "truth/psd_drift.csv")
    assert len(drift) == 6 and drift.filter(like="scale_").stack().between(0.9, 1.1).all()


def test_rejected_source_is_redrawn_reproducibly(monkeypatch):
    """A parameter set lalsimulation rejects is redrawn from the sample's own stream (as
    the waveform pool does): the sample holds the next draw, the same on every run, and
    a stream that never renders fails with lalsimulation's message."""
    from g2res.data.waveforms import MAX_ATTEMPTS, Injector

    sim = Simulator(SMALL)
    render = Injector.render
    rejected = []

    def flaky(self, params):
        if not rejected:  # the first draw of the sample is rejected
            rejected.append(params.mass1)
            raise RuntimeError("lalsimulation IMRPhenomXPHM failed: Input domain error")
        return render(self, params)

    monkeypatch.setattr(Injector, "render", flaky)
    sample = sim.make_sample(sample_rng(3, 5), 1)
    monkeypatch.setattr(Injector, "render", render)
    again = sim.make_sample(sample_rng(3, 5), 1)
    # The rejected draw is not the one written; the redrawn sample is a real signal.
    assert sample.params.mass1 != rejected[0]
    assert again.params.mass1 == rejected[0]  # without the rejection: the first draw
    rng = sample_rng(3, 5)
    sim.noise(rng)
    sim.injector.draw(rng)
    assert sim.injector.draw(rng).mass1 == sample.params.mass1  # the second draw
    assert np.sum(sample.signal**2) > 0 and np.all(np.isfinite(sample.data))

    calls = []

    def never(self, params):
        calls.append(1)
        raise RuntimeError("lalsimulation SEOBNRv4_opt failed: Input domain error")

    monkeypatch.setattr(Injector, "render", never)
    with pytest.raises(RuntimeError, match="SEOBNRv4_opt failed"):
        sim.make_sample(sample_rng(3, 5), 1)
    assert len(calls) == MAX_ATTEMPTS
