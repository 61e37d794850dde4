"""The ``nag`` command line: contracts of ``nag arch``, error handling, and a light start-up path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nag.space.ofa_mbv3 import OFAMobileNetV3Space
from tests.conftest import PNAG_80_MOBILE


def nag(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nag", *args], input=stdin, capture_output=True, text=True, timeout=300)


def test_arch_info_json_contract(space: OFAMobileNetV3Space) -> None:
    archs = [space.format(a) for a in space.sample_many(3, seed=11)] + [PNAG_80_MOBILE]
    result = nag("arch", "info", *archs, "--width", "1.0", "--resolution", "192", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["arch"] for r in rows] == archs
    for row, arch in zip(rows, archs, strict=False):
        costs = space.costs(space.parse(arch), width=1.0, resolution=192)
        assert row["space"] == "ofa-mbv3" and row["width"] == 1.0 and row["resolution"] == 192
        assert row["madds_m"] == pytest.approx(costs.madds / 1e6, abs=1e-3)
        assert row["madds_total_m"] == pytest.approx(costs.madds_total / 1e6, abs=1e-3)
        assert row["params_m"] == pytest.approx(costs.params / 1e6, abs=1e-4)


def test_arch_info_table_and_stdin() -> None:
    sampled = nag("arch", "sample", "--n", "4", "--seed", "3")
    assert sampled.returncode == 0
    lines = sampled.stdout.split()
    assert len(lines) == 4 and sampled.stdout == nag("arch", "sample", "--n", "4", "--seed", "3").stdout
    table = nag("arch", "info", "-", stdin=sampled.stdout)
    assert table.returncode == 0
    assert all(line in table.stdout for line in lines)
    assert "348.6" in nag("arch", "info", PNAG_80_MOBILE).stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["arch", "info", "2,2:3"], "3 sections"),
        (["arch", "info", PNAG_80_MOBILE.replace("2,3,3,3,3", "2,3,3,3,9", 1)], "depth of stage 5 is 9"),
        (["arch", "info", PNAG_80_MOBILE, "--space", "nope"], "valid names: ofa-mbv3"),
        (["arch", "info", PNAG_80_MOBILE, "--resolution", "8"], "input resolution"),
        (["arch", "info", PNAG_80_MOBILE, "--width", "abc"], "invalid float value"),
        (["arch", "sample", "--n", "-2"], "must be >= 0"),
        (["arch", "export", PNAG_80_MOBILE, "--format", "pb", "--out", "x"], "invalid choice"),
        (["arch", "export", PNAG_80_MOBILE, "--format", "pt2", "--exporter", "direct", "--out", "x"], "ONNX and tflite only"),
        (["arch", "export-block", "Conv-input:1x1x1-output:1x1x1", "--format", "onnx", "--out", "x"], "nag arch blocks"),
        (["arch"], "required"),
        (["frobnicate"], "invalid choice"),
        (["demo", "--kind", "adb-litert"], "invalid choice"),
        (["demo", "--checkpoint", "/no/such.pt"], "supernet checkpoint '/no/such.pt' is not a file"),
        (["demo", "--data", "/no/such/folder"], "ImageNet-layout folder"),
        (["demo", "--subnets", "5"], "subnets must be at least 20"),
    ],
)
def test_bad_input_exits_2_with_one_line(args: list[str], expected: str) -> None:
    result = nag(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert expected in result.stderr


def test_light_commands_do_not_import_heavy_libraries() -> None:
    probe = (
        "import sys, contextlib, io\n"
        "from nag.cli import main\n"
        f"args = [['--help'], ['arch', 'info', '{PNAG_80_MOBILE}', '--json'], ['arch', 'sample', '--n', '2'], ['arch', 'blocks']]\n"
        "for a in args:\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        try: main(a)\n"
        "        except SystemExit: pass\n"
        "print(sorted(m for m in ('torch', 'ray', 'onnxruntime', 'ai_edge_litert', 'numpy', 'matplotlib') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_arch_blocks_lists_the_table(space: OFAMobileNetV3Space) -> None:
    result = nag("arch", "blocks", "--json", "--resolution", "160")
    keys = [b["key"] for b in json.loads(result.stdout)]
    assert keys == [b.key for b in space.all_blocks(resolution=160)]
    result = nag("arch", "blocks", PNAG_80_MOBILE, "--json")
    assert sum(b["params"] for b in json.loads(result.stdout)) == space.costs(space.parse(PNAG_80_MOBILE)).params


def test_arch_export_writes_a_checked_onnx(tmp_path: Path, space: OFAMobileNetV3Space) -> None:
    out = tmp_path / "net.onnx"
    result = nag("arch", "export", PNAG_80_MOBILE, "--format", "onnx", "--out", str(out), "--resolution", "128")
    assert result.returncode == 0, result.stderr
    assert "max |error| vs torch" in result.stderr
    import onnxruntime as ort

    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == [1, 3, 128, 128]
    key = space.all_blocks(resolution=128)[5].key
    block_out = tmp_path / "block.onnx"
    assert nag("arch", "export-block", key, "--format", "onnx", "--out", str(block_out), "--resolution", "128").returncode == 0
    assert ort.InferenceSession(str(block_out), providers=["CPUExecutionProvider"]).get_inputs()[0].shape[1] == 24
