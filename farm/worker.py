"""The plain class a device actor delegates to: one agent on one device, one measurement at a time.

It turns a :class:`farm.scheduler.Task` into a model file on this node (exported once per content, in
the agent's format, cached), places it on the device and measures it. Everything here runs without Ray;
the actor in :mod:`farm.actors` only forwards calls.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from pathlib import Path
from typing import Any

from agents import Agent, AgentsConfig, MeasurementSpec, open_agent
from farm.scheduler import Task
from nag.errors import UnknownNameError
from nag.space import get_space
from nag.space.blocks import Block

__all__ = ["DeviceWorker", "task_blocks"]


def task_blocks(task: Task) -> Block | list[Block]:
    """The block spec (or a network's block list) a task measures; typed errors for unknown items."""
    space = get_space(task.space)
    if task.item_kind == "network":
        return space.blocks(space.parse(task.item), width=task.width, resolution=task.resolution)
    if task.item_kind != "block":
        raise UnknownNameError(f"task item_kind must be 'block' or 'network', got {task.item_kind!r}")
    found = _blocks_by_key(task.space, task.width, task.resolution).get(task.item)
    if found is not None:
        return found
    raise UnknownNameError(
        f"no block {task.item!r} in {task.space} at width {task.width}, resolution {task.resolution}; "
        "'nag arch blocks' lists the valid keys"
    )


def _load_exporter(fmt: str) -> None:
    """Import what exporting a model in ``fmt`` needs (the direct ONNX builder and the onnx package: about a
    second), so that a job's first measurement on this device costs what the others do."""
    import importlib.util

    from nag.space import export

    if fmt == "onnx" and export.resolve_exporter(fmt) == "direct" and importlib.util.find_spec("onnx") is not None:
        import onnx  # noqa: F401

        from nag.space import onnx_graph  # noqa: F401


@functools.lru_cache(maxsize=64)
def _blocks_by_key(space: str, width: float, resolution: int) -> dict[str, Block]:
    """Every block of the space at the setting, by table key (built once per setting: about 2 ms a time,
    which a device would otherwise spend before each measurement)."""
    return {block.key: block for block in get_space(space).all_blocks(width=width, resolution=resolution)}


def _info(agent: Agent) -> dict[str, Any]:
    info = agent.describe().to_dict()
    runtime, version, binary = agent.runtime()
    return {**info, "runtime": runtime, "runtime_version": version, "binary_sha256": binary}


def device_info(kind: str, device_id: str | None, config: AgentsConfig) -> dict[str, Any]:
    """:meth:`DeviceWorker.info` of a device without a worker: the agent opened, asked and closed, and no exporter
    loaded (what a lazy farm needs to know its groups before it measures anything, if it ever does)."""
    agent = open_agent(kind, device_id, config)
    try:
        return _info(agent)
    finally:
        agent.close()


class DeviceWorker:
    """Owns the agent of one device; not thread-safe (the actor runs one call at a time)."""

    def __init__(
        self, kind: str, device_id: str | None, config: AgentsConfig | None = None, *, cache_dir: str | Path | None = None
    ) -> None:
        self._agent = open_agent(kind, device_id, config or AgentsConfig())
        self._cache_dir = cache_dir
        _load_exporter(self._agent.export_format)  # now, while the farm starts, not inside the first measurement

    def info(self) -> dict[str, Any]:
        """Kind, device id, fingerprint (and its hash), runtime name and version: what groups devices."""
        return _info(self._agent)

    def measure(self, task: Task, spec: MeasurementSpec) -> dict[str, Any]:
        """Export (cached), place and measure ``task``; the measurement as ``Measurement.to_dict()``, its ``extra``
        naming the exporter that wrote the model (the store keeps a table to one: :mod:`farm.store`)."""
        from nag.space.export import cached_export, exporter_identity

        fmt = self._agent.export_format
        model = cached_export(task_blocks(task), fmt=fmt, cache_dir=self._cache_dir)
        measured = self._agent.measure(self._agent.prepare(model), spec)
        return replace(measured, extra={**measured.extra, "exporter": exporter_identity(fmt)}).to_dict()

    def health(self) -> dict[str, Any]:
        health = self._agent.health()
        return {"ok": health.ok, "detail": health.detail, "temperature_c": health.temperature_c}

    def close(self) -> None:
        self._agent.close()
