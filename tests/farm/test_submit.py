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


def _git_project(root: Path) -> Path:
    """A small git checkout holding project files beside a secret, a key, a database and ignored data."""
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    (root / ".gitignore").write_text("data/\n")
    (root / "train.py").write_text("print('hi')\n")
    (root / "src").mkdir()
    (root / "src" / "model.py").write_text("x = 1\n")
    (root / ".env").write_text("API_TOKEN=secret\n")
    (root / "id_ed25519").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    (root / "tables.db").write_bytes(b"SQLite format 3\0")
    (root / "data").mkdir()
    (root / "data" / "big.bin").write_bytes(b"\0" * 1000)
    subprocess.run(["git", "-C", str(root), "add", "train.py", ".gitignore", "tables.db"], check=True)  # a tracked db too
    return root


def test_submit_ships_git_project_files_less_secrets_and_databases(tmp_path: Path) -> None:
    from nag.cli._shipping import choose_files, stage
    from nag.errors import NagError

    project = _git_project(tmp_path / "project")
    shipment = choose_files(project)
    assert shipment.files == (".gitignore", "src/model.py", "train.py")  # untracked but not ignored: src/model.py
    assert set(shipment.left_out) == {".env", "id_ed25519", "tables.db"} and "data/big.bin" not in shipment.left_out
    assert "left out as secrets or databases" in shipment.summary() and "3 files" in shipment.summary()
    staged = stage(shipment, tmp_path / "staged")
    assert sorted(p.relative_to(staged).as_posix() for p in staged.rglob("*") if p.is_file()) == list(shipment.files)
    explicit = choose_files(project, ["*.py", "tables.db"])  # named on purpose: shipped as named
    assert explicit.files == ("src/model.py", "tables.db", "train.py") and explicit.left_out == ()
    with pytest.raises(NagError, match="git lists no project files"):
        choose_files(tmp_path / "project" / "data")  # inside the checkout, but ignored
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "a.py").write_text("")
    with pytest.raises(NagError, match=r"not a git checkout.*--include"):
        choose_files(tmp_path / "plain")
    assert choose_files(tmp_path / "plain", ["*.py"]).files == ("a.py",)
    with pytest.raises(NagError, match="matches no file"):
        choose_files(project, ["*.rs"])


def test_submit_dry_run_lists_what_would_ship(tmp_path: Path) -> None:
    project = _git_project(tmp_path / "project")
    result = subprocess.run(
        [sys.executable, "-m", "nag", "submit", "--address", "http://127.0.0.2:1", "--working-dir", str(project), "--dry-run", "--", "farm", "status"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [".gitignore", "src/model.py", "train.py"]
    assert "shipping 3 files" in result.stderr and ".env" in result.stderr


def test_submit_runs_a_nag_command_and_streams_its_output(job_api: str, tmp_path: Path) -> None:
    _git_project(tmp_path / "job")
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
    assert "shipping 3 files" in result.stderr and "left out as secrets or databases" in result.stderr
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
