"""The direct ``.tflite`` builder against the torch modules: same weights, same outputs (NHWC <-> NCHW) in LiteRT."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from ai_edge_litert import schema_py_generated as schema

import nag.space.tflite_graph as tflite_graph
from agents import MeasurementSpec, agent_class
from agents.runtimes import litert_interpreter
from nag.errors import ExportError
from nag.space.blocks import Block, ConvBlock, MBConvBlock
from nag.space.export import cache_path, cached_export, export_blocks, run_exported
from nag.space.models import build_network, example_input, load_weights
from nag.space.ofa_mbv3 import OFAMobileNetV3Space
from nag.space.tflite_graph import INPUT_NAME, OUTPUT_NAME, build_tflite, conv_padding, tflite_model
from nag.space.weights import seeded_weights
from tests.conftest import PNAG_80_MOBILE
from tests.space.torch_reference import LARGEST, SMALLEST, ErrorLog, blocks_of_every_kind, max_error, within

OP_NAMES = {value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")}


def _interpreter(model: bytes) -> Any:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model, num_threads=1)  # the default resolver: XNNPACK, as the agents
    interpreter.allocate_tensors()
    return interpreter


def _run(interpreter: Any, x: np.ndarray) -> np.ndarray:
    """Run on an NCHW input, fed NHWC; a 4-D output comes back NCHW."""
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
    interpreter.invoke()
    output = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    return output.transpose(0, 3, 1, 2) if output.ndim == 4 else output


def _tflite_runner(specs: Block | Sequence[Block], weights: dict[str, np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    interpreter = _interpreter(build_tflite(specs, weights))
    (detail,) = interpreter.get_input_details()
    n, c, h, w = (specs[0] if isinstance(specs, Sequence) else specs).input_shape_nchw
    assert detail["name"] == INPUT_NAME and tuple(detail["shape"]) == (n, h, w, c)
    return lambda x: _run(interpreter, x)


LOG = ErrorLog("direct .tflite (LiteRT) vs torch", _tflite_runner)


@pytest.fixture(scope="module", autouse=True)
def _report_errors() -> object:
    yield
    LOG.print()


def _ops(model: bytes) -> Counter[str]:
    parsed = schema.ModelT.InitFromPackedBuf(model, 0)
    codes = [OP_NAMES[max(code.builtinCode, code.deprecatedBuiltinCode)] for code in parsed.operatorCodes]
    return Counter(codes[op.opcodeIndex] for op in parsed.subgraphs[0].operators)


@pytest.mark.parametrize("resolution", [160, 224])
def test_every_block_kind_matches_torch(space: OFAMobileNetV3Space, resolution: int) -> None:
    LOG.check_every_kind(space, resolution)


@pytest.mark.parametrize(
    ("arch", "width", "resolution"),
    [(SMALLEST, 1.0, 128), (LARGEST, 1.2, 224), (PNAG_80_MOBILE, 1.2, 161)],  # 161: odd at every stride 2 (SAME, no PAD)
    ids=["smallest", "largest", "pnag-80-odd-resolution"],
)
def test_whole_networks_match_torch(space: OFAMobileNetV3Space, arch: str, width: float, resolution: int) -> None:
    LOG.check(
        f"network {arch[:9]}... (width {width}) @ {resolution}",
        space.blocks(space.parse(arch), width=width, resolution=resolution),
    )


def test_padding_matches_torch_only_where_same_does() -> None:
    """SAME equals torch's k // 2 padding at stride 1 and on odd inputs at stride 2; even inputs at stride 2
    need an explicit PAD; 1x1 convolutions are VALID."""
    assert [conv_padding(size, 3, 1) for size in (7, 8)] == ["SAME", "SAME"]
    assert [conv_padding(size, k, 2) for size in (7, 13) for k in (3, 5, 7)] == ["SAME"] * 6
    assert [conv_padding(size, k, 2) for size in (8, 224) for k in (3, 5, 7)] == [1, 2, 3] * 2
    assert [conv_padding(size, 1, s) for size in (7, 8) for s in (1, 2)] == ["VALID"] * 4


def test_same_padding_on_even_inputs_would_be_caught(space: OFAMobileNetV3Space, monkeypatch: pytest.MonkeyPatch) -> None:
    """SAME where the builder pads explicitly (stride 2, even input) shifts the windows: the comparison fails."""
    block = blocks_of_every_kind(space, 160)["MBConv SE, ReLU, stride 2"]
    assert block.in_size % 2 == 0 and isinstance(conv_padding(block.in_size, block.kernel, 2), int)
    monkeypatch.setattr(tflite_graph, "conv_padding", lambda size, kernel, stride: "VALID" if kernel == 1 else "SAME")
    assert "PAD" not in _ops(tflite_model(block))
    error, scale = max_error(_tflite_runner, block, seeded_weights(block))
    assert not within(error, scale), f"SAME padding on an even input went unnoticed ({error:.3g})"


@pytest.mark.parametrize(
    "name",
    [
        "blocks.4.mobile_inverted_conv.point_linear.bn.running_var",  # batch-norm folding
        "blocks.10.mobile_inverted_conv.depth_conv.se.fc.expand.bias",  # the hard sigmoid's shifted bias
        "blocks.10.mobile_inverted_conv.depth_conv.conv.weight",  # the depthwise kernel's layout
        "first_conv.conv.weight",  # the stem's kernel layout (OHWI)
        "classifier.linear.bias",
    ],
)
def test_a_wrong_graph_is_caught(space: OFAMobileNetV3Space, name: str) -> None:
    """One perturbed value in the graph (torch keeps the right one) fails the same comparison."""
    blocks = space.blocks(space.parse(PNAG_80_MOBILE), resolution=128)
    wrong = {key: value.copy() for key, value in seeded_weights(blocks, seed=0).items()}
    flat = wrong[name].reshape(-1)  # a view: writes go to the array in ``wrong``
    flat[1] = flat[1] * 4 + 1
    module = build_network(blocks)
    load_weights(module, seeded_weights(blocks, seed=0))
    x = example_input(blocks)
    with torch.no_grad():
        expected = module(x).numpy()
    actual = _run(_interpreter(build_tflite(blocks, wrong)), x.numpy())
    error = float(np.abs(actual - expected).max())
    assert not within(error, float(np.abs(expected).max())), f"perturbing {name} went unnoticed ({error:.3g})"


def test_graph_form(space: OFAMobileNetV3Space) -> None:
    """NHWC, no TRANSPOSE, fused ReLU, HARD_SWISH and the hard sigmoid as builtin ops, a PAD only where SAME
    differs from torch's padding; deterministic bytes with 16-byte aligned weights."""
    kinds = blocks_of_every_kind(space, 224)
    block = kinds["MBConv SE, h-swish, skip, kernel 7"]
    model = tflite_model(block)
    assert _ops(model) == Counter({"CONV_2D": 4, "DEPTHWISE_CONV_2D": 1, "HARD_SWISH": 2, "MEAN": 1, "MUL": 2, "ADD": 1})
    parsed = schema.ModelT.InitFromPackedBuf(model, 0)
    graph = parsed.subgraphs[0]
    (entry,), (exit_,) = graph.inputs, graph.outputs
    assert graph.tensors[entry].name.decode() == INPUT_NAME and graph.tensors[exit_].name.decode() == OUTPUT_NAME
    assert tuple(graph.tensors[entry].shape) == (1, block.in_size, block.in_size, block.in_channels)
    fused = [
        op.builtinOptions.fusedActivationFunction
        for op in graph.operators
        if op.builtinOptions is not None and hasattr(op.builtinOptions, "fusedActivationFunction")
    ]
    assert fused.count(schema.ActivationFunctionType.RELU) == 1 and fused.count(schema.ActivationFunctionType.RELU6) == 1  # SE
    relu_block = kinds["MBConv SE, ReLU, stride 2"]
    assert _ops(tflite_model(relu_block))["PAD"] == 1 and "RELU" not in _ops(tflite_model(relu_block))
    assert _ops(tflite_model(kinds["stem conv, BN, h-swish, stride 2"])) == Counter({"PAD": 1, "CONV_2D": 1, "HARD_SWISH": 1})
    assert _ops(tflite_model(kinds["MBConv stride 2 on an odd input, kernel 7, SE, h-swish"]))["PAD"] == 0
    network = _ops(tflite_model(space.blocks(space.parse(PNAG_80_MOBILE), resolution=224)))
    assert network["PAD"] == 5 and network["TRANSPOSE"] == 0 and network["RESHAPE"] == 0  # stem + 4 strided stages
    assert _ops(tflite_model(space.blocks(space.parse(PNAG_80_MOBILE), resolution=161)))["PAD"] == 0  # odd sizes: SAME
    assert tflite_model(block) == model and tflite_model(block, seed=1) != model
    root = schema.Model.GetRootAs(model, 0)
    for index in range(1, root.BuffersLength()):
        table = root.Buffers(index)._tab
        assert table.Vector(table.Offset(4)) % tflite_graph.BUFFER_ALIGNMENT == 0, f"buffer {index} is not aligned"


