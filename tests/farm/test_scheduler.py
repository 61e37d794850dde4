"""The scheduler without Ray: an injected executor (a scripted one for faults, threads over real agents)."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import pytest

from farm.executors import ThreadExecutor, by_device, outcome_of
from farm.scheduler import DeviceSlot, Outcome, Scheduler, Task
from farm.worker import DeviceWorker, task_blocks

Behaviour = Callable[[str, Task, int], Outcome]  # (device, task, attempt on this device) -> outcome


class ScriptedExecutor:
    """Completes tasks in start order, each with the outcome its behaviour gives (deterministic)."""

    def __init__(self, behaviour: Behaviour) -> None:
        self._behaviour = behaviour
        self._started: list[tuple[int, str, Task]] = []
        self.calls: list[tuple[str, Task]] = []
        self._attempts: dict[tuple[str, Task], int] = {}

    def start(self, device_id: str, task: Task) -> Hashable:
        ticket = len(self.calls)
        self.calls.append((device_id, task))
        self._started.append((ticket, device_id, task))
        return ticket

    def next_done(self, timeout_s: float) -> tuple[Hashable, Outcome] | None:
        if not self._started:
            return None
        ticket, device_id, task = self._started.pop(0)
        attempt = self._attempts.get((device_id, task), 0)
        self._attempts[(device_id, task)] = attempt + 1
        return ticket, self._behaviour(device_id, task, attempt)


def tasks(n: int) -> list[Task]:
    return [Task("ofa-mbv3", 1.2, 224, "block", f"block-{i}") for i in range(n)]


def run(
    behaviour: Behaviour, devices: list[DeviceSlot], job: list[Task], held: set[Task] | None = None, **options: Any
) -> tuple[Any, list[tuple[Hashable, str, Task]], ScriptedExecutor]:
    written: list[tuple[Hashable, str, Task]] = []
    executor = ScriptedExecutor(behaviour)
    report = Scheduler(executor, poll_s=0, **options).run(
        job,
        devices,
        already_done=lambda group, ts: {t for t in ts if t in (held or set())},
        on_result=lambda group, slot, task, result: written.append((group, slot.device_id, task)),
    )
    return report, written, executor


OK: Behaviour = lambda device, task, attempt: Outcome(result=1.0)
TWO = [DeviceSlot("a", "g"), DeviceSlot("b", "g")]


def test_spreads_work_and_writes_each_task_once() -> None:
    job = tasks(10)
    report, written, _ = run(OK, TWO, job)
    assert report.done == 10 and report.failed == [] and report.skipped == 0
    assert sorted(t.item for _, _, t in written) == sorted(t.item for t in job)
    assert report.per_device["a"] > 0 and report.per_device["b"] > 0


def test_a_device_gets_its_next_task_before_the_result_is_written() -> None:
    """Pipelining: the store's commit overlaps the device's next measurement (the farm's overhead per task)."""
    started_when_written: list[int] = []
    executor = ScriptedExecutor(OK)
    report = Scheduler(executor, poll_s=0).run(
        tasks(3),
        [DeviceSlot("a", "g")],
        already_done=lambda group, ts: set(),
        on_result=lambda group, slot, task, result: started_when_written.append(len(executor.calls)),
    )
    assert report.done == 3 and started_when_written == [2, 3, 3]  # task 2 started before task 1 was written


def test_skips_what_the_table_holds() -> None:
    job = tasks(6)
    report, _written, executor = run(OK, TWO, job, held=set(job[:4]))
    assert report.skipped == 4 and report.done == 2
    assert {t for _, t in executor.calls} == set(job[4:])


def test_transient_failure_is_retried_on_another_device() -> None:
    job = tasks(4)

    def flaky_a(device: str, task: Task, attempt: int) -> Outcome:
        if device == "a" and task == job[0]:
            return Outcome(error="timeout", transient=True)
        return Outcome(result=1.0)

    report, _written, executor = run(flaky_a, TWO, job)
    assert report.done == 4 and report.retries == 1 and report.quarantined == []
    assert [d for d, t in executor.calls if t == job[0]] == ["a", "b"]


def test_a_failing_device_is_quarantined_and_the_others_finish() -> None:
    job = tasks(12)
    broken: Behaviour = lambda device, task, attempt: (
        Outcome(error="adb: device offline", transient=True) if device == "a" else Outcome(result=1.0)
    )
    quarantined: list[str] = []
    written: list[Task] = []
    report = Scheduler(ScriptedExecutor(broken), poll_s=0, quarantine_after=3).run(
        job,
        TWO,
        already_done=lambda g, ts: set(),
        on_result=lambda g, s, t, r: written.append(t),
        on_quarantine=lambda d, why: quarantined.append(d),
    )
    assert report.quarantined == ["a"] == quarantined
    assert report.done == 12 and report.failed == [] and report.per_device == {"b": 12}
    assert sorted(t.item for t in written) == sorted(t.item for t in job)


def test_lost_device_is_quarantined_at_once_without_charging_the_task() -> None:
    job = tasks(3)
    lost: Behaviour = lambda device, task, attempt: (
        Outcome(error="actor died", device_lost=True) if device == "a" else Outcome(result=1.0)
    )
    report, _written, executor = run(lost, TWO, job, max_attempts=1)
    assert report.quarantined == ["a"] and report.done == 3 and report.failed == []
    assert sum(1 for d, _ in executor.calls if d == "a") == 1


def test_permanent_error_fails_the_task_without_retry() -> None:
    job = tasks(3)
    unsupported: Behaviour = lambda device, task, attempt: (
        Outcome(error="unsupported op", transient=False) if task == job[1] else Outcome(result=1.0)
    )
    report, _, executor = run(unsupported, TWO, job)
    assert [t for t, _ in report.failed] == [job[1]] and report.done == 2 and report.quarantined == []
    assert sum(1 for _, t in executor.calls if t == job[1]) == 1


def test_gives_up_after_max_attempts_and_when_no_device_is_left() -> None:
    job = tasks(2)
    always: Behaviour = lambda device, task, attempt: Outcome(error="flaky", transient=True)
    report, written, _ = run(always, TWO, job, max_attempts=2, quarantine_after=100)
    assert written == [] and len(report.failed) == 2 and all("gave up after 2 attempts" in why for _, why in report.failed)
    report, _, _ = run(always, [DeviceSlot("a", "g")], tasks(5), quarantine_after=2, max_attempts=10)
    assert report.quarantined == ["a"] and len(report.failed) == 5
    assert sum("no healthy device left" in why for _, why in report.failed) >= 3


def test_each_group_fills_its_own_table() -> None:
    job = tasks(5)
    devices = [DeviceSlot("pixel-1", "pixel7"), DeviceSlot("pixel-2", "pixel7"), DeviceSlot("s23", "s23")]
    report, written, _ = run(OK, devices, job)
    assert report.done == 10
    for group in ("pixel7", "s23"):
        assert sorted(t.item for g, _, t in written if g == group) == sorted(t.item for t in job)


def test_exceptions_map_to_outcomes() -> None:
    from agents.errors import DeviceUnavailableError, MeasurementTimeoutError, UnsupportedModelError
    from nag.errors import UnknownNameError

    assert outcome_of(DeviceUnavailableError("gone")).device_lost
    assert outcome_of(MeasurementTimeoutError("slow")).transient and not outcome_of(MeasurementTimeoutError("slow")).device_lost
    assert not outcome_of(UnsupportedModelError("bad")).transient
    assert not outcome_of(UnknownNameError("no block")).transient
    assert outcome_of(RuntimeError("?")).transient


def test_thread_executor_over_a_real_agent(tmp_path: Any) -> None:
    from agents import AgentsConfig, MeasurementSpec
    from nag.space import get_space

    space = get_space("ofa-mbv3")
    keys = [b.key for b in space.all_blocks(resolution=64)[-4:]]
    job = [Task("ofa-mbv3", 1.2, 64, "block", key) for key in keys] + [Task("ofa-mbv3", 1.2, 64, "block", "no-such-block")]
    worker = DeviceWorker("ort-cpu", None, AgentsConfig(adb=None), cache_dir=tmp_path)
    device_id = worker.info()["device_id"]
    executor = ThreadExecutor(by_device({device_id: worker}, MeasurementSpec(warmup_runs=1, runs=3)), [device_id])
    written: dict[str, dict[str, Any]] = {}
    report = Scheduler(executor).run(
        job,
        [DeviceSlot(device_id, "g")],
        already_done=lambda g, ts: set(),
        on_result=lambda g, s, t, r: written.__setitem__(t.item, r),
    )
    executor.close()
    assert set(written) == set(keys) and report.done == 4
    assert [t.item for t, _ in report.failed] == ["no-such-block"] and "'nag arch blocks' lists" in report.failed[0][1]
    assert all(len(m["samples_ms"]) == 3 and m["kind"] == "ort-cpu" for m in written.values())
    with pytest.raises(Exception, match="item_kind must be"):
        task_blocks(Task("ofa-mbv3", 1.2, 64, "layer", "x"))


class InFlightExecutor(ScriptedExecutor):
    """Records, at every start, how many tasks each device has started and not yet finished."""

    def __init__(self, behaviour: Behaviour) -> None:
        super().__init__(behaviour)
        self.open: dict[str, int] = {}
        self.peaks: list[dict[str, int]] = []

    def start(self, device_id: str, task: Task) -> Hashable:
        self.open[device_id] = self.open.get(device_id, 0) + 1
        self.peaks.append(dict(self.open))
        return super().start(device_id, task)

    def next_done(self, timeout_s: float) -> tuple[Hashable, Outcome] | None:
        found = super().next_done(timeout_s)
        if found is not None:
            device_id = self.calls[found[0]][0]  # type: ignore[index]
            self.open[device_id] -= 1
        return found


@pytest.mark.parametrize("depth", [1, 2])
def test_a_queue_depth_of_two_queues_one_task_behind_the_running_one_but_not_at_the_tail(depth: int) -> None:
    executor = InFlightExecutor(OK)
    written: list[Task] = []
    report = Scheduler(executor, poll_s=0, queue_depth=depth).run(
        tasks(9),
        TWO,
        already_done=lambda group, ts: set(),
        on_result=lambda group, slot, task, result: written.append(task),
    )
    assert report.done == 9 and sorted(t.item for t in written) == sorted(t.item for t in tasks(9))
    most = max(max(p.values()) for p in executor.peaks)
    assert most == depth  # never more than the depth on one device
    # the first starts give every device one task before any gets a second
    assert executor.peaks[1] == {"a": 1, "b": 1}
    # with fewer tasks left than healthy devices, no task waits behind another
    assert max(executor.peaks[-1].values()) == 1


def test_a_queue_depth_other_than_one_or_two_is_refused() -> None:
    with pytest.raises(ValueError, match="queue_depth 1 or 2"):
        Scheduler(ScriptedExecutor(OK), queue_depth=3)


def test_a_lost_device_with_a_task_queued_is_quarantined_once_and_both_tasks_go_elsewhere() -> None:
    lost: Behaviour = lambda device, task, attempt: (
        Outcome(error="gone", device_lost=True) if device == "a" else Outcome(result=1.0)
    )
    quarantines: list[str] = []
    executor = InFlightExecutor(lost)
    written: list[Task] = []
    report = Scheduler(executor, poll_s=0, queue_depth=2).run(
        tasks(6),
        TWO,
        already_done=lambda group, ts: set(),
        on_result=lambda group, slot, task, result: written.append(task),
        on_quarantine=lambda device, why: quarantines.append(device),
    )
    assert max(executor.peaks[1].values()) == 1 and executor.peaks[2]["a"] == 2  # "a" had a second task queued
    assert report.quarantined == ["a"] and quarantines == ["a"]
    assert report.done == 6 and report.failed == [] and sorted(t.item for t in written) == sorted(t.item for t in tasks(6))
