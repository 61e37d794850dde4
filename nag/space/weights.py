"""The layer layout of block specs and their seeded weights, by OFA's parameter names (numpy, no torch).

What the direct exporters (:mod:`nag.space.onnx_graph`, :mod:`nag.space.tflite_graph`) share lives here too:
:func:`chained` (a network's blocks must fit each other), :func:`walk` (the order of layers and residual
additions), :func:`param` and :func:`folded` (a weight by name; a convolution with its batch norm folded in).

:func:`layout` lists the layers of a block, or of a network given as its block list, with the full name of
every parameter, as the torch modules of :mod:`nag.space.models` name them (``first_conv.conv.weight``,
``blocks.3.mobile_inverted_conv.depth_conv.se.fc.reduce.bias``, ``classifier.linear.weight``, ...).
:func:`seeded_weights` fills those names with reproducible random values. Both the direct ONNX builder
(:mod:`nag.space.onnx_graph`) and the torch modules (:func:`nag.space.models.seeded_module`) take their
weights from here, so the two hold the same model for the same seed and can be compared output for output.

Latency does not depend on the weights, but export checks do: the values keep activations of order one
through a whole network (fan-in scaled convolutions) and give every batch norm non-trivial statistics,
which a wrongly converted normalisation could not hide.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from nag.errors import ExportError
from nag.space.blocks import Activation, Block, ConvBlock, LinearBlock, MBConvBlock, PoolBlock

__all__ = [
    "BN_EPS",
    "ROLE_BY_NAME",
    "WEIGHTS_VERSION",
    "Conv",
    "Layer",
    "Linear",
    "Pool",
    "SqueezeExcite",
    "Unit",
    "block_prefixes",
    "chained",
    "folded",
    "layout",
    "param",
    "seeded_weights",
    "walk",
]

BN_EPS = 1e-5  # torch's BatchNorm2d default, which OFA's layers keep
SE_GATE_GAIN = 2.0  # spreads the gates' inputs over hard-sigmoid's slope (|x| < 3) and both of its clips
WEIGHTS_VERSION = 1  # bump whenever seeded_weights changes its values: it keys the export cache

# Where each top-level block lives in a network, by the block's table-key prefix (OFA's attribute names).
ROLE_BY_NAME = {
    "Conv": "first_conv",
    "Conv_1": "final_expand_layer",
    "AvgPool2D": "global_avg_pool",
    "Conv_2": "feature_mix_layer",
    "Logits": "classifier",
}


@dataclass(frozen=True)
class Conv:
    """A 2-D convolution ('same' padding), optionally with its own bias, a batch norm and an activation."""

    weight: str  # parameter name of the (out, in / groups, k, k) weight
    bias: str | None  # parameter name of the convolution's own bias, if it has one
    bn: str | None  # prefix of the batch norm's weight, bias, running_mean and running_var, if any
    in_channels: int
    out_channels: int
    kernel: int
    stride: int
    groups: int
    act: Activation  # applied after the batch norm

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        return (self.out_channels, self.in_channels // self.groups, self.kernel, self.kernel)


@dataclass(frozen=True)
class SqueezeExcite:
    """x * hard_sigmoid(expand(relu(reduce(mean_hw(x))))), both 1x1 convolutions with bias."""

    reduce: Conv
    expand: Conv


@dataclass(frozen=True)
class Pool:
    """Global average pooling to 1 x 1 (keeps the spatial axes)."""


@dataclass(frozen=True)
class Linear:
    """Flatten to (N, C), then ``x @ weight.T + bias``."""

    weight: str  # (out_features, in_features)
    bias: str
    in_features: int
    out_features: int


Layer = Conv | SqueezeExcite | Pool | Linear


@dataclass(frozen=True)
class Unit:
    """One block's layers, run in order; with ``residual`` the block's input is added to their output."""

    layers: tuple[Layer, ...]
    residual: bool


def block_prefixes(specs: Sequence[Block]) -> list[str]:
    """The module path of each block of a network (``first_conv.``, ``blocks.0.``, ..., ``classifier.``).

    MBConv blocks are numbered in ``blocks``; every other block has one place, named by its key prefix.
    """
    prefixes: list[str] = []
    mbconv = 0
    for spec in specs:
        if isinstance(spec, MBConvBlock):
            prefixes.append(f"blocks.{mbconv}.")
            mbconv += 1
            continue
        role = ROLE_BY_NAME.get(spec.name)
        if role is None or f"{role}." in prefixes:
            raise ExportError(
                f"block {spec.key!r} has no place in a MobileNet-style network: a network has one each of "
                f"{', '.join(ROLE_BY_NAME)} (by key prefix) and any number of MBConv blocks"
            )
        prefixes.append(f"{role}.")
    return prefixes


def _conv_bn(path: str, in_channels: int, out_channels: int, kernel: int, stride: int, groups: int, act: Activation) -> Conv:
    return Conv(
        weight=f"{path}conv.weight", bias=None, bn=f"{path}bn.", in_channels=in_channels, out_channels=out_channels,
        kernel=kernel, stride=stride, groups=groups, act=act,
    )  # fmt: skip


def _mbconv_layers(spec: MBConvBlock, prefix: str) -> list[Layer]:
    path, mid = f"{prefix}mobile_inverted_conv.", spec.mid_channels
    layers: list[Layer] = []
    if spec.expand_ratio != 1:
        layers.append(_conv_bn(f"{path}inverted_bottleneck.", spec.in_channels, mid, 1, 1, 1, spec.act))
    layers.append(_conv_bn(f"{path}depth_conv.", mid, mid, spec.kernel, spec.stride, mid, spec.act))
    if spec.se:
        se, squeezed = f"{path}depth_conv.se.fc.", spec.se_channels
        reduce = Conv(f"{se}reduce.weight", f"{se}reduce.bias", None, mid, squeezed, 1, 1, 1, "relu")
        expand = Conv(f"{se}expand.weight", f"{se}expand.bias", None, squeezed, mid, 1, 1, 1, "none")
        layers.append(SqueezeExcite(reduce=reduce, expand=expand))
    layers.append(_conv_bn(f"{path}point_linear.", mid, spec.out_channels, 1, 1, 1, "none"))
    return layers


def _unit(spec: Block, prefix: str) -> Unit:
    if isinstance(spec, ConvBlock):
        conv = Conv(
            weight=f"{prefix}conv.weight", bias=f"{prefix}conv.bias" if spec.bias else None,
            bn=f"{prefix}bn." if spec.batch_norm else None, in_channels=spec.in_channels,
            out_channels=spec.out_channels, kernel=spec.kernel, stride=spec.stride, groups=1, act=spec.act,
        )  # fmt: skip
        return Unit(layers=(conv,), residual=False)
    if isinstance(spec, MBConvBlock):
        return Unit(layers=tuple(_mbconv_layers(spec, prefix)), residual=spec.residual)
    if isinstance(spec, PoolBlock):
        return Unit(layers=(Pool(),), residual=False)
    if isinstance(spec, LinearBlock):
        linear = Linear(f"{prefix}linear.weight", f"{prefix}linear.bias", spec.in_features, spec.out_features)
        return Unit(layers=(linear,), residual=False)
    raise ExportError(f"no layout for block spec {type(spec).__name__}; known: ConvBlock, MBConvBlock, PoolBlock, LinearBlock")


def layout(specs: Block | Sequence[Block]) -> list[Unit]:
    """The units of one block (one unit, names as :func:`nag.space.models.build_block`'s module has them)
    or of a network given as its block list (names as :func:`nag.space.models.build_network`'s)."""
    if not isinstance(specs, Sequence):
        return [_unit(specs, "")]
    return [_unit(spec, prefix) for spec, prefix in zip(specs, block_prefixes(specs), strict=True)]


def _uniform(rng: np.random.Generator, shape: int | tuple[int, ...], bound: float) -> np.ndarray:
    """Uniform in [-bound, bound), drawn in float32 (a network's millions of weights in milliseconds)."""
    values = rng.random(shape, dtype=np.float32)
    values *= np.float32(2.0 * bound)
    values -= np.float32(bound)
    return values


def _normal(rng: np.random.Generator, shape: int | tuple[int, ...], std: float) -> np.ndarray:
    values = rng.standard_normal(shape, dtype=np.float32)
    values *= np.float32(std)
    return values


def _conv_weights(conv: Conv, rng: np.random.Generator, out: dict[str, np.ndarray], *, gain: float = 1.0) -> None:
    """He-scaled weights (activations of order one after the layer, for inputs of order one), times ``gain``."""
    fan_in = conv.weight_shape[1] * conv.kernel**2
    variance = 2.0 if conv.act in ("relu", "h_swish") else 1.0
    out[conv.weight] = _uniform(rng, conv.weight_shape, gain * np.sqrt(3.0 * variance / fan_in))
    if conv.bias is not None:
        out[conv.bias] = _normal(rng, conv.out_channels, 0.1)
    if conv.bn is not None:
        channels = conv.out_channels
        out[f"{conv.bn}weight"] = _uniform(rng, channels, 0.5) + np.float32(1.0)  # in [0.5, 1.5)
        out[f"{conv.bn}bias"] = _normal(rng, channels, 0.1)
        out[f"{conv.bn}running_mean"] = _normal(rng, channels, 0.1)
        out[f"{conv.bn}running_var"] = _uniform(rng, channels, 0.5) + np.float32(1.0)


def seeded_weights(specs: Block | Sequence[Block], *, seed: int = 0) -> dict[str, np.ndarray]:
    """Reproducible float32 weights of a block or a network, by parameter name, in network order.

    The same ``specs`` and ``seed`` give the same values on every machine (numpy's PCG64 generator).
    Batch norms get running statistics and affine parameters away from the identity. Each block's first
    layer is scaled by the inverse of the rough size of its input (which the residual additions grow), so
    every block, squeeze-excitation gates included, works in the range where its nonlinearities bend.
    """
    rng = np.random.default_rng(seed)
    weights: dict[str, np.ndarray] = {}
    size = 1.0  # rough standard deviation of the tensor entering the unit (inputs are standard normal)
    for unit in layout(specs):
        for index, layer in enumerate(unit.layers):
            gain = 1.0 / size if index == 0 else 1.0
            if isinstance(layer, Conv):
                _conv_weights(layer, rng, weights, gain=gain)
            elif isinstance(layer, SqueezeExcite):
                _conv_weights(layer.reduce, rng, weights)
                _conv_weights(layer.expand, rng, weights, gain=SE_GATE_GAIN)
            elif isinstance(layer, Linear):
                shape = (layer.out_features, layer.in_features)
                weights[layer.weight] = _uniform(rng, shape, gain * np.sqrt(3.0 / layer.in_features))
                weights[layer.bias] = _normal(rng, layer.out_features, 0.1)
        size = float(np.hypot(size, 1.0)) if unit.residual else 1.0
    return weights


def chained(specs: Block | Sequence[Block]) -> list[Block]:
    """The blocks of one block or of a network, checked to chain (each takes what the one before gives)."""
    blocks = list(specs) if isinstance(specs, Sequence) else [specs]
    if not blocks:
        raise ExportError("cannot build a network of no blocks")
    for before, after in itertools.pairwise(blocks):
        if tuple(before.output_shape_nchw) != tuple(after.input_shape_nchw):
            raise ExportError(
                f"block {after.key!r} takes {after.input_shape_nchw} (NCHW), but the block before it, "
                f"{before.key!r}, gives {before.output_shape_nchw}; a network's blocks must chain"
            )
    return blocks


T = TypeVar("T")


def walk(units: Sequence[Unit], x: T, *, layer: Callable[[T, Layer, bool], T], add: Callable[[T, T, bool], T]) -> T:
    """Emit a graph's layers in order: ``layer(x, layer, is_output)`` for each layer of each unit, then
    ``add(x, unit_input, is_output)`` after a residual unit; ``is_output`` marks the graph's last value."""
    for number, unit in enumerate(units):
        unit_input, last_unit = x, number == len(units) - 1
        for index, item in enumerate(unit.layers):
            x = layer(x, item, last_unit and not unit.residual and index == len(unit.layers) - 1)
        if unit.residual:
            x = add(x, unit_input, last_unit)
    return x


def param(weights: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    """A weight by name, as float32 (no copy when it is already)."""
    try:
        value = weights[name]
    except KeyError:
        raise ExportError(f"weights lack parameter {name!r}; build them with nag.space.weights.seeded_weights") from None
    return np.asarray(value, dtype=np.float32)


def folded(weights: Mapping[str, np.ndarray], conv: Conv) -> tuple[np.ndarray, np.ndarray | None]:
    """The convolution's (out, in / groups, k, k) weight and its bias with its batch norm folded in
    (float32): weights scaled per output channel, the shift as the bias. None when it has neither."""
    weight = param(weights, conv.weight)
    if weight.shape != conv.weight_shape:
        raise ExportError(f"parameter {conv.weight!r} has shape {weight.shape}; the block needs {conv.weight_shape}")
    bias = param(weights, conv.bias) if conv.bias is not None else None
    if conv.bn is None:
        return weight, bias
    gamma, beta = param(weights, f"{conv.bn}weight"), param(weights, f"{conv.bn}bias")
    mean, var = param(weights, f"{conv.bn}running_mean"), param(weights, f"{conv.bn}running_var")
    scale = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + BN_EPS)  # per output channel
    shift = beta - mean * scale + (bias * scale if bias is not None else 0.0)
    return weight * scale.astype(np.float32)[:, None, None, None], shift.astype(np.float32)
