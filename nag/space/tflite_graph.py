"""``.tflite`` flatbuffers built directly from block specs, without TensorFlow or torch (the ``direct`` exporter).

:func:`tflite_model` writes the model of one block, or of a network given as its block list, with the seeded
weights of :func:`nag.space.weights.seeded_weights` (the same model as :func:`nag.space.models.seeded_module`;
tests compare the two on random inputs), through the TFLite schema's object API that LiteRT ships
(``ai_edge_litert.schema_py_generated``) and the ``flatbuffers`` package, in milliseconds.

The graph is the one a TensorFlow-Lite MobileNetV3 app ships: float32, batch 1, **NHWC** throughout (input
tensor :data:`INPUT_NAME`, ``(1, H, W, C)``; output :data:`OUTPUT_NAME`, NHWC for feature maps and ``(1, N)``
for the classifier), no TRANSPOSE. Operators:

==========================  ================================================================================
layer                       TFLite operators
==========================  ================================================================================
conv, batch norm, ReLU      ``CONV_2D`` (groups 1) or ``DEPTHWISE_CONV_2D`` (one group per channel), batch norm
                            folded into the weights and bias, ReLU as the fused activation
h-swish                     the convolution, then ``HARD_SWISH``
squeeze-excitation          ``MEAN`` (axes 1, 2, kept), ``CONV_2D`` 1x1 + fused ReLU, ``CONV_2D`` 1x1 with 3 added
                            to its bias + fused RELU6, ``MUL`` by 1/6 (hard sigmoid: ``relu6(x + 3) / 6``),
                            ``MUL`` with the feature map
global average pool         ``MEAN`` (axes 1, 2, kept)
classifier                  ``FULLY_CONNECTED`` (it flattens the ``(1, 1, 1, C)`` input itself)
residual                    ``ADD``
==========================  ================================================================================

Padding: torch pads ``k // 2`` on every side. TFLite's ``SAME`` pads ``total = max((out - 1) * s + k - in, 0)``
split as ``total // 2`` before and the rest after. The two agree for stride 1 and for stride 2 on odd inputs;
for stride 2 on **even** inputs ``SAME`` pads one row and column less before (its windows start one pixel
later), so those convolutions (every strided one at the space's even resolutions: the stem and the first
block of each strided stage) get an explicit ``PAD`` of ``k // 2`` on every side and ``VALID`` padding, as
TensorFlow's own MobileNetV3 does with ``ZeroPadding2D``; XNNPACK fuses that PAD into the convolution. 1x1
convolutions use ``VALID``. :func:`conv_padding` makes the choice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from nag.errors import ExportError
from nag.space.blocks import Block
from nag.space.weights import Conv, Layer, Linear, Pool, SqueezeExcite, chained, folded, layout, param, seeded_weights, walk

if TYPE_CHECKING:
    from ai_edge_litert import schema_py_generated as schema_module

__all__ = ["GRAPH_VERSION", "INPUT_NAME", "OUTPUT_NAME", "build_tflite", "conv_padding", "tflite_model"]

GRAPH_VERSION = 1  # bump whenever the emitted graph changes: it keys the export cache
SCHEMA_VERSION = 3  # the TFLite flatbuffer schema version every current interpreter reads
INPUT_NAME = "input_nhwc"  # the name says the layout: run_exported transposes NCHW inputs for it
OUTPUT_NAME = "output"
BUFFER_ALIGNMENT = 16  # TFLite's converter aligns weight buffers so kernels can use them in place

_OPTIONS = {  # each builtin operator the builder writes -> its options table in the schema
    "ADD": "AddOptions",
    "CONV_2D": "Conv2DOptions",
    "DEPTHWISE_CONV_2D": "DepthwiseConv2DOptions",
    "FULLY_CONNECTED": "FullyConnectedOptions",
    "HARD_SWISH": "HardSwishOptions",
    "MEAN": "ReducerOptions",
    "MUL": "MulOptions",
    "PAD": "PadOptions",
}


def conv_padding(size: int, kernel: int, stride: int) -> str | int:
    """TFLite's padding for a torch convolution padded ``kernel // 2`` on every side of a ``size`` input:
    ``"SAME"`` or ``"VALID"`` where either computes the same windows, else the explicit padding (``k // 2``)
    for a ``PAD`` before a ``VALID`` convolution."""
    pad = kernel // 2
    if pad == 0:
        return "VALID"
    out = (size + 2 * pad - kernel) // stride + 1  # torch's output size
    same_out = -(-size // stride)
    same_before = max((same_out - 1) * stride + kernel - size, 0) // 2
    return "SAME" if (same_out, same_before) == (out, pad) else pad


@dataclass(frozen=True)
class _AlignedBuffer:
    """A buffer packed with its bytes aligned to :data:`BUFFER_ALIGNMENT` (duck-types ``BufferT.Pack``)."""

    data: bytes

    def Pack(self, builder: Any) -> int:  # the object API's method name
        from ai_edge_litert import schema_py_generated as schema

        vector = None
        if self.data:
            builder.StartVector(1, len(self.data), BUFFER_ALIGNMENT)
            builder.head -= len(self.data)
            builder.Bytes[builder.head : builder.head + len(self.data)] = self.data
            vector = builder.EndVector()
        schema.BufferStart(builder)
        if vector is not None:
            schema.BufferAddData(builder, vector)
        return int(schema.BufferEnd(builder))


class _Graph:
    """A subgraph being built: tensors by index with their shapes, operators, weight buffers, operator codes."""

    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        from ai_edge_litert import schema_py_generated as schema

        self.schema: schema_module = schema
        self.weights = weights
        self.tensors: list[Any] = []
        self.shapes: list[tuple[int, ...]] = []
        self.buffers: list[_AlignedBuffer] = [_AlignedBuffer(b"")]  # buffer 0: the empty one of every tensor without data
        self.operators: list[Any] = []
        self.codes: dict[int, int] = {}  # builtin operator -> index in the model's operator codes
        self.shared: dict[str, int] = {}  # constants used by many operators (MEAN's axes, 1/6)
        self.data_bytes = 0

    def tensor(self, shape: Sequence[int], name: str, data: np.ndarray | None = None) -> int:
        schema = self.schema
        tensor = schema.TensorT()
        tensor.shape = [int(d) for d in shape]
        tensor.name = f"{name}_{len(self.tensors)}" if name not in (INPUT_NAME, OUTPUT_NAME) else name
        tensor.type = schema.TensorType.FLOAT32
        if data is not None:
            if data.dtype == np.int32:
                tensor.type = schema.TensorType.INT32
            elif data.dtype != np.float32:  # pragma: no cover - the builder makes only these
                raise ExportError(f"constant {name!r} has dtype {data.dtype}; the direct .tflite holds float32 and int32")
            payload = np.ascontiguousarray(data).astype(data.dtype.newbyteorder("<"), copy=False).tobytes()
            tensor.buffer = len(self.buffers)
            self.buffers.append(_AlignedBuffer(payload))
            self.data_bytes += len(payload)
        self.tensors.append(tensor)
        self.shapes.append(tuple(int(d) for d in shape))
        return len(self.tensors) - 1

    def constant(self, name: str, value: np.ndarray) -> int:
        return self.tensor(value.shape, name, value)

    def shared_constant(self, name: str, value: np.ndarray) -> int:
        if name not in self.shared:
            self.shared[name] = self.constant(name, value)
        return self.shared[name]

    def op(self, name: str, inputs: list[int], shape: Sequence[int], hint: str | None = None, **options: Any) -> int:
        """Append builtin operator ``name`` on ``inputs``, its options table's fields set from ``options``, with
        a new float32 output of ``shape``; returns the output."""
        schema = self.schema
        code, table = getattr(schema.BuiltinOperator, name), _OPTIONS[name]
        if code not in self.codes:
            self.codes[code] = len(self.codes)
        out = self.tensor(shape, hint or name.lower())
        operator = schema.OperatorT()
        operator.opcodeIndex = self.codes[code]
        operator.inputs, operator.outputs = inputs, [out]
        operator.builtinOptionsType = getattr(schema.BuiltinOptions, table)
        operator.builtinOptions = getattr(schema, f"{table}T")()
        for field, value in options.items():
            setattr(operator.builtinOptions, field, value)
        self.operators.append(operator)
        return out

    def mean_hw(self, x: int) -> int:
        """The mean over the spatial axes of an NHWC tensor, keeping them."""
        n, _, _, c = self.shapes[x]
        axes = self.shared_constant("axes_hw", np.array([1, 2], dtype=np.int32))
        return self.op("MEAN", [x, axes], (n, 1, 1, c), keepDims=True)

    def model(self, inputs: list[int], outputs: list[int]) -> Any:
        schema = self.schema
        subgraph = schema.SubGraphT()
        subgraph.tensors, subgraph.operators, subgraph.name = self.tensors, self.operators, "main"
        subgraph.inputs, subgraph.outputs = inputs, outputs
        model = schema.ModelT()
        model.version, model.description = SCHEMA_VERSION, f"nag-farm direct-{GRAPH_VERSION} (NHWC)"
        model.subgraphs, model.buffers = [subgraph], self.buffers
        model.operatorCodes = []
        for code in self.codes:  # in index order: dicts keep insertion order
            opcode = schema.OperatorCodeT()
            opcode.builtinCode, opcode.deprecatedBuiltinCode, opcode.version = code, min(code, 127), 1
            model.operatorCodes.append(opcode)
        return model


def _conv(graph: _Graph, x: int, conv: Conv, *, bias_shift: float = 0.0, relu6: bool = False) -> int:
    """A convolution with its batch norm folded in and its activation (fused where TFLite can):
    ``bias_shift`` is added to the bias, and ``relu6`` fuses RELU6 (for the hard sigmoid)."""
    weight, bias = folded(graph.weights, conv)
    bias = (bias if bias is not None else np.zeros(conv.out_channels, dtype=np.float32)) + np.float32(bias_shift)
    n, size, _, channels = graph.shapes[x]
    padding = conv_padding(size, conv.kernel, conv.stride)
    if not isinstance(padding, str):
        pads = graph.constant("pad", np.array([[0, 0], [padding, padding], [padding, padding], [0, 0]], dtype=np.int32))
        x = graph.op("PAD", [x, pads], (n, size + 2 * padding, size + 2 * padding, channels))
        padding = "VALID"
    if conv.groups == 1:
        name, kernel, extra = "CONV_2D", weight.transpose(0, 2, 3, 1), {}  # (out, in, kh, kw) -> (out, kh, kw, in)
    elif conv.groups == conv.in_channels == conv.out_channels:  # (channels, 1, kh, kw) -> (1, kh, kw, channels)
        name, kernel, extra = "DEPTHWISE_CONV_2D", weight.transpose(1, 2, 3, 0), {"depthMultiplier": 1}
    else:
        raise ExportError(
            f"convolution {conv.weight!r} has {conv.groups} groups over {conv.in_channels} channels; the direct "
            ".tflite writes dense (1 group) and depthwise (a group per channel) convolutions; use exporter 'torch'"
        )
    if conv.act not in ("relu", "h_swish", "none"):
        raise ExportError(f"unknown activation {conv.act!r}; known: relu, h_swish, none")
    act = graph.schema.ActivationFunctionType
    hint = conv.weight.removesuffix(".weight")
    out_size = (size + 2 * (conv.kernel // 2) - conv.kernel) // conv.stride + 1  # torch's, which the padding keeps
    shape = (n, out_size, out_size, conv.out_channels)
    y = graph.op(
        name, [x, graph.constant(conv.weight, kernel), graph.constant(f"{hint}.bias", bias)], shape, hint,
        padding=getattr(graph.schema.Padding, padding), strideH=conv.stride, strideW=conv.stride,
        fusedActivationFunction=act.RELU6 if relu6 else act.RELU if conv.act == "relu" else act.NONE, **extra,
    )  # fmt: skip
    return graph.op("HARD_SWISH", [y], shape) if conv.act == "h_swish" else y


def _squeeze_excite(graph: _Graph, x: int, se: SqueezeExcite) -> int:
    if se.expand.act != "none":
        raise ExportError(f"squeeze-excitation expand {se.expand.weight!r} has activation {se.expand.act!r}; it must have none")
    gate = _conv(graph, _conv(graph, graph.mean_hw(x), se.reduce), se.expand, bias_shift=3.0, relu6=True)
    sixth = graph.shared_constant("one_sixth", np.array(1.0 / 6.0, dtype=np.float32))
    gate = graph.op("MUL", [gate, sixth], graph.shapes[gate], "hardsigmoid")
    return graph.op("MUL", [x, gate], graph.shapes[x], "se")


def _linear(graph: _Graph, x: int, linear: Linear) -> int:
    shape = graph.shapes[x]
    if shape[1:] != (1, 1, linear.in_features):
        raise ExportError(f"classifier {linear.weight!r} takes (1, 1, 1, {linear.in_features}) (NHWC), not {shape}")
    weight, bias = param(graph.weights, linear.weight), param(graph.weights, linear.bias)
    inputs = [x, graph.constant(linear.weight, weight), graph.constant(linear.bias, bias)]
    return graph.op("FULLY_CONNECTED", inputs, (shape[0], linear.out_features), "linear")


def _layer(graph: _Graph, x: int, layer: Layer) -> int:
    if isinstance(layer, Conv):
        return _conv(graph, x, layer)
    if isinstance(layer, SqueezeExcite):
        return _squeeze_excite(graph, x, layer)
    if isinstance(layer, Pool):
        return graph.mean_hw(x)
    return _linear(graph, x, layer)


def build_tflite(specs: Block | Sequence[Block], weights: dict[str, np.ndarray]) -> bytes:
    """The ``.tflite`` flatbuffer of a block, or of a network given as its block list, with these weights (by
    OFA parameter name, batch norms unfolded: what :func:`nag.space.weights.seeded_weights` returns)."""
    import flatbuffers

    blocks = chained(specs)
    graph = _Graph(weights)
    n, c, h, w = blocks[0].input_shape_nchw
    x = graph.tensor((n, h, w, c), INPUT_NAME)
    y = walk(
        layout(specs), x,
        layer=lambda x, layer, _: _layer(graph, x, layer),
        add=lambda x, skip, _: graph.op("ADD", [x, skip], graph.shapes[x]),
    )  # fmt: skip
    graph.tensors[y].name = OUTPUT_NAME
    expected = blocks[-1].output_shape_nchw
    nhwc = (expected[0], *expected[2:], expected[1]) if len(expected) == 4 else tuple(expected)
    if graph.shapes[y] != nhwc:  # pragma: no cover - a builder bug, not bad input
        raise ExportError(f"the direct .tflite's output is {graph.shapes[y]}; the block specs give {nhwc} (NHWC)")
    builder = flatbuffers.Builder(graph.data_bytes + 64 * 1024 + 2 * BUFFER_ALIGNMENT * len(graph.buffers))
    builder.Finish(graph.model([x], [y]).Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def tflite_model(specs: Block | Sequence[Block], *, seed: int = 0) -> bytes:
    """The ``.tflite`` of a block or a network with the weights :func:`seeded_weights` gives for ``seed``."""
    return build_tflite(specs, seeded_weights(specs, seed=seed))
