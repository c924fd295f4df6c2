"""Pieces of the fold trainer: batches, schedules, reading the cache."""

import numpy as np
import pytest
import torch

from g2res.config import TrainConfig
from g2res.train.loop import (
    BatchReader,
    derive_seed,
    epoch_batches,
    lr_lambda,
    make_optimizer,
    make_scheduler,
)


def test_epoch_batches_cover_rows_once_and_depend_only_on_seed_fold_epoch():
    rows = np.arange(3, 104)  # 101 rows: batches of 25 leave a single sample
    b = epoch_batches(rows, 25, seed=1, fold=0, epoch=2)
    np.testing.assert_array_equal(np.sort(np.concatenate(b)), rows)
    assert [x.size for x in b] == [25, 25, 25, 26]  # no batch of one for BatchNorm
    again = epoch_batches(rows, 25, seed=1, fold=0, epoch=2)
    assert all(np.array_equal(x, y) for x, y in zip(b, again))
    for other in ((2, 0, 2), (1, 1, 2), (1, 0, 3)):
        c = epoch_batches(rows, 25, *other)
        assert not np.array_equal(np.concatenate(b), np.concatenate(c))
    assert derive_seed(1, 2, 3) != derive_seed(1, 3, 2)


def test_warmup_cosine_and_onecycle_schedules():
    f = lr_lambda(100, 10)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(55) == pytest.approx(0.5)
    assert f(99) < 0.01 and all(f(i) >= f(i + 1) for i in range(10, 99))
    model = torch.nn.Linear(4, 1)
    for name in ("cosine", "onecycle", "constant"):
        tc = TrainConfig(epochs=3, lr=1e-2, scheduler=name, warmup_epochs=1)
        opt = make_optimizer(model, tc)
        sched = make_scheduler(opt, tc, steps_per_epoch=10)
        lrs = []
        for _ in range(30):
            opt.step()
            sched.step()
            lrs.append(opt.param_groups[0]["lr"])
        peak = int(np.argmax(lrs))
        assert 5 <= peak <= 12, name  # rises over about one epoch
        assert max(lrs) == pytest.approx(1e-2, rel=0.05)
        if name != "constant":
            assert lrs[-1] < 1e-3
    with pytest.raises(ValueError, match="scheduler"):
        make_scheduler(opt, TrainConfig(scheduler="step"), 10)


def test_batch_reader_returns_rows_in_batch_order(tmp_path, rng):
    a = rng.normal(size=(20, 3, 8)).astype(np.float32)
    np.save(tmp_path / "a.npy", a)
    labels = (np.arange(20) % 2).astype(np.float32)
    batches = [np.array([7, 2, 19]), np.array([0, 5])]

    def opener():
        return np.load(tmp_path / "a.npy", mmap_mode="r")

    reader = BatchReader(opener, labels, batches)
    x, y = reader[0]
    np.testing.assert_array_equal(x.numpy(), a[[7, 2, 19]])
    np.testing.assert_array_equal(y.numpy(), labels[[7, 2, 19]])
    assert len(reader) == 2 and reader[1][0].shape == (2, 3, 8)
