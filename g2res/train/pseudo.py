"""``g2res pseudo-label``: a new cache whose training split adds test samples labelled by
trained runs, without leaking any fold's validation data into its own training.

Semi-supervision in K-fold training has one trap: if test samples are labelled by the
ensemble of *all* folds, the labels carry what fold k's validation samples taught the
other folds' models, so fold k's validation AUC is no longer honest. Here the label a
test sample gets *when training fold k* is the prediction of fold k's models only; they
never saw fold k's validation samples. The new cache therefore brings:

``folds.csv``
    the labelling runs' split for the original rows (every fold validates on exactly
    the same real samples) and fold -1 for pseudo-labelled rows: training data of
    every fold, never validation.
``train_pseudo.npy``
    float32 ``(n_train, K)``: NaN for original rows; for a pseudo-labelled row, column k
    is fold k's prediction (probability, averaged over the runs and the TTA transforms),
    hardened to 0/1 at 0.5 unless ``soft``.
``train_labels.npy``
    original labels, then the hardened ensemble mean (mean over folds and runs >= 0.5):
    what stratification and ``folds.csv`` see; training uses ``train_pseudo.npy``.

Confidence selection: a test sample is kept when the ensemble mean ``m`` satisfies
``m <= threshold_low`` or ``m >= threshold_high``. Defaults: 0.1 / 0.9 for hard labels
(only confident samples, so few wrong labels), keep everything with ``soft`` (soft
targets already carry the uncertainty). Giving one threshold sets the other to its
mirror (``low = 1 - high``). The test split is carried over unchanged (hard links when
possible), so the new cache still makes submissions. :mod:`g2res.train.cv` reads the
format.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from g2res.data.cache import MANIFEST, PSD_FILE, Cache
from g2res.ensemble.predict import find_run, load_checkpoint_model, predict_array, tta_transforms
from g2res.train.cv import FOLDS, PSEUDO_TARGETS
from g2res.train.folds import check_folds, read_folds, write_folds
from g2res.utils import atomic_path, resolve_device, save_npy, write_json

__all__ = ["pseudo_label", "fold_predictions", "resolve_thresholds"]

# Rows copied per step when writing the new training array.
_COPY_ROWS = 512


def resolve_thresholds(
    soft: bool, low: float | None = None, high: float | None = None
) -> tuple[float, float]:
    """The ``(low, high)`` confidence thresholds; see the module docstring for defaults."""
    if low is None and high is None:
        low, high = (0.5, 0.5) if soft else (0.1, 0.9)
    elif low is None:
        low = 1.0 - high
    elif high is None:
        high = 1.0 - low
    if not (0.0 <= low <= high <= 1.0):
        raise ValueError(
            f"thresholds must satisfy 0 <= low <= high <= 1, got low={low}, high={high}"
        )
    return float(low), float(high)


def _shared_split(runs, cache: Cache, ids, labels) -> tuple[pd.DataFrame, np.ndarray]:
    """The one ``folds.csv`` every run was trained with, checked against the cache."""
    first = None
    for run in runs:
        f = run.path / FOLDS
        table = read_folds(f)
        if first is None:
            first, first_path = table, f
            continue
        a = first.set_index("id")["fold"].sort_index()
        b = table.set_index("id")["fold"].sort_index()
        if not (a.index.equals(b.index) and np.array_equal(a.to_numpy(), b.to_numpy())):
            raise ValueError(
                f"runs were trained on different splits ({first_path} and {f} differ); "
                "pseudo-labels need one split: train every run with cv.folds_file "
                f"(--folds-from {first_path})"
            )
    fold = check_folds(first, ids, labels, where=f"{first_path} (for cache {cache.path})")
    if (fold < 0).any():
        raise ValueError(f"{first_path}: the runs were trained on a pseudo-labelled cache; "
                         "pseudo-label the original cache instead")  # fmt: skip
    n_folds = int(fold.max()) + 1
    if sorted(set(fold.tolist())) != list(range(n_folds)):
        raise ValueError(f"{first_path}: folds are not numbered 0..{n_folds - 1}")
    for run in runs:
        missing = [k for k in range(n_folds) if k not in run.checkpoints]
        if missing:
            raise ValueError(
                f"run {run.path} has no checkpoint for fold(s) {missing} of {n_folds}: every "
                "fold needs its own model to label its training data; train them with --fold"
            )
    return first, fold


def fold_predictions(
    runs: Sequence[str | os.PathLike],
    array: np.ndarray,
    n_folds: int,
    tta: Sequence[str] | None = None,
    batch_size: int = 256,
    device: str = "auto",
    progress: bool = True,
) -> np.ndarray:
    """Probability of each fold on ``array`` ``(n, 3, time)``, averaged over ``runs``
    (and TTA) -> float64 ``(n_folds, n)``; row k uses only the fold-k models."""
    dev = resolve_device(device)
    total = np.zeros((n_folds, len(array)), dtype=np.float64)
    for r in runs:
        run = find_run(r)
        if run.config().task == "regression":
            raise ValueError(f"run {run.path} is a regression run; pseudo-labels need detection")
        models = []
        for k in range(n_folds):
            try:
                models.append(load_checkpoint_model(run.checkpoints[k], dev))
            except (OSError, RuntimeError, KeyError, ValueError) as exc:
                raise RuntimeError(f"cannot load fold {k} of run {run.path}: {exc}") from exc
        total += predict_array(
            models, array, tta, batch_size, dev, progress, desc=f"pseudo-label {run.name}"
        )
    return total / len(runs)


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links not allowed
        shutil.copy2(src, dst)


def _write_train(tmp: Path, cache: Cache, test_rows: np.ndarray, progress: bool) -> None:
    """``train.npy`` = the original training rows, then the selected test rows."""
    train, test = cache.array("train"), cache.array("test")
    n_train = len(train)
    shape = (n_train + len(test_rows), *train.shape[1:])
    with atomic_path(tmp / "train.npy") as part:
        out = np.lib.format.open_memmap(part, mode="w+", dtype=train.dtype, shape=shape)
        bar = tqdm(total=shape[0], desc="write train.npy", unit="sample", disable=not progress,
                   leave=False)  # fmt: skip
        with bar:
            for s in range(0, n_train, _COPY_ROWS):
                e = min(s + _COPY_ROWS, n_train)
                out[s:e] = train[s:e]
                bar.update(e - s)
            for s in range(0, len(test_rows), _COPY_ROWS):
                rows = test_rows[s : s + _COPY_ROWS]
                out[n_train + s : n_train + s + len(rows)] = test[rows]
                bar.update(len(rows))
        out.flush()
        del out


def pseudo_label(
    runs: Sequence[str | os.PathLike],
    cache: str | os.PathLike,
    out: str | os.PathLike,
    *,
    soft: bool = False,
    threshold_low: float | None = None,
    threshold_high: float | None = None,
    tta: Sequence[str] | None = None,
    batch_size: int = 256,
    device: str = "auto",
    force: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
) -> dict:
    """Write the pseudo-labelled copy of ``cache`` into ``out`` and return its summary.

    Args:
        runs: run directories of ``g2res cv-train`` on ``cache``, all with one split
            (``folds.csv``) and a checkpoint for every fold.
        cache: the cache whose test split is labelled (not itself pseudo-labelled).
        out: new cache directory; built beside it and renamed into place at the end.
        soft: keep probabilities as targets instead of 0/1.
        threshold_low, threshold_high: confidence selection on the ensemble mean.
        tta: test-time transforms averaged with the identity (as in ``g2res submit``).
        force: replace an existing ``out``.

    Returns the ``pseudo`` entry of the new manifest (``n_pseudo``, class counts, ...).
    """
    log = log or (lambda _msg: None)
    if not runs:
        raise ValueError("no runs given")
    low, high = resolve_thresholds(soft, threshold_low, threshold_high)
    tta_transforms(tta)  # unknown names fail before any model is loaded
    src = Cache(cache)
    out = Path(out)
    if out.resolve() == src.path.resolve():
        raise ValueError(f"--out {out} is the input cache; choose a new directory")
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise FileExistsError(f"{out} is not empty; pass --force to replace it")
    if (src.path / PSEUDO_TARGETS).is_file() or (src.path / FOLDS).is_file():
        raise ValueError(f"cache {src.path} is already pseudo-labelled; start from the original")
    found = [find_run(r) for r in runs]
    ids = np.asarray(src.ids("train"))
    labels = src.labels("train").astype(np.int64)
    test_ids = np.asarray(src.ids("test"))
    test = src.array("test")
    if len(test) != len(test_ids):
        raise ValueError(f"cache {src.path}: test.npy has {len(test)} rows, test_ids.txt "
                         f"{len(test_ids)}")  # fmt: skip
    overlap = np.intersect1d(ids, test_ids)
    if overlap.size:
        raise ValueError(f"cache {src.path}: ids in both splits (e.g. {overlap[:3].tolist()})")
    _, fold = _shared_split(found, src, ids, labels)
    n_folds = int(fold.max()) + 1

    log(f"pseudo-label: {len(test)} test samples of {src.path} with {len(found)} run(s) x "
        f"{n_folds} folds")  # fmt: skip
    per_fold = fold_predictions(
        [r.path for r in found], test, n_folds, tta, batch_size, device, progress
    )
    mean = per_fold.mean(axis=0)
    keep = np.flatnonzero((mean <= low) | (mean >= high))
    if keep.size == 0:
        raise ValueError(
            f"no test sample passes the thresholds low={low}, high={high} (ensemble "
            f"predictions span {mean.min():.3f}..{mean.max():.3f}); widen them or use --soft"
        )
    hard = (mean[keep] >= 0.5).astype(np.int8)
    targets = per_fold[:, keep].T.astype(np.float32)  # (n_pseudo, K)
    if not soft:
        targets = (targets >= 0.5).astype(np.float32)

    n_orig, n_new = len(ids), len(ids) + keep.size
    pseudo = np.full((n_new, n_folds), np.nan, dtype=np.float32)
    pseudo[n_orig:] = targets
    all_ids = np.concatenate([ids, test_ids[keep]])
    all_labels = np.concatenate([labels.astype(np.int8), hard])
    folds_table = pd.DataFrame(
        {"id": all_ids, "target": all_labels.astype(np.int64),
         "fold": np.concatenate([fold, np.full(keep.size, -1)])}
    )  # fmt: skip
    summary = {
        "runs": [str(r.path.resolve()) for r in found],
        "source_cache": str(src.path.resolve()),
        "soft": bool(soft),
        "threshold_low": low,
        "threshold_high": high,
        "tta": list(tta or []),
        "n_folds": n_folds,
        "n_test": int(len(test)),
        "n_pseudo": int(keep.size),
        "n_pseudo_positive": int(hard.sum()),
        "n_pseudo_negative": int(keep.size - hard.sum()),
        "rule": "column k of train_pseudo.npy is fold k's models' prediction only",
    }

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        _write_train(tmp, src, keep, progress)
        (tmp / "train_ids.txt").write_text("".join(f"{i}\n" for i in all_ids))
        save_npy(tmp / "train_labels.npy", all_labels)
        save_npy(tmp / PSEUDO_TARGETS, pseudo)
        write_folds(folds_table, tmp / FOLDS)
        for name in ("test.npy", "test_ids.txt"):
            _link_or_copy(src.path / name, tmp / name)
        for name in (PSD_FILE, "bad_files.csv"):
            if (src.path / name).is_file():
                shutil.copy2(src.path / name, tmp / name)
        manifest = json.loads(json.dumps(src.manifest))
        counts = dict(manifest.get("counts", {}))
        counts.update(train=int(n_new), train_positive=int(all_labels.sum()))
        manifest["counts"] = counts
        manifest["pseudo"] = summary
        # Not the preprocess fingerprint any more: preprocess must never take this
        # directory for its own finished cache.
        if manifest.get("fingerprint"):
            manifest["fingerprint"] = f"pseudo:{manifest['fingerprint']}"
        write_json(tmp / MANIFEST, manifest)
        old = None
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.replace(out, old)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"pseudo-label: {keep.size} of {len(test)} test samples added "
        f"({summary['n_pseudo_positive']} positive, {summary['n_pseudo_negative']} negative; "
        f"{'soft' if soft else 'hard'} labels, thresholds {low}/{high}) -> {out}")  # fmt: skip
    return summary
