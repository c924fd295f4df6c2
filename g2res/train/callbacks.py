"""Callbacks for :class:`g2res.train.loop.FoldTrainer`.

A callback is any object with optional methods ``after_backward(trainer, epoch, step)``
(called with the gradients on ``trainer.model``, before clipping) and
``epoch_end(trainer, row)`` (``row``: the epoch's history entry, may be extended).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch
from torch import nn

from g2res.utils import write_json

__all__ = ["GradNormRecorder", "weight_layers", "layer_group"]

_WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Linear)


def weight_layers(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """``(name, weight)`` of every convolution and linear layer of ``model`` that trains,
    in registration order (input side first for the g2res backbones)."""
    return [
        (name, m.weight)
        for name, m in model.named_modules()
        if isinstance(m, _WEIGHTED) and m.weight.requires_grad
    ]


def layer_group(name: str) -> str:
    """The stage/block a layer belongs to: ``backbone.layer2.1.conv1`` -> ``layer2.1``,
    ``backbone.conv1`` -> ``stem``, ``head.fc`` -> ``head``; anything else: its parent."""
    parts = name.split(".")
    if parts[0] == "backbone":
        parts = parts[1:]
        if len(parts) >= 2 and parts[0].startswith("layer") and parts[1].isdigit():
            return f"{parts[0]}.{parts[1]}"
        return "stem" if len(parts) == 1 else parts[0]
    return parts[0] if len(parts) > 1 else name


class GradNormRecorder:
    """Mean L2 norm of the gradient of every conv/linear weight, per epoch.

    After each backward pass the norm ``||dL/dW||_2`` of each weight layer is added up
    (on the device, no synchronisation per step); at the end of an epoch the mean over
    the epoch's steps is stored under the epoch number. Norms are unscaled when mixed
    precision's GradScaler is on. ``path``: JSON file the record is written to after every
    epoch (atomically) and read back from, so a resumed fold keeps its earlier epochs.

    Attributes: ``layers`` (names, input side first), ``groups`` (layer -> stage/block),
    ``epochs`` ({epoch: {layer: mean norm}}).
    """

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path is not None else None
        self.layers: list[str] = []
        self.groups: dict[str, str] = {}
        self.epochs: dict[int, dict[str, float]] = {}
        self._sum: torch.Tensor | None = None
        self._steps = 0
        if self.path is not None and self.path.is_file():
            self._load(self.path)

    def _load(self, path: Path) -> None:
        try:
            saved = json.loads(path.read_text())
            self.layers = list(saved["layers"])
            self.groups = dict(saved["groups"])
            self.epochs = {int(e): dict(v) for e, v in saved["epochs"].items()}
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: not a gradient-norm record ({exc})") from None

    def after_backward(self, trainer, epoch: int, step: int) -> None:
        named = weight_layers(trainer.model)
        names = [n for n, _ in named]
        if self._sum is None:
            if self.layers and self.layers != names:
                raise ValueError(f"{self.path}: recorded for other layers than this model's")
            self.layers, self.groups = names, {n: layer_group(n) for n in names}
        grads = [w.grad for _, w in named]
        zero = torch.zeros((), device=named[0][1].device)
        norms = torch.stack([
            torch.linalg.vector_norm(g.detach().float()) if g is not None else zero
            for g in grads
        ])  # fmt: skip
        scaler = getattr(trainer, "scaler", None)
        if scaler is not None and scaler.is_enabled():
            norms = norms / scaler.get_scale()
        self._sum = norms if self._sum is None else self._sum + norms
        self._steps += 1

    def epoch_end(self, trainer, row: dict) -> None:
        if self._sum is None or self._steps == 0:
            return
        mean = (self._sum / self._steps).cpu().tolist()
        self._sum, self._steps = None, 0
        epoch = int(row["epoch"])
        self.epochs[epoch] = dict(zip(self.layers, mean, strict=True))
        first, last = self.first_last(epoch)
        row["grad_first"], row["grad_last"] = first, last
        row["grad_ratio"] = first / last if last > 0 else math.nan
        if self.path is not None and getattr(trainer, "main", True):
            write_json(self.path, self.to_dict())

    def body_layers(self) -> list[str]:
        """The backbone's weight layers along the main path (no projection shortcuts)."""
        return [n for n in self.layers if n.startswith("backbone.") and ".downsample." not in n]

    def first_last(self, epoch: int) -> tuple[float, float]:
        """Gradient norms of the first and the last backbone layer on the main path
        (stem convolution, last convolution of the last block) at ``epoch``."""
        body = self.body_layers()
        norms = self.epochs[epoch]
        return float(norms[body[0]]), float(norms[body[-1]])

    def to_dict(self) -> dict:
        """``{"layers", "groups", "epochs": {epoch: {layer: norm}}}`` (JSON-ready)."""
        return {
            "layers": self.layers,
            "groups": self.groups,
            "epochs": {str(e): self.epochs[e] for e in sorted(self.epochs)},
        }
