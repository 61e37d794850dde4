"""Thin Ray actors: each only delegates to a plain class (:class:`DeviceWorker`, :class:`Registry`)."""

from __future__ import annotations

import os
import re
from typing import Any

import ray

from agents import AgentsConfig, MeasurementSpec
from farm.registry import DeviceRecord, JobRecord, Registry
from farm.scheduler import Task
from farm.worker import DeviceWorker

__all__ = [
    "DEVICE_ACTOR_CALL_RETRIES",
    "DEVICE_ACTOR_RESTARTS",
    "NAMESPACE",
    "REGISTRY_NAME",
    "DeviceActor",
    "RegistryActor",
    "device_actor_name",
    "device_resource",
    "kind_resource",
]

NAMESPACE = "nag-farm"
REGISTRY_NAME = "device-registry"

# A device actor whose process dies (a crash, the OOM killer, a kill by hand) is started again by Ray, up to
# this many times, and the call it was running is sent again once (a measurement is safe to repeat: only the
# driver commits results). Beyond that the actor is gone and the scheduler moves its work to a peer.
DEVICE_ACTOR_RESTARTS = 3
DEVICE_ACTOR_CALL_RETRIES = 1


def device_resource(device_id: str) -> str:
    """The custom resource that names a device; only the node holding the device offers it."""
    return f"device:{device_id}"


def kind_resource(kind: str) -> str:
    return f"kind:{kind}"


def device_actor_name(device_id: str) -> str:
    return "device-" + re.sub(r"[^A-Za-z0-9_.@:-]", "_", device_id)


@ray.remote(num_cpus=0)
class DeviceActor:
    """One device; Ray runs its calls one at a time, so a device never measures two things at once."""

    def __init__(self, kind: str, device_id: str | None, config: AgentsConfig, cache_dir: str | None = None) -> None:
        self._worker = DeviceWorker(kind, device_id, config, cache_dir=cache_dir)

    def info(self) -> dict[str, Any]:
        return self._worker.info()

    def node(self) -> str:
        return str(ray.get_runtime_context().get_node_id())

    def pid(self) -> int:
        """The actor's process id on its node (for operators, and the fault tests that kill it)."""
        return os.getpid()

    def measure(self, task: Task, spec: MeasurementSpec) -> dict[str, Any]:
        return self._worker.measure(task, spec)

    def health(self) -> dict[str, Any]:
        return self._worker.health()

    def close(self) -> None:
        self._worker.close()


@ray.remote(num_cpus=0)
class RegistryActor:
    def __init__(self) -> None:
        self._registry = Registry()

    def register(self, record: DeviceRecord) -> None:
        self._registry.register(record)

    def remove(self, device_id: str) -> None:
        self._registry.remove(device_id)

    def set_flag(self, device_id: str, flag: str) -> None:
        self._registry.set_flag(device_id, flag)

    def set_health(self, device_id: str, health: str, detail: str = "") -> None:
        self._registry.set_health(device_id, health, detail)

    def devices(self, kind: str | None = None) -> list[DeviceRecord]:
        return self._registry.devices(kind)

    def job_update(self, record: JobRecord) -> None:
        self._registry.job_update(record)

    def jobs(self) -> list[JobRecord]:
        return self._registry.jobs()
