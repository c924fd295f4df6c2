"""Test predictions kept in RUN/predictions/ and reused by the next submit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import EnergyDetector, load_fake, make_energy_run, save_fold

from g2res.ensemble import prediction_cache as pcache
from g2res.ensemble.submit import submit

CALLS: list[str] = []


def counting_loader(path, device):
    """load_fake, counting the checkpoints it loads (one per fold actually predicted)."""
    CALLS.append(str(path))
    return load_fake(path, device)


@pytest.fixture
def run(tmp_path, rng):
    CALLS.clear()
    return make_energy_run(tmp_path / "runs", "a", (1.0, 1.0, 0.0), rng)


def _submit(run, cache, out, **kw):
    kw = dict(device="cpu", progress=False, load_model=counting_loader, log=None, **kw)
    summary = submit([run], cache, out, **kw)
    target = pd.read_csv(out, dtype={"id": str}).set_index("id")["target"]
    return summary, target


def test_a_second_submit_reuses_the_predictions(run, fake_cache, tmp_path):
    first, a = _submit(run, fake_cache["cache"], tmp_path / "a.csv")
    assert len(CALLS) == 2 and first["reused_predictions"] == {"a": False}
    stored = list((run / "predictions").glob("*.npz"))
    assert len(stored) == 1
    second, b = _submit(run, fake_cache["cache"], tmp_path / "b.csv")
    assert len(CALLS) == 2, "the folds were loaded again: the stored prediction was not used"
    assert second["reused_predictions"] == {"a": True}
    pd.testing.assert_series_equal(a, b)

    # Without the cache: predicted again, nothing more written.
    _, c = _submit(run, fake_cache["cache"], tmp_path / "c.csv", cache_predictions=False)
    assert len(CALLS) == 4 and list((run / "predictions").glob("*.npz")) == stored
    np.testing.assert_allclose(c.to_numpy(), a.to_numpy(), rtol=1e-12)


def test_changed_inputs_miss_the_cache(run, fake_cache, tmp_path):
    cache = fake_cache["cache"]
    _, plain = _submit(run, cache, tmp_path / "a.csv")
    # Other TTA: predicted again, a second file.
    _submit(run, cache, tmp_path / "b.csv", tta=["swap_h1l1"])
    assert len(CALLS) == 4 and len(list((run / "predictions").glob("*.npz"))) == 2

    # A retrained fold: predicted again, and the numbers follow the new model.
    save_fold(run / "fold1" / "best.pt", EnergyDetector((0.0, 0.0, 3.0), 0.5), 1, "energy")
    summary, retrained = _submit(run, cache, tmp_path / "c.csv", tta=[])
    assert summary["reused_predictions"] == {"a": False} and len(CALLS) == 6
    assert np.abs(retrained.to_numpy() - plain.to_numpy()).max() > 1e-3

    # Other data under the same ids (a re-preprocessed cache): predicted again.
    x = np.load(cache / "test.npy")
    np.save(cache / "test.npy", (2 * x).astype(x.dtype))
    summary, scaled = _submit(run, cache, tmp_path / "d.csv", tta=[])
    assert summary["reused_predictions"] == {"a": False}
    assert np.abs(scaled.to_numpy() - retrained.to_numpy()).max() > 1e-3


def test_a_damaged_or_foreign_file_is_ignored_and_rewritten(run, fake_cache, tmp_path):
    _, a = _submit(run, fake_cache["cache"], tmp_path / "a.csv")
    (stored,) = (run / "predictions").glob("*.npz")
    stored.write_bytes(b"not an npz")
    summary, b = _submit(run, fake_cache["cache"], tmp_path / "b.csv")
    assert summary["reused_predictions"] == {"a": False}
    pd.testing.assert_series_equal(a, b)
    ids = (fake_cache["cache"] / "test_ids.txt").read_text().split()  # the cache's order
    assert pcache.load_predictions(stored, ids) is not None  # rewritten whole
    assert pcache.load_predictions(stored, ids[::-1]) is None  # other order: not ours
    pcache.save_predictions(stored, ids, np.full((2, len(ids)), 2.0))  # not a probability
    assert pcache.load_predictions(stored, ids) is None
    np.savez(stored, ids=np.asarray(ids), probs=np.full(len(ids), 0.5))  # no fold_probs
    assert pcache.load_predictions(stored, ids) is None


def test_data_digest_reads_in_chunks_and_sees_every_byte(tmp_path, monkeypatch, rng):
    x = rng.normal(size=(37, 3, 64)).astype(np.float32)
    ids = [f"{i:04x}" for i in range(len(x))]
    whole = pcache.data_digest(ids, x)
    np.save(tmp_path / "x.npy", x)
    monkeypatch.setattr(pcache, "_CHUNK_BYTES", 5 * x[0].nbytes + 3)
    assert pcache.data_digest(ids, np.load(tmp_path / "x.npy", mmap_mode="r")) == whole
    y = x.copy()
    y[-1, 2, -1] += 1e-3  # the last value of the last chunk
    assert pcache.data_digest(ids, y) != whole
    assert pcache.data_digest([*ids[:-1], "ffff"], x) != whole
