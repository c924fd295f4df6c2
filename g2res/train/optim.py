"""The optimiser and its schedule: AdamW over the model's parameter groups, warm-up +
cosine, one-cycle or constant learning rate per step, and the EMA of weights."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from g2res.config import TrainConfig


def lr_lambda(total_steps: int, warmup_steps: int, shape: str = "cosine") -> Callable[[int], float]:
    """Learning-rate factor per optimiser step: linear warm-up over ``warmup_steps``, then
    ``cosine`` decay to 0 at ``total_steps`` or ``constant``."""
    if shape not in ("cosine", "constant"):
        raise ValueError(f"schedule {shape!r}: use cosine or constant")
    total, warmup = max(1, int(total_steps)), max(0, int(warmup_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if shape == "constant":
            return 1.0
        t = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0)))

    return factor


def make_optimizer(model: nn.Module, tc: TrainConfig, lr: float | None = None):
    """AdamW over the model's parameter groups (head/front-end at ``lr``, backbone at
    ``train.backbone_lr``; no decay on biases and norms)."""
    lr = tc.lr if lr is None else lr
    if hasattr(model, "param_groups"):
        groups = model.param_groups(lr, tc.backbone_lr, tc.weight_decay)
    else:
        groups = [{"params": [p for p in model.parameters() if p.requires_grad], "lr": lr}]
    if not any(g["params"] for g in groups):
        raise ValueError("the model has no trainable parameters (is everything frozen?)")
    return torch.optim.AdamW(groups, lr=lr, weight_decay=tc.weight_decay)


def make_scheduler(optimizer, tc: TrainConfig, steps_per_epoch: int):
    """Per-step scheduler of ``train.scheduler`` (cosine | onecycle | constant)."""
    total = max(1, tc.epochs * steps_per_epoch)
    warmup = int(round(tc.warmup_epochs * steps_per_epoch))
    if tc.scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=[g["lr"] for g in optimizer.param_groups],
            total_steps=total,
            pct_start=min(max(warmup / total, 0.01), 0.5),
        )
    if tc.scheduler not in ("cosine", "constant"):
        raise ValueError(f"train.scheduler={tc.scheduler!r}: use cosine, onecycle or constant")
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(total, warmup, tc.scheduler))


def ema_update(decay: float):
    """``multi_avg_fn`` of an EMA of weights with warm-up: step n uses the decay
    min(decay, (1 + n) / (10 + n)), so short runs are not stuck near their initial weights."""

    @torch.no_grad()
    def update(ema_params, params, num_averaged) -> None:
        n = int(num_averaged)
        d = min(decay, (1.0 + n) / (10.0 + n))
        floats = [(e, p) for e, p in zip(ema_params, params) if e.is_floating_point()]
        if floats:
            torch._foreach_lerp_([e for e, _ in floats], [p for _, p in floats], 1.0 - d)
        for e, p in zip(ema_params, params):
            if not e.is_floating_point():  # counters such as BatchNorm's batches seen
                e.copy_(p)

    return update
