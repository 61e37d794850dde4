"""Agent configuration: which ADB server to ask, which SSH boards exist, how to reach them.

Read once at the edge from a YAML file into frozen dataclasses; every later layer sees only these types.
Every value is checked on construction: strings non-empty, booleans true/false (not 'no'), ports 1..65535,
timeouts finite seconds > 0, no unknown keys (the error lists the valid ones). Only the default file may
be absent; a file named by ``--config`` or ``$NAG_AGENTS_CONFIG`` must exist. Errors are
:class:`~agents.errors.SpecError`, one line each. The file (default ``~/.config/nag/agents.yaml``, or
``$NAG_AGENTS_CONFIG``)::

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

import math
import os
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

from agents.errors import SpecError
from nag.errors import show_value as _show

__all__ = [
    "ENV_VAR",
    "AdbConfig",
    "AgentsConfig",
    "SshBoardConfig",
    "default_config_path",
    "load_config",
]

ENV_VAR = "NAG_AGENTS_CONFIG"  # names the agents config file; unset (or empty): the default path
MAX_CONFIG_BYTES = 1 << 20  # an agents config is a few hundred bytes; a larger file is not one
_PORT_RANGE = (1, 65535)


def _check_fields(config: object, where: str) -> None:
    """Check every field of a config dataclass against its annotation and the unit in its name.

    ``bool``: true or false (not 'no', not 1); ``str``: non-empty; ``port``: an integer in 1..65535;
    ``*_s`` (seconds): a finite number > 0, stored as float. Raises :class:`SpecError` naming the field,
    the value and the expected form.
    """
    for field in fields(config):  # type: ignore[arg-type]
        value = getattr(config, field.name)
        name = f"{where}: {field.name}"
        if field.type == "bool":
            if not isinstance(value, bool):
                raise SpecError(f"{name} must be true or false, got {_show(value)}; write it unquoted, e.g. {field.name}: true")
        elif field.type == "str":
            if not isinstance(value, str) or not value.strip():
                raise SpecError(f"{name} must be a non-empty string, got {_show(value)}; quote it in the YAML if needed")
        elif field.name == "port":
            low, high = _PORT_RANGE
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise SpecError(f"{name} must be a port number from {low} to {high}, got {_show(value)}")
        elif field.name.endswith("_s"):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise SpecError(f"{name} must be a finite number of seconds > 0, got {_show(value)}; e.g. 600")
            object.__setattr__(config, field.name, float(value))
        else:  # a new field needs a rule here: fail loudly rather than accept anything
            raise TypeError(f"no validation rule for config field {type(config).__name__}.{field.name}")


@dataclass(frozen=True)
class AdbConfig:
    host: str = "127.0.0.1"  # adb server address
    port: int = 5037  # adb server port, 1..65535
    benchmark_model: str = "/data/local/tmp/benchmark_model"  # path of LiteRT's benchmark_model on the device
    remote_dir: str = "/data/local/tmp/nag"  # models are pushed here, named by content hash
    use_xnnpack: bool = True
    use_gpu: bool = False
    command_timeout_s: float = 600.0  # limit for one shell command (one benchmark_model invocation), > 0

    def __post_init__(self) -> None:
        _check_fields(self, "adb")


@dataclass(frozen=True)
class SshBoardConfig:
    name: str  # the board's name; its device id is "ssh:<name>"
    host: str
    user: str
    key_file: str  # private key for key authentication (passwords are not supported)
    port: int = 22  # 1..65535
    known_hosts: str = "~/.ssh/known_hosts"  # host keys are checked against this file; unknown keys are refused
    runtime: str = "ort"  # "ort": python + onnxruntime on the board; "benchmark_model": LiteRT's tool
    python: str = "python3"  # interpreter on the board (runtime "ort")
    benchmark_model: str = "benchmark_model"  # path of the tool on the board (runtime "benchmark_model")
    remote_dir: str = "/tmp/nag"  # models and the runner script are uploaded here, named by content hash
    connect_timeout_s: float = 10.0  # > 0
    command_timeout_s: float = 600.0  # > 0

    def __post_init__(self) -> None:
        _check_fields(self, f"ssh board {_show(self.name)}")
        if self.runtime not in ("ort", "benchmark_model"):
            raise SpecError(
                f"ssh board {_show(self.name)}: runtime must be 'ort' or 'benchmark_model', got {_show(self.runtime)}"
            )


@dataclass(frozen=True)
class AgentsConfig:
    adb: AdbConfig | None = AdbConfig()  # None: do not look for phones
    ssh: tuple[SshBoardConfig, ...] = ()
    local: bool = True  # offer this machine's CPU (and GPU) runtimes

    def __post_init__(self) -> None:
        if self.adb is not None and not isinstance(self.adb, AdbConfig):
            raise SpecError(f"adb must be an AdbConfig or None, got {type(self.adb).__name__}")
        if not isinstance(self.ssh, tuple) or not all(isinstance(board, SshBoardConfig) for board in self.ssh):
            raise SpecError("ssh must be a tuple of SshBoardConfig")
        names = [board.name for board in self.ssh]
        if len(set(names)) != len(names):
            raise SpecError(f"ssh board names must be unique, got {names}; rename the repeated board")
        if not isinstance(self.local, bool):
            raise SpecError(f"local must be true or false, got {_show(self.local)}; write it unquoted, e.g. local: false")


def default_config_path() -> Path:
    """``$NAG_AGENTS_CONFIG`` when set and non-empty, else ``~/.config/nag/agents.yaml``."""
    return Path(os.environ.get(ENV_VAR) or "~/.config/nag/agents.yaml").expanduser()


def _build(cls: type, data: Any, file: Path, section: str) -> Any:
    """One config dataclass from the mapping under ``section``; unknown or missing keys refused with the valid ones."""
    where = f"agents config {file}: {section}"
    if not isinstance(data, Mapping):
        raise SpecError(f"{where}: expected a mapping of keys to values, got {type(data).__name__}")
    known = [f.name for f in fields(cls)]
    unknown = set(data) - set(known)
    if unknown:
        raise SpecError(f"{where}: unknown key(s) {', '.join(sorted(map(_show, unknown)))}; valid keys: {', '.join(known)}")
    required = [f.name for f in fields(cls) if f.default is MISSING]
    missing = [name for name in required if name not in data]
    if missing:
        raise SpecError(f"{where}: missing key(s) {', '.join(missing)}; required: {', '.join(required)}")
    try:
        return cls(**data)
    except SpecError as exc:
        raise SpecError(f"agents config {file}: {exc}") from None


def _read(file: Path, *, named_by: str) -> Any:
    """The YAML document in ``file``; :class:`SpecError` for a missing, unreadable or malformed file."""
    import yaml

    if not file.exists():
        fix = (
            f"fix ${ENV_VAR}, or unset it to use the defaults" if named_by.startswith("$") else "fix the path, or create the file"
        )
        raise SpecError(f"agents config {file} (named by {named_by}) does not exist; {fix}")
    if not file.is_file():
        raise SpecError(f"agents config {file} (named by {named_by}) is not a file; name a YAML file")
    try:
        if file.stat().st_size > MAX_CONFIG_BYTES:
            raise SpecError(f"agents config {file} is over {MAX_CONFIG_BYTES} bytes; an agents config is a short YAML file")
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read agents config {file}: {exc}; it must be a readable UTF-8 YAML file") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"agents config {file} is not valid YAML: {exc}") from None
    except ValueError:  # PyYAML's int() of a number over 4300 digits
        raise SpecError(f"agents config {file} holds a number too long to read (over 4300 digits); fix the file") from None
    except RecursionError:
        raise SpecError(f"agents config {file} is nested too deeply to read; an agents config is a few levels deep") from None


def load_config(path: str | os.PathLike[str] | None = None) -> AgentsConfig:
    """The agents configuration from YAML, every value checked (types, ranges, known keys); raises :class:`SpecError`.

    ``path`` None reads ``$NAG_AGENTS_CONFIG`` when set, else the default file; only the default file may be
    absent (the defaults apply then). A file that ``path`` or the variable names must exist.
    """
    if path is not None:
        file, named_by = Path(path).expanduser(), "--config"
    elif os.environ.get(ENV_VAR):
        file, named_by = default_config_path(), f"${ENV_VAR}"
    else:
        file, named_by = default_config_path(), "the default path"
        if not file.exists():
            return AgentsConfig()
    data = _read(file, named_by=named_by)
    if data is None:  # an empty file: the defaults
        data = {}
    if not isinstance(data, Mapping):
        raise SpecError(
            f"agents config {file}: expected a mapping with keys adb, ssh, local at the top level, got {type(data).__name__}"
        )
    unknown = set(data) - {"adb", "ssh", "local"}
    if unknown:
        raise SpecError(
            f"agents config {file}: unknown key(s) {', '.join(sorted(map(_show, unknown)))}; valid keys: adb, ssh, local"
        )
    adb = None if data.get("adb", {}) is None else _build(AdbConfig, data.get("adb", {}), file, "adb")
    boards = data.get("ssh")
    boards = [] if boards is None else boards
    if not isinstance(boards, list):
        raise SpecError(f"agents config {file}: 'ssh' must be a list of boards (each '- name: ...'), got {type(boards).__name__}")
    ssh = tuple(_build(SshBoardConfig, board, file, f"ssh[{i}]") for i, board in enumerate(boards))
    try:
        return AgentsConfig(adb=adb, ssh=ssh, local=data.get("local", True))
    except SpecError as exc:
        raise SpecError(f"agents config {file}: {exc}") from None
