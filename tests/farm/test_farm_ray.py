"""The farm on a real local Ray: device actors on stand-in phones (real ADB wire protocol), real SQLite.

Ray runs on 127.0.0.2 (loopback) with authentication disabled for the test cluster.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from agents import AgentsConfig, MeasurementSpec  # noqa: E402
from agents.config import AdbConfig  # noqa: E402
from agents.testing.adb_standin import AdbStandinServer, StandinDevice  # noqa: E402
from farm.actors import NAMESPACE  # noqa: E402
from farm.client import Farm  # noqa: E402
from farm.scheduler import JobReport  # noqa: E402
from farm.store import Store  # noqa: E402
from farm.tables import block_tasks, measure_tasks  # noqa: E402
from farm.worker import task_blocks  # noqa: E402
from nag.space.export import cached_export  # noqa: E402

SPEC = MeasurementSpec(warmup_runs=1, runs=3)


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Exported models, shared by the tests of this module (as a lab machine's cache would be)."""
    return Path(tmp_path_factory.mktemp("models"))


@pytest.fixture(autouse=True)
def _loopback_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("NAG_RAY_NODE_IP", "127.0.0.2")


@pytest.fixture
def phones(tmp_path: Path) -> Iterator[tuple[AdbStandinServer, dict[str, StandinDevice]]]:
    devices = {s: StandinDevice(serial=s, root=tmp_path / s) for s in ("phone-a", "phone-b", "phone-c")}
    with AdbStandinServer(devices.values()) as server:
        yield server, devices


def _farm(server: AdbStandinServer, cache: Path) -> Farm:  # cache: exported models, shared by the tests
    return Farm.local(
        kinds=["adb-litert"], config=AgentsConfig(adb=AdbConfig(port=server.port), local=False), cache_dir=str(cache)
    )


def _tasks(n: int) -> list:
    return block_tasks("ofa-mbv3", width=1.2, resolutions=[64])[:n]


def test_killed_device_actor_loses_and_duplicates_nothing(
    phones: tuple[AdbStandinServer, dict[str, StandinDevice]], tmp_path: Path, model_cache: Path
) -> None:
    server, _ = phones
    tasks = _tasks(12)
    killed: list[str] = []

    def kill_one(report: JobReport) -> None:
        if report.done >= 3 and not killed:
            ray.kill(ray.get_actor("device-adb-litert:phone-b", namespace=NAMESPACE))
            killed.append("adb-litert:phone-b")

    with Store(tmp_path / "tables.db") as store, _farm(server, model_cache) as farm:
        assert sorted(d.device_id for d in farm.devices()) == ["adb-litert:phone-a", "adb-litert:phone-b", "adb-litert:phone-c"]
        report = measure_tasks(farm, store, tasks, kind="adb-litert", spec=SPEC, description="test", on_progress=kill_one)
        tables = store.tables(device="adb-litert")
        assert len(tables) == 1  # three identical phones: one fingerprint, one table
        rows = store.rows(tables[0], "block")
        status = farm.status()
    assert killed and report.failed == [] and report.done == 12
    assert "adb-litert:phone-b" in report.quarantined
    assert sorted(r.item for r in rows) == sorted(t.item for t in tasks)  # every entry once
    assert {r.device_id for r in rows} >= {"adb-litert:phone-a", "adb-litert:phone-c"}
    health = {d["device_id"]: d["health"] for d in status["devices"]}
    assert health["adb-litert:phone-b"] != "ok" and health["adb-litert:phone-a"] == "ok"
    assert status["jobs"][0]["done"] == 12 and status["jobs"][0]["state"] == "done"


