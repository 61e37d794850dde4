"""Reference networks over time: does a device still measure what it measured when its table was built?

A build (:func:`build_with_references`, ``nag table build``) measures the space's reference networks
(:mod:`farm.reference`) on every device at its start, after every ``reference_every`` block measurements
and at its end; each such *point* is stored with the table (``Store.reference_series``). Later checks add
``recheck`` points (``nag table validate``, ``nag table predict --rescale``, ``--remeasure-drifted``).

Drift. A reference's *change* at a point is its median over its median at the device's first point, minus
1. Its *noise band* is what its own repeats allow: the relative half-widths of the two medians' 95%
confidence intervals (:func:`farm.check.relative_half_width`), combined in quadrature. A reference has
drifted when its change is beyond the band and beyond ``tolerance`` (5%, the default tolerance of ``nag
farm check``: a smaller change is below the table's own error on whole networks). A point has drifted when
any of its references has.

Affected span. A point says how the device measured at that moment only: a drift began somewhere after the
device's last in-band point and ended somewhere before its next in-band point (the recovery). So every block
entry the device stored (by ``created_at``) after the last in-band point before a drifted point and up to the
first in-band point after it is affected, those measured between the drifted point and the recovery too;
with no in-band point after it yet, every later entry is. ``--remeasure-drifted`` measures the affected
entries again, after a recheck point shows the device back in its band (that point then closes every
span), and measures the references once more at the end.

Rescale. :func:`rescale` measures the references now on the table's device group and gives the median over
the references of now over at-build (the median of the build's points), with a band from both medians' CIs.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Hashable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

from agents import Measurement, MeasurementSpec
from farm.check import relative_half_width
from farm.errors import ReferenceSeriesError
from farm.reference import reference_archs
from farm.registry import DeviceRecord
from farm.scheduler import JobReport, Task
from farm.store import ReferenceRow, Row, Store, TableKey
from farm.tables import block_tasks, held_tasks, measure_tasks, network_tasks, table_key
from nag.errors import SettingError, show_value

__all__ = [
    "DEFAULT_REFERENCE_EVERY",
    "DRIFT_TOLERANCE",
    "BuildOutcome",
    "DriftReport",
    "ReferenceDrift",
    "Rescale",
    "build_with_references",
    "check_reference_every",
    "check_rescalable",
    "drift_report",
    "measure_point",
    "rescale",
    "series_tables",
]

# A point costs 3 whole networks, about 60 blocks' worth of measuring (an estimate: a network is ~20 blocks): one point in
# the middle of a 96-block table keeps the references' cost near that of the table itself while halving the
# span a drift can hide in (and what --remeasure-drifted measures again).
DEFAULT_REFERENCE_EVERY = 48
DRIFT_TOLERANCE = 0.05
_BUILD_PHASES = ("start", "during", "end")


@dataclass(frozen=True)
class ReferenceDrift:
    """One reference on one device: a point of its series against the device's first point."""

    device_id: str
    arch: str  # the reference network
    first_point: int  # the device's first point (the baseline)
    point: int  # the point compared with it
    first_ms: float  # median at the first point, ms
    latest_ms: float  # median at ``point``, ms
    change: float  # latest / first - 1 (0.2: 20% slower)
    band: float  # the noise band of that change (relative; inf where a CI is undefined)
    drifted: bool  # beyond the band and the tolerance

    def to_dict(self) -> dict[str, Any]:
        found = asdict(self)
        found["band"] = None if math.isinf(self.band) else self.band
        return found


