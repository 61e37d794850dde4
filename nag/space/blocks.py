"""Block specifications: the unit of a latency table and of cost counting.

A network of a search space is a sequence of blocks. Each block spec is a small frozen dataclass that
knows its input and output shapes, its exact cost (multiply-adds and parameters, counted analytically,
without torch) and its table key. Keys follow the naming of OFA's published latency lookup tables, so
tables can be exchanged with OFA::

    Conv-input:224x224x3-output:112x112x24
    expanded_conv-input:HxWxCin-output:H'xW'xCout-expand:MID-kernel:K-stride:S-idskip:I-se:E-hs:A
    Conv_1-input:7x7x192-output:7x7x1152
    AvgPool2D-input:7x7x1152-output:1x1x1152
    Conv_2-input:1x1x1152-output:1x1x1536
    Logits-input:1x1x1536-output:1000

Shapes in keys are H x W x C; torch tensors are N x C x H x W (see :attr:`Block.input_shape_nchw`).

Counting conventions (they reproduce the published PNAG/OFA figures): MAdds are the multiply-adds of
every convolution, the squeeze-excitation 1x1 convolutions included, and of the classifier (reported
apart, see :mod:`nag.space.costs`); biases, batch-norm, activations and pooling add no MAdds.
Parameters are all trainable parameters, batch-norm scale and shift included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "Activation",
    "Block",
    "ConvBlock",
    "LinearBlock",
    "MBConvBlock",
    "PoolBlock",
    "conv_output_size",
    "make_divisible",
]

Activation = Literal["relu", "h_swish", "none"]


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to the nearest multiple of ``divisor`` as MobileNet does.

    Never below ``divisor``, and never more than 10% below ``value``.
    """
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def conv_output_size(size: int, stride: int) -> int:
    """Spatial output size of a 'same'-padded convolution (padding k // 2, odd k) of this stride."""
    return (size - 1) // stride + 1


def _shape(h: int, w: int, c: int) -> str:
    return f"{h}x{w}x{c}"


class _SpatialIO:
    """Shapes and key prefix of a block mapping ``in_size x in_size x in_channels`` to a strided output."""

    in_size: int
    in_channels: int
    out_channels: int
    stride: int

    @property
    def out_size(self) -> int:
        return conv_output_size(self.in_size, self.stride)

    def _io_key(self, name: str) -> str:
        return (
            f"{name}-input:{_shape(self.in_size, self.in_size, self.in_channels)}"
            f"-output:{_shape(self.out_size, self.out_size, self.out_channels)}"
        )

    @property
    def input_shape_nchw(self) -> tuple[int, int, int, int]:
        return (1, self.in_channels, self.in_size, self.in_size)

    @property
    def output_shape_nchw(self) -> tuple[int, ...]:
        return (1, self.out_channels, self.out_size, self.out_size)


@dataclass(frozen=True)
class ConvBlock(_SpatialIO):
    """A plain convolution with optional batch-norm and an activation (stem, final expand, feature mix)."""

    name: str  # table-key prefix: "Conv" (stem), "Conv_1" (final expand), "Conv_2" (feature mix)
    in_size: int  # input height = width, pixels
    in_channels: int
    out_channels: int
    kernel: int  # odd; padding is kernel // 2
    stride: int
    act: Activation
    batch_norm: bool = True  # conv -> BN -> act when true; conv (with bias if ``bias``) -> act otherwise
    bias: bool = False

    @property
    def key(self) -> str:
        return self._io_key(self.name)

    @property
    def madds(self) -> int:
        return self.out_size**2 * self.in_channels * self.out_channels * self.kernel**2

    @property
    def params(self) -> int:
        weights = self.in_channels * self.out_channels * self.kernel**2
        return weights + (self.out_channels if self.bias else 0) + (2 * self.out_channels if self.batch_norm else 0)


