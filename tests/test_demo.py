"""``nag demo`` on the embedded default: what exists so far, end to end."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from nag.demo import run_demo
from nag.space.export import run_exported
from nag.space.ofa_mbv3 import OFAMobileNetV3Space


def test_demo_writes_a_consistent_report(tmp_path: Path, space: OFAMobileNetV3Space) -> None:
    report = run_demo(tmp_path, n=40, seed=5, progress=False)
    with open(tmp_path / "archs.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["arch"] for r in rows] == [space.format(a) for a in space.sample_many(40, seed=5)]
    for row in rows:
        assert float(row["params_m"]) == round(space.costs(space.parse(row["arch"])).params_m, 4)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["num_blocks"] == 96
    madds = sorted(float(r["madds_m"]) for r in rows)
    exported = {e["which"]: e for e in summary["exports"] if e["format"] == "onnx"}
    assert float(next(r["madds_m"] for r in rows if r["arch"] == exported["smallest"]["arch"])) == madds[0]
    assert float(next(r["madds_m"] for r in rows if r["arch"] == exported["largest"]["arch"])) == madds[-1]
    for item in summary["exports"]:
        assert item["max_abs_error"] < 1e-3
        assert run_exported(item["path"], np.zeros((1, 3, 224, 224), dtype=np.float32)).shape == (1, 1000)
    assert (tmp_path / "costs.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report.num_blocks == 96
