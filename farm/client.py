"""The driver's view of the farm: connect (or start a local one), list devices, run measurement jobs.

``Farm.local(...)`` starts Ray on this machine with one device actor per local device (the embedded
default), or with ``executor="threads"`` runs one thread per local device and no Ray at all;
``Farm.connect("HEAD:PORT")`` joins a lab cluster whose devices were registered by ``nag agent start``.
Every way, jobs go through the same :class:`farm.scheduler.Scheduler` (with a :class:`RayExecutor` or a
:class:`farm.executors.ThreadExecutor`), and every result is committed to the :class:`farm.store.Store`
by this process (the one writer) as it arrives, so a killed driver loses nothing and a rerun skips what
is done.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import time
import uuid
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import ray

from agents import AgentsConfig, DeviceInfo, Measurement, MeasurementSpec, load_config, probe_all
from farm.actors import (
    DEVICE_ACTOR_CALL_RETRIES,
    DEVICE_ACTOR_RESTARTS,
    NAMESPACE,
    REGISTRY_NAME,
    DeviceActor,
    RegistryActor,
    device_actor_name,
    device_resource,
    kind_resource,
)
from farm.errors import FarmError
from farm.executors import ThreadExecutor, by_device, outcome_of
from farm.registry import DeviceRecord, JobRecord, Registry
from farm.scheduler import DeviceSlot, Executor, JobReport, Outcome, Scheduler, Task
from farm.worker import DeviceWorker, device_info
from nag.errors import SettingError, show_value
from nag.ray_session import init_ray

__all__ = ["EXECUTORS", "Farm", "FarmError", "RayExecutor", "join_cluster", "start_device_actors"]


class RayExecutor:
    """Runs tasks on device actors; a dead actor is reported as a lost device."""

    def __init__(self, actors: dict[str, Any], spec: MeasurementSpec) -> None:
        self._actors = actors
        self._spec = spec
        self._refs: dict[Any, Hashable] = {}
        self._tickets = itertools.count()

    def start(self, device_id: str, task: Task) -> Hashable:
        ticket = next(self._tickets)
        self._refs[self._actors[device_id].measure.remote(task, self._spec)] = ticket
        return ticket

    def next_done(self, timeout_s: float) -> tuple[Hashable, Outcome] | None:
        if not self._refs:
            return None
        ready, _ = ray.wait(list(self._refs), num_returns=1, timeout=timeout_s)
        if not ready:
            return None
        ticket = self._refs.pop(ready[0])
        try:
            return ticket, Outcome(result=ray.get(ready[0]))
        except ray.exceptions.ActorUnavailableError as exc:  # restarting after a crash: the device may come back
            return ticket, Outcome(error=f"device actor restarting: {_first_line(exc)}", transient=True)
        except ray.exceptions.ActorDiedError as exc:  # restarts spent, or killed for good
            return ticket, Outcome(error=f"device actor gone: {_first_line(exc)}", device_lost=True)
        except ray.exceptions.RayTaskError as exc:
            return ticket, outcome_of(exc.cause if exc.cause is not None else exc)


def _first_line(exc: BaseException) -> str:
    """Ray's actor errors run to many lines; registries and messages keep the first."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _record(info: dict[str, Any], name: str, node: str) -> DeviceRecord:
    return DeviceRecord(
        device_id=info["device_id"], kind=info["kind"], fingerprint=info["fingerprint"], fingerprint_hash=info["fingerprint_hash"],
        runtime=info["runtime"], runtime_version=info["runtime_version"], node=node, actor_name=name,
    )  # fmt: skip


