"""``nag agent``: probe and measure contracts on this machine's CPU runtimes."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PNAG_80_MOBILE

TINY = "2,2,2,2,2:3,3,0,0,3,3,0,0,3,3,0,0,3,3,0,0,3,3,0,0:3,3,0,0,3,3,0,0,3,3,0,0,3,3,0,0,3,3,0,0"


def nag(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "agents.yaml"
    config.write_text("adb: null\n")  # no phones here; never start an adb server from a test
    env = {**os.environ, "NAG_AGENTS_CONFIG": str(config), "NAG_CACHE_DIR": str(tmp_path / "cache")}
    return subprocess.run([sys.executable, "-m", "nag", *args], capture_output=True, text=True, timeout=300, env=env)


def test_probe_json(tmp_path: Path) -> None:
    result = nag("agent", "probe", "--json", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    devices = json.loads(result.stdout)
    kinds = [d["kind"] for d in devices]
    assert "ort-cpu" in kinds and "litert-cpu" in kinds
    for device in devices:
        assert device["device_id"] and device["fingerprint"] and len(device["fingerprint_hash"]) == 16


@pytest.mark.parametrize("kind", ["ort-cpu", "litert-cpu"])
def test_measure_json_contract(kind: str, tmp_path: Path) -> None:
    result = nag(
        "agent",
        "measure",
        TINY,
        "--kind",
        kind,
        "--resolution",
        "128",
        "--runs",
        "7",
        "--warmup",
        "2",
        "--json",
        tmp_path=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["kind"] == kind and data["arch"] == TINY
    assert len(data["samples_ms"]) == 7 and all(s > 0 for s in data["samples_ms"])
    assert data["median_ms"] == pytest.approx(statistics.median(data["samples_ms"]))
    assert data["p90_ms"] >= data["median_ms"]
    assert data["device_id"].startswith(f"{kind}@") and data["runtime"] and data["runtime_version"]
    assert len(list((tmp_path / "cache" / "models").iterdir())) == 1  # the exported network is cached


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--kind", "tpu"], "valid kinds: ort-cpu"),
        (["--kind", "cuda"], "no cuda device is reachable"),
        (["--kind", "ort-cpu", "--device-id", "elsewhere"], "no ort-cpu device 'elsewhere'; reachable: ort-cpu@"),
        (["--kind", "ort-cpu", "--runs", "0"], "runs must be an integer >= 1"),
        (["--kind", "ort-cpu", "--affinity", "a,b"], "--affinity must be comma-separated"),
        (["--kind", "ort-cpu", "--affinity", "999"], "not within the CPUs this process may use"),
    ],
)
def test_measure_bad_input(args: list[str], expected: str, tmp_path: Path) -> None:
    if args[1] == "cuda":
        from agents.config import AgentsConfig
        from agents.cuda import CudaAgent

        if CudaAgent.probe(AgentsConfig(adb=None)):
            pytest.skip("this machine has a GPU")
    result = nag("agent", "measure", PNAG_80_MOBILE, "--resolution", "96", *args, tmp_path=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert expected in result.stderr