def test_bad_specs_are_refused(space: OFAMobileNetV3Space) -> None:
    blocks = space.blocks(space.parse(PNAG_80_MOBILE), resolution=160)
    with pytest.raises(ExportError, match="a network's blocks must chain"):
        tflite_model(blocks[:2] + blocks[3:])
    weights = seeded_weights(blocks[5])
    with pytest.raises(ExportError, match="weights lack parameter"):
        build_tflite(blocks[5], {k: v for k, v in weights.items() if "point_linear" not in k})
    block = blocks[5]
    assert isinstance(block, MBConvBlock)
    wrong_shape = {**weights, "mobile_inverted_conv.depth_conv.conv.weight": np.zeros((1, 1, 3, 3), dtype=np.float32)}
    with pytest.raises(ExportError, match=r"has shape \(1, 1, 3, 3\)"):
        build_tflite(block, wrong_shape)
    with pytest.raises(ExportError, match="cannot build a network of no blocks"):
        tflite_model([])


def test_export_defaults_to_direct_and_litert_measures_it(space: OFAMobileNetV3Space, tmp_path: Path) -> None:
    """export_blocks writes the direct .tflite by default, checked against torch; run_exported takes and gives
    NCHW; LiteRT opened as the litert-cpu agent opens it hands the whole graph to XNNPACK (one partition from
    the input to the output), and the agent feeds it NHWC inputs as an app would."""
    blocks = space.blocks(space.parse(PNAG_80_MOBILE), resolution=160)
    result = export_blocks(blocks, fmt="tflite", out=tmp_path / "net.tflite")
    assert result.exporter == "direct" and result.max_abs_error is not None and result.max_abs_error < 1e-4
    conv = next(b for b in blocks if isinstance(b, ConvBlock) and b.name == "Conv_1")
    block_file = export_blocks(conv, fmt="tflite", out=tmp_path / "conv.tflite").path
    assert run_exported(block_file, np.zeros(conv.input_shape_nchw, dtype=np.float32)).shape == conv.output_shape_nchw
    interpreter = litert_interpreter(result.path, num_threads=1)  # how the litert-cpu agent opens it
    delegated = [op for op in interpreter._get_ops_details() if op["op_name"] == "DELEGATE"]
    assert len(delegated) == 1, f"XNNPACK should run the whole graph as one partition, not {len(delegated)}"
    assert interpreter.get_input_details()[0]["index"] in delegated[0]["inputs"]
    assert interpreter.get_output_details()[0]["index"] in delegated[0]["outputs"]
    agent = agent_class("litert-cpu")()
    measured = agent.measure(agent.prepare(result.path), MeasurementSpec(warmup_runs=1, runs=3))
    assert measured.median_ms > 0


