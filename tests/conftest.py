"""Shared fixtures: a seeded generator and a tiny simulated data set (and its cache),
each built once per test session."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

# Loud signals so a few epochs of a tiny model can learn them on 2 CPU cores.
TINY = dict(n_train=400, n_test=100, snr=(10.0, 20.0), seed=1234)


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def rng() -> np.random.Generator:
    """A generator seeded the same way in every test."""
    return np.random.default_rng(20260611)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """A small simulated data set in the G2Net layout (built once per session)."""
    from g2res.config import SimulateConfig
    from g2res.data.simulate import simulate

    out = tmp_path_factory.mktemp("tiny") / "data"
    cfg = SimulateConfig(n_train=TINY["n_train"], n_test=TINY["n_test"], snr=TINY["snr"])
    simulate(out, config=cfg, seed=TINY["seed"], progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_cache(tiny_dataset, tmp_path_factory):
    """The preprocessed cache of ``tiny_dataset`` (built once per session)."""
    from g2res.config import PreprocessConfig
    from g2res.data.preprocess import preprocess

    out = tmp_path_factory.mktemp("tiny") / "cache"
    preprocess(tiny_dataset, out, config=PreprocessConfig(), seed=0, progress=False)
    return out


@pytest.fixture
def interrupt_renders(monkeypatch):
    """``interrupt_renders(n)``: the waveform pool's renderer raises KeyboardInterrupt after
    ``n`` sources (an interrupted ``g2res waveforms``); returns a function restoring it."""
    from g2res.data import pool as pool_module

    def arm(n: int):
        calls = {"n": 0}
        original = pool_module._Renderer.__call__

        def flaky(self, index):
            calls["n"] += 1
            if calls["n"] > n:
                raise KeyboardInterrupt
            return original(self, index)

        monkeypatch.setattr(pool_module._Renderer, "__call__", flaky)
        return lambda: monkeypatch.setattr(pool_module._Renderer, "__call__", original)

    return arm
