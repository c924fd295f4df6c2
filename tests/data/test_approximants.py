"""Mixed-approximant pools: shares follow the weights, the params.csv column and manifest of
a mix, a single approximant writing the bytes of the code before mixes (fixture made by
it), mixed sources equal to single-approximant sources, seeds, resume, bad input, the CLI."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from g2res.data.approximants import approximant_rng, parse_approximants
from g2res.data.pool import PoolConfig, WaveformPool, make_pool
from g2res.data.waveforms import draw_parameters

FIXTURE = Path(__file__).parents[1] / "fixtures" / "pool_single"
# Cheap: aligned-spin frequency-domain models, 0.6 s before the merger, no light binaries.
FAST = dict(pre_merger=0.6, taper=0.1, mass_range=(10.0, 60.0))
MIX = ("IMRPhenomD", "IMRPhenomXAS")


@pytest.fixture(scope="module")
def mixed_pool(tmp_path_factory):
    cfg = PoolConfig(n=300, approximant=MIX, approximant_weights=(1.0, 3.0), **FAST)
    return make_pool(tmp_path_factory.mktemp("mix") / "p", cfg, seed=4, progress=False)


def test_mix_shares_follow_the_weights(mixed_pool):
    """300 sources at weights 1:3: the IMRPhenomXAS count is Binomial(300, 0.75), and the
    column says which model made each source (the one the seeded choice names)."""
    params = WaveformPool(mixed_pool).params
    counts = params.approximant.value_counts()
    assert set(counts.index) == set(MIX)
    n_xas = int(counts["IMRPhenomXAS"])
    assert stats.binomtest(n_xas, 300, 0.75).pvalue > 1e-3, n_xas
    mix = parse_approximants(MIX, (1.0, 3.0))
    expected = np.array(MIX)[mix.choices(4, params["index"])]
    np.testing.assert_array_equal(params.approximant.to_numpy(), expected)
    # The choice is a uniform draw of its own stream against the cumulative weights.
    u = np.array([approximant_rng(4, i).uniform() for i in range(300)])
    np.testing.assert_array_equal(params.approximant.to_numpy() == "IMRPhenomXAS", u >= 0.25)


def test_mix_manifest_and_column(mixed_pool, tmp_path):
    pool = WaveformPool(mixed_pool)
    m = pool.manifest
    assert m["approximant"] == list(MIX) and pool.approximants == list(MIX)
    assert m["approximant_weights"] == pytest.approx([0.25, 0.75])
    assert m["priors"]["precessing"] == [False, False]
    assert list(pool.params.columns)[-1] == "approximant"
    single = make_pool(tmp_path / "one", PoolConfig(n=3, approximant="IMRPhenomD", **FAST),
                       seed=4, progress=False)  # fmt: skip
    one = WaveformPool(single)
    assert "approximant" not in one.params.columns and "approximant_weights" not in one.manifest
    assert one.manifest["approximant"] == "IMRPhenomD" and one.approximants == ["IMRPhenomD"]


def test_single_approximant_pool_equals_the_pre_mix_code(tmp_path):
    """The fixture was written by the code before mixes (PoolConfig defaults, n=3, 0.6 s,
    seed 7): params.csv byte for byte, the manifest (fingerprint included) and the arrays.
    A single approximant as a one-name tuple with a weight is the same pool."""
    cfg = PoolConfig(n=3, pre_merger=0.6, taper=0.1)
    for k, c in enumerate((cfg, PoolConfig(n=3, pre_merger=0.6, taper=0.1,
                                           approximant=("IMRPhenomXPHM",),
                                           approximant_weights=(2.0,)))):  # fmt: skip
        out = make_pool(tmp_path / f"p{k}", c, seed=7, progress=False)
        assert (out / "params.csv").read_bytes() == (FIXTURE / "params.csv").read_bytes()
        manifest = json.loads((out / "manifest.json").read_text())
        manifest.pop("version")
        assert manifest == json.loads((FIXTURE / "manifest.json").read_text())
        stored = np.load(out / "polarizations.npy")
        ref = np.load(FIXTURE / "polarizations.npy")
        np.testing.assert_allclose(stored, ref, rtol=0, atol=1e-5 * np.abs(ref).max())
    # The parameters are the documented stream: SeedSequence(seed, spawn_key=(2, index)).
    params = pd.read_csv(FIXTURE / "params.csv")
    for i in range(3):
        rng = np.random.default_rng(np.random.SeedSequence(7, spawn_key=(2, i)))
        p = draw_parameters(rng, cfg.mass_range, precessing=True, mass_prior="loguniform")
        assert params.mass1[i] == pytest.approx(p.mass1, rel=1e-9)
        assert params.spin2y[i] == pytest.approx(p.spin2y, rel=1e-8, abs=1e-12)


def test_mixed_sources_are_those_of_single_pools(tmp_path):
    """Source i of a mix equals source i of the single pool of its approximant (same seed):
    the mix adds its choice on a stream of its own. Non-precessing sources have no in-plane
    spins, precessing ones do."""
    names = ("IMRPhenomD", "IMRPhenomXPHM")
    cfg = PoolConfig(n=8, approximant=names, **FAST)
    mixed = WaveformPool(make_pool(tmp_path / "mix", cfg, seed=9, progress=False))
    params = mixed.params
    assert 0 < (params.approximant == "IMRPhenomD").sum() < 8
    for name in names:
        one = dataclasses.replace(cfg, approximant=name)
        single = WaveformPool(make_pool(tmp_path / name, one, seed=9, progress=False))
        rows = np.flatnonzero(params.approximant == name)
        np.testing.assert_array_equal(mixed.polarizations[rows], single.polarizations[rows])
        cols = list(single.params.columns)
        pd.testing.assert_frame_equal(
            params.iloc[rows][cols].reset_index(drop=True),
            single.params.iloc[rows].reset_index(drop=True),
            check_dtype=False,  # in-plane spins all 0: read back as integers
        )
        in_plane = np.hypot(params.spin1x[rows], params.spin1y[rows])
        assert (in_plane > 0).all() if name == "IMRPhenomXPHM" else (in_plane == 0).all()


def test_mix_depends_on_the_seed_only_and_resumes(mixed_pool, tmp_path, interrupt_renders):
    cfg = PoolConfig(n=300, approximant=MIX, approximant_weights=(1.0, 3.0), chunk=64,
                     workers=2, **FAST)  # fmt: skip
    restore = interrupt_renders(150)
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        make_pool(out, dataclasses.replace(cfg, workers=1), seed=4, progress=False)
    assert (out / ".partial").is_dir()
    restore()
    with pytest.raises(FileExistsError, match="other settings"):
        make_pool(out, dataclasses.replace(cfg, approximant_weights=(1.0, 1.0)), seed=4,
                  progress=False)  # fmt: skip
    make_pool(out, cfg, seed=4, progress=False)  # two workers finish what one began
    a, b = WaveformPool(mixed_pool), WaveformPool(out)
    np.testing.assert_array_equal(np.asarray(a.polarizations), np.asarray(b.polarizations))
    assert (mixed_pool / "params.csv").read_bytes() == (out / "params.csv").read_bytes()
    other = parse_approximants(MIX, (1.0, 3.0)).choices(5, range(300))
    assert not np.array_equal(other, parse_approximants(MIX, (1.0, 3.0)).choices(4, range(300)))


@pytest.mark.parametrize(
    "names, weights, match",
    [
        (("IMRPhenomD", "NoSuchWave"), None, "NoSuchWave"),
        (("IMRPhenomD", "IMRPhenomD"), None, "twice"),
        (MIX, (1.0,), "one weight per approximant"),
        (MIX, (1.0, 0.0), "weight 0.0 of IMRPhenomXAS"),
        (MIX, (1.0, float("nan")), "positive"),
        ((), None, "no approximant"),
    ],
)
def test_bad_approximants_and_weights_are_named(names, weights, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        parse_approximants(names, weights)
    if names:
        cfg = PoolConfig(n=2, approximant=names, approximant_weights=weights)
        with pytest.raises(ValueError, match=match):
            make_pool(tmp_path / "x", cfg, progress=False)
        assert not (tmp_path / "x").exists()


def test_waveforms_cli_mix(tmp_path, capsys):
    from g2res.cli import main

    out = tmp_path / "cli"
    argv = ["waveforms", "--n", "6", "--out", str(out), "--seed", "2", "-q",
            "--pre-merger", "0.6", "--mass-range", "10", "60"]  # fmt: skip
    assert main([*argv, "--approximant", *MIX, "--approximant-weights", "1"]) != 0
    assert "1 approximant weights" in capsys.readouterr().err
    assert main([*argv, "--approximant", "IMRPhenomD", "Nope"]) != 0
    assert "Nope" in capsys.readouterr().err
    assert main([*argv, "--approximant", *MIX, "--approximant-weights", "2", "1"]) == 0
    pool = WaveformPool(out)
    assert pool.approximants == list(MIX)
    assert pool.manifest["approximant_weights"] == pytest.approx([2 / 3, 1 / 3])
    assert set(pool.params.approximant) <= set(MIX)
