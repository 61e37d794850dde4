"""Export round trips: ONNX in ONNX Runtime and .tflite in the LiteRT interpreter, against torch."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from nag.errors import ExportError, UnknownNameError
from nag.space.blocks import ConvBlock, LinearBlock, MBConvBlock, PoolBlock
from nag.space.export import cache_path, cached_export, export_blocks, export_model, run_exported, verify_export
from nag.space.models import example_input, seeded_module
from nag.space.ofa_mbv3 import OFAMobileNetV3Space
from tests.conftest import PNAG_80_MOBILE

needs_litert_torch = pytest.mark.skipif(
    importlib.util.find_spec("litert_torch") is None, reason="litert-torch not installed (pip install 'nag-farm[litert]')"
)


def _one_of_each_kind(space: OFAMobileNetV3Space) -> list:
    """Stem, the fixed first block, an SE + h-swish MBConv with skip, a strided ReLU MBConv, and the tail."""
    blocks = space.all_blocks(width=1.2, resolution=160)
    mbconv = [b for b in blocks if isinstance(b, MBConvBlock)]
    picks = [
        next(b for b in blocks if isinstance(b, ConvBlock) and b.name == "Conv"),
        mbconv[0],
        next(b for b in mbconv if b.se and b.act == "h_swish" and b.residual and b.kernel == 7),
        next(b for b in mbconv if b.stride == 2 and b.act == "relu" and b.kernel == 5),
    ]
    return picks + [
        b for b in blocks if isinstance(b, (PoolBlock, LinearBlock)) or getattr(b, "name", "") in ("Conv_1", "Conv_2")
    ]


def test_network_onnx_round_trip(space: OFAMobileNetV3Space, tmp_path: Path) -> None:
    blocks = space.blocks(space.parse(PNAG_80_MOBILE), resolution=160)
    result = export_blocks(blocks, fmt="onnx", out=tmp_path / "net.onnx")
    assert result.path.exists() and result.max_abs_error is not None and result.max_abs_error < 1e-4
    output = run_exported(result.path, example_input(blocks, seed=3).numpy())
    assert output.shape == (1, 1000)
    assert not list(tmp_path.glob(".*"))  # no temporary left behind


def test_verification_fails_on_a_different_model(space: OFAMobileNetV3Space, tmp_path: Path) -> None:
    blocks = space.blocks(space.parse(PNAG_80_MOBILE), resolution=128)
    path = export_blocks(blocks, fmt="onnx", out=tmp_path / "a.onnx", seed=1, verify=False).path
    with pytest.raises(ExportError, match="output differs from torch"):
        verify_export(path, seeded_module(blocks, seed=2), example_input(blocks))


def test_each_block_kind_onnx_round_trip(space: OFAMobileNetV3Space, tmp_path: Path) -> None:
    for n, block in enumerate(_one_of_each_kind(space)):
        result = export_blocks(block, fmt="onnx", out=tmp_path / f"b{n}.onnx")
        assert result.max_abs_error is not None and result.max_abs_error < 1e-4, block.key
        out = run_exported(result.path, np.zeros(block.input_shape_nchw, dtype=np.float32))
        assert out.shape == block.output_shape_nchw, block.key


def test_network_tflite_round_trip(space: OFAMobileNetV3Space, tmp_path: Path) -> None:
    blocks = space.blocks(space.parse(PNAG_80_MOBILE), resolution=160)
    result = export_blocks(blocks, fmt="tflite", out=tmp_path / "net.tflite")
    assert result.exporter == "direct" and result.max_abs_error is not None and result.max_abs_error < 1e-3
    assert run_exported(result.path, example_input(blocks).numpy()).shape == (1, 1000)


@needs_litert_torch
def test_blocks_tflite_round_trip_through_litert_torch(space: OFAMobileNetV3Space, tmp_path: Path) -> None:
    """The reference path: litert-torch's file (NCHW, TRANSPOSE at both ends) computes what the direct one does."""
    for n, block in enumerate(_one_of_each_kind(space)[2:5]):  # SE/h-swish MBConv, strided MBConv, Conv_1
        result = export_blocks(block, fmt="tflite", out=tmp_path / f"b{n}.tflite", exporter="torch")
        assert result.exporter == "torch" and result.max_abs_error is not None and result.max_abs_error < 1e-3, block.key
        direct = export_blocks(block, fmt="tflite", out=tmp_path / f"d{n}.tflite", verify=False).path
        x = np.random.default_rng(n).standard_normal(block.input_shape_nchw).astype(np.float32)
        expected = run_exported(result.path, x)
        np.testing.assert_allclose(run_exported(direct, x), expected, atol=1e-5 * max(1.0, float(np.abs(expected).max())))