@dataclass(frozen=True)
class DriftReport:
    """A table's reference series: each reference's latest change, the drifted points and the affected span."""

    table: TableKey
    tolerance: float
    points: int  # points in the series
    latest: tuple[ReferenceDrift, ...]  # per device and reference: its latest point against its first
    drifted_points: tuple[tuple[str, int], ...]  # (device, point) of every point beyond the band
    affected: tuple[str, ...]  # block entries stored between the in-band points around a drifted one (module docstring)

    @property
    def drifted_now(self) -> bool:
        """The latest references are beyond their band: the device measures differently from its first point."""
        return any(r.drifted for r in self.latest)

    @property
    def drifted(self) -> bool:
        """It drifts now, or entries measured while it had drifted are still in the table."""
        return self.drifted_now or bool(self.affected)

    def summary(self) -> str:
        """One line for a person."""
        t = self.table
        where = f"{t.device} {t.resolution}px"
        if not self.drifted:
            worst = max(self.latest, key=lambda r: abs(r.change), default=None)
            moved = f"; largest change {worst.change:+.1%} (band +-{_band(worst)})" if worst else ""
            return f"references of {where}: no drift over {self.points} point(s){moved}"
        parts = []
        if self.drifted_now:
            moved = ", ".join(f"{_short(r.arch)} {r.change:+.1%} (band +-{_band(r)})" for r in self.latest if r.drifted)
            parts.append(f"drift now: {moved}")
        if self.affected:
            points = ", ".join(str(p) for p in sorted({p for _, p in self.drifted_points}))
            parts.append(
                f"{len(self.affected)} block entries measured while it may have drifted (between the in-band points around "
                f"point(s) {points}); measure them again with 'nag table build --remeasure-drifted'"
            )
        return f"references of {where}: " + "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table.to_dict(), "tolerance": self.tolerance, "points": self.points, "drifted": self.drifted,
            "drifted_now": self.drifted_now, "references": [r.to_dict() for r in self.latest],
            "drifted_points": [{"device_id": d, "point": p} for d, p in self.drifted_points], "affected": list(self.affected),
        }  # fmt: skip


def _band(r: ReferenceDrift) -> str:
    return "undefined" if math.isinf(r.band) else f"{r.band:.1%}"


def _short(arch: str) -> str:
    return arch if len(arch) <= 24 else arch[:21] + "..."


def _compare(first: ReferenceRow, row: ReferenceRow, tolerance: float) -> ReferenceDrift:
    change = row.median_ms / first.median_ms - 1
    band = math.hypot(*(relative_half_width(r.median_ms, r.ci_low_ms, r.ci_high_ms) for r in (first, row)))
    drifted = abs(change) > band and abs(change) > tolerance
    return ReferenceDrift(row.device_id, row.arch, first.point, row.point, first.median_ms, row.median_ms, change, band, drifted)


def _check_tolerance(tolerance: float) -> None:
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not 0 < tolerance < 1:
        raise SettingError(f"drift tolerance must be a fraction between 0 and 1, got {show_value(tolerance)}; e.g. 0.05 for 5%")


def drift_report(store: Store, table: TableKey, *, tolerance: float = DRIFT_TOLERANCE) -> DriftReport | None:
    """The table's drift (see the module docstring); None when it has no reference series."""
    _check_tolerance(tolerance)
    series = store.reference_series(table)
    if not series:
        return None
    by_device: dict[str, dict[int, list[ReferenceRow]]] = {}
    for row in series:
        by_device.setdefault(row.device_id, {}).setdefault(row.point, []).append(row)
    blocks = store.rows(table, "block")
    latest: list[ReferenceDrift] = []
    drifted_points: list[tuple[str, int]] = []
    affected: set[str] = set()
    for device_id, points in sorted(by_device.items()):
        ordered = sorted(points)
        first = {r.arch: r for r in points[ordered[0]]}
        last_in_band = max(r.measured_at for r in points[ordered[0]])
        drifting = False  # a drifted point since last_in_band, and no in-band point after it yet
        for point in ordered[1:]:
            rows = [r for r in points[point] if r.arch in first]
            time = max(r.measured_at for r in points[point])
            if any(_compare(first[r.arch], r, tolerance).drifted for r in rows):
                drifted_points.append((device_id, point))
                drifting = True
                continue
            if drifting:  # the recovery closes the span
                affected |= _stored_between(blocks, device_id, last_in_band, time)
                drifting = False
            last_in_band = time
        if drifting:  # no recovery seen: every later entry
            affected |= _stored_between(blocks, device_id, last_in_band, None)
        latest += [_compare(first[r.arch], r, tolerance) for r in points[ordered[-1]] if r.arch in first]
    return DriftReport(
        table=table, tolerance=float(tolerance), points=len({r.point for r in series}), latest=tuple(latest),
        drifted_points=tuple(drifted_points), affected=tuple(sorted(affected)),
    )  # fmt: skip


