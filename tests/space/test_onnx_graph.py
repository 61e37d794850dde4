"""The direct ONNX builder against the torch modules: same weights, same outputs on random inputs."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from nag.errors import ExportError
from nag.space.blocks import Block
from nag.space.export import export_blocks, verify_export
from nag.space.models import build_block, example_input, load_weights, seeded_module
from nag.space.ofa_mbv3 import OFAMobileNetV3Space
from nag.space.onnx_graph import OPSET, build_onnx, onnx_model
from nag.space.weights import seeded_weights
from tests.conftest import PNAG_80_MOBILE
from tests.space.torch_reference import ErrorLog, blocks_of_every_kind


def _onnx_runner(specs: Block | Sequence[Block], weights: dict[str, np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    session = ort.InferenceSession(build_onnx(specs, weights).SerializeToString(), providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"input": x})[0]


LOG = ErrorLog("direct ONNX vs torch", _onnx_runner)


@pytest.fixture(scope="module", autouse=True)
def _report_errors() -> object:
    yield
    LOG.print()


@pytest.mark.parametrize("resolution", [160, 224])
def test_every_block_kind_matches_torch(space: OFAMobileNetV3Space, resolution: int) -> None:
    LOG.check_every_kind(space, resolution)


@pytest.mark.parametrize(
    ("arch", "width", "resolution"),
    [(PNAG_80_MOBILE, 1.2, 224), ("sample:1", 1.2, 160), ("sample:2", 1.0, 192)],
)
def test_whole_networks_match_torch(space: OFAMobileNetV3Space, arch: str, width: float, resolution: int) -> None:
    parsed = space.sample_many(3, seed=5)[int(arch[7:])] if arch.startswith("sample:") else space.parse(arch)
    LOG.check(f"network {arch} (width {width}) @ {resolution}", space.blocks(parsed, width=width, resolution=resolution))


@pytest.mark.parametrize(
    "name",
    [
        "blocks.4.mobile_inverted_conv.point_linear.bn.running_var",
        "blocks.10.mobile_inverted_conv.depth_conv.se.fc.expand.bias",
        "first_conv.conv.weight",
        "classifier.linear.bias",
    ],
)
def test_a_wrong_graph_is_caught(space: OFAMobileNetV3Space, name: str, tmp_path: Path) -> None:
    """One perturbed value in the graph (torch keeps the right one) fails the same comparison."""
    blocks = space.blocks(space.parse(PNAG_80_MOBILE), resolution=160)
    wrong = {key: value.copy() for key, value in seeded_weights(blocks, seed=0).items()}
    flat = wrong[name].reshape(-1)  # a view: writes go to the array in ``wrong``
    flat[0] = flat[0] * 4 + 1
    session = ort.InferenceSession(build_onnx(blocks, wrong).SerializeToString(), providers=["CPUExecutionProvider"])
    x = example_input(blocks)
    with torch.no_grad():
        expected = seeded_module(blocks)(x).numpy()
    (actual,) = session.run(None, {"input": x.numpy()})
    error = float(np.abs(actual - expected).max())
    assert error > 1e-5 * max(1.0, float(np.abs(expected).max())), f"perturbing {name} went unnoticed ({error:.3g})"
    path = tmp_path / "wrong.onnx"
    path.write_bytes(build_onnx(blocks, wrong).SerializeToString())
    with pytest.raises(ExportError, match="output differs from torch"):
        verify_export(path, seeded_module(blocks), x)


def test_graph_form(space: OFAMobileNetV3Space) -> None:
    block = blocks_of_every_kind(space, 160)["MBConv SE, h-swish, skip, kernel 7"]
    model = onnx_model(block)
    onnx.checker.check_model(model, full_check=True)
    assert [(o.domain, o.version) for o in model.opset_import] == [("", OPSET)]
    assert [i.name for i in model.graph.input] == ["input"] and [o.name for o in model.graph.output] == ["output"]
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert tuple(dims) == block.input_shape_nchw
    ops = Counter(node.op_type for node in model.graph.node)
    assert ops == Counter({"Conv": 5, "HardSwish": 2, "ReduceMean": 1, "Relu": 1, "HardSigmoid": 1, "Mul": 1, "Add": 1})
    (hard_sigmoid,) = (n for n in model.graph.node if n.op_type == "HardSigmoid")
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in hard_sigmoid.attribute}
    assert attributes == pytest.approx({"alpha": 1 / 6, "beta": 0.5})
    assert onnx_model(block).SerializeToString() == model.SerializeToString()  # deterministic
    assert onnx_model(block, seed=1).SerializeToString() != model.SerializeToString()


def test_same_ops_as_torchs_dynamo_export(space: OFAMobileNetV3Space, tmp_path: Path) -> None:
    """The graph an app ships: torch's exporter folds batch norm too, and emits the same operators."""
    for block in list(blocks_of_every_kind(space, 160).values())[:5]:
        reference = export_blocks(block, fmt="onnx", out=tmp_path / "torch.onnx", exporter="torch", verify=False).path
        torch_ops = Counter(node.op_type for node in onnx.load(str(reference)).graph.node)
        assert Counter(node.op_type for node in onnx_model(block).graph.node) == torch_ops, block.key


