"""Test predictions kept beside each run, so the next ``submit`` does not redo them.

Every blend, stack or benchmark row that submits a run predicts the same test split with
the same fold models again (7,000 samples with a width-32 ResNet-1D: 8-20 min on two
CPU cores). ``submit`` therefore stores each run's test probabilities as
``RUN/predictions/<key>.npz`` (arrays ``ids``, ``probs`` (n,), the fold models' mean, and
``fold_probs`` (folds, n), each fold model's, which a fold-scaled stacker reads; no pickles)
and reuses them when the key matches. The key is a SHA-256 over everything the numbers
depend on: the sample ids and the bytes of the array predicted, the bytes of every fold
checkpoint, the test-time transforms, the device type (CUDA runs under autocast), the model
loader and the layout of the stored file.
Retraining a fold, re-preprocessing the cache or changing the TTA therefore misses the
cache; a stored file that is unreadable or does not match the ids is ignored and
rewritten. The data digest reads the split once (about a second per GB).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from g2res.utils import atomic_path

DIRNAME = "predictions"
FORMAT = 2  # 2: fold_probs stored, float64 sigmoid
_CHUNK_BYTES = 1 << 24


def data_digest(ids: Sequence[str], array: np.ndarray) -> str:
    """SHA-256 of the ids and of ``array``'s shape, dtype and bytes (read in chunks, so a
    memmap is never loaded whole)."""
    h = hashlib.sha256()
    h.update(json.dumps([list(map(str, ids)), list(array.shape), str(array.dtype)]).encode())
    rows = max(1, _CHUNK_BYTES // max(1, array[:1].nbytes))
    for start in range(0, len(array), rows):
        h.update(np.ascontiguousarray(array[start : start + rows]).tobytes())
    return h.hexdigest()


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK_BYTES), b""):
            h.update(block)
    return h.hexdigest()


def prediction_key(
    checkpoints: dict[int, Path],
    data: str,
    tta: Sequence[str],
    device_type: str,
    loader: Callable | None = None,
) -> str:
    """The cache key of one run's prediction: ``checkpoints`` (fold -> file), the
    ``data`` digest, the ``tta`` names (identity included), ``device_type`` and the
    ``loader`` (None: the checkpoint loader)."""
    loader_name = "" if loader is None else f"{loader.__module__}.{loader.__qualname__}"
    payload = {
        "format": FORMAT,  # a new layout or numerics of the stored arrays misses old files
        "data": data,
        "folds": {str(k): _file_digest(Path(p)) for k, p in sorted(checkpoints.items())},
        "tta": list(tta),
        "device": device_type,
        "loader": loader_name,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def cache_path(run_dir: Path, key: str) -> Path:
    return Path(run_dir) / DIRNAME / f"{key[:24]}.npz"


def load_predictions(path: Path, ids: Sequence[str]) -> np.ndarray | None:
    """The stored fold probabilities ``(folds, n)`` at ``path`` when they exist and are
    for exactly ``ids`` (same order) and finite in [0, 1]; None otherwise."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            stored_ids, probs = f["ids"], np.asarray(f["fold_probs"], dtype=np.float64)
    except (OSError, KeyError, ValueError):
        return None
    if (
        probs.ndim != 2
        or probs.shape[1] != len(ids)
        or stored_ids.shape != (len(ids),)
        or stored_ids.astype(str).tolist() != list(map(str, ids))
        or not np.isfinite(probs).all()
        or probs.min(initial=0.0) < 0
        or probs.max(initial=0.0) > 1
    ):
        return None
    return probs


def save_predictions(path: Path, ids: Sequence[str], fold_probs: np.ndarray) -> None:
    """Write ``ids``, ``fold_probs`` ``(folds, n)`` and their mean ``probs`` to ``path``
    atomically."""
    fold_probs = np.asarray(fold_probs, np.float64)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, ids=np.asarray(list(map(str, ids))), probs=fold_probs.mean(0),
                 fold_probs=fold_probs)  # fmt: skip