def test_device_actor_process_killed_mid_build_is_restarted_and_the_build_completes(tmp_path: Path, model_cache: Path) -> None:
    """The only device's actor process is SIGKILLed mid-build: Ray restarts it, the call in flight runs again,
    and every entry is measured once, by the same device, with nothing quarantined."""
    tasks = _tasks(10)
    device = StandinDevice(serial="phone-solo", root=tmp_path / "solo")
    killed: list[int] = []
    with AdbStandinServer([device]) as server, Store(tmp_path / "tables.db") as store, _farm(server, model_cache) as farm:
        actor = ray.get_actor("device-adb-litert:phone-solo", namespace=NAMESPACE)
        first_pid = ray.get(actor.pid.remote())

        def kill_process(report: JobReport) -> None:
            if report.done >= 3 and not killed:
                os.kill(first_pid, signal.SIGKILL)
                killed.append(first_pid)

        report = measure_tasks(farm, store, tasks, kind="adb-litert", spec=SPEC, description="test", on_progress=kill_process)
        rows = store.rows(store.tables(device="adb-litert")[0], "block")
        second_pid = _pid_once_reachable(actor)
        health = {d["device_id"]: d["health"] for d in farm.status()["devices"]}
    assert killed and second_pid != first_pid  # a new process, started by Ray
    assert report.failed == [] and report.quarantined == [] and report.done == 10
    assert sorted(r.item for r in rows) == sorted(t.item for t in tasks)  # every entry once, none lost
    assert health == {"adb-litert:phone-solo": "ok"}


def _pid_once_reachable(actor: object, timeout_s: float = 20.0) -> int:
    """The actor's process id, asked until this handle reaches the restarted process: a handle that last spoke to
    the killed one may answer ActorUnavailableError for a moment after the farm's own calls already went through."""
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return int(ray.get(actor.pid.remote()))  # type: ignore[attr-defined]
        except ray.exceptions.ActorUnavailableError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_failing_phone_is_quarantined_and_its_work_goes_elsewhere(
    phones: tuple[AdbStandinServer, dict[str, StandinDevice]], tmp_path: Path, model_cache: Path
) -> None:
    server, devices = phones
    devices["phone-c"].fault = "garbage"  # benchmark_model prints no timings: a parse error every time
    tasks = _tasks(8)
    for task in tasks:  # exports cached first: phone-c then fails fast and reaches 3 failures before the job ends
        cached_export(task_blocks(task), fmt="tflite", cache_dir=model_cache)
    with Store(tmp_path / "tables.db") as store, _farm(server, model_cache) as farm:
        report = measure_tasks(farm, store, tasks, kind="adb-litert", spec=SPEC, description="test")
        rows = store.rows(store.tables(device="adb-litert")[0], "block")
        rerun = measure_tasks(farm, store, tasks, kind="adb-litert", spec=SPEC, description="rerun")
    assert report.quarantined == ["adb-litert:phone-c"] and report.failed == [] and report.done == 8
    assert "adb-litert:phone-c" not in {r.device_id for r in rows} and len(rows) == 8
    assert rerun.skipped == 8 and rerun.done == 0  # resumable: nothing measured twice


def test_phone_unplugged_mid_measurement_is_quarantined_with_its_reason_in_farm_status(
    phones: tuple[AdbStandinServer, dict[str, StandinDevice]], tmp_path: Path, model_cache: Path
) -> None:
    server, devices = phones
    devices["phone-a"].fault = "vanish"  # benchmark_model starts, then the phone drops off the bus
    tasks = _tasks(6)
    with Store(tmp_path / "tables.db") as store, _farm(server, model_cache) as farm:
        report = measure_tasks(farm, store, tasks, kind="adb-litert", spec=SPEC, description="test")
        rows = store.rows(store.tables(device="adb-litert")[0], "block")
        status = {d["device_id"]: d for d in farm.status()["devices"]}  # what 'nag farm status' prints
    assert report.failed == [] and report.done == 6 and report.quarantined == ["adb-litert:phone-a"]
    assert sorted(r.item for r in rows) == sorted(t.item for t in tasks)
    unplugged = status["adb-litert:phone-a"]
    assert unplugged["health"] == "quarantined" and "lost ADB connection to phone-a" in unplugged["detail"]
    assert "health check" in unplugged["detail"]  # the later check found it gone, and the first reason stayed
    assert status["adb-litert:phone-b"]["health"] == "ok"