def _stored_between(blocks: Sequence[Row], device_id: str, after: str, until: str | None) -> set[str]:
    """The device's block entries stored after ``after`` and up to ``until`` (None: up to now)."""
    return {
        b.item for b in blocks if b.device_id == device_id and after < b.created_at and (until is None or b.created_at <= until)
    }


def series_tables(
    store: Store, *, kind: str | None = None, space: str | None = None, width: float | None = None,
    resolution: int | None = None, spec: MeasurementSpec | None = None,
) -> list[TableKey]:  # fmt: skip
    """The tables matching every filter given that have a reference series."""
    found = store.tables(device=kind, space=space, resolution=resolution, width=width)
    return [t for t in found if (spec is None or t.spec_key == spec.key()) and store.next_reference_point(t) > 0]


def measure_point(
    farm: Any, store: Store, *, space: str, width: float, resolution: int, kind: str, spec: MeasurementSpec, phase: str,
    on_progress: Callable[[JobReport], None] | None = None,
) -> tuple[dict[TableKey, int], JobReport]:  # fmt: skip
    """Measure the reference networks on every healthy ``kind`` device as one point of each device's table's
    series; returns the point number per table and the job's report (its failures are the caller's to show)."""
    points: dict[TableKey, int] = {}

    def collect(group: Hashable, record: DeviceRecord, task: Task, measurement: Measurement) -> None:
        key = table_key(record.group, task, device=kind, spec=spec)
        if key not in points:
            points[key] = store.next_reference_point(key)
        store.put_reference(key, point=points[key], phase=phase, arch=task.item, measurement=measurement)

    tasks = network_tasks(space, reference_archs(space), width=width, resolution=resolution)
    report: JobReport = farm.run(
        tasks, kind=kind, spec=spec, already_done=lambda group, pending: set(), on_result=collect,
        description=f"reference networks ({phase}) {space} w{width:g} r{resolution} on {kind}", on_progress=on_progress,
        every_device=True,
    )  # fmt: skip
    return points, report


# -- a build with reference points --------------------------------------------------------------------------------
@dataclass
class BuildOutcome:
    """What :func:`build_with_references` did."""

    report: JobReport  # the block measurements, every chunk and resolution together
    points: int = 0  # reference points measured (each on every device)
    reference_failed: list[tuple[Task, str]] = field(default_factory=list)  # reference measurements that failed
    replaced: int = 0  # block entries removed to be measured again (--remeasure-drifted)
    notes: list[str] = field(default_factory=list)  # what a person should know (a remeasure skipped, and why)
    drift: list[DriftReport] = field(default_factory=list)  # the built tables' drift at the end

    @property
    def drifted(self) -> list[DriftReport]:
        return [d for d in self.drift if d.drifted]


def _merged(a: JobReport, b: JobReport) -> JobReport:
    per_device = dict(a.per_device)
    for device, n in b.per_device.items():
        per_device[device] = per_device.get(device, 0) + n
    return JobReport(
        done=a.done + b.done, skipped=a.skipped + b.skipped, failed=a.failed + b.failed,
        quarantined=a.quarantined + [d for d in b.quarantined if d not in a.quarantined], per_device=per_device,
        retries=a.retries + b.retries,
    )  # fmt: skip


def _pending(farm: Any, store: Store, tasks: Sequence[Task], *, kind: str, spec: MeasurementSpec) -> tuple[list[Task], int]:
    """The tasks some healthy device group still lacks, and how many (task, group) pairs are already held."""
    groups = {r.group for r in farm.devices(kind) if r.health != "quarantined"}
    if not groups:
        return list(tasks), 0
    held = {group: held_tasks(store, group, tasks, kind=kind, spec=spec) for group in groups}
    pending = [t for t in tasks if any(t not in h for h in held.values())]
    return pending, sum(len(h - set(pending)) for h in held.values())


