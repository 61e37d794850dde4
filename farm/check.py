"""Fleet agreement: do the devices that share a table measure the same? (``nag farm check``)

Every device of a kind measures the reference networks (:mod:`farm.reference`) in parallel: each device is
a group of its own in the job, so each measures every reference. Within a device group (same fingerprint,
runtime and version: the devices that fill one table), a device's ratio is the geometric mean, over the
references, of its median over the group's median for that reference. Its 95% interval comes from the
measurements' own 95% confidence intervals (relative half-widths, combined in quadrature on the log scale,
the group's median taken as exact). A device is flagged when its ratio is off by more than ``tolerance``
and its interval excludes 1: different by a margin that matters, beyond its measurement noise.

With two devices in a group the median is their mean, so both move apart together: the check says so
rather than naming one. A device alone in its group has nothing to agree with.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Hashable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from agents import Measurement, MeasurementSpec
from farm.reference import reference_archs
from farm.registry import DeviceGroup, DeviceRecord
from farm.scheduler import JobReport, Task
from farm.tables import network_tasks
from nag.errors import SettingError, show_value

__all__ = ["DeviceAgreement", "FleetCheck", "agreement", "check_fleet", "relative_half_width"]

_Z95 = 1.959963984540054


@dataclass(frozen=True)
class DeviceAgreement:
    device_id: str
    group: DeviceGroup
    ratio: float  # its latency over its group's median (geometric mean over the references); 1.0: agrees exactly
    low: float  # the ratio's 95% interval
    high: float
    networks: int  # references compared
    peers: int  # devices in its group, itself included
    flagged: bool
    note: str  # why it is flagged, or why it could not be compared; "" otherwise

    def to_dict(self) -> dict[str, Any]:
        found = asdict(self)
        found["group"] = self.group._asdict()
        return found


@dataclass(frozen=True)
class FleetCheck:
    kind: str
    space: str
    width: float
    resolution: int
    tolerance: float
    references: tuple[str, ...]
    devices: tuple[DeviceAgreement, ...]
    failed: tuple[str, ...]  # measurements that could not be taken ("device: why")

    @property
    def flagged(self) -> list[str]:
        return [d.device_id for d in self.devices if d.flagged]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "space": self.space, "width": self.width, "resolution": self.resolution,
            "tolerance": self.tolerance, "references": list(self.references),
            "devices": [d.to_dict() for d in self.devices], "flagged": self.flagged, "failed": list(self.failed),
        }  # fmt: skip


def relative_half_width(median_ms: float, ci_low_ms: float | None, ci_high_ms: float | None) -> float:
    """A median's 95% CI half-width over the median; infinite where the CI is undefined (None or infinite)."""
    low, high = ci_low_ms, ci_high_ms
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)) or median_ms <= 0:
        return math.inf
    return (high - low) / 2 / median_ms


def _relative_half_width(m: Measurement) -> float:
    return relative_half_width(m.median_ms, m.ci95_low_ms, m.ci95_high_ms)


def agreement(
    results: Mapping[str, Mapping[str, Measurement]], groups: Mapping[str, DeviceGroup], *, tolerance: float
) -> list[DeviceAgreement]:
    """Each device's agreement with its group, from ``results[device][reference]`` (see the module docstring)."""
    found = []
    for device_id in sorted(results):
        group = groups[device_id]
        peers = [d for d in results if groups[d] == group]
        mine = results[device_id]
        shared = [r for r in mine if all(r in results[p] for p in peers)]
        if len(peers) < 2 or not shared:
            why = "alone in its group: nothing to compare with" if len(peers) < 2 else "no reference measured by the whole group"
            found.append(DeviceAgreement(device_id, group, 1.0, 0.0, math.inf, len(shared), len(peers), False, why))
            continue
        logs, spread = [], []
        for reference in shared:
            median = statistics.median(results[p][reference].median_ms for p in peers)
            logs.append(math.log(mine[reference].median_ms / median))
            spread.append(_relative_half_width(mine[reference]))
        center = sum(logs) / len(logs)
        half = math.sqrt(sum(s * s for s in spread)) / len(spread)
        ratio, low, high = math.exp(center), math.exp(center - half), math.exp(center + half)
        flagged = abs(ratio - 1) > tolerance and (low > 1 or high < 1)
        note = ""
        if flagged:
            note = (
                f"measures {ratio:.3f}x its group's median (95% interval {low:.3f}-{high:.3f}) over {len(shared)} "
                f"reference networks; tolerance +-{tolerance:.0%}"
            )
            if len(peers) == 2:
                note += "; with two devices in the group either may be the odd one"
        found.append(DeviceAgreement(device_id, group, ratio, low, high, len(shared), len(peers), flagged, note))
    return found


def check_fleet(
    farm: Any,
    *,
    kind: str,
    space: str,
    width: float,
    resolution: int,
    spec: MeasurementSpec,
    tolerance: float = 0.05,
    quarantine: bool = False,
    on_progress: Callable[[JobReport], None] | None = None,
) -> FleetCheck:
    """Measure the references on every healthy ``kind`` device, compare each with its group, and record the
    outcome in the farm's registry (a flag per device; with ``quarantine``, flagged devices are quarantined)."""
    if not (isinstance(tolerance, (int, float)) and 0 < tolerance < 1):
        raise SettingError(f"--tolerance must be a fraction between 0 and 1, got {show_value(tolerance)}; e.g. 0.05 for +-5%")
    references = reference_archs(space)
    tasks = network_tasks(space, references, width=width, resolution=resolution)
    results: dict[str, dict[str, Measurement]] = {}
    groups: dict[str, DeviceGroup] = {}

    def collect(group: Hashable, record: DeviceRecord, task: Task, measurement: Measurement) -> None:
        results.setdefault(record.device_id, {})[task.item] = measurement
        groups[record.device_id] = record.group

    report = farm.run(
        tasks, kind=kind, spec=spec, already_done=lambda group, pending: set(), on_result=collect,
        description=f"fleet check of {kind} at {resolution}px", on_progress=on_progress, every_device=True,
    )  # fmt: skip
    devices = agreement(results, groups, tolerance=tolerance)
    for device in devices:
        farm.set_flag(device.device_id, device.note if device.flagged else "")
        if device.flagged and quarantine:
            farm.set_health(device.device_id, "quarantined", f"fleet check: {device.note}")
    failed = tuple(f"{task.item_kind} {task.item}: {why}" for task, why in report.failed)
    return FleetCheck(kind, space, width, resolution, float(tolerance), tuple(references), tuple(devices), failed)