def start_device_actors(
    devices: Sequence[DeviceInfo], config: AgentsConfig, *, cache_dir: str | None = None
) -> list[DeviceRecord]:
    """One actor per device, placed on the node offering the device's resource, registered in the registry.

    The actors are detached: they live as long as their node (or until killed), not as long as this driver.
    A device actor whose process dies is restarted by Ray (``DEVICE_ACTOR_RESTARTS`` times) and its call
    in flight is sent again, so a crash mid-build costs one measurement's time, not the build.
    """
    registry = RegistryActor.options(  # type: ignore[attr-defined]
        name=REGISTRY_NAME, namespace=NAMESPACE, get_if_exists=True, lifetime="detached"
    ).remote()
    records = []
    for device in devices:
        name = device_actor_name(device.device_id)
        resources = {device_resource(device.device_id): 1}
        actor = DeviceActor.options(  # type: ignore[attr-defined]
            name=name,
            namespace=NAMESPACE,
            resources=resources,
            lifetime="detached",
            max_restarts=DEVICE_ACTOR_RESTARTS,
            max_task_retries=DEVICE_ACTOR_CALL_RETRIES,
        ).remote(device.kind, device.device_id, config, cache_dir)
        info, node = ray.get([actor.info.remote(), actor.node.remote()])
        record = _record(info, name, node)
        ray.get(registry.register.remote(record))
        records.append(record)
    return records


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast on a ``HOST:PORT`` where nothing listens (Ray itself retries for minutes); other forms pass."""
    host, sep, port = address.rpartition(":")
    if not sep or "://" in address or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise FarmError(
            f"cannot reach a Ray cluster at {address!r}: {exc}; is 'ray start --head' running there, and is the port right?"
        ) from exc


def join_cluster(address: str) -> None:
    """Connect this process to the Ray cluster at ``address`` as a driver, in the farm's namespace.

    ``$NAG_RAY_NODE_IP`` names this machine's node address where it has several (tests: loopback ones).
    Raises :class:`FarmError` when nothing answers there.
    """
    _check_reachable(address)
    try:
        init_ray(address, namespace=NAMESPACE)
    except ConnectionError as exc:
        raise FarmError(f"cannot reach a Ray cluster at {address!r}: {exc}; is 'ray start --head' running there?") from exc


_REGISTRY_UPDATE_S = 0.5  # how often a running job's counts reach the registry ('nag farm status')


class _RayDevices:
    """The farm's devices as Ray actors, and its registry as a named actor (a local Ray or a lab cluster)."""

    queue_depth = 2  # an actor runs its calls in order, one at a time: a second waits behind the first

    def __init__(self) -> None:
        try:
            self._registry = ray.get_actor(REGISTRY_NAME, namespace=NAMESPACE)
        except ValueError as exc:
            raise FarmError(
                "no farm registry on this Ray cluster: start an agent on each device host with "
                "'nag agent start --address HEAD:PORT'"
            ) from exc

    def devices(self, kind: str | None) -> list[DeviceRecord]:
        return list(ray.get(self._registry.devices.remote(kind)))

    def set_health(self, device_id: str, health: str, detail: str) -> None:
        ray.get(self._registry.set_health.remote(device_id, health, detail))

    def set_flag(self, device_id: str, flag: str) -> None:
        ray.get(self._registry.set_flag.remote(device_id, flag))

    def job_update(self, record: JobRecord, *, wait: bool) -> None:
        ref = self._registry.job_update.remote(record)
        if wait:
            ray.get(ref)

    def jobs(self) -> list[JobRecord]:
        return list(ray.get(self._registry.jobs.remote()))

    def health(self, record: DeviceRecord, timeout_s: float) -> dict[str, Any]:
        actor = ray.get_actor(record.actor_name, namespace=NAMESPACE)
        return dict(ray.get(actor.health.remote(), timeout=timeout_s))

    def executor(self, records: dict[str, DeviceRecord], spec: MeasurementSpec) -> Executor:
        return RayExecutor({d: ray.get_actor(r.actor_name, namespace=NAMESPACE) for d, r in records.items()}, spec)

    def close(self) -> None:
        if ray.is_initialized():
            ray.shutdown()