@dataclass(frozen=True)
class MBConvBlock(_SpatialIO):
    """A mobile inverted bottleneck (MobileNetV2/V3): 1x1 expand, kxk depthwise, optional SE, 1x1 project.

    With ``expand_ratio == 1`` there is no 1x1 expand convolution (the middle width is the input width).
    A residual identity shortcut is present when the stride is 1 and input and output widths agree.
    """

    in_size: int  # input height = width, pixels
    in_channels: int
    out_channels: int
    expand_ratio: int
    kernel: int
    stride: int
    se: bool  # squeeze-excitation after the depthwise convolution
    act: Activation  # activation of the expand and depthwise convolutions (the projection is linear)
    divisor: int = 8  # channel rounding of the middle and SE widths

    @property
    def mid_channels(self) -> int:
        if self.expand_ratio == 1:
            return self.in_channels
        return make_divisible(round(self.in_channels * self.expand_ratio), self.divisor)

    @property
    def se_channels(self) -> int:
        """Middle width of the squeeze-excitation module (reduction 4)."""
        return make_divisible(self.mid_channels // 4, self.divisor)

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.in_channels == self.out_channels

    @property
    def key(self) -> str:
        return (
            self._io_key("expanded_conv") + f"-expand:{self.mid_channels}-kernel:{self.kernel}-stride:{self.stride}"
            f"-idskip:{int(self.residual)}-se:{int(self.se)}-hs:{int(self.act == 'h_swish')}"
        )

    @property
    def madds(self) -> int:
        mid, out_pixels = self.mid_channels, self.out_size**2
        total = 0
        if self.expand_ratio != 1:
            total += self.in_size**2 * self.in_channels * mid
        total += out_pixels * mid * self.kernel**2
        if self.se:
            total += 2 * mid * self.se_channels
        total += out_pixels * mid * self.out_channels
        return total

    @property
    def params(self) -> int:
        mid = self.mid_channels
        total = 0
        if self.expand_ratio != 1:
            total += self.in_channels * mid + 2 * mid
        total += mid * self.kernel**2 + 2 * mid
        if self.se:
            total += 2 * mid * self.se_channels + self.se_channels + mid  # two 1x1 convs with bias
        total += mid * self.out_channels + 2 * self.out_channels
        return total


@dataclass(frozen=True)
class PoolBlock:
    """Global average pooling to 1 x 1."""

    in_size: int
    channels: int
    name: str = "AvgPool2D"

    @property
    def out_size(self) -> int:
        return 1

    @property
    def key(self) -> str:
        return f"{self.name}-input:{_shape(self.in_size, self.in_size, self.channels)}-output:{_shape(1, 1, self.channels)}"

    @property
    def input_shape_nchw(self) -> tuple[int, int, int, int]:
        return (1, self.channels, self.in_size, self.in_size)

    @property
    def output_shape_nchw(self) -> tuple[int, ...]:
        return (1, self.channels, 1, 1)

    @property
    def madds(self) -> int:
        return 0

    @property
    def params(self) -> int:
        return 0


@dataclass(frozen=True)
class LinearBlock:
    """The classifier: flatten a 1 x 1 feature map, then a fully connected layer with bias."""

    in_features: int
    out_features: int
    name: str = "Logits"

    @property
    def key(self) -> str:
        return f"{self.name}-input:{_shape(1, 1, self.in_features)}-output:{self.out_features}"

    @property
    def input_shape_nchw(self) -> tuple[int, int, int, int]:
        return (1, self.in_features, 1, 1)

    @property
    def output_shape_nchw(self) -> tuple[int, ...]:
        return (1, self.out_features)

    @property
    def madds(self) -> int:
        return self.in_features * self.out_features

    @property
    def params(self) -> int:
        return self.in_features * self.out_features + self.out_features


Block = ConvBlock | MBConvBlock | PoolBlock | LinearBlock
"""Any block spec. Every one has ``key``, ``input_shape_nchw``, ``output_shape_nchw``, ``madds``, ``params``."""
