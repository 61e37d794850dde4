"""Device-side measurement agents: "this model file, on this device, with these settings" -> a latency
measurement a lab can trust (raw samples, robust statistics, provenance, thermal gating, typed errors).

Kinds are registered by name and imported lazily, so a machine without a kind's runtime can still use the
others; asking for such a kind raises :class:`MissingRuntimeError` that says what to install. A user's own
agent class can be named by dotted path, ``"package.module:Class"``.

This package knows nothing of Ray, tables or search.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from agents._base import Agent, Runner
from agents.config import AgentsConfig, load_config
from agents.errors import (
    AgentError,
    MissingRuntimeError,
    PermanentAgentError,
    TransientAgentError,
    UnknownDeviceError,
)
from agents.types import DeviceInfo, Health, Measurement, MeasurementSpec, PreparedModel

__all__ = [
    "Agent",
    "AgentError",
    "AgentsConfig",
    "DeviceInfo",
    "Health",
    "Measurement",
    "MeasurementSpec",
    "PermanentAgentError",
    "PreparedModel",
    "ProbeReport",
    "Runner",
    "TransientAgentError",
    "agent_class",
    "available_kinds",
    "load_config",
    "open_agent",
    "probe_all",
]


@dataclass(frozen=True)
class _Kind:
    target: str  # "module:Class"
    install: str  # what to install when the module's runtime is missing


_KINDS: dict[str, _Kind] = {
    "ort-cpu": _Kind("agents.ort_cpu:OrtCpuAgent", "pip install onnxruntime"),
    "litert-cpu": _Kind("agents.litert_cpu:LitertCpuAgent", "pip install ai-edge-litert"),
    "adb-litert": _Kind("agents.adb:AdbLitertAgent", "pip install adbutils"),
    "cuda": _Kind("agents.cuda:CudaAgent", "pip install torch (a CUDA build) or onnxruntime-gpu"),
    "ssh": _Kind("agents.ssh:SshAgent", "pip install paramiko"),
}


def available_kinds() -> list[str]:
    return list(_KINDS)


def agent_class(kind: str) -> type[Agent]:
    """The agent class registered as ``kind`` (or named ``"module:Class"``); imports it now."""
    entry = _KINDS.get(kind)
    if entry is None and ":" not in kind:
        raise UnknownDeviceError(
            f"unknown agent kind {kind!r}; valid kinds: {', '.join(_KINDS)} (or 'package.module:Class' for your own)"
        )
    target = entry.target if entry else kind
    module_name, _, class_name = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except ImportError as exc:
        if exc.name == module_name:
            raise  # our own module is missing: a packaging bug, not a missing runtime
        hint = entry.install if entry else "install the module's dependencies"
        raise MissingRuntimeError(f"agent kind {kind!r} cannot load ({exc}); {hint}") from exc
    except AttributeError as exc:
        raise UnknownDeviceError(f"{target!r} names no class: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Agent)):
        raise UnknownDeviceError(f"{target!r} is not an agents.Agent subclass")
    return cls


def open_agent(kind: str, device_id: str | None = None, config: AgentsConfig | None = None) -> Agent:
    """An agent of ``kind`` for ``device_id`` (None: the first device of the kind)."""
    return agent_class(kind).open(device_id, config or AgentsConfig())


@dataclass(frozen=True)
class ProbeReport:
    devices: list[DeviceInfo]
    notes: list[str]  # kinds that could not be probed, and why


def probe_all(config: AgentsConfig | None = None, *, kinds: list[str] | None = None) -> ProbeReport:
    """Every device this machine reaches, over all kinds; a kind that cannot be probed becomes a note."""
    config = config or AgentsConfig()
    devices: list[DeviceInfo] = []
    notes: list[str] = []
    for kind in kinds or available_kinds():
        try:
            devices.extend(agent_class(kind).probe(config))
        except AgentError as exc:
            notes.append(f"{kind}: {exc}")
    return ProbeReport(devices=devices, notes=notes)
