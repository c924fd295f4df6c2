"""Waveform pool: reproducible bytes, the lalsimulation waveform at the fixed merger sample,
documented priors, resume, refusal to overwrite, the reader and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from g2res.data.pool import PoolConfig, PoolError, WaveformPool, make_pool
from g2res.data.waveforms import BBHParameters, polarizations

SMALL = PoolConfig(n=6, chunk=4)


@pytest.fixture(scope="module")
def small_pool(tmp_path_factory):
    return make_pool(tmp_path_factory.mktemp("pool") / "p", SMALL, seed=5, progress=False)


def test_pool_bytes_depend_on_seed_only(small_pool, tmp_path):
    """Two workers and another chunking give the same bytes; another seed does not."""
    cfg = PoolConfig(n=6, chunk=3, workers=2)
    other = make_pool(tmp_path / "w2", cfg, seed=5, progress=False)
    a, b = WaveformPool(small_pool), WaveformPool(other)
    np.testing.assert_array_equal(np.asarray(a.polarizations), np.asarray(b.polarizations))
    assert (small_pool / "params.csv").read_bytes() == (other / "params.csv").read_bytes()
    third = WaveformPool(make_pool(tmp_path / "s6", SMALL, seed=6, progress=False))
    assert not np.array_equal(a.polarizations[0], third.polarizations[0])
    assert not a.params.mass1.equals(third.params.mass1)


def test_pool_holds_the_lalsimulation_waveform_at_the_merger_sample(small_pool):
    """Re-generated polarisations, placed with the peak at merger_index, equal the stored
    ones (outside the start taper), and the stored grid matches the manifest."""
    pool = WaveformPool(small_pool)
    m = pool.manifest
    fs, merger = pool.sample_rate, pool.merger_index
    assert pool.polarizations.shape == (6, 2, int(round(2.5 * fs)))
    assert merger == int(round(m["pre_merger"] * fs))
    n_taper = int(round(m["taper"] * fs))
    for _, row in pool.params.iterrows():
        params = BBHParameters(
            row.mass1, row.mass2, row.spin1x, row.spin1y, row.spin1z,
            row.spin2x, row.spin2y, row.spin2z, 0.0, 0.0, 0.0, row.inclination,
            row.coa_phase, 0.0, 0.0, m["reference_distance"],
        )  # fmt: skip
        hp, hc, t_first = polarizations(params, m["approximant"], fs, duration_needed=2.35)
        k0 = t_first * fs + merger  # grid sample of hp[0]
        assert abs(k0 - round(k0)) < 1e-3  # lalsimulation epochs lie on the grid (to 1 ns)
        k0 = int(round(k0))
        stored = pool.polarizations[int(row["index"])]
        lo, hi = max(k0, n_taper), min(k0 + hp.size, pool.n_time)
        ref = np.stack([hp, hc])[:, lo - k0 : hi - k0]
        scale = np.abs(ref).max()
        np.testing.assert_allclose(stored[:, lo:hi], ref, atol=1e-4 * scale)
        assert np.all(np.abs(stored[:, hi:]) < 1e-6 * scale)
        # The signal's amplitude peaks within a few ms of the fixed merger sample.
        amplitude = np.hypot(stored[0], stored[1])
        assert abs(int(np.argmax(amplitude)) - merger) < 0.03 * fs


def test_pool_priors_are_the_documented_ones(tmp_path):
    """Masses within the range and ordered, precessing spins below spin_max, cos(iota)
    spread over [-1, 1]."""
    cfg = PoolConfig(n=60, mass_range=(8.0, 30.0), pre_merger=0.6, taper=0.1, workers=2)
    pool = WaveformPool(make_pool(tmp_path / "p", cfg, seed=1, progress=False))
    p = pool.params
    assert p.mass1.between(8, 30).all() and p.mass2.between(8, 30).all()
    assert (p.mass1 >= p.mass2).all()
    spin1 = np.sqrt(p.spin1x**2 + p.spin1y**2 + p.spin1z**2)
    assert (spin1 <= cfg.spin_max).all()
    assert (np.hypot(p.spin1x, p.spin1y) > 0.05).mean() > 0.5  # in-plane spins: precession
    cos_i = np.cos(p.inclination)
    assert cos_i.min() < -0.5 and cos_i.max() > 0.5
    manifest = json.loads((pool.path / "manifest.json").read_text())
    assert manifest["priors"]["precessing"] is True
    assert manifest["priors"]["mass_range"] == [8.0, 30.0]
    assert manifest["priors"]["mass_prior"] == "loguniform"


def test_interrupted_pool_resumes_to_the_same_bytes(small_pool, tmp_path, interrupt_renders):
    restore = interrupt_renders(5)
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        make_pool(out, SMALL, seed=5, progress=False)
    assert (out / ".partial").is_dir() and not (out / "manifest.json").exists()
    with pytest.raises(PoolError, match="interrupted"):
        WaveformPool(out)
    restore()
    with pytest.raises(FileExistsError, match="other settings"):
        make_pool(out, PoolConfig(n=7, chunk=4), seed=5, progress=False)
    make_pool(out, SMALL, seed=5, progress=False)
    assert not (out / ".partial").exists()
    a, b = WaveformPool(small_pool), WaveformPool(out)
    np.testing.assert_array_equal(np.asarray(a.polarizations), np.asarray(b.polarizations))
    assert (small_pool / "params.csv").read_bytes() == (out / "params.csv").read_bytes()


def test_pool_refuses_foreign_files_and_bad_settings(tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="not empty"):
        make_pool(out, SMALL, progress=False)
    assert (out / "mine.txt").read_text() == "keep"
    with pytest.raises(ValueError, match="approximant"):
        make_pool(tmp_path / "x", PoolConfig(n=2, approximant="NoSuchWave"), progress=False)
    with pytest.raises(ValueError, match="mass_range"):
        make_pool(tmp_path / "x", PoolConfig(n=2, mass_range=(10, 5)), progress=False)
    with pytest.raises(ValueError, match="mass_prior"):
        make_pool(tmp_path / "x", PoolConfig(n=2, mass_prior="flat"), progress=False)
    with pytest.raises(PoolError, match="not a waveform pool"):
        WaveformPool(tmp_path / "nothing")


def test_pool_force_replaces_a_pool(small_pool, tmp_path):
    out = tmp_path / "p"
    make_pool(out, PoolConfig(n=2), seed=0, progress=False)
    with pytest.raises(FileExistsError):
        make_pool(out, PoolConfig(n=3), seed=0, progress=False)
    make_pool(out, PoolConfig(n=3), seed=0, force=True, progress=False)
    assert len(WaveformPool(out)) == 3
    batch = WaveformPool(small_pool).batch([4, 0, 4])
    np.testing.assert_array_equal(batch[0], batch[2])
    np.testing.assert_array_equal(batch[1], WaveformPool(small_pool).polarizations[0])


def test_waveforms_cli(tmp_path):
    from g2res.cli import main

    out = tmp_path / "cli"
    argv = ["waveforms", "--n", "3", "--out", str(out), "--seed", "2", "-q"]
    assert main([*argv, "--mass-range", "10", "20", "--mass-prior", "uniform"]) == 0
    pool = WaveformPool(out)
    assert len(pool) == 3 and pool.manifest["seed"] == 2
    assert pool.manifest["priors"]["mass_prior"] == "uniform"
    assert pool.params.mass1.between(10, 20).all()
    assert main([*argv, "--mass-range", "10", "20"]) != 0  # exists: needs --force
