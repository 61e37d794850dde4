"""The device registry: every device of the farm, its kind, fingerprint, health and when it was last seen.

:class:`Registry` is a plain class (tested without Ray); :mod:`farm.actors` wraps it in one named actor
per cluster so that agents on lab machines register their devices and any driver can find them. Devices
come and go while the farm runs: re-registering refreshes a record, ``remove`` forgets one.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from typing import Any, NamedTuple

__all__ = ["DeviceGroup", "DeviceRecord", "JobRecord", "Registry"]

HEALTH_STATES = ("ok", "quarantined", "unreachable")
_CHECK_NOTE = "; since then, health check: "


class DeviceGroup(NamedTuple):
    """Devices that give comparable latencies and fill one table: same fingerprint, runtime and version."""

    fingerprint: str  # the fingerprint's hash, as tables store it
    runtime: str
    runtime_version: str


@dataclass(frozen=True)
class DeviceRecord:
    device_id: str
    kind: str
    fingerprint: dict[str, str]
    fingerprint_hash: str
    runtime: str
    runtime_version: str
    node: str  # the Ray node (address) that holds the device
    actor_name: str  # the device actor's name in the farm namespace
    health: str = "ok"  # one of HEALTH_STATES
    detail: str = ""  # why it is not ok
    last_seen: float = 0.0  # Unix time of the last successful contact
    flag: str = ""  # what the last fleet check found wrong with it ('nag farm check'); "" when it agreed

    @property
    def group(self) -> DeviceGroup:
        """Devices with equal groups give comparable latencies and fill the same table."""
        return DeviceGroup(self.fingerprint_hash, self.runtime, self.runtime_version)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class JobRecord:
    job_id: str
    description: str
    total: int
    done: int = 0
    skipped: int = 0
    failed: int = 0
    state: str = "running"  # "running", "done", "failed"
    started: float = 0.0
    updated: float = 0.0

    @property
    def queued(self) -> int:
        return max(0, self.total - self.done - self.skipped - self.failed)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "queued": self.queued}


class Registry:
    """Not thread-safe by itself; the actor serialises calls."""

    def __init__(self, *, clock: Any = time.time) -> None:
        self._devices: dict[str, DeviceRecord] = {}
        self._jobs: dict[str, JobRecord] = {}
        self._clock = clock

    def register(self, record: DeviceRecord) -> None:
        self._devices[record.device_id] = replace(record, health="ok", detail="", flag="", last_seen=self._clock())

    def set_flag(self, device_id: str, flag: str) -> None:
        """Record what a fleet check found (``""``: the device agrees with its group); registering again clears it."""
        record = self._devices.get(device_id)
        if record is not None:
            self._devices[device_id] = replace(record, flag=flag)

    def remove(self, device_id: str) -> None:
        self._devices.pop(device_id, None)

    def set_health(self, device_id: str, health: str, detail: str = "") -> None:
        if health not in HEALTH_STATES:
            raise ValueError(f"health must be one of {HEALTH_STATES}, got {health!r}")
        record = self._devices.get(device_id)
        if record is None:
            return
        seen = self._clock() if health == "ok" else record.last_seen
        if record.health == "quarantined" and health != "quarantined":
            # Only registering the device again ('nag agent start') lifts a quarantine; later health checks
            # keep its reason and add what they found.
            reason = record.detail.split(_CHECK_NOTE)[0]
            detail = reason if health == "ok" else f"{reason}{_CHECK_NOTE}{health}: {detail}"
            health = "quarantined"
        self._devices[device_id] = replace(record, health=health, detail=detail, last_seen=seen)

    def devices(self, kind: str | None = None) -> list[DeviceRecord]:
        return [r for r in self._devices.values() if kind is None or r.kind == kind]

    def job_update(self, record: JobRecord) -> None:
        self._jobs[record.job_id] = replace(record, updated=self._clock())

    def jobs(self) -> list[JobRecord]:
        return list(self._jobs.values())
