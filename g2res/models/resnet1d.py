"""1D ResNets on raw whitened strain ``(batch, detector, time)``: one class, depth tables.

The stem is one large-kernel strided convolution (default 31 taps = 15 ms at 2048 Hz,
stride 2, then a 3/2 max-pool), so the first layer sees a chirp cycle at 20-500 Hz;
the blocks use kernels of ``kernel_size`` (default 7). Four stages of strides 1, 2, 2, 2
bring 4096 samples to 128 positions (62.5 ms each) before global pooling, which can
be ``avg``, ``gem`` (default) or ``attention``.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from g2res.models.registry import register_model
from g2res.models.resnet import ResidualBlock, ResNetBase

__all__ = ["BasicBlock1d", "Bottleneck1d", "ResNet1d"]


def _conv(cin: int, cout: int, k: int, stride: int = 1) -> nn.Conv1d:
    return nn.Conv1d(cin, cout, k, stride=stride, padding=k // 2, bias=False)


def _shortcut1d(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(_conv(cin, cout, 1, stride), nn.BatchNorm1d(cout))


class BasicBlock1d(ResidualBlock):
    """Two ``k``-tap convolutions with a residual connection.

    ``residual=False``: the plain twin, no skip path (and no ``downsample``).
    """

    expansion = 1

    def __init__(
        self,
        cin: int,
        width: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        k: int = 7,
        residual: bool = True,
    ):
        super().__init__()
        self.conv1 = _conv(cin, width, k, stride)
        self.bn1 = nn.BatchNorm1d(width)
        self.conv2 = _conv(width, width, k)
        self.bn2 = nn.BatchNorm1d(width)
        self._finish(residual, downsample)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self._merge(out, x)


class Bottleneck1d(ResidualBlock):
    """1-tap reduce, ``k``-tap (strided), 1-tap expand by 4.

    ``residual=False``: the plain twin, no skip path (and no ``downsample``).
    """

    expansion = 4

    def __init__(
        self,
        cin: int,
        width: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        k: int = 7,
        residual: bool = True,
    ):
        super().__init__()
        self.conv1 = _conv(cin, width, 1)
        self.bn1 = nn.BatchNorm1d(width)
        self.conv2 = _conv(width, width, k, stride)
        self.bn2 = nn.BatchNorm1d(width)
        self.conv3 = _conv(width, width * self.expansion, 1)
        self.bn3 = nn.BatchNorm1d(width * self.expansion)
        self._finish(residual, downsample)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self._merge(out, x)


class ResNet1d(ResNetBase):
    """Generic 1D ResNet backbone: ``(batch, in_chans, time)`` -> ``(batch, num_features)``.

    Args:
        block: :class:`BasicBlock1d` or :class:`Bottleneck1d`.
        layers: blocks per stage.
        in_chans: input channels (3 detectors; 1 for audio).
        base_width: stem/first-stage channels (default 32); stage ``i`` has
            ``base_width * 2**i`` block widths.
        stem_kernel, stem_stride: taps and stride of the stem convolution.
        stem_pool: 3/2 max-pool after the stem.
        kernel_size: taps of the blocks' convolutions (odd).
        pool: ``gem`` | ``avg`` | ``max`` | ``attention``.
        drop_rate: dropout on the pooled features.
        pretrained: local state-dict file.
        residual: False builds the plain twin: same blocks and widths without skip
            connections, and no projection shortcuts (``downsample``) at all.

    ``stages`` is ``[stem, layer1, ..., layerN]`` for freezing.
    """

    is_2d = False

    def __init__(
        self,
        block: type[BasicBlock1d] | type[Bottleneck1d],
        layers: tuple[int, ...],
        in_chans: int = 3,
        base_width: int = 32,
        stem_kernel: int = 31,
        stem_stride: int = 2,
        stem_pool: bool = True,
        kernel_size: int = 7,
        pool: str = "gem",
        drop_rate: float = 0.0,
        pretrained: str | os.PathLike | None = None,
        residual: bool = True,
    ):
        super().__init__()
        if in_chans < 1 or base_width < 1 or not layers or min(layers) < 1:
            raise ValueError(
                f"ResNet1d: need in_chans >= 1, base_width >= 1 and >= 1 block per stage, "
                f"got {in_chans}, {base_width}, {layers}"
            )
        if kernel_size % 2 == 0 or stem_kernel % 2 == 0:
            raise ValueError(
                f"ResNet1d: kernel sizes must be odd, got kernel_size={kernel_size}, "
                f"stem_kernel={stem_kernel}"
            )
        self.in_chans = in_chans
        self.layers = tuple(layers)
        self.residual = bool(residual)
        self.conv1 = _conv(in_chans, base_width, stem_kernel, stem_stride)
        self.bn1 = nn.BatchNorm1d(base_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool1d(3, stride=2, padding=1) if stem_pool else nn.Identity()
        self.num_features = self._add_stages(
            block, layers, base_width, residual, _shortcut1d, k=kernel_size
        )
        self._finish(pool, drop_rate, pretrained)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 3:
            raise ValueError(f"ResNet1d expects (batch, chan, time), got {tuple(x.shape)}")
        return self.drop(self.global_pool(self.forward_features(x)))


@register_model
def resnet1d_18(**kwargs) -> ResNet1d:
    """1D ResNet18-like: BasicBlock1d (2, 2, 2, 2)."""
    return ResNet1d(BasicBlock1d, (2, 2, 2, 2), **kwargs)


@register_model
def resnet1d_34(**kwargs) -> ResNet1d:
    """1D ResNet34-like: BasicBlock1d (3, 4, 6, 3)."""
    return ResNet1d(BasicBlock1d, (3, 4, 6, 3), **kwargs)


@register_model
def resnet1d_50(**kwargs) -> ResNet1d:
    """1D ResNet50-like: Bottleneck1d (3, 4, 6, 3)."""
    return ResNet1d(Bottleneck1d, (3, 4, 6, 3), **kwargs)


@register_model
def resnet1d_audio(**kwargs) -> ResNet1d:
    """Preset for 1-channel audio-rate waveforms (e.g. 1 s at 16 kHz): BasicBlock1d
    (2, 2, 2, 2), a 79-tap stride-4 stem (5 ms at 16 kHz) and attention pooling.
    Any argument can be overridden."""
    preset = dict(in_chans=1, stem_kernel=79, stem_stride=4, kernel_size=9, pool="attention")
    return ResNet1d(BasicBlock1d, (2, 2, 2, 2), **{**preset, **kwargs})
