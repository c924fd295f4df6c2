"""Backbone registry in the style of ``timm.models._registry``.

``@register_model`` adds a factory under its function name; :func:`create_model`
builds by name. :func:`register_prefix` adds a family of names ``"<prefix><name>"``
built by one factory (``"timm:<name>"``: any timm model, registered by
``g2res.models.timm_backbone``). The registry imports no model: the package
``g2res.models`` imports the model modules, whose decorators fill it.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

__all__ = ["create_model", "is_model", "list_models", "register_model", "register_prefix"]

_MODELS: dict[str, Callable[..., nn.Module]] = {}
# prefix -> (factory taking the name after the prefix and keyword arguments, known(name))
_PREFIXES: dict[str, tuple[Callable[..., nn.Module], Callable[[str], bool]]] = {}
TIMM_PREFIX = "timm:"


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register ``fn`` (a backbone factory taking keyword arguments) under ``fn.__name__``."""
    name = fn.__name__
    if name in _MODELS:
        raise ValueError(f"model {name!r} is already registered")
    _MODELS[name] = fn
    return fn


def register_prefix(
    prefix: str, factory: Callable[..., nn.Module], known: Callable[[str], bool]
) -> None:
    """Build every name ``prefix + x`` with ``factory(x, **kwargs)``; ``known(x)``: exists."""
    if prefix in _PREFIXES:
        raise ValueError(f"model prefix {prefix!r} is already registered")
    _PREFIXES[prefix] = (factory, known)


def _family(name: str):
    """(factory, known, rest of the name) of the prefix family ``name`` is in, else None."""
    for prefix, (factory, known) in _PREFIXES.items():
        if name.startswith(prefix):
            return factory, known, name[len(prefix) :]
    return None


def list_models() -> list[str]:
    """Registered backbone names, sorted (``timm:<name>`` is also accepted)."""
    return sorted(_MODELS)


def is_model(name: str) -> bool:
    """True if ``name`` is registered or a ``timm:<name>`` timm knows."""
    family = _family(name)
    if family is not None:
        _, known, rest = family
        return known(rest)
    return name in _MODELS


def create_model(name: str, **kwargs) -> nn.Module:
    """Build backbone ``name``; returns pooled features ``(batch, num_features)``.

    Every backbone has ``num_features``, ``is_2d``, ``in_chans`` and ``stages`` (ordered
    list of modules, stem first, for freezing). ``pretrained`` (a local file path) is
    accepted by every backbone.
    """
    family = _family(name)
    if family is not None:
        factory, _, rest = family
        return factory(rest, **kwargs)
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
