"""Executors for the scheduler: threads over local device workers, and Ray actors on a cluster."""

from __future__ import annotations

import itertools
import queue
from collections.abc import Callable, Hashable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from agents.errors import AgentError, DeviceUnavailableError, TransientAgentError
from farm.scheduler import Outcome, Task
from nag.errors import NagError

__all__ = ["ThreadExecutor", "outcome_of"]


def outcome_of(exc: BaseException) -> Outcome:
    """How the scheduler should treat a failure: transient or not, and whether the device is gone."""
    message = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, DeviceUnavailableError):
        return Outcome(error=message, transient=True, device_lost=True)
    if isinstance(exc, TransientAgentError):
        return Outcome(error=message, transient=True)
    if isinstance(exc, (AgentError, NagError)):  # permanent: the task (or the kind's set-up) cannot work
        return Outcome(error=message, transient=False)
    return Outcome(error=message, transient=True)  # an unexpected failure: retry elsewhere, quarantine if it repeats


class ThreadExecutor:
    """Runs each device's tasks in its own thread: ``measure(device_id, task)`` does the work."""

    def __init__(self, measure: Callable[[str, Task], Any], device_ids: list[str]) -> None:
        self._measure = measure
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(device_ids)), thread_name_prefix="nag-device")
        self._done: queue.Queue[tuple[Hashable, Outcome]] = queue.Queue()
        self._tickets = itertools.count()

    def start(self, device_id: str, task: Task) -> Hashable:
        ticket = next(self._tickets)
        future = self._pool.submit(self._measure, device_id, task)
        future.add_done_callback(lambda f: self._done.put((ticket, self._outcome(f))))
        return ticket

    @staticmethod
    def _outcome(future: Future[Any]) -> Outcome:
        exc = future.exception()
        return Outcome(result=future.result()) if exc is None else outcome_of(exc)

    def next_done(self, timeout_s: float) -> tuple[Hashable, Outcome] | None:
        try:
            return self._done.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def by_device(workers: Mapping[str, Any], spec: Any) -> Callable[[str, Task], Any]:
    """A ``measure`` callable for :class:`ThreadExecutor` over :class:`farm.worker.DeviceWorker` objects."""
    return lambda device_id, task: workers[device_id].measure(task, spec)
