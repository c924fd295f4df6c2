"""Classification heads: pooled features ``(batch, num_features)`` -> logits ``(batch, 1)``."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

__all__ = ["LinearHead", "MLPHead", "create_head", "list_heads"]


class LinearHead(nn.Sequential):
    """Optional dropout then one linear layer."""

    def __init__(self, in_features: int, num_outputs: int = 1, dropout: float = 0.0):
        layers: list[nn.Module] = [nn.Dropout(dropout)] if dropout > 0 else []
        super().__init__(*layers, nn.Linear(in_features, num_outputs))


class MLPHead(nn.Sequential):
    """``Linear -> BatchNorm? -> activation -> Dropout`` per hidden size, then a linear output.

    Args:
        hidden: hidden layer sizes (default 256-128-64).
        dropout: dropout after each hidden layer.
        activation: ``silu`` | ``relu`` | ``gelu``.
        batch_norm: a BatchNorm1d after each hidden linear layer.
    """

    def __init__(
        self,
        in_features: int,
        num_outputs: int = 1,
        hidden: Sequence[int] = (256, 128, 64),
        dropout: float = 0.2,
        activation: str = "silu",
        batch_norm: bool = False,
    ):
        acts = {"silu": nn.SiLU, "relu": nn.ReLU, "gelu": nn.GELU}
        if activation not in acts:
            raise ValueError(
                f"MLPHead: activation must be one of {sorted(acts)}, got {activation!r}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"MLPHead: dropout must be in [0, 1), got {dropout}")
        layers: list[nn.Module] = []
        cin = in_features
        for width in hidden:
            layers.append(nn.Linear(cin, int(width)))
            if batch_norm:
                layers.append(nn.BatchNorm1d(int(width)))
            layers += [acts[activation](), nn.Dropout(dropout)]
            cin = int(width)
        layers.append(nn.Linear(cin, num_outputs))
        super().__init__(*layers)


_HEADS = {"linear": LinearHead, "mlp": MLPHead}


def list_heads() -> list[str]:
    return sorted(_HEADS)


def create_head(name: str, in_features: int, **kwargs) -> nn.Module:
    """Build head ``name`` (``linear`` | ``mlp``) on ``in_features`` pooled features."""
    if name not in _HEADS:
        raise ValueError(f"unknown head {name!r}; choose from {list_heads()}")
    try:
        return _HEADS[name](in_features, **kwargs)
    except TypeError as exc:
        raise TypeError(f"head {name!r}: {exc}") from None
