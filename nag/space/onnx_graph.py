"""ONNX graphs built directly from block specs, without torch (the ``direct`` exporter).

:func:`onnx_model` emits the graph of one block, or of a network given as its block list, with the seeded
weights of :func:`nag.space.weights.seeded_weights`: the same model, node for node, as torch's dynamo
exporter writes for :func:`nag.space.models.seeded_module` (tests compare the two on random inputs), in a
few milliseconds instead of a second or more.

The graph: input ``"input"`` and output ``"output"``, NCHW float32, batch 1, the block specs' shapes; ONNX
opset :data:`OPSET` (the dynamo exporter's), IR version :data:`IR_VERSION`. Ops: ``Conv``, ``Relu``,
``HardSwish``, ``HardSigmoid`` (alpha 1/6, beta 0.5: torch's ``relu6(x + 3) / 6``), ``ReduceMean`` (axes as
an input, keepdims), ``Mul``, ``Add``, ``Flatten`` and ``Gemm``.

Batch norm is folded into the preceding convolution (weights scaled per output channel, the shift as the
convolution's bias), not emitted as ``BatchNormalization`` nodes: that is what torch's dynamo exporter
writes today, what an app ships, and what ONNX Runtime would fuse anyway, so a direct export measures the
same graph as the torch export it replaces.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from nag.errors import ExportError
from nag.space.blocks import Block
from nag.space.weights import Conv, Layer, Pool, SqueezeExcite, chained, folded, layout, param, seeded_weights, walk

if TYPE_CHECKING:
    import onnx

__all__ = ["GRAPH_VERSION", "IR_VERSION", "OPSET", "build_onnx", "onnx_model"]

OPSET = 20  # the default-domain opset torch 2.13's dynamo exporter writes
IR_VERSION = 10
GRAPH_VERSION = 1  # bump whenever the emitted graph changes: it keys the export cache


class _Graph:
    """A model being built: nodes and initializers written straight into its ``ModelProto`` (the weights
    are not copied again into a graph and then a model, as ``onnx.helper.make_graph``/``make_model`` would),
    with fresh tensor names."""

    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        import onnx

        self.weights = weights
        self.model = onnx.ModelProto(ir_version=IR_VERSION, producer_name="nag-farm", producer_version=f"direct-{GRAPH_VERSION}")
        self.model.opset_import.add(domain="", version=OPSET)
        self.model.graph.name = "nag_blocks"
        self._count = 0
        self._hw_axes: str | None = None

    def tensor(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def constant(self, name: str, value: np.ndarray) -> str:
        from onnx import helper

        tensor = self.model.graph.initializer.add(name=name, data_type=helper.np_dtype_to_tensor_dtype(value.dtype))
        tensor.dims.extend(value.shape)
        tensor.raw_data = np.ascontiguousarray(value).astype(value.dtype.newbyteorder("<"), copy=False).tobytes()
        return name

    def node(self, op: str, inputs: list[str], hint: str, output: str | None = None, **attributes: Any) -> str:
        from onnx import helper

        out = output or self.tensor(hint)
        graph = self.model.graph
        graph.node.append(helper.make_node(op, inputs, [out], name=f"{op}_{len(graph.node)}", **attributes))
        return out

    def io(self, name: str, shape: Sequence[int], *, output: bool) -> None:
        from onnx import TensorProto, helper

        (self.model.graph.output if output else self.model.graph.input).append(
            helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))
        )

    def mean_hw(self, x: str, hint: str, output: str | None = None) -> str:
        """The mean over the spatial axes, keeping them (one shared int64 [2, 3] axes initializer)."""
        if self._hw_axes is None:
            self._hw_axes = self.constant("axes_hw", np.array([2, 3], dtype=np.int64))
        return self.node("ReduceMean", [x, self._hw_axes], hint, output, keepdims=1)


def _activation(graph: _Graph, x: str, act: str, output: str | None) -> str:
    if act == "relu":
        return graph.node("Relu", [x], "relu", output)
    if act == "h_swish":
        return graph.node("HardSwish", [x], "hardswish", output)
    raise ExportError(f"unknown activation {act!r}; known: relu, h_swish, none")


def _conv(graph: _Graph, x: str, conv: Conv, output: str | None) -> str:
    weight, bias = folded(graph.weights, conv)
    inputs = [x, graph.constant(conv.weight, weight)]
    if bias is not None:
        inputs.append(graph.constant(f"{conv.weight}_bias", bias))
    pad = conv.kernel // 2
    y = graph.node(
        "Conv", inputs, conv.weight.removesuffix(".weight"), output if conv.act == "none" else None,
        group=conv.groups, kernel_shape=[conv.kernel] * 2, pads=[pad] * 4, strides=[conv.stride] * 2, dilations=[1, 1],
    )  # fmt: skip
    return y if conv.act == "none" else _activation(graph, y, conv.act, output)


def _squeeze_excite(graph: _Graph, x: str, se: SqueezeExcite, output: str | None) -> str:
    mean = graph.mean_hw(x, "se_mean")
    gate = _conv(graph, _conv(graph, mean, se.reduce, None), se.expand, None)
    gate = graph.node("HardSigmoid", [gate], "hardsigmoid", alpha=1.0 / 6.0, beta=0.5)
    return graph.node("Mul", [x, gate], "se", output)


def _layer(graph: _Graph, x: str, layer: Layer, output: str | None) -> str:
    if isinstance(layer, Conv):
        return _conv(graph, x, layer, output)
    if isinstance(layer, SqueezeExcite):
        return _squeeze_excite(graph, x, layer, output)
    if isinstance(layer, Pool):
        return graph.mean_hw(x, "mean", output)
    flat = graph.node("Flatten", [x], "flatten", axis=1)
    weight, bias = param(graph.weights, layer.weight), param(graph.weights, layer.bias)
    inputs = [flat, graph.constant(layer.weight, weight), graph.constant(layer.bias, bias)]
    return graph.node("Gemm", inputs, "linear", output, transB=1)


def build_onnx(specs: Block | Sequence[Block], weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    """The ONNX model of a block, or of a network given as its block list, with these weights (by OFA
    parameter name, batch norms unfolded: what :func:`nag.space.weights.seeded_weights` returns)."""
    blocks = chained(specs)
    graph = _Graph(weights)
    walk(
        layout(specs), "input",
        layer=lambda x, layer, last: _layer(graph, x, layer, "output" if last else None),
        add=lambda x, skip, last: graph.node("Add", [x, skip], "add", "output" if last else None),
    )  # fmt: skip
    graph.io("input", blocks[0].input_shape_nchw, output=False)
    graph.io("output", blocks[-1].output_shape_nchw, output=True)
    return graph.model


def onnx_model(specs: Block | Sequence[Block], *, seed: int = 0) -> onnx.ModelProto:
    """The ONNX model of a block or a network with the weights :func:`seeded_weights` gives for ``seed``."""
    return build_onnx(specs, seeded_weights(specs, seed=seed))
