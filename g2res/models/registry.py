"""Backbone registry in the style of ``timm.models._registry``.

``@register_model`` adds a factory under its function name; :func:`create_model`
builds by name. Names ``"timm:<name>"`` build any timm model as a backbone.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

__all__ = ["create_model", "is_model", "list_models", "register_model"]

_MODELS: dict[str, Callable[..., nn.Module]] = {}
TIMM_PREFIX = "timm:"


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register ``fn`` (a backbone factory taking keyword arguments) under ``fn.__name__``."""
    name = fn.__name__
    if name in _MODELS:
        raise ValueError(f"model {name!r} is already registered")
    _MODELS[name] = fn
    return fn


def _ensure_registered() -> None:
    # Importing the model modules runs their @register_model decorators.
    from g2res.models import resnet, resnet1d  # noqa: F401


def list_models() -> list[str]:
    """Registered backbone names, sorted (``timm:<name>`` is also accepted)."""
    _ensure_registered()
    return sorted(_MODELS)


def is_model(name: str) -> bool:
    """True if ``name`` is registered or a ``timm:<name>`` timm knows."""
    _ensure_registered()
    if name.startswith(TIMM_PREFIX):
        import timm

        return timm.is_model(name[len(TIMM_PREFIX) :])
    return name in _MODELS


def create_model(name: str, **kwargs) -> nn.Module:
    """Build backbone ``name``; returns pooled features ``(batch, num_features)``.

    Every backbone has ``num_features``, ``is_2d``, ``in_chans`` and ``stages`` (ordered
    list of modules, stem first, for freezing). ``pretrained`` (a local file path) is
    accepted by every backbone.
    """
    _ensure_registered()
    if name.startswith(TIMM_PREFIX):
        from g2res.models.timm_backbone import TimmBackbone

        return TimmBackbone(name[len(TIMM_PREFIX) :], **kwargs)
    if name not in _MODELS:
        import difflib

        close = difflib.get_close_matches(name, _MODELS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(
            f"unknown model {name!r}{hint}; choose from {list_models()} or 'timm:<timm name>'"
        )
    try:
        return _MODELS[name](**kwargs)
    except TypeError as exc:
        raise TypeError(f"model {name!r}: {exc}") from None
