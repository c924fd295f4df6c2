"""Checkpoints: written atomically, read with ``torch.load(weights_only=True)``.

A fold checkpoint is a dict of tensors and plain values::

    model       state dict of the weights that scored best (EMA weights when EMA is on)
    optimizer, scheduler, scaler, ema   training state (``last.pt``; also in ``best.pt``)
    epoch       epochs completed
    fold        fold index (None for pretraining)
    config      the resolved recipe (``Config.to_dict()``)
    metrics     validation metrics of that epoch
    sample_rate, n_time   the input the model was built for
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch
from torch import nn

from g2res.config import config_from_dict
from g2res.models.classifier import build_model, task_model_config
from g2res.utils import atomic_path

__all__ = [
    "save_checkpoint",
    "load_checkpoint",
    "is_fold_checkpoint",
    "load_pretrained",
    "load_fold_model",
]


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """``torch.save`` to a temporary file, then rename: a crash never leaves half a file."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict:
    """Read a checkpoint with ``weights_only=True``; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # any unpickling failure is reported with the file name
        raise ValueError(f"checkpoint {path} cannot be read: {exc}") from None


def is_fold_checkpoint(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a whole-model g2res checkpoint (cv-train or pretrain), as opposed
    to a file of backbone weights."""
    ckpt = load_checkpoint(path)
    return isinstance(ckpt, dict) and "model" in ckpt and "config" in ckpt


def load_pretrained(model: nn.Module, path: str | os.PathLike) -> dict:
    """Load the weights of checkpoint ``path`` (``{"model": state_dict, ...}`` or a bare
    state dict) into ``model``; returns the checkpoint. Used by ``train.init_from``."""
    ckpt = load_checkpoint(path)
    state = ckpt["model"] if isinstance(ckpt, dict) and "model" in ckpt else ckpt
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(
            f"checkpoint {path} does not fit the recipe's model (was it trained with "
            f"another model: section?): {str(exc).splitlines()[0]}"
        ) from None
    return ckpt if isinstance(ckpt, dict) else {"model": state}


def load_fold_model(path: str | os.PathLike, device: str | torch.device = "cpu"):
    """Rebuild the model of a fold checkpoint -> ``(model in eval mode on device, Config)``."""
    ckpt = load_checkpoint(path)
    if not isinstance(ckpt, dict) or "model" not in ckpt or "config" not in ckpt:
        raise ValueError(f"checkpoint {path} is not a g2res fold checkpoint (no model/config)")
    cfg = config_from_dict(ckpt["config"])
    # The weights are loaded over the recipe's architecture: no pretrained file is read.
    model_cfg = dataclasses.replace(task_model_config(cfg), pretrained=None)
    model = build_model(
        model_cfg,
        sample_rate=float(ckpt.get("sample_rate", 2048.0)),
        n_time=int(ckpt.get("n_time", 4096)),
        conditioning=ckpt.get("conditioning"),
    )
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        raise ValueError(
            f"checkpoint {path}: weights do not fit its recipe: {str(exc).splitlines()[0]}"
        ) from None
    return model.to(device).eval(), cfg
