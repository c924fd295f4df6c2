"""Loading local backbone weights (no downloads), adapting the first convolution."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

__all__ = ["adapt_input_conv", "load_pretrained"]

_PREFIXES = ("module.", "model.", "backbone.", "_orig_mod.")


def adapt_input_conv(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """Map a first-conv weight ``(out, c, *k)`` to ``in_chans`` input channels.

    1 channel: sum over the input channels. More: repeat cyclically and rescale by
    ``c / in_chans`` so the response to a constant input keeps its size (as timm).
    """
    c = weight.shape[1]
    if c == in_chans:
        return weight
    if in_chans == 1:
        return weight.sum(dim=1, keepdim=True)
    reps = -(-in_chans // c)
    return weight.repeat(1, reps, *([1] * (weight.ndim - 2)))[:, :in_chans] * (c / in_chans)


def _strip(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix) :], True
    return key


def load_pretrained(
    model: nn.Module, path: str | os.PathLike, first_conv: str | None = None
) -> list[str]:
    """Load a local state dict from ``path`` into ``model`` (weights_only).

    Accepts a bare state dict or one under ``state_dict``/``model``; strips
    ``module.``/``backbone.`` prefixes; drops classifier weights the backbone lacks;
    adapts ``first_conv``'s channels. Returns the model keys left at their init.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights {path} do not exist (downloads are off)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"pretrained weights {path} could not be read: {exc}") from exc
    for key in ("state_dict", "model", "model_state"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"pretrained weights {path} hold no state dict of tensors")
    state = {_strip(k): v for k, v in obj.items()}
    own = model.state_dict()
    if first_conv is not None and f"{first_conv}.weight" in state and f"{first_conv}.weight" in own:
        key = f"{first_conv}.weight"
        state[key] = adapt_input_conv(state[key], own[key].shape[1])
    kept, wrong = {}, []
    for k, v in state.items():
        if k not in own:
            continue
        if own[k].shape != v.shape:
            wrong.append(f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}")
            continue
        kept[k] = v
    if wrong:
        raise ValueError(f"pretrained weights {path} do not fit the model: " + "; ".join(wrong[:5]))
    if not kept:
        raise ValueError(
            f"pretrained weights {path} share no parameter names with "
            f"{type(model).__name__} (first keys: {list(state)[:3]})"
        )
    missing = [k for k in own if k not in kept]
    model.load_state_dict(kept, strict=False)
    return missing
