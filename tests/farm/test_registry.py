"""The device registry as a plain class: registration, health, and quarantines that keep their reason."""

from __future__ import annotations

import pytest

from farm.registry import DeviceRecord, Registry


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _record(device_id: str = "adb-litert:p1") -> DeviceRecord:
    return DeviceRecord(
        device_id=device_id, kind="adb-litert", fingerprint={"model": "p7"}, fingerprint_hash="abc", runtime="litert",
        runtime_version="2.3", node="n1", actor_name=f"device-{device_id}",
    )  # fmt: skip


def test_a_quarantine_keeps_its_reason_through_later_health_checks() -> None:
    clock = _Clock()
    registry = Registry(clock=clock)
    registry.register(_record())
    registry.set_health("adb-litert:p1", "quarantined", "device lost; last error: lost ADB connection to p1")
    clock.now = 1010.0
    registry.set_health("adb-litert:p1", "unreachable", "device p1 not found")
    (record,) = registry.devices()
    assert record.health == "quarantined"
    assert record.detail.startswith("device lost; last error: lost ADB connection to p1")
    assert "unreachable: device p1 not found" in record.detail and record.last_seen == 1000.0
    clock.now = 1020.0
    registry.set_health("adb-litert:p1", "ok")  # answers again: still quarantined, the reason without stale notes
    (record,) = registry.devices()
    assert (record.health, record.detail, record.last_seen) == (
        "quarantined",
        "device lost; last error: lost ADB connection to p1",
        1020.0,
    )
    registry.register(_record())  # registering again (nag agent start) lifts it
    assert registry.devices()[0].health == "ok" and registry.devices()[0].detail == ""


def test_health_states_are_checked_and_unknown_devices_ignored() -> None:
    registry = Registry()
    registry.register(_record())
    with pytest.raises(ValueError, match="health must be one of"):
        registry.set_health("adb-litert:p1", "sick")
    registry.set_health("nobody", "unreachable", "x")
    registry.set_health("adb-litert:p1", "unreachable", "timeout")
    assert [(r.health, r.detail) for r in registry.devices()] == [("unreachable", "timeout")]
    registry.set_health("adb-litert:p1", "ok")
    assert [(r.health, r.detail) for r in registry.devices()] == [("ok", "")]
