"""``ray up`` / ``ray down`` of a cluster.yaml-shaped config against a real sshd on 127.0.0.1.

The lab's config with the machine addresses pointed at this machine: the head is reached over SSH on a
non-default port through ``ssh_proxy_command`` (netcat), the project is synced with rsync, and the head's
start command starts Ray on loopback. Skipped where sshd, rsync or nc are missing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.2", 0))
        return int(sock.getsockname()[1])


@pytest.mark.skipif(not (shutil.which("rsync") and shutil.which("nc")), reason="ray up needs rsync and nc (netcat-openbsd)")
def test_ray_up_and_down_against_sshd_on_loopback(tmp_path: Path) -> None:
    from tests.sshd import Sshd

    ray_cli = f"{sys.executable} -m ray.scripts.scripts"
    gcs_port = _free_port()
    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    with Sshd.start(tmp_path / "sshd") as sshd:
        config["cluster_name"] = f"nag-test-{os.getpid()}"
        config["provider"].update({"head_ip": "127.0.0.1", "worker_ips": []})
        config["max_workers"] = 0
        config["auth"] = {
            "ssh_user": sshd.user, "ssh_private_key": str(sshd.client_key),
            "ssh_proxy_command": f"nc 127.0.0.1 {sshd.port}",
        }  # fmt: skip
        config["file_mounts"] = {"/tmp/nag-ray-up-test/project": str(ROOT / "farm")}  # rsync over the SSH connection
        config["setup_commands"] = []  # the environment is this machine's
        config["head_start_ray_commands"] = [
            f"RAY_AUTH_MODE=disabled {ray_cli} stop --force",
            f"RAY_AUTH_MODE=disabled {ray_cli} start --head --node-ip-address=127.0.0.2 --port={gcs_port} --num-cpus=1 "
            "--include-dashboard=false --disable-usage-stats",
        ]
        config_path = tmp_path / "cluster.yaml"
        config_path.write_text(yaml.safe_dump(config))
        env = {**os.environ, "RAY_AUTH_MODE": "disabled", "HOME": str(tmp_path)}  # ray up keeps its state under ~
        try:
            up = subprocess.run(
                [*ray_cli.split(), "up", str(config_path), "--yes", "--no-config-cache"],
                capture_output=True,
                text=True,
                timeout=600,
                env=env,
            )
            assert up.returncode == 0, (up.stdout + up.stderr)[-4000:]
            assert (Path("/tmp/nag-ray-up-test/project") / "scheduler.py").exists()  # synced by rsync through SSH
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                status = subprocess.run(
                    [*ray_cli.split(), "status", f"--address=127.0.0.2:{gcs_port}"], capture_output=True, text=True, env=env
                )
                if status.returncode == 0:
                    break
                time.sleep(1)
            assert status.returncode == 0, status.stderr[-2000:]
            assert "Active:" in status.stdout
            assert "Accepted publickey" in sshd.log()
            down = subprocess.run(
                [*ray_cli.split(), "down", str(config_path), "--yes"], capture_output=True, text=True, timeout=300, env=env
            )
            assert down.returncode == 0, (down.stdout + down.stderr)[-3000:]
            gone = subprocess.run(
                [*ray_cli.split(), "status", f"--address=127.0.0.2:{gcs_port}"], capture_output=True, text=True, env=env
            )
            assert gone.returncode != 0  # ray down stopped the head
        finally:
            subprocess.run([*ray_cli.split(), "stop", "--force"], capture_output=True, env=env)
            shutil.rmtree("/tmp/nag-ray-up-test", ignore_errors=True)