def check_reference_every(reference_every: int) -> None:
    """Raise :class:`SettingError` unless ``reference_every`` is a whole number >= 0."""
    if isinstance(reference_every, bool) or not isinstance(reference_every, int) or reference_every < 0:
        raise SettingError(
            f"--reference-every must be a whole number of block measurements >= 0, got {show_value(reference_every)}; "
            f"e.g. {DEFAULT_REFERENCE_EVERY} (0: references at the start and end only)"
        )


def build_with_references(
    farm: Any,
    store: Store,
    *,
    space: str,
    width: float,
    resolutions: Sequence[int],
    kind: str,
    spec: MeasurementSpec,
    reference_every: int = DEFAULT_REFERENCE_EVERY,
    remeasure_drifted: bool = False,
    tolerance: float = DRIFT_TOLERANCE,
    on_progress: Callable[[JobReport], None] | None = None,
    on_point: Callable[[str], None] | None = None,
) -> BuildOutcome:
    """:func:`farm.tables.build_tables` with the reference networks measured at the start of each resolution's
    blocks, after every ``reference_every`` of them (0: at the start and end only) and at the end. A resolution
    with nothing left to measure takes no point. With ``remeasure_drifted``, each table's affected span is
    first measured again (see the module docstring). ``on_point`` receives a line per point taken."""
    check_reference_every(reference_every)
    _check_tolerance(tolerance)
    outcome = BuildOutcome(report=JobReport())

    def point(resolution: int, phase: str) -> None:
        points, report = measure_point(
            farm, store, space=space, width=width, resolution=resolution, kind=kind, spec=spec, phase=phase
        )
        outcome.points += 1
        outcome.reference_failed += report.failed
        if on_point is not None:
            numbers = ", ".join(str(n) for n in sorted(set(points.values())))
            on_point(
                f"reference point {numbers or '-'} ({phase}) at {resolution}px: {report.done} measured, {len(report.failed)} failed"
            )

    def tables(resolution: int) -> list[TableKey]:
        return series_tables(store, kind=kind, space=space, width=width, resolution=resolution, spec=spec)

    for resolution in resolutions:
        tasks = block_tasks(space, width=width, resolutions=[resolution])
        replaced = 0
        if remeasure_drifted:
            replaced = _drop_drifted(store, tables(resolution), outcome, tolerance, partial(point, resolution, "recheck"))
        pending, skipped = _pending(farm, store, tasks, kind=kind, spec=spec)
        outcome.report.skipped += skipped
        if not pending:
            continue
        if not replaced:  # after a removal, the recheck point that allowed it is this span's start
            point(resolution, "start")
        size = reference_every or len(pending)
        for start in range(0, len(pending), size):
            base = outcome.report
            chunk = pending[start : start + size]
            progress = None if on_progress is None else (lambda r, base=base: on_progress(_merged(base, r)))
            description = f"table build {space} w{width:g} r{resolution} on {kind}"
            done = measure_tasks(farm, store, chunk, kind=kind, spec=spec, description=description, on_progress=progress)
            outcome.report = _merged(base, done)
            last = start + size >= len(pending)
            point(resolution, ("recheck" if replaced else "end") if last else "during")
    for resolution in resolutions:
        outcome.drift += [d for t in tables(resolution) if (d := drift_report(store, t, tolerance=tolerance)) is not None]
    return outcome


def _drop_drifted(
    store: Store, tables: Sequence[TableKey], outcome: BuildOutcome, tolerance: float, recheck: Callable[[], None]
) -> int:
    """Remove the affected span of each table, once a recheck point shows its devices back in their band;
    returns how many entries were removed."""
    reports = [d for t in tables if (d := drift_report(store, t, tolerance=tolerance)) is not None and d.affected]
    if not reports:
        return 0
    recheck()
    removed = 0
    for old in reports:
        now = drift_report(store, old.table, tolerance=tolerance)
        if now is not None and now.drifted_now:
            outcome.notes.append(
                f"{old.table.label()}: not measured again: its references are still beyond their band now ({now.summary()}); "
                "the device has changed since the build began: build the table anew in another store, or wait until it settles"
            )
            continue
        removed += store.delete_entries(old.table, "block", old.affected)
    outcome.replaced += removed
    return removed