class _ThreadDevices:
    """This machine's devices as plain workers, one thread each, and a plain registry: no Ray at all.

    For a single machine: nothing to start (Ray takes seconds), nothing to connect to. What Ray adds and
    this lacks: a device whose runtime crashes takes this process with it (a rerun resumes the table), and
    no other process sees the registry ('nag farm status' shows a Ray farm's).
    """

    queue_depth = 1  # the devices share one thread pool: a second task would run beside the first

    def __init__(self, devices: Sequence[DeviceInfo], config: AgentsConfig, cache_dir: str | None) -> None:
        self._registry = Registry()
        self._workers: dict[str, DeviceWorker] = {}
        node = socket.gethostname()
        try:
            for device in devices:
                worker = DeviceWorker(device.kind, device.device_id, config, cache_dir=cache_dir)
                self._workers[device.device_id] = worker
                self._registry.register(_record(worker.info(), f"thread:{device.device_id}", node))
        except BaseException:
            self.close()
            raise

    def devices(self, kind: str | None) -> list[DeviceRecord]:
        return self._registry.devices(kind)

    def set_health(self, device_id: str, health: str, detail: str) -> None:
        self._registry.set_health(device_id, health, detail)

    def set_flag(self, device_id: str, flag: str) -> None:
        self._registry.set_flag(device_id, flag)

    def job_update(self, record: JobRecord, *, wait: bool) -> None:
        self._registry.job_update(record)

    def jobs(self) -> list[JobRecord]:
        return self._registry.jobs()

    def health(self, record: DeviceRecord, timeout_s: float) -> dict[str, Any]:
        pool = ThreadPoolExecutor(max_workers=1)  # a hung device must not hang the status: never wait for it
        try:
            return pool.submit(self._workers[record.device_id].health).result(timeout=timeout_s)
        finally:
            pool.shutdown(wait=False)

    def executor(self, records: dict[str, DeviceRecord], spec: MeasurementSpec) -> Executor:
        return ThreadExecutor(by_device(self._workers, spec), list(records))

    def close(self) -> None:
        for worker in self._workers.values():
            with contextlib.suppress(Exception):  # closing is best effort; a dead device has nothing to release
                worker.close()
        self._workers.clear()


class _DeferredExecutor:
    """An executor made on the first task it is given: a job whose tasks are all held already starts nothing."""

    def __init__(self, make: Callable[[], Executor]) -> None:
        self._make = make
        self._executor: Executor | None = None

    def start(self, device_id: str, task: Task) -> Hashable:
        if self._executor is None:
            self._executor = self._make()
        return self._executor.start(device_id, task)

    def next_done(self, timeout_s: float) -> tuple[Hashable, Outcome] | None:
        return None if self._executor is None else self._executor.next_done(timeout_s)


class _LazyRayDevices:
    """A local Ray farm that starts on its first measurement (``Farm.local(lazy=True)``).

    Until then the devices' records come from the devices themselves, read once in this process (what their
    actors would report: fingerprint, runtime and version, so the same groups and tables), and a plain
    registry keeps health, flags and jobs; those are handed to Ray's registry when it starts. A run that finds
    everything measured already (a rerun) never pays Ray's start, seconds on a small machine.
    """

    queue_depth = _RayDevices.queue_depth

    def __init__(self, devices: Sequence[DeviceInfo], config: AgentsConfig, cache_dir: str | None) -> None:
        self._start_args = (list(devices), config, cache_dir)
        self._registry = Registry()
        node = socket.gethostname()
        for device in devices:
            info = device_info(device.kind, device.device_id, config)
            self._registry.register(_record(info, device_actor_name(device.device_id), node))
        self._ray: _RayDevices | None = None

    def _started(self) -> _RayDevices:
        if self._ray is None:
            _start_local_ray(*self._start_args)
            started = _RayDevices()
            for record in self._registry.devices(None):  # what was decided before the start still holds
                if record.health != "ok":
                    started.set_health(record.device_id, record.health, record.detail)
                if record.flag:
                    started.set_flag(record.device_id, record.flag)
            for job in self._registry.jobs():
                started.job_update(job, wait=True)
            self._ray = started
        return self._ray

    def devices(self, kind: str | None) -> list[DeviceRecord]:
        return self._registry.devices(kind) if self._ray is None else self._ray.devices(kind)

    def set_health(self, device_id: str, health: str, detail: str) -> None:
        if self._ray is None:
            self._registry.set_health(device_id, health, detail)
        else:
            self._ray.set_health(device_id, health, detail)

    def set_flag(self, device_id: str, flag: str) -> None:
        if self._ray is None:
            self._registry.set_flag(device_id, flag)
        else:
            self._ray.set_flag(device_id, flag)

    def job_update(self, record: JobRecord, *, wait: bool) -> None:
        if self._ray is None:
            self._registry.job_update(record)
        else:
            self._ray.job_update(record, wait=wait)

    def jobs(self) -> list[JobRecord]:
        return self._registry.jobs() if self._ray is None else self._ray.jobs()

    def health(self, record: DeviceRecord, timeout_s: float) -> dict[str, Any]:
        return self._started().health(record, timeout_s)

    def executor(self, records: dict[str, DeviceRecord], spec: MeasurementSpec) -> Executor:
        return _DeferredExecutor(lambda: self._started().executor(records, spec))

    def close(self) -> None:
        if self._ray is not None:
            self._ray.close()


