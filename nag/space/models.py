"""Torch modules built from block specs (this module imports torch).

Module and parameter names follow Once-for-All's standalone MobileNetV3 (``first_conv.conv.weight``,
``blocks.3.mobile_inverted_conv.depth_conv.se.fc.reduce.weight``, ``classifier.linear.weight``, ...), so a
subnet's weights can be moved between this project and OFA checkpoints by name. The same names are listed,
without torch, by :func:`nag.space.weights.layout`; :func:`load_weights` puts numpy weights in by name.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from nag.errors import ExportError
from nag.space.blocks import Activation, Block, ConvBlock, LinearBlock, MBConvBlock, PoolBlock
from nag.space.weights import block_prefixes, seeded_weights

__all__ = [
    "BlockNetwork",
    "activation",
    "build_block",
    "build_network",
    "example_input",
    "load_weights",
    "seeded_module",
]


def activation(act: Activation) -> nn.Module:
    """The activation module of a name (OFA's ``build_activation``)."""
    if act == "relu":
        return nn.ReLU(inplace=True)
    if act == "h_swish":
        return nn.Hardswish(inplace=True)
    return nn.Identity()


class ConvLayer(nn.Module):
    """conv -> [bn] -> act, as OFA's ``ConvLayer`` (weight_bn_act order)."""

    def __init__(self, spec: ConvBlock) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            spec.in_channels, spec.out_channels, spec.kernel, stride=spec.stride, padding=spec.kernel // 2, bias=spec.bias
        )
        self.bn = nn.BatchNorm2d(spec.out_channels) if spec.batch_norm else None
        self.act = activation(spec.act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return self.act(x)


class SEModule(nn.Module):
    """Squeeze-excitation: global mean, 1x1 reduce (bias), ReLU, 1x1 expand (bias), hard sigmoid, scale."""

    def __init__(self, channels: int, mid_channels: int) -> None:
        super().__init__()
        self.fc = nn.Sequential(
            OrderedDict(
                [
                    ("reduce", nn.Conv2d(channels, mid_channels, 1, bias=True)),
                    ("relu", nn.ReLU(inplace=True)),
                    ("expand", nn.Conv2d(mid_channels, channels, 1, bias=True)),
                    ("h_sigmoid", nn.Hardsigmoid(inplace=True)),
                ]
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x.mean((2, 3), keepdim=True))


def _conv_bn(in_channels: int, out_channels: int, kernel: int, stride: int, groups: int) -> OrderedDict[str, nn.Module]:
    return OrderedDict(
        [
            ("conv", nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False)),
            ("bn", nn.BatchNorm2d(out_channels)),
        ]
    )


class MBConvLayer(nn.Module):
    """OFA's ``MBConvLayer``: optional 1x1 expand, depthwise (+SE), linear 1x1 projection."""

    def __init__(self, spec: MBConvBlock) -> None:
        super().__init__()
        mid = spec.mid_channels
        self.inverted_bottleneck: nn.Sequential | None = None
        if spec.expand_ratio != 1:
            layers = _conv_bn(spec.in_channels, mid, 1, 1, 1)
            layers["act"] = activation(spec.act)
            self.inverted_bottleneck = nn.Sequential(layers)
        depth = _conv_bn(mid, mid, spec.kernel, spec.stride, mid)
        depth["act"] = activation(spec.act)
        if spec.se:
            depth["se"] = SEModule(mid, spec.se_channels)
        self.depth_conv = nn.Sequential(depth)
        self.point_linear = nn.Sequential(_conv_bn(mid, spec.out_channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.inverted_bottleneck is not None:
            x = self.inverted_bottleneck(x)
        return self.point_linear(self.depth_conv(x))


class ResidualBlock(nn.Module):
    """An MBConv layer with an identity shortcut where the spec has one (OFA's ``ResidualBlock``)."""

    def __init__(self, spec: MBConvBlock) -> None:
        super().__init__()
        self.mobile_inverted_conv = MBConvLayer(spec)
        self.residual = spec.residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.mobile_inverted_conv(x)
        return out + x if self.residual else out


class GlobalAvgPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3), keepdim=True)


class LinearLayer(nn.Module):
    """Flatten, then a fully connected layer with bias (OFA's ``LinearLayer``, dropout omitted)."""

    def __init__(self, spec: LinearBlock) -> None:
        super().__init__()
        self.linear = nn.Linear(spec.in_features, spec.out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.flatten(x, 1))


def build_block(spec: Block) -> nn.Module:
    """The torch module of one block spec, in eval mode."""
    module: nn.Module
    if isinstance(spec, ConvBlock):
        module = ConvLayer(spec)
    elif isinstance(spec, MBConvBlock):
        module = ResidualBlock(spec)
    elif isinstance(spec, PoolBlock):
        module = GlobalAvgPool()
    elif isinstance(spec, LinearBlock):
        module = LinearLayer(spec)
    else:  # pragma: no cover - the Block union is closed
        raise TypeError(f"unknown block spec {type(spec).__name__}")
    return module.eval()


class BlockNetwork(nn.Module):
    """A network made of block specs, run in order; MBConv blocks live in ``blocks``, the others by role."""

    def __init__(self, specs: Sequence[Block]) -> None:
        super().__init__()
        self.specs = tuple(specs)
        self.blocks = nn.ModuleList()
        self._order: list[str] = []
        for spec, prefix in zip(self.specs, block_prefixes(self.specs), strict=True):
            name = prefix.removesuffix(".")
            if isinstance(spec, MBConvBlock):
                self.blocks.append(build_block(spec))
            else:
                self.add_module(name, build_block(spec))
            self._order.append(name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in self._order:
            x = self.get_submodule(name)(x)
        return x


def build_network(specs: Sequence[Block]) -> BlockNetwork:
    """The standalone network of these block specs, in eval mode."""
    return BlockNetwork(specs).eval()


def example_input(spec: Block | Sequence[Block], *, seed: int = 0) -> torch.Tensor:
    """A reproducible random input of the first block's shape (N=1, NCHW)."""
    first = spec if not isinstance(spec, Sequence) else spec[0]
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(first.input_shape_nchw, generator=generator)


def load_weights(module: nn.Module, weights: Mapping[str, np.ndarray]) -> nn.Module:
    """Copy numpy ``weights`` into ``module`` by parameter and buffer name; every name must match.

    Batch norms' ``num_batches_tracked`` counters (unused in eval mode) are left as they are.
    """
    state = module.state_dict()
    expected = {name for name in state if not name.endswith("num_batches_tracked")}
    missing, unexpected = sorted(expected - set(weights)), sorted(set(weights) - expected)
    if missing or unexpected:
        raise ExportError(
            f"weights do not fit the module: missing {missing[:4]}{'...' if len(missing) > 4 else ''}, "
            f"unexpected {unexpected[:4]}{'...' if len(unexpected) > 4 else ''}"
        )
    for name, value in weights.items():
        if tuple(value.shape) != tuple(state[name].shape):
            raise ExportError(f"weight {name!r} has shape {tuple(value.shape)}; the module needs {tuple(state[name].shape)}")
        state[name] = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
    module.load_state_dict(state, strict=True)
    return module


def seeded_module(specs: Block | Sequence[Block], *, seed: int = 0) -> nn.Module:
    """A block's or a network's module with the reproducible weights of
    :func:`nag.space.weights.seeded_weights` (batch-norm statistics included), in eval mode.

    The direct ONNX builder (:mod:`nag.space.onnx_graph`) uses the same weights, so its graph and this
    module compute the same function for the same seed.
    """
    module = build_network(specs) if isinstance(specs, Sequence) else build_block(specs)
    return load_weights(module, seeded_weights(specs, seed=seed)).eval()
