"""``nag submit`` wraps Ray's job submission: a job runs a nag command on the cluster and its logs stream
back. Ray head with its job API on 127.0.0.2 (loopback)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("ray")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.2", 0))
        return int(sock.getsockname()[1])


ENV = {**os.environ, "RAY_AUTH_MODE": "disabled"}


def _ray(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ray.scripts.scripts", *args], capture_output=True, text=True, timeout=180, env=ENV
    )


@pytest.fixture
def job_api() -> Iterator[str]:
    port, dashboard = _free_port(), _free_port()
    started = _ray(
        "start", "--head", "--node-ip-address=127.0.0.2", f"--port={port}", "--num-cpus=1", "--include-dashboard=true",
        "--dashboard-host=127.0.0.2", f"--dashboard-port={dashboard}", "--disable-usage-stats",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    try:
        yield f"http://127.0.0.2:{dashboard}"
    finally:
        _ray("stop", "--force")


def test_submit_runs_a_nag_command_and_streams_its_output(job_api: str, tmp_path: Path) -> None:
    (tmp_path / "job").mkdir()
    expected = subprocess.run(
        [sys.executable, "-m", "nag", "arch", "sample", "--n", "3", "--seed", "11"], capture_output=True, text=True, check=True
    ).stdout
    result = subprocess.run(
        [sys.executable, "-m", "nag", "submit", "--address", job_api, "--working-dir", str(tmp_path / "job"), "--", "arch", "sample", "--n", "3", "--seed", "11"],
        capture_output=True, text=True, timeout=300, env=ENV,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert all(line in result.stdout for line in expected.split())
    assert "submitted raysubmit_" in result.stderr and "SUCCEEDED" in result.stderr
    failing = subprocess.run(
        [sys.executable, "-m", "nag", "submit", "--address", job_api, "--working-dir", str(tmp_path / "job"), "--", "arch", "info", "not-an-arch"],
        capture_output=True, text=True, timeout=300, env=ENV,
    )  # fmt: skip
    assert failing.returncode == 1 and "FAILED" in failing.stderr and "3 sections" in failing.stdout


def test_submit_needs_a_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "nag", "submit", "--address", "http://127.0.0.2:1"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and "needs the command to run after '--'" in result.stderr
