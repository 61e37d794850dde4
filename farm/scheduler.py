"""The measurement scheduler: plain Python, no Ray. An :class:`Executor` runs tasks on devices.

A job is a list of :class:`Task` (blocks or whole networks of one space at one setting) for the devices of
one kind. Devices with the same fingerprint, runtime and version form a *group* and share one latency
table, so every group needs every task once. For each group the scheduler:

1. skips what the table already holds (``already_done``),
2. hands the rest to the group's idle, healthy devices, one task per device at a time (with ``queue_depth``
   2, for an executor that runs a device's tasks one after another, a second task is queued behind the
   running one while the group has at least a task per healthy device left: the device starts it the moment
   the first ends instead of waiting for the driver's round trip, and the tail stays balanced),
3. writes every result as it arrives (``on_result``; the farm commits it to SQLite at once),
4. retries a task that failed transiently on another device of the group where there is one (at most
   ``max_attempts`` tries), fails a task at once on a permanent error, and
5. quarantines a device after ``quarantine_after`` consecutive failures, or at once when it is lost;
   its work goes to the others. A group left without healthy devices fails its remaining tasks.

The executor is injected: a thread pool over local agents, Ray actors on a cluster, or a test's own.
Thread-safety: a :class:`Scheduler` runs one job at a time, from one thread.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["DeviceSlot", "Executor", "JobReport", "Outcome", "Scheduler", "Task"]


@dataclass(frozen=True)
class Task:
    """One thing to measure: a block or a whole network of a space at a setting."""

    space: str
    width: float
    resolution: int
    item_kind: str  # "block" or "network"
    item: str  # block key (OFA naming) or canonical architecture string


@dataclass(frozen=True)
class DeviceSlot:
    """A device the job may use, and the table group it belongs to."""

    device_id: str
    group: Hashable  # devices with equal groups (fingerprint, runtime, version) fill the same table


@dataclass(frozen=True)
class Outcome:
    """What an executor reports for one task on one device."""

    result: Any = None  # the measurement (as the executor gives it) when ok
    error: str | None = None  # the error message when not ok
    transient: bool = True  # retry may help (elsewhere); False: the task itself cannot be measured
    device_lost: bool = False  # the device (or its actor) is gone: quarantine it now

    @property
    def ok(self) -> bool:
        return self.error is None


class Executor(Protocol):
    """Runs tasks on devices and reports outcomes as they finish (in any order)."""

    def start(self, device_id: str, task: Task) -> Hashable:
        """Begin ``task`` on ``device_id``; returns a ticket. Must not block on the measurement."""

    def next_done(self, timeout_s: float) -> tuple[Hashable, Outcome] | None:
        """The next finished ticket and its outcome, or None when none finished within ``timeout_s``."""


@dataclass
class JobReport:
    done: int = 0  # tasks measured and written by this job
    skipped: int = 0  # tasks the tables already held
    failed: list[tuple[Task, str]] = field(default_factory=list)  # tasks given up, with the last error
    quarantined: list[str] = field(default_factory=list)  # devices taken out of the job
    per_device: dict[str, int] = field(default_factory=dict)  # measurements written per device
    retries: int = 0  # tasks retried after a transient failure

    @property
    def total(self) -> int:
        return self.done + self.skipped + len(self.failed)


@dataclass
class _DeviceState:
    slot: DeviceSlot
    in_flight: int = 0  # tasks started on the device and not yet reported
    consecutive_failures: int = 0
    quarantined: bool = False


@dataclass
class _Pending:
    task: Task
    group: Hashable
    attempts: int = 0
    failed_on: set[str] = field(default_factory=set)


class Scheduler:
    """Spreads a job over devices through an :class:`Executor`; see the module docstring."""

    def __init__(
        self,
        executor: Executor,
        *,
        max_attempts: int = 3,
        quarantine_after: int = 3,
        poll_s: float = 0.2,
        queue_depth: int = 1,
    ) -> None:
        """``queue_depth`` 2 only for an executor that runs each device's tasks in order, one at a time (a Ray
        actor does; a thread pool shared by the devices does not)."""
        if max_attempts < 1 or quarantine_after < 1 or queue_depth not in (1, 2):
            raise ValueError("max_attempts and quarantine_after must be >= 1, and queue_depth 1 or 2")
        self._queue_depth = queue_depth
        self._executor = executor
        self._max_attempts = max_attempts
        self._quarantine_after = quarantine_after
        self._poll_s = poll_s

    def run(
        self,
        tasks: Sequence[Task],
        devices: Sequence[DeviceSlot],
        *,
        already_done: Callable[[Hashable, Sequence[Task]], set[Task]],
        on_result: Callable[[Hashable, DeviceSlot, Task, Any], None],
        on_progress: Callable[[JobReport], None] | None = None,
        on_quarantine: Callable[[str, str], None] | None = None,
    ) -> JobReport:
        """Run the job; returns when every task is done, skipped or failed.

        ``already_done(group, tasks)`` returns the tasks the group's table holds; ``on_result(group,
        device, task, result)`` must write the result durably before returning.
        """
        report = JobReport()
        states = {slot.device_id: _DeviceState(slot) for slot in devices}
        queues: dict[Hashable, deque[_Pending]] = {}
        for group in dict.fromkeys(slot.group for slot in devices):
            held = already_done(group, tasks)
            report.skipped += len(held)
            queues[group] = deque(_Pending(task, group) for task in tasks if task not in held)
        running: dict[Hashable, tuple[str, _Pending]] = {}
        self._progress(report, on_progress)
        while True:
            self._fail_orphans(queues, states, report)
            self._dispatch(queues, states, running)
            if not running:
                break
            finished = self._executor.next_done(self._poll_s)
            if finished is None:
                continue
            ticket, outcome = finished
            device_id, pending = running.pop(ticket)
            state = states[device_id]
            state.in_flight -= 1
            if not outcome.ok:
                self._failed(pending, state, outcome, queues, report, on_quarantine)
                self._progress(report, on_progress)
                continue
            state.consecutive_failures = 0
            # The device gets its next task before this result is written: it measures while the store
            # commits. A kill now loses at most what is in flight, as before: this result is not yet counted.
            self._dispatch(queues, states, running)
            on_result(pending.group, state.slot, pending.task, outcome.result)
            report.done += 1
            report.per_device[device_id] = report.per_device.get(device_id, 0) + 1
            self._progress(report, on_progress)
        return report

    # -- internals -------------------------------------------------------------------------------------
    @staticmethod
    def _progress(report: JobReport, on_progress: Callable[[JobReport], None] | None) -> None:
        if on_progress is not None:
            on_progress(report)

    def _dispatch(
        self,
        queues: dict[Hashable, deque[_Pending]],
        states: dict[str, _DeviceState],
        running: dict[Hashable, tuple[str, _Pending]],
    ) -> None:
        healthy = Counter(s.slot.group for s in states.values() if not s.quarantined)
        for depth in range(1, self._queue_depth + 1):  # every idle device gets a task before any gets a second
            for state in states.values():
                if state.in_flight >= depth or state.quarantined:
                    continue
                queue = queues[state.slot.group]
                if depth > 1 and len(queue) < healthy[state.slot.group]:
                    continue  # the group's last tasks: each to whichever device frees first
                pending = self._take_for(queue, state.slot.device_id, states)
                if pending is None:
                    continue
                pending.attempts += 1
                ticket = self._executor.start(state.slot.device_id, pending.task)
                state.in_flight += 1
                running[ticket] = (state.slot.device_id, pending)

    @staticmethod
    def _take_for(queue: deque[_Pending], device_id: str, states: dict[str, _DeviceState]) -> _Pending | None:
        """The first queued task this device should take: not one that failed here while others could try it."""
        for index, pending in enumerate(queue):
            others = [
                s for s in states.values()
                if s.slot.group == pending.group and not s.quarantined and s.slot.device_id not in pending.failed_on
            ]  # fmt: skip
            if device_id not in pending.failed_on or not others:
                del queue[index]
                return pending
        return None

    def _failed(
        self,
        pending: _Pending,
        state: _DeviceState,
        outcome: Outcome,
        queues: dict[Hashable, deque[_Pending]],
        report: JobReport,
        on_quarantine: Callable[[str, str], None] | None,
    ) -> None:
        state.consecutive_failures += 1
        # (a device with a second task queued reports both failures: it is quarantined once)
        if not state.quarantined and (outcome.device_lost or state.consecutive_failures >= self._quarantine_after):
            state.quarantined = True
            report.quarantined.append(state.slot.device_id)
            if on_quarantine is not None:
                reason = "device lost" if outcome.device_lost else f"{state.consecutive_failures} consecutive failures"
                on_quarantine(state.slot.device_id, f"{reason}; last error: {outcome.error}")
        if not outcome.transient and not outcome.device_lost:
            report.failed.append((pending.task, outcome.error or "failed"))
            return
        # A lost device's attempt does not count against the task: the task did nothing wrong.
        if outcome.device_lost:
            pending.attempts -= 1
        pending.failed_on.add(state.slot.device_id)
        if pending.attempts >= self._max_attempts:
            report.failed.append((pending.task, f"gave up after {pending.attempts} attempts: {outcome.error}"))
            return
        report.retries += 1
        queues[pending.group].appendleft(pending)

    @staticmethod
    def _fail_orphans(queues: dict[Hashable, deque[_Pending]], states: dict[str, _DeviceState], report: JobReport) -> None:
        for group, queue in queues.items():
            if queue and all(s.quarantined for s in states.values() if s.slot.group == group):
                while queue:
                    report.failed.append((queue.popleft().task, "no healthy device left in its group"))
