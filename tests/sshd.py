"""A real OpenSSH server on 127.0.0.1 for tests of the ``ssh`` agent kind.

::

    with Sshd.start(tmp_path) as server:             # pytest.skip() where /usr/sbin/sshd or ssh-keygen is missing
        board = server.board(runtime="ort", remote_dir=str(tmp_path / "remote"))
        agent = SshAgent.open(None, AgentsConfig(ssh=(board,)))

The server runs ``/usr/sbin/sshd -D -e -f CONFIG`` with its own ed25519 host key, one authorized ed25519
client key, public-key authentication only, listening on 127.0.0.1 alone, on a free port; the "board" is
this machine as the current user. ``known_hosts`` holds the host key as ``[127.0.0.1]:PORT``. Stopping the
server also ends the per-connection sshd processes it forked, so no session outlives it.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agents.config import SshBoardConfig

__all__ = ["SSHD", "Sshd", "free_port", "make_key"]

SSHD = "/usr/sbin/sshd"
HOST = "127.0.0.1"


def make_key(path: Path, *, comment: str = "nag-farm-test") -> str:
    """Write an unencrypted ed25519 key pair at ``path`` / ``path.pub``; returns the public line ("ssh-ed25519 AAAA... comment")."""
    keygen = shutil.which("ssh-keygen")
    if keygen is None:
        pytest.skip("ssh-keygen is not installed (apt-get install openssh-client)")
    subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True, capture_output=True)
    return path.with_name(path.name + ".pub").read_text().strip()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def _sshd_version() -> tuple[int, int]:
    result = subprocess.run([SSHD, "-V"], capture_output=True, text=True, check=False)
    found = re.search(r"OpenSSH_(\d+)\.(\d+)", result.stdout + result.stderr)
    return (int(found.group(1)), int(found.group(2))) if found else (0, 0)


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (the per-connection sshd processes of a listener)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    found.append(int(entry.name))
    return found


@dataclass(frozen=True)
class Sshd:
    """A running sshd; use :meth:`start` (a context manager) to get one."""

    host: str  # always 127.0.0.1
    port: int
    user: str  # the current user, the only one who can log in
    client_key: Path  # private key authorized to log in
    known_hosts: Path  # holds the host key as "[127.0.0.1]:PORT ssh-ed25519 ..."
    host_key_pub: str  # the server's public host key line
    workdir: Path  # config, keys, pid file and log
    process: subprocess.Popen[Any]

    @classmethod
    @contextlib.contextmanager
    def start(cls, workdir: Path, *, timeout_s: float = 10.0) -> Any:
        """Start sshd in ``workdir`` (created if missing) and stop it on exit; skips the test where sshd is missing."""
        if not os.path.exists(SSHD):
            pytest.skip(f"{SSHD} is not installed (apt-get install openssh-server)")
        workdir.mkdir(parents=True, exist_ok=True)
        host_key = workdir / "ssh_host_ed25519_key"
        host_key_pub = make_key(host_key, comment="nag-farm-test-host")
        client_key = workdir / "client_ed25519"
        (workdir / "authorized_keys").write_text(make_key(client_key) + "\n")
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation directory
        for attempt in range(3):  # a free port can be taken between choosing it and sshd binding it
            port = free_port()
            process = _launch(workdir, host_key, port)
            if _wait_listening(process, port, timeout_s):
                break
            _stop(process)
            if attempt == 2:
                log = (workdir / "sshd.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"sshd did not start listening on {HOST}:{port}; its log ends:\n{log}")
        known_hosts = workdir / "known_hosts"
        known_hosts.write_text(f"[{HOST}]:{port} {' '.join(host_key_pub.split()[:2])}\n")
        server = cls(
            host=HOST, port=port, user=getpass.getuser(), client_key=client_key, known_hosts=known_hosts,
            host_key_pub=host_key_pub, workdir=workdir, process=process,
        )  # fmt: skip
        try:
            yield server
        finally:
            _stop(process)

    def board(self, *, runtime: str = "ort", remote_dir: str, name: str = "loopback", **fields: Any) -> SshBoardConfig:
        """An :class:`SshBoardConfig` for this server; ``fields`` override the rest (python, known_hosts, key_file, ...)."""
        values: dict[str, Any] = {
            "name": name, "host": self.host, "port": self.port, "user": self.user, "key_file": str(self.client_key),
            "known_hosts": str(self.known_hosts), "runtime": runtime, "remote_dir": remote_dir, "connect_timeout_s": 5.0,
            "command_timeout_s": 60.0,
        }  # fmt: skip
        values.update(fields)
        return SshBoardConfig(**values)

    def log(self) -> str:
        """What sshd has logged so far (for assertion messages)."""
        return (self.workdir / "sshd.log").read_text(errors="replace")


def _launch(workdir: Path, host_key: Path, port: int) -> subprocess.Popen[Any]:
    lines = [
        f"ListenAddress {HOST}",
        f"Port {port}",
        f"HostKey {host_key}",
        f"AuthorizedKeysFile {workdir / 'authorized_keys'}",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "StrictModes no",
        f"PidFile {workdir / 'sshd.pid'}",
        "PermitRootLogin prohibit-password",
        "Subsystem sftp internal-sftp",
        "MaxSessions 32",
        "LogLevel VERBOSE",
    ]
    if _sshd_version() >= (9, 8):  # newer sshd penalizes sources whose sessions fail; the tests fail some on purpose
        lines.append("PerSourcePenalties no")
    config = workdir / "sshd_config"
    config.write_text("\n".join(lines) + "\n")
    with open(workdir / "sshd.log", "ab") as log:
        return subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )


def _wait_listening(process: subprocess.Popen[Any], port: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
            return True
        time.sleep(0.05)
    return False


def _stop(process: subprocess.Popen[Any]) -> None:
    """Stop the listener and the per-connection processes it forked."""
    sessions = _children(process.pid)
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    for pid in sessions:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