def _start_local_ray(devices: Sequence[DeviceInfo], config: AgentsConfig, cache_dir: str | None) -> None:
    """A new Ray of this process's own with one actor per device (never a cluster that runs on this machine)."""
    resources: dict[str, float] = {device_resource(d.device_id): 1 for d in devices}
    for device in devices:
        resources[kind_resource(device.kind)] = resources.get(kind_resource(device.kind), 0) + 1
    init_ray("local", namespace=NAMESPACE, resources=resources, include_dashboard=False)
    start_device_actors(devices, config, cache_dir=cache_dir)


EXECUTORS = ("ray", "threads")


class Farm:
    """A connection to a farm; use as a context manager (it shuts down what it started).

    The same scheduler runs either on Ray actors (``Farm.local()``, ``Farm.connect()``: a local Ray or a lab
    cluster) or on threads over this machine's devices without Ray (``Farm.local(executor="threads")``).
    """

    def __init__(self, *, started_ray: bool, devices: _RayDevices | _ThreadDevices | _LazyRayDevices | None = None) -> None:
        self._started_ray = started_ray
        self._devices = devices if devices is not None else _RayDevices()

    @classmethod
    def local(
        cls,
        *,
        kinds: Sequence[str] | None = None,
        config: AgentsConfig | None = None,
        cache_dir: str | None = None,
        executor: str = "ray",
        lazy: bool = False,
    ) -> Farm:
        """A farm of this machine's devices (of ``kinds``): on a Ray of its own with one actor per device
        (``executor="ray"``), or on one thread per device without Ray (``executor="threads"``). With ``lazy``,
        Ray starts on the first measurement a job needs, not before (a job with nothing left starts nothing).

        Ray's node address is loopback: ``$NAG_RAY_NODE_IP`` when set, else 127.0.0.2 (:mod:`nag.ray_session`).
        """
        if executor not in EXECUTORS:
            raise SettingError(f"executor must be one of {', '.join(EXECUTORS)}, got {show_value(executor)}")
        config = config or load_config()
        devices = probe_all(config, kinds=list(kinds) if kinds else None).devices
        if executor == "threads":
            return cls(started_ray=False, devices=_ThreadDevices(devices, config, cache_dir))
        if lazy:
            return cls(started_ray=False, devices=_LazyRayDevices(devices, config, cache_dir))
        _start_local_ray(devices, config, cache_dir)
        return cls(started_ray=True)

    @classmethod
    def connect(cls, address: str) -> Farm:
        """Join the lab cluster at ``address`` (``HEAD:PORT`` or ``ray://...``) as a driver."""
        join_cluster(address)
        return cls(started_ray=False)

    def __enter__(self) -> Farm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._devices.close()

    # -- devices and status ---------------------------------------------------------------------------
    def devices(self, kind: str | None = None) -> list[DeviceRecord]:
        return self._devices.devices(kind)

    def refresh_health(self, timeout_s: float = 10.0) -> list[DeviceRecord]:
        """Ask every device for a health check; unreachable ones are marked so."""
        for record in self.devices():
            try:
                health = self._devices.health(record, timeout_s)
                state, detail = ("ok", "") if health["ok"] else ("unreachable", health["detail"])
            except Exception as exc:  # a dead node, actor or device: report it, keep going
                state, detail = "unreachable", f"{type(exc).__name__}: {exc}"
            self._devices.set_health(record.device_id, state, detail)  # keeps a quarantine's reason
        return self.devices()

    def set_health(self, device_id: str, health: str, detail: str = "") -> None:
        """Mark a device (e.g. ``"quarantined"`` with the reason); see :class:`farm.registry.Registry`."""
        self._devices.set_health(device_id, health, detail)

    def set_flag(self, device_id: str, flag: str) -> None:
        """Record what a fleet check found about a device (``""``: it agrees); shown by 'nag farm status'."""
        self._devices.set_flag(device_id, flag)

    def status(self) -> dict[str, Any]:
        jobs = self._devices.jobs()
        return {
            "devices": [r.to_dict() for r in self.refresh_health()],
            "jobs": [j.to_dict() for j in jobs],
            "queued": sum(j.queued for j in jobs if j.state == "running"),
            "running": sum(1 for j in jobs if j.state == "running"),
            "done": sum(j.done for j in jobs),
        }

    # -- jobs -------------------------------------------------------------------------------------------
    def run(
        self,
        tasks: Sequence[Task],
        *,
        kind: str,
        spec: MeasurementSpec,
        already_done: Callable[[Hashable, Sequence[Task]], set[Task]],
        on_result: Callable[[Hashable, DeviceRecord, Task, Measurement], None],
        description: str,
        on_progress: Callable[[JobReport], None] | None = None,
        max_attempts: int = 3,
        quarantine_after: int = 3,
        every_device: bool = False,
    ) -> JobReport:
        """Measure ``tasks`` on every healthy device of ``kind``; see :class:`farm.scheduler.Scheduler`.

        Each task is measured once per device group (devices that share a table), spread over the group's
        devices; with ``every_device`` each device is a group of its own and measures every task (a fleet
        check), and ``on_result`` receives the device id as the group.
        """
        records = {r.device_id: r for r in self.devices(kind) if r.health != "quarantined"}
        if not records:
            raise FarmError(f"no healthy {kind} device in the farm; 'nag farm status' lists the devices")
        job = JobRecord(job_id=uuid.uuid4().hex[:12], description=description, total=len(tasks), started=time.time())
        last_update = [0.0]

        def counts(report: JobReport, **extra: Any) -> JobRecord:
            return replace(job, done=report.done, skipped=report.skipped, failed=len(report.failed), **extra)

        def progress(report: JobReport) -> None:
            now = time.monotonic()
            if now - last_update[0] >= _REGISTRY_UPDATE_S:  # the final state is always sent below
                last_update[0] = now
                self._devices.job_update(counts(report), wait=False)
            if on_progress is not None:
                on_progress(report)

        executor = self._devices.executor(records, spec)
        try:
            report = Scheduler(
                executor, max_attempts=max_attempts, quarantine_after=quarantine_after, queue_depth=self._devices.queue_depth
            ).run(
                tasks,
                [DeviceSlot(device_id, device_id if every_device else r.group) for device_id, r in records.items()],
                already_done=already_done,
                on_result=lambda group, slot, task, result: on_result(
                    group, records[slot.device_id], task, Measurement.from_dict(result)
                ),
                on_progress=progress,
                on_quarantine=lambda device_id, why: self._devices.set_health(device_id, "quarantined", why),
            )
        finally:
            if isinstance(executor, ThreadExecutor):
                executor.close()
        self._devices.job_update(counts(report, state="done" if not report.failed else "failed"), wait=True)
        return report