def test_weight_names_must_fit_the_module(space: OFAMobileNetV3Space) -> None:
    block = space.all_blocks(resolution=160)[1]
    weights = seeded_weights(block)
    module = build_block(block)
    with pytest.raises(ExportError, match=re.escape("missing ['mobile_inverted_conv.depth_conv.bn.bias']")):
        load_weights(module, {k: v for k, v in weights.items() if k != "mobile_inverted_conv.depth_conv.bn.bias"})
    with pytest.raises(ExportError, match=re.escape("unexpected ['extra']")):
        load_weights(module, {**weights, "extra": np.zeros(1, dtype=np.float32)})
    bad_shape = {**weights, "mobile_inverted_conv.depth_conv.conv.weight": np.zeros((1, 1, 3, 3), dtype=np.float32)}
    with pytest.raises(ExportError, match=re.escape("has shape (1, 1, 3, 3)")):
        load_weights(module, bad_shape)
    with pytest.raises(ExportError, match="weights lack parameter"):
        build_onnx(block, {k: v for k, v in weights.items() if "point_linear" not in k})


def test_blocks_that_do_not_chain_are_refused(space: OFAMobileNetV3Space, tmp_path: Path) -> None:
    blocks = space.blocks(space.parse(PNAG_80_MOBILE), resolution=160)
    broken = blocks[:2] + blocks[3:]  # drops a strided block: the next one expects another shape
    with pytest.raises(ExportError, match="a network's blocks must chain"):
        export_blocks(broken, fmt="onnx", out=tmp_path / "broken.onnx")
    assert list(tmp_path.iterdir()) == []


def test_direct_export_runs_without_torch(space: OFAMobileNetV3Space, tmp_path: Path) -> None:
    """With torch unimportable, a direct export still writes a checked file (checker, shapes) that runs."""
    script = (
        "import sys; sys.modules['torch'] = None\n"
        "from nag.space import get_space\n"
        "from nag.space.export import cached_export, export_blocks\n"
        "space = get_space('ofa-mbv3')\n"
        f"blocks = space.blocks(space.parse('{PNAG_80_MOBILE}'), resolution=128)\n"
        f"result = export_blocks(blocks, fmt='onnx', out=r'{tmp_path / 'net.onnx'}')\n"
        "assert result.max_abs_error is None and result.exporter == 'direct', result\n"
        f"print(cached_export(blocks[3], fmt='onnx', cache_dir=r'{tmp_path}').name)\n"
        "assert not any(name == 'torch' or name.startswith('torch.') for name in sys.modules if sys.modules[name])\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("-direct.onnx")
    session = ort.InferenceSession(str(tmp_path / "net.onnx"), providers=["CPUExecutionProvider"])
    (output,) = session.run(None, {"input": np.zeros((1, 3, 128, 128), dtype=np.float32)})
    assert output.shape == (1, 1000)