def test_unknown_format_and_failed_export_leave_no_file(space: OFAMobileNetV3Space, tmp_path: Path) -> None:
    block = space.all_blocks(resolution=128)[0]
    with pytest.raises(UnknownNameError, match="valid formats: onnx, tflite, pt2"):
        export_blocks(block, fmt="pb", out=tmp_path / "x.pb")
    module = seeded_module(block)
    wrong_input = example_input(space.all_blocks(resolution=128)[-1])  # a (1, 1536, 1, 1) tensor into a 3-channel conv
    with pytest.raises(ExportError, match="onnx export to"):
        export_model(module, wrong_input, fmt="onnx", out=tmp_path / "bad.onnx")
    assert list(tmp_path.iterdir()) == []


def test_run_exported_rejects_unknown_files(tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError, match=r"expected \.onnx, \.tflite or \.pt2"):
        run_exported(tmp_path / "model.pt", np.zeros((1,), dtype=np.float32))


def test_direct_and_torch_exports_hold_the_same_model(space: OFAMobileNetV3Space, tmp_path: Path) -> None:
    blocks = space.blocks(space.parse(PNAG_80_MOBILE), resolution=128)
    direct = export_blocks(blocks, fmt="onnx", out=tmp_path / "direct.onnx")
    reference = export_blocks(blocks, fmt="onnx", out=tmp_path / "torch.onnx", exporter="torch")
    assert (direct.exporter, reference.exporter) == ("direct", "torch")
    assert direct.max_abs_error is not None and direct.max_abs_error < 1e-4
    x = np.random.default_rng(1).standard_normal((1, 3, 128, 128)).astype(np.float32)
    expected = run_exported(reference.path, x)
    np.testing.assert_allclose(run_exported(direct.path, x), expected, rtol=1e-4, atol=1e-5 * float(np.abs(expected).max()))


def test_cache_names_carry_the_exporter_and_the_content(tmp_path: Path) -> None:
    block = ConvBlock(name="Conv", in_size=32, in_channels=3, out_channels=8, kernel=3, stride=2, act="h_swish")
    relu = dataclasses.replace(block, act="relu")  # the same table key, another model
    assert relu.key == block.key
    paths = {cache_path(b, fmt="onnx", cache_dir=tmp_path, exporter=e) for b in (block, relu) for e in ("direct", "torch")}
    assert len(paths) == 4
    assert cache_path(block, fmt="onnx", cache_dir=tmp_path).name.endswith("-direct.onnx")
    assert cache_path(block, fmt="tflite", cache_dir=tmp_path).name.endswith("-direct.tflite")
    assert cache_path(block, fmt="tflite", cache_dir=tmp_path, exporter="torch").name.endswith("-torch.tflite")
    assert cache_path(block, fmt="onnx", cache_dir=tmp_path, seed=1) != cache_path(block, fmt="onnx", cache_dir=tmp_path)
    first = cached_export(block, fmt="onnx", cache_dir=tmp_path)
    stamp = first.stat().st_mtime_ns
    assert cached_export(block, fmt="onnx", cache_dir=tmp_path) == first and first.stat().st_mtime_ns == stamp
    by_torch = cached_export(block, fmt="onnx", cache_dir=tmp_path, exporter="torch")
    assert by_torch.name.endswith("-torch.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([first.name, by_torch.name])


def test_exporter_choices_are_checked(space: OFAMobileNetV3Space, tmp_path: Path) -> None:
    block = space.all_blocks(resolution=128)[0]
    with pytest.raises(UnknownNameError, match="the direct exporter writes ONNX and tflite only, not pt2"):
        export_blocks(block, fmt="pt2", out=tmp_path / "x.pt2", exporter="direct")
    with pytest.raises(UnknownNameError, match="valid exporters: direct, torch"):
        cache_path(block, fmt="onnx", exporter="dynamo")
    assert list(tmp_path.iterdir()) == []
