"""Jobs that fill latency tables: the LUT builder (every distinct block) and whole-network validation.

Both run through a :class:`farm.client.Farm` and write into a :class:`farm.store.Store` as results arrive;
the table of a result is keyed by the measuring devices' group (fingerprint, runtime, version) and the
spec, so a rerun skips everything already measured under the same key.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from agents import Measurement, MeasurementSpec
from farm.registry import DeviceGroup, DeviceRecord
from farm.scheduler import JobReport, Task
from farm.store import Store, TableKey
from nag.space import get_space

__all__ = [
    "ValidationOutcome",
    "block_tasks",
    "build_tables",
    "held_tasks",
    "measure_tasks",
    "network_tasks",
    "prefetch_exports",
    "table_key",
    "validate_tables",
    "validation_archs",
]


def table_key(group: Hashable, task: Task, *, device: str, spec: MeasurementSpec) -> TableKey:
    """The table a task's result goes to, for a device group (the scheduler's groups are :class:`DeviceGroup`)."""
    if not isinstance(group, DeviceGroup):
        raise TypeError(f"a farm job's groups are DeviceGroup, got {type(group).__name__}")
    return TableKey(
        space=task.space, width=task.width, resolution=task.resolution, device=device, fingerprint=group.fingerprint,
        runtime=group.runtime, runtime_version=group.runtime_version, spec_key=spec.key(),
    )  # fmt: skip


def network_tasks(space_name: str, archs: Sequence[str], *, width: float, resolution: int) -> list[Task]:
    """One task per whole network (canonical strings) at the setting, in order."""
    return [Task(space_name, width, resolution, "network", arch) for arch in archs]


def block_tasks(space_name: str, *, width: float, resolutions: Sequence[int]) -> list[Task]:
    space = get_space(space_name)
    return [
        Task(space_name, width, resolution, "block", block.key)
        for resolution in resolutions
        for block in space.all_blocks(width=width, resolution=resolution)
    ]


def _export_one(task: Task, fmt: str, cache_dir: str | None) -> None:
    from farm.worker import task_blocks
    from nag.space.export import cached_export

    cached_export(task_blocks(task), fmt=fmt, cache_dir=cache_dir)


def prefetch_exports(
    tasks: Sequence[Task], *, kind: str, cache_dir: str | None = None, processes: int | None = None,
    on_done: Callable[[int], None] | None = None,
) -> int:  # fmt: skip
    """Export the models of ``tasks`` into the model cache beforehand, ``processes`` at a time; returns how
    many were missing. For a farm on this machine only (its device actors read the same cache), where
    exporting dominates a table build and a device measures one model at a time. Run it before, not during,
    measurements: it keeps every core busy. ``on_done(n)`` reports progress.

    ``processes`` defaults to one per CPU for torch's exporters (a second or more a model) and to 1 for the
    direct ONNX exporter (milliseconds a model; starting another interpreter would cost more than it saves).
    With one process the exports run in this one.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from agents import agent_class
    from farm.worker import task_blocks
    from nag.space.export import cache_path, resolve_exporter

    fmt = agent_class(kind).kind_export_format()
    missing = [t for t in dict.fromkeys(tasks) if not cache_path(task_blocks(t), fmt=fmt, cache_dir=cache_dir).exists()]
    if not missing:
        return 0
    if processes is None:
        processes = 1 if resolve_exporter(fmt) == "direct" else (os.cpu_count() or 1)
    workers = max(1, min(len(missing), processes))
    if workers == 1:
        for done, task in enumerate(missing, start=1):
            _export_one(task, fmt, cache_dir)
            if on_done is not None:
                on_done(done)
        return len(missing)
    context = multiprocessing.get_context("spawn")  # no fork of a process that runs Ray and torch threads
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(_export_one, task, fmt, cache_dir) for task in missing]
        for done, future in enumerate(as_completed(futures), start=1):
            future.result()
            if on_done is not None:
                on_done(done)
    return len(missing)


def held_tasks(store: Store, group: Hashable, tasks: Sequence[Task], *, kind: str, spec: MeasurementSpec) -> set[Task]:
    """Those of ``tasks`` that the device group's tables in ``store`` already hold."""
    held: set[Task] = set()
    by_table: dict[TableKey, list[Task]] = {}
    for task in tasks:
        by_table.setdefault(table_key(group, task, device=kind, spec=spec), []).append(task)
    for key, group_tasks in by_table.items():
        kinds = {t.item_kind for t in group_tasks}
        for item_kind in kinds:
            found = store.existing(key, item_kind, [t.item for t in group_tasks if t.item_kind == item_kind])  # type: ignore[arg-type]
            held |= {t for t in group_tasks if t.item_kind == item_kind and t.item in found}
    return held


def measure_tasks(
    farm: Any, store: Store, tasks: Sequence[Task], *, kind: str, spec: MeasurementSpec, description: str,
    on_progress: Callable[[JobReport], None] | None = None,
) -> JobReport:  # fmt: skip
    """Measure ``tasks`` on the farm's ``kind`` devices into ``store``, skipping what it already holds."""

    def already_done(group: Hashable, pending: Sequence[Task]) -> set[Task]:
        return held_tasks(store, group, pending, kind=kind, spec=spec)

    def on_result(group: Hashable, record: DeviceRecord, task: Task, measurement: Measurement) -> None:
        store.put_measurement(table_key(group, task, device=kind, spec=spec), task.item_kind, task.item, measurement)  # type: ignore[arg-type]

    result: JobReport = farm.run(
        tasks,
        kind=kind,
        spec=spec,
        already_done=already_done,
        on_result=on_result,
        description=description,
        on_progress=on_progress,
    )
    return result


def build_tables(
    farm: Any,
    store: Store,
    *,
    space: str,
    width: float,
    resolutions: Sequence[int],
    kind: str,
    spec: MeasurementSpec,
    on_progress: Callable[[JobReport], None] | None = None,
) -> JobReport:
    """Measure every distinct block of ``space`` at each resolution on every healthy device of ``kind``."""
    tasks = block_tasks(space, width=width, resolutions=resolutions)
    description = f"table build {space} w{width:g} r{','.join(map(str, resolutions))} on {kind}"
    return measure_tasks(farm, store, tasks, kind=kind, spec=spec, description=description, on_progress=on_progress)


@dataclass(frozen=True)
class ValidationOutcome:
    report: JobReport  # the measurement job of the whole networks
    archs: list[str]  # the networks validated, canonical strings


def validation_archs(space: str, n: int, *, seed: int = 0) -> list[str]:
    """The whole networks :func:`validate_tables` measures: ``n`` seeded random ones, distinct, in order."""
    search_space = get_space(space)
    return list(dict.fromkeys(search_space.format(a) for a in search_space.sample_many(n, seed=seed)))


def validate_tables(
    farm: Any,
    store: Store,
    *,
    space: str,
    width: float,
    resolution: int,
    kind: str,
    n: int,
    spec: MeasurementSpec,
    seed: int = 0,
    on_progress: Callable[[JobReport], None] | None = None,
) -> ValidationOutcome:
    """Measure ``n`` random whole networks (seeded, so a rerun measures the same ones and skips them)."""
    archs = validation_archs(space, n, seed=seed)
    tasks = network_tasks(space, archs, width=width, resolution=resolution)
    description = f"table validate {space} w{width:g} r{resolution}: {n} networks on {kind}"
    report = measure_tasks(farm, store, tasks, kind=kind, spec=spec, description=description, on_progress=on_progress)
    return ValidationOutcome(report=report, archs=archs)
