"""2D ResNets (He et al. 2016) for time-frequency images: one class, depth tables.

Module names follow torchvision (``conv1``, ``bn1``, ``layer1..4``, blocks'
``conv1/bn1/...``, ``downsample``), so a torchvision ResNet state dict loads as
local ``pretrained`` weights, and with ``base_width=64`` the parameter counts equal
torchvision's (without its 1000-class ``fc``).
"""

from __future__ import annotations

import os

import torch
from torch import nn

from g2res.models.pooling import create_pool
from g2res.models.registry import register_model

__all__ = ["BasicBlock", "Bottleneck", "ResNet"]


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def _conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


def _shortcut2d(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(_conv1x1(cin, cout, stride), nn.BatchNorm2d(cout))


class ResidualBlock(nn.Module):
    """What every block (2D and 1D) shares: the skip path, or none (``residual=False``)."""

    def _finish(self, residual: bool, downsample: nn.Module | None) -> None:
        """Call at the end of ``__init__``, after the body's layers."""
        if not residual and downsample is not None:
            raise ValueError(
                f"{type(self).__name__}: a plain block (residual=False) has no shortcut to "
                "downsample"
            )
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.residual = residual

    def _merge(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """ReLU of the body's output ``out`` plus the block input ``x`` (projected by
        ``downsample`` when the shapes differ); a plain block has no ``x`` term."""
        if not self.residual:
            return self.relu(out)
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class ResNetBase(nn.Module):
    """What the 2D and 1D ResNets share: stages of blocks, freezing views, features.

    Subclasses build ``conv1``, ``bn1``, ``relu``, ``maxpool`` (the stem), then call
    :meth:`_add_stages`, then :meth:`_finish`.
    """

    def _add_stages(self, block, layers, base_width: int, residual: bool, shortcut, **kw) -> int:
        """``layer1..N`` of ``block``: stage ``i`` has width ``base_width * 2**i`` and stride
        2 from the second stage on; ``shortcut(cin, cout, stride)`` projects the skip path
        where the shape changes (never in plain networks). Returns the output channels."""
        cin = base_width
        for i, n_blocks in enumerate(layers):
            width = base_width * 2**i
            stride = 1 if i == 0 else 2
            downsample = None
            if residual and (stride != 1 or cin != width * block.expansion):
                downsample = shortcut(cin, width * block.expansion, stride)
            blocks = [block(cin, width, stride, downsample, residual=residual, **kw)]
            cin = width * block.expansion
            blocks += [block(cin, width, residual=residual, **kw) for _ in range(n_blocks - 1)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
        return cin

    def _finish(self, pool: str, drop_rate: float, pretrained) -> None:
        self.global_pool = create_pool(pool, self.num_features)
        self.drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if pretrained is not None:
            from g2res.models.pretrained import load_pretrained

            load_pretrained(self, pretrained, first_conv="conv1")

    @property
    def stages(self) -> list[nn.Module]:
        """``[stem, layer1, ..., layerN]``, input side first."""
        stem = nn.ModuleList([self.conv1, self.bn1])  # a view, not registered
        return [stem] + [getattr(self, f"layer{i + 1}") for i in range(len(self.layers))]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Input -> feature map ``(batch, num_features, ...)`` before pooling."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(len(self.layers)):
            x = getattr(self, f"layer{i + 1}")(x)
        return x


class BasicBlock(ResidualBlock):
    """Two 3x3 convolutions with a residual connection (ResNet18/34).

    ``residual=False`` makes the plain twin (He et al. 2016, Sec. 4.1): same body, no
    skip path, so the block must not be given a ``downsample``.
    """

    expansion = 1

    def __init__(
        self,
        cin: int,
        width: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        residual: bool = True,
    ):
        super().__init__()
        self.conv1 = _conv3x3(cin, width, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width)
        self.bn2 = nn.BatchNorm2d(width)
        self._finish(residual, downsample)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self._merge(out, x)


class Bottleneck(ResidualBlock):
    """1x1 reduce, 3x3 (stride here, as torchvision's v1.5), 1x1 expand by 4 (ResNet50+).

    ``residual=False``: the plain twin, no skip path (and no ``downsample``).
    """

    expansion = 4

    def __init__(
        self,
        cin: int,
        width: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        residual: bool = True,
    ):
        super().__init__()
        self.conv1 = _conv1x1(cin, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = _conv1x1(width, width * self.expansion)
        self.bn3 = nn.BatchNorm2d(width * self.expansion)
        self._finish(residual, downsample)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self._merge(out, x)


class ResNet(ResNetBase):
    """Generic 2D ResNet backbone: ``(batch, in_chans, H, W)`` -> ``(batch, num_features)``.

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        layers: blocks per stage, e.g. ``(2, 2, 2, 2)`` for ResNet18.
        in_chans: image channels (3: one per detector).
        base_width: channels of the stem and first stage (64 standard; stage ``i`` has
            ``base_width * 2**i`` block widths). Small values (8) make test-size nets.
        stem_stride: stride of the 7x7 stem convolution (2 standard; 1 keeps the
            resolution of small CQT images).
        stem_pool: the 3x3/2 max-pool after the stem (standard: True).
        pool: global pooling, ``avg`` | ``gem`` | ``max`` | ``attention``.
        drop_rate: dropout on the pooled features.
        pretrained: local state-dict file (e.g. a torchvision ResNet's); never downloads.
        residual: False builds the plain twin: same blocks and widths without skip
            connections, and no projection shortcuts (``downsample``) at all.

    ``stages`` is ``[stem, layer1, layer2, layer3, layer4]`` for freezing.
    """

    is_2d = True

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: tuple[int, ...],
        in_chans: int = 3,
        base_width: int = 64,
        stem_stride: int = 2,
        stem_pool: bool = True,
        pool: str = "avg",
        drop_rate: float = 0.0,
        pretrained: str | os.PathLike | None = None,
        residual: bool = True,
    ):
        super().__init__()
        if in_chans < 1 or base_width < 1 or not layers or min(layers) < 1:
            raise ValueError(
                f"ResNet: need in_chans >= 1, base_width >= 1 and >= 1 block per stage, "
                f"got {in_chans}, {base_width}, {layers}"
            )
        self.in_chans = in_chans
        self.layers = tuple(layers)
        self.residual = bool(residual)
        self.conv1 = nn.Conv2d(in_chans, base_width, 7, stride=stem_stride, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(base_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1) if stem_pool else nn.Identity()
        self.num_features = self._add_stages(block, layers, base_width, residual, _shortcut2d)
        self._finish(pool, drop_rate, pretrained)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"ResNet expects images (batch, chan, H, W), got {tuple(x.shape)}")
        return self.drop(self.global_pool(self.forward_features(x)))


@register_model
def resnet16(**kwargs) -> ResNet:
    """ResNet16: BasicBlocks (1, 2, 2, 2) -- 7 blocks x 2 convs + stem conv + a head
    layer = 16 weighted layers; ResNet18 minus one block of the first stage, whose
    full-resolution maps dominate the cost on CQT images."""
    return ResNet(BasicBlock, (1, 2, 2, 2), **kwargs)


@register_model
def resnet18(**kwargs) -> ResNet:
    """ResNet18: BasicBlocks (2, 2, 2, 2)."""
    return ResNet(BasicBlock, (2, 2, 2, 2), **kwargs)


@register_model
def resnet34(**kwargs) -> ResNet:
    """ResNet34: BasicBlocks (3, 4, 6, 3)."""
    return ResNet(BasicBlock, (3, 4, 6, 3), **kwargs)


@register_model
def resnet50(**kwargs) -> ResNet:
    """ResNet50: Bottlenecks (3, 4, 6, 3)."""
    return ResNet(Bottleneck, (3, 4, 6, 3), **kwargs)


@register_model
def resnet101(**kwargs) -> ResNet:
    """ResNet101: Bottlenecks (3, 4, 23, 3)."""
    return ResNet(Bottleneck, (3, 4, 23, 3), **kwargs)


@register_model
def resnet152(**kwargs) -> ResNet:
    """ResNet152: Bottlenecks (3, 8, 36, 3)."""
    return ResNet(Bottleneck, (3, 8, 36, 3), **kwargs)
