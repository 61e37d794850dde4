"""cluster.yaml is a valid Ray cluster config with the settings the lab set-up depends on."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_cluster_yaml_is_a_valid_ray_local_cluster() -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    validate_config(prepare_config(copy.deepcopy(config)))  # raises on a schema violation
    assert config["provider"]["type"] == "local"
    assert config["max_workers"] == len(config["provider"]["worker_ips"])
    head = " ".join(config["head_start_ray_commands"])
    assert "RAY_AUTH_MODE=token" in head and "--dashboard-host=127.0.0.1" in head
    workers = " ".join(config["worker_start_ray_commands"])
    assert "RAY_AUTH_MODE=token" in workers and "nag agent start --address=$RAY_HEAD_IP:6379" in workers
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
    assert any("torch==2.13.0" in c for c in config["setup_commands"]) and any(
        "pip install --user -e ~/nag-farm" in c for c in config["setup_commands"]
    )


def test_rsync_exclude_keeps_environments_databases_and_keys_home() -> None:
    import fnmatch

    excluded = yaml.safe_load((ROOT / "cluster.yaml").read_text())["rsync_exclude"]
    for name in (
        ".venv",
        "venv",
        "tables.db",
        "tables.db-wal",
        "run.sqlite",
        ".env",
        ".env.local",
        "lab.pem",
        "tls.key",
        "id_ed25519",
        ".netrc",
    ):
        assert any(fnmatch.fnmatch(name, pattern) for pattern in excluded), name
    for name in ("nag", "cluster.yaml", "README.md", "model.py"):  # the project itself still syncs
        assert not any(fnmatch.fnmatch(name, pattern) for pattern in excluded), name
    assert not any(fnmatch.fnmatch("auth_token", pattern) for pattern in excluded)  # file_mounts ships the token


def test_ray_down_finds_ray_in_user_site_bin_through_the_setup_commands(tmp_path: Path) -> None:
    """``ray down`` runs a bare ``ray stop`` the way Ray's SSH runner wraps every command (``bash --login -i``,
    sourcing ~/.bashrc). With ``ray`` only in ~/.local/bin (``pip install --user``), the setup commands must put
    it on that PATH, once however often ``ray up`` runs."""
    import os
    import subprocess

    from ray.autoscaler._private.command_runner import _with_interactive

    home = tmp_path / "home"
    (home / ".local" / "bin").mkdir(parents=True)
    fake = home / ".local" / "bin" / "ray"
    fake.write_text("#!/bin/sh\necho stopped-by-user-site-ray\n")
    fake.chmod(0o755)
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "TERM": "dumb"}
    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    path_setup = [c for c in config["setup_commands"] if "pip install" not in c]
    assert path_setup, "a setup command must put ~/.local/bin on the login PATH"

    def remote(command: str) -> subprocess.CompletedProcess[str]:  # as sshd's shell receives Ray's joined words
        line = " ".join(_with_interactive(command))
        return subprocess.run(line, shell=True, capture_output=True, text=True, env=env, cwd=home, timeout=60)

    assert "stopped-by-user-site-ray" not in remote("ray stop").stdout  # without the set-up: not found
    for _ in range(2):  # ray up twice
        for command in path_setup:
            assert remote(command).returncode == 0
    assert "stopped-by-user-site-ray" in remote("ray stop").stdout
    assert (home / ".bashrc").read_text().count(".local/bin") == 1
    assert os.access(fake, os.X_OK)
