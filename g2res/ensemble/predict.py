"""Predicting a cache split with the fold models of trained runs, with optional TTA.

A run directory (``g2res cv-train --out runs/NAME``) holds ``config.yaml``,
``fold<k>/best.pt`` per fold and ``oof.csv``. Every fold model sees each batch of
the split once per test-time transform; the probabilities (sigmoid of the
logits) are averaged over transforms, then over folds.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from g2res.utils import resolve_device

Transform = Callable[[torch.Tensor], torch.Tensor]
ModelLoader = Callable[[Path, torch.device], nn.Module]

_FOLD_DIR = re.compile(r"^fold(\d+)$")


# ------------------------------------------------------------------------------ TTA
def available_tta() -> dict[str, Transform]:
    """Test-time transforms by name; each maps ``(batch, 3, time)`` to the same shape."""
    from g2res.transforms.augment import TTA_TRANSFORMS

    return dict(TTA_TRANSFORMS)


def tta_names() -> list[str]:
    """Every name ``tta`` accepts: single transforms and groups (``permute_detectors``)."""
    from g2res.transforms.augment import TTA_GROUPS

    return sorted(set(available_tta()) | set(TTA_GROUPS))


def tta_transforms(names: Sequence[str] | None) -> list[tuple[str, Transform]]:
    """The transforms averaged over: always the identity, then ``names`` (deduplicated;
    a group name such as ``permute_detectors`` adds each of its members)."""
    from g2res.transforms.augment import TTA_GROUPS

    table = available_tta()
    chosen = ["identity"]
    for name in names or []:
        if name not in table and name not in TTA_GROUPS:
            raise ValueError(f"unknown test-time augmentation {name!r}; choose from {tta_names()}")
        for member in TTA_GROUPS.get(name, [name]):
            if member not in chosen:
                chosen.append(member)
    return [(name, table[name]) for name in chosen]


# ------------------------------------------------------------------------------ predicting
def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    return contextlib.nullcontext()


@torch.inference_mode()
def predict_array(
    models: Sequence[nn.Module],
    array: np.ndarray,
    tta: Sequence[str] | None = None,
    batch_size: int = 256,
    device: str | torch.device = "auto",
    progress: bool = True,
    desc: str = "predict",
) -> np.ndarray:
    """Probabilities of each model on ``array``, averaged over test-time transforms.

    ``array`` is ``(n, 3, time)`` whitened strain (a memmap is read batch by batch);
    each model maps float32 ``(batch, 3, time)`` to logits ``(batch, 1)`` or
    ``(batch,)``. Returns float64 ``(n_models, n)`` probabilities in [0, 1].
    """
    if not models:
        raise ValueError("no models to predict with")
    if array.ndim != 3:
        raise ValueError(f"expected an array (n, detector, time), got shape {array.shape}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    device = resolve_device(device) if isinstance(device, str) else device
    transforms = tta_transforms(tta)
    models = [m.to(device).eval() for m in models]
    n = len(array)
    out = np.zeros((len(models), n), dtype=np.float64)
    bar = tqdm(total=n, desc=desc, unit="sample", disable=not progress, leave=False)
    with bar:
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            # A copy: memmaps are read-only and torch wants writable memory.
            x = torch.from_numpy(np.array(array[start:stop], dtype=np.float32)).to(device)
            for name, transform in transforms:
                xt = transform(x)
                for k, model in enumerate(models):
                    with _autocast(device):
                        logits = model(xt)
                    logits = logits.float().reshape(stop - start, -1)
                    if logits.shape[1] != 1:
                        raise ValueError(
                            f"model {k} returned {logits.shape[1]} outputs per sample under "
                            f"TTA {name!r}; expected one logit"
                        )
                    # float64: a float32 sigmoid is exactly 1 beyond logit ~17, which ties
                    # confident samples and loses the logit a stacker reads back
                    out[k, start:stop] += torch.sigmoid(logits[:, 0].double()).cpu().numpy()
            bar.update(stop - start)
    out /= len(transforms)
    if not np.isfinite(out).all():
        raise RuntimeError(f"{desc}: the models produced non-finite probabilities")
    return out


# ------------------------------------------------------------------------------ runs
@dataclass
class Run:
    """A trained run directory: its resolved recipe and fold checkpoints."""

    path: Path
    checkpoints: dict[int, Path]  # fold -> fold<k>/best.pt

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def oof_path(self) -> Path:
        return self.path / "oof.csv"

    def config(self):
        from g2res.config import load_config

        return load_config(self.config_path)


def find_run(path: str | os.PathLike, checkpoint: str = "best.pt") -> Run:
    """Check a run directory and list its fold checkpoints (``fold<k>/<checkpoint>``)."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"run directory {path} does not exist")
    folds = {}
    for sub in path.iterdir():
        m = _FOLD_DIR.match(sub.name)
        if m and (sub / checkpoint).is_file():
            folds[int(m.group(1))] = sub / checkpoint
    if not folds:
        raise FileNotFoundError(
            f"run {path} has no fold<k>/{checkpoint}; train it with `g2res cv-train --out {path}`"
        )
    return Run(path=path, checkpoints=dict(sorted(folds.items())))


def load_checkpoint_model(path: Path, device: torch.device) -> nn.Module:
    """The model of one fold checkpoint, in eval mode on ``device``."""
    from g2res.models.checkpoint import load_fold_model

    model, _ = load_fold_model(path, device=device)
    return model


def predict_run(run: Run | str | os.PathLike, array: np.ndarray, *args, **kwargs) -> np.ndarray:
    """Mean probability of a run's fold models on ``array`` ``(n, 3, time)`` -> ``(n,)``
    (arguments as :func:`predict_run_folds`)."""
    return predict_run_folds(run, array, *args, **kwargs).mean(axis=0)


def predict_run_folds(
    run: Run | str | os.PathLike,
    array: np.ndarray,
    tta: Sequence[str] | None = None,
    batch_size: int = 256,
    device: str | torch.device = "auto",
    progress: bool = True,
    load_model: ModelLoader | None = None,
) -> np.ndarray:
    """Probability of each fold model of a run (in fold order) on ``array``
    ``(n, 3, time)`` -> ``(folds, n)``, each averaged over the identity and ``tta``.

    ``load_model(checkpoint_path, device)`` defaults to the checkpoint loader of
    :mod:`g2res.models.checkpoint`.
    """
    run = run if isinstance(run, Run) else find_run(run)
    device = resolve_device(device) if isinstance(device, str) else device
    load_model = load_model or load_checkpoint_model
    models = []
    for fold, ckpt in run.checkpoints.items():
        try:
            models.append(load_model(ckpt, device))
        except (OSError, RuntimeError, KeyError, ValueError, pickle.UnpicklingError) as exc:
            raise RuntimeError(
                f"cannot load fold {fold} of run {run.path} ({ckpt}): {exc}"
            ) from exc
    return predict_array(
        models, array, tta, batch_size, device, progress, desc=f"predict {run.name}"
    )