def test_the_cache_keys_the_direct_tflite_apart(tmp_path: Path) -> None:
    block = ConvBlock(name="Conv", in_size=32, in_channels=3, out_channels=8, kernel=3, stride=2, act="h_swish")
    direct = cache_path(block, fmt="tflite", cache_dir=tmp_path)
    assert direct.name.endswith("-direct.tflite") and direct == cache_path(
        block, fmt="tflite", cache_dir=tmp_path, exporter="direct"
    )
    by_torch = cache_path(block, fmt="tflite", cache_dir=tmp_path, exporter="torch")
    assert by_torch.name.endswith("-torch.tflite") and by_torch.name.split("-")[0] != direct.name.split("-")[0]
    assert direct.name.split("-")[0] != cache_path(block, fmt="onnx", cache_dir=tmp_path).name.split("-")[0]
    relu = dataclasses.replace(block, act="relu")  # the same table key, another model
    assert cache_path(relu, fmt="tflite", cache_dir=tmp_path) != direct
    assert cached_export(block, fmt="tflite", cache_dir=tmp_path) == direct and direct.exists()
    assert [p.name for p in tmp_path.iterdir()] == [direct.name]


def test_direct_tflite_export_runs_without_torch(space: OFAMobileNetV3Space, tmp_path: Path) -> None:
    """With torch unimportable, a direct .tflite export still writes a file LiteRT loads and runs."""
    script = (
        "import sys; sys.modules['torch'] = None\n"
        "from nag.space import get_space\n"
        "from nag.space.export import export_blocks\n"
        "space = get_space('ofa-mbv3')\n"
        f"blocks = space.blocks(space.parse('{PNAG_80_MOBILE}'), resolution=128)\n"
        f"result = export_blocks(blocks, fmt='tflite', out=r'{tmp_path / 'net.tflite'}')\n"
        "assert result.max_abs_error is None and result.exporter == 'direct', result\n"
        "assert not any(name == 'torch' or name.startswith('torch.') for name in sys.modules if sys.modules[name])\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    output = run_exported(tmp_path / "net.tflite", np.zeros((1, 3, 128, 128), dtype=np.float32))
    assert output.shape == (1, 1000)
