"""Agent configuration: which ADB server to ask, which SSH boards exist, how to reach them.

Read once at the edge from a YAML file into frozen dataclasses; every later layer sees only these types.
The file (default ``~/.config/nag/agents.yaml``, or ``$NAG_AGENTS_CONFIG``)::

    adb:
      host: 127.0.0.1            # the adb server (start it with 'adb start-server')
      port: 5037
      benchmark_model: /data/local/tmp/benchmark_model   # LiteRT's benchmark_model on the phones
      remote_dir: /data/local/tmp/nag                    # where models are pushed, one file per content hash
      use_xnnpack: true
      use_gpu: false
    ssh:
      - name: rpi5                                       # device id becomes ssh:rpi5
        host: 10.0.0.12
        port: 22
        user: pi
        key_file: ~/.ssh/id_ed25519
        known_hosts: ~/.ssh/known_hosts                  # host keys must be known: see 'ssh-keyscan'
        runtime: ort                                     # 'ort' (python3 + onnxruntime on the board) or 'benchmark_model'
        python: python3
        benchmark_model: /usr/local/bin/benchmark_model
        remote_dir: /tmp/nag
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from agents.errors import SpecError

__all__ = ["AdbConfig", "AgentsConfig", "SshBoardConfig", "default_config_path", "load_config"]


@dataclass(frozen=True)
class AdbConfig:
    host: str = "127.0.0.1"  # adb server address
    port: int = 5037  # adb server port
    benchmark_model: str = "/data/local/tmp/benchmark_model"  # path of LiteRT's benchmark_model on the device
    remote_dir: str = "/data/local/tmp/nag"  # models are pushed here, named by content hash
    use_xnnpack: bool = True
    use_gpu: bool = False
    command_timeout_s: float = 600.0  # limit for one shell command (one benchmark_model invocation)


@dataclass(frozen=True)
class SshBoardConfig:
    name: str  # the board's name; its device id is "ssh:<name>"
    host: str
    user: str
    key_file: str  # private key for key authentication (passwords are not supported)
    port: int = 22
    known_hosts: str = "~/.ssh/known_hosts"  # host keys are checked against this file; unknown keys are refused
    runtime: str = "ort"  # "ort": python + onnxruntime on the board; "benchmark_model": LiteRT's tool
    python: str = "python3"  # interpreter on the board (runtime "ort")
    benchmark_model: str = "benchmark_model"  # path of the tool on the board (runtime "benchmark_model")
    remote_dir: str = "/tmp/nag"  # models and the runner script are uploaded here, named by content hash
    connect_timeout_s: float = 10.0
    command_timeout_s: float = 600.0

    def __post_init__(self) -> None:
        if self.runtime not in ("ort", "benchmark_model"):
            raise SpecError(f"ssh board {self.name!r}: runtime must be 'ort' or 'benchmark_model', got {self.runtime!r}")


@dataclass(frozen=True)
class AgentsConfig:
    adb: AdbConfig | None = AdbConfig()  # None: do not look for phones
    ssh: tuple[SshBoardConfig, ...] = ()
    local: bool = True  # offer this machine's CPU (and GPU) runtimes


def default_config_path() -> Path:
    return Path(os.environ.get("NAG_AGENTS_CONFIG", "~/.config/nag/agents.yaml")).expanduser()


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, Mapping):
        raise SpecError(f"{where}: expected a mapping, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise SpecError(f"{where}: unknown key(s) {sorted(map(str, unknown))}; valid keys: {sorted(known)}")
    try:
        return cls(**data)
    except TypeError as exc:
        raise SpecError(f"{where}: {exc}") from exc


def load_config(path: str | os.PathLike[str] | None = None) -> AgentsConfig:
    """The agents configuration from YAML; the defaults when ``path`` is None and the default file is absent."""
    import yaml

    explicit = path is not None
    file = Path(path).expanduser() if path is not None else default_config_path()
    if not file.exists():
        if explicit:
            raise SpecError(f"agents config file {file} does not exist")
        return AgentsConfig()
    try:
        data = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise SpecError(f"agents config {file} is not valid YAML: {exc}") from exc
    if not isinstance(data, Mapping):
        raise SpecError(f"agents config {file}: expected a mapping at the top level")
    unknown = set(data) - {"adb", "ssh", "local"}
    if unknown:
        raise SpecError(f"agents config {file}: unknown key(s) {sorted(map(str, unknown))}; valid: adb, ssh, local")
    adb = None if data.get("adb", {}) is None else _build(AdbConfig, data.get("adb", {}), f"{file}: adb")
    boards = data.get("ssh") or []
    if not isinstance(boards, list):
        raise SpecError(f"agents config {file}: 'ssh' must be a list of boards")
    ssh = tuple(_build(SshBoardConfig, board, f"{file}: ssh[{i}]") for i, board in enumerate(boards))
    names = [b.name for b in ssh]
    if len(set(names)) != len(names):
        raise SpecError(f"agents config {file}: ssh board names must be unique, got {names}")
    return AgentsConfig(adb=adb, ssh=ssh, local=bool(data.get("local", True)))