# -- rescaling predictions to now ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rescale:
    """How much slower (> 1) or faster the table's devices measure the references now than during its build."""

    factor: float  # median over the references of now / at-build
    low: float  # the factor's band (the references' ratios at the ends of their 95% intervals, median over them)
    high: float
    point: int  # the recheck point measured now
    references: tuple[dict[str, Any], ...]  # per reference: arch, build_ms, now_ms, ratio, band

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the fields, ``references`` as a list (what JSON reads back, so a saved copy compares equal)."""
        return {**asdict(self), "references": [dict(r) for r in self.references]}


def _half(row: ReferenceRow) -> float:
    return relative_half_width(row.median_ms, row.ci_low_ms, row.ci_high_ms)


def check_rescalable(store: Store, table: TableKey, *, spec: MeasurementSpec) -> list[ReferenceRow]:
    """The table's build points, checked before anything is measured: raises :class:`ReferenceSeriesError` when it
    has none, :class:`SettingError` when ``spec`` measures differently from the table."""
    built = [r for r in store.reference_series(table) if r.phase in _BUILD_PHASES]
    if not built:
        raise ReferenceSeriesError(
            f"table {table.label()} has no reference series to rescale from (built before reference networks, or imported); "
            f"build it again with 'nag table build' into a new store"
        )
    if spec.key() != table.spec_key:
        raise SettingError(
            f"the measurement settings (spec {spec.key()}: warm-up {spec.warmup_runs}, threads {spec.threads}, runs per sample "
            f"{spec.runs_per_sample}) differ from the table's (spec {table.spec_key}); pass the --warmup, --threads and "
            "--runs-per-sample the table was built with"
        )
    return built


def rescale(
    farm: Any, store: Store, table: TableKey, *, spec: MeasurementSpec, on_progress: Callable[[JobReport], None] | None = None
) -> Rescale:
    """Measure the references now on the farm's devices of the table's kind and compare them with the build's
    points. Raises as :func:`check_rescalable` does, and :class:`ReferenceSeriesError` when no device of the
    table's group answered."""
    built = check_rescalable(store, table, spec=spec)
    points, report = measure_point(
        farm, store, space=table.space, width=table.width, resolution=table.resolution, kind=table.device, spec=spec,
        phase="recheck", on_progress=on_progress,
    )  # fmt: skip
    if table not in points:
        failed = "; ".join(why for _, why in report.failed) or "no device of its fingerprint, runtime and version in the farm"
        raise ReferenceSeriesError(
            f"could not measure the references of table {table.label()} now ({failed}); start a device of that group "
            "('nag farm status' lists the devices)"
        )
    now = [r for r in store.reference_series(table) if r.point == points[table]]
    found: list[tuple[str, float, float, float, float]] = []  # arch, at build, now, ratio, band
    for arch in dict.fromkeys(r.arch for r in now):
        at_build = sorted((r for r in built if r.arch == arch), key=lambda r: r.median_ms)
        if not at_build:
            continue
        build_row = at_build[(len(at_build) - 1) // 2]  # the (lower) median point: a measurement, with its own CI
        now_ms = statistics.median(r.median_ms for r in now if r.arch == arch)
        now_half = max(_half(r) for r in now if r.arch == arch)
        found.append((arch, build_row.median_ms, now_ms, now_ms / build_row.median_ms, math.hypot(now_half, _half(build_row))))
    if not found:
        raise ReferenceSeriesError(f"table {table.label()}: the references measured now are not in its build's series")
    factor = statistics.median(ratio for *_, ratio, _ in found)
    low = statistics.median(ratio * math.exp(-band) for *_, ratio, band in found)
    high = statistics.median(ratio * math.exp(band) for *_, ratio, band in found)
    references = tuple(
        {"arch": arch, "build_ms": build_ms, "now_ms": now_ms, "ratio": ratio, "band": None if math.isinf(band) else band}
        for arch, build_ms, now_ms, ratio, band in found
    )
    return Rescale(factor=factor, low=low, high=high, point=points[table], references=references)
