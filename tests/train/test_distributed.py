"""cv-train under torchrun: 2 CPU processes (gloo), data-parallel and one fold each."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest

pytestmark = pytest.mark.slow

ARGS = ["--folds", "2", "--epochs", "2", "--batch-size", "32", "--workers", "0", "-q",
        "model.frontend.name=identity", "model.backbone={name: resnet1d_18, base_width: 8}",
        "augment.swap_h1l1=0.5"]  # fmt: skip


def _run(cmd: list[str], tmp_path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    res = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=600)  # fmt: skip
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]


def _torchrun() -> list[str]:
    exe = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    if exe is None:
        pytest.skip("torchrun is not installed beside this Python")
    return [exe, "--standalone", "--nproc-per-node", "2", "-m", "g2res", "cv-train"]


def _files(run) -> set[str]:
    """The run's files; TensorBoard event files (named by time, host and process) by folder."""
    files = {str(p.relative_to(run)) for p in run.rglob("*") if p.is_file()}
    return {f.rsplit("/", 1)[0] + "/events" if "/events.out." in f else f for f in files}


def _event_files(run) -> list[str]:
    return sorted(str(p.parent.relative_to(run)) for p in run.rglob("events.out.tfevents.*"))


def test_two_processes_match_one(tiny_cache, tmp_path):
    one, ddp, per_fold = tmp_path / "one", tmp_path / "ddp", tmp_path / "fp"
    common = ["--cache", str(tiny_cache), *ARGS]
    _run([sys.executable, "-m", "g2res", "cv-train", "--out", str(one), *common], tmp_path)
    _run([*_torchrun(), "--out", str(ddp), *common], tmp_path)
    _run([*_torchrun(), "--out", str(per_fold), "--fold-parallel", *common], tmp_path)

    assert _files(ddp) == _files(one) == _files(per_fold)
    if _event_files(one):  # tensorboard installed: one event file per fold, by rank 0 alone
        assert (
            _event_files(ddp)
            == _event_files(one)
            == _event_files(per_fold)
            == ["tb/fold0", "tb/fold1"]
        )
    a, b = pd.read_csv(one / "oof.csv"), pd.read_csv(ddp / "oof.csv")
    pd.testing.assert_frame_equal(a[["id", "target", "fold"]], b[["id", "target", "fold"]])
    import json

    auc = {r: json.loads((r / "metrics.json").read_text())["auc"] for r in (one, ddp)}
    # Data-parallel halves of the same global batches: the same training up to
    # per-process BatchNorm statistics and augmentation draws.
    assert abs(auc[one] - auc[ddp]) < 0.1, auc
    assert json.loads((ddp / "metrics.json").read_text())["processes"] == 2
    # One fold per process runs exactly the single-process code: identical predictions.
    c = pd.read_csv(per_fold / "oof.csv")
    pd.testing.assert_frame_equal(a, c, check_exact=False, rtol=1e-5, atol=1e-6)