def test_no_device_of_the_kind_is_a_clear_error(tmp_path: Path) -> None:
    from farm.errors import FarmError

    with (
        _farm_without_devices(tmp_path) as farm,
        Store(tmp_path / "t.db") as store,
        pytest.raises(FarmError, match="no healthy adb-litert device"),
    ):
        measure_tasks(farm, store, _tasks(1), kind="adb-litert", spec=SPEC, description="x")


def _farm_without_devices(tmp_path: Path) -> Farm:
    return Farm.local(kinds=["ort-cpu"], config=AgentsConfig(adb=None), cache_dir=str(tmp_path / "cache"))


def test_a_local_farm_stays_on_loopback_without_being_told(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No $NAG_RAY_NODE_IP: the local farm's Ray still advertises a loopback node address, and every TCP
    connection its processes hold is loopback to loopback (``ss -tnp``)."""
    import subprocess

    monkeypatch.delenv("NAG_RAY_NODE_IP")
    with _farm_without_devices(tmp_path):
        (node,) = ray.nodes()
        connections = subprocess.run(["ss", "-tnpH"], capture_output=True, text=True, check=True).stdout.splitlines()
    assert node["NodeManagerAddress"] == "127.0.0.2"
    ours = [line for line in connections if any(name in line for name in ("raylet", "gcs_server", "ray::", "python"))]
    assert ours, "the farm's processes should hold connections"
    for line in ours:
        local, peer = line.split()[3:5]  # state, recv-q, send-q, local, peer
        assert local.startswith(("127.", "[::1]", "[::ffff:127.")) and peer.startswith(("127.", "[::1]", "[::ffff:127.")), line


def test_env_is_loopback() -> None:
    assert os.environ["NAG_RAY_NODE_IP"] == "127.0.0.2"


def test_a_lazy_farm_starts_ray_only_when_a_job_has_something_to_measure(
    phones: tuple[AdbStandinServer, dict[str, StandinDevice]], tmp_path: Path, model_cache: Path
) -> None:
    server, _ = phones
    config = AgentsConfig(adb=AdbConfig(port=server.port), local=False)
    tasks = _tasks(4)
    with Store(tmp_path / "tables.db") as store:
        with _farm(server, model_cache) as farm:  # an eager farm measures the tasks
            eager_groups = {d.group for d in farm.devices()}
            measure_tasks(farm, store, tasks, kind="adb-litert", spec=SPEC, description="first")
        assert not ray.is_initialized()
        with Farm.local(kinds=["adb-litert"], config=config, cache_dir=str(model_cache), lazy=True) as farm:
            assert {d.group for d in farm.devices()} == eager_groups  # the same groups, hence the same tables
            farm.set_health("adb-litert:phone-c", "quarantined", "the test took it out")
            again = measure_tasks(farm, store, tasks, kind="adb-litert", spec=SPEC, description="all held")
            assert (again.done, again.skipped) == (0, 4)
            assert not ray.is_initialized()  # nothing to measure: nothing started
            more = measure_tasks(farm, store, _tasks(6), kind="adb-litert", spec=SPEC, description="two new")
            assert ray.is_initialized()
            assert (more.done, more.skipped) == (2, 4)
            assert "adb-litert:phone-c" not in more.per_device  # the quarantine made before the start holds
            health = {d.device_id: d.health for d in farm.devices()}
            jobs = [job["description"] for job in farm.status()["jobs"]]
        assert health["adb-litert:phone-c"] == "quarantined"
        assert {"all held", "two new"} <= set(jobs)  # the job run before the start is in Ray's registry too
    assert not ray.is_initialized()
