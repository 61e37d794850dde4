"""A lab of several hosts on this machine: a Ray head on 127.0.0.2 and two device hosts on 127.0.0.3 and
127.0.0.4, each joined with ``nag agent start`` and its own stand-in phones (its own adb server). A driver
on the head measures across both hosts; ``nag farm status`` reports every device. All on loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from agents import MeasurementSpec  # noqa: E402
from agents.testing.adb_standin import AdbStandinServer, StandinDevice  # noqa: E402
from farm.client import Farm  # noqa: E402
from farm.store import Store  # noqa: E402
from farm.tables import block_tasks, measure_tasks  # noqa: E402


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.2", 0))
        return int(sock.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "RAY_AUTH_MODE": "disabled", **extra}


def _ray(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ray.scripts.scripts", *args], capture_output=True, text=True, timeout=180, env=env or _env()
    )


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[str]:
    head_port = _free_port()
    started = _ray(
        "start",
        "--head",
        "--node-ip-address=127.0.0.2",
        f"--port={head_port}",
        "--num-cpus=1",
        "--include-dashboard=false",
        "--disable-usage-stats",
    )
    assert started.returncode == 0, started.stderr
    address = f"127.0.0.2:{head_port}"
    servers = []
    try:
        for host, serials in (("127.0.0.3", ["lab1-a", "lab1-b"]), ("127.0.0.4", ["lab2-a"])):
            server = AdbStandinServer([StandinDevice(serial=s, root=tmp_path / s) for s in serials]).start()
            servers.append(server)
            config = tmp_path / f"{host}.yaml"
            config.write_text(f"adb: {{port: {server.port}}}\nlocal: false\n")
            joined = subprocess.run(
                [sys.executable, "-m", "nag", "agent", "start", "--address", address, "--node-ip-address", host, "--kinds", "adb-litert", "--config", str(config)],
                capture_output=True, text=True, timeout=300, env=_env(NAG_CACHE_DIR=str(tmp_path / "cache")),
            )  # fmt: skip
            assert joined.returncode == 0, joined.stderr[-3000:]
            assert all(s in joined.stdout for s in serials)
        yield address
    finally:
        _ray("stop", "--force")
        for server in servers:
            server.stop()


def test_a_lab_of_three_hosts(lab: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("NAG_RAY_NODE_IP", "127.0.0.2")
    with Farm.connect(lab) as farm, Store(tmp_path / "tables.db") as store:
        devices = {d.device_id: d for d in farm.devices("adb-litert")}
        assert set(devices) == {"adb-litert:lab1-a", "adb-litert:lab1-b", "adb-litert:lab2-a"}
        assert devices["adb-litert:lab1-a"].node == devices["adb-litert:lab1-b"].node != devices["adb-litert:lab2-a"].node
        nodes = {n["NodeID"]: n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]}
        assert nodes[devices["adb-litert:lab1-a"].node] == "127.0.0.3" and nodes[devices["adb-litert:lab2-a"].node] == "127.0.0.4"
        tasks = block_tasks("ofa-mbv3", width=1.2, resolutions=[64])[:9]
        report = measure_tasks(
            farm, store, tasks, kind="adb-litert", spec=MeasurementSpec(warmup_runs=1, runs=3), description="lab"
        )
    assert report.done == 9 and report.failed == []
    assert set(report.per_device) == set(devices)  # work went to every host
    status = subprocess.run(
        [sys.executable, "-m", "nag", "farm", "status", "--address", lab, "--json"],
        capture_output=True, text=True, timeout=120, env=_env(NAG_RAY_NODE_IP="127.0.0.2"),
    )  # fmt: skip
    assert status.returncode == 0, status.stderr[-2000:]
    listed = json.loads(status.stdout)
    assert {d["device_id"]: d["health"] for d in listed["devices"]} == dict.fromkeys(devices, "ok")
    assert listed["jobs"][0]["done"] == 9 and listed["jobs"][0]["state"] == "done"
