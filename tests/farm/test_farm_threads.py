"""The farm without Ray: the same scheduler on one thread per local device (``Farm.local(executor="threads")``).

Stand-in phones speak the real ADB wire protocol; the store is real SQLite. The Ray flavour of the same
behaviours is in ``test_farm_ray.py``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agents import AgentsConfig, MeasurementSpec
from agents.config import AdbConfig
from agents.testing.adb_standin import AdbStandinServer, StandinDevice
from farm.client import Farm
from farm.errors import FarmError
from farm.store import Store
from farm.tables import block_tasks, measure_tasks
from nag.errors import SettingError
from nag.space.export import exporter_identity

SPEC = MeasurementSpec(warmup_runs=1, runs=3)


@pytest.fixture
def phones(tmp_path: Path) -> Iterator[tuple[AdbStandinServer, dict[str, StandinDevice]]]:
    devices = {s: StandinDevice(serial=s, root=tmp_path / s) for s in ("phone-a", "phone-b")}
    with AdbStandinServer(devices.values()) as server:
        yield server, devices


def _farm(server: AdbStandinServer, cache: Path) -> Farm:
    config = AgentsConfig(adb=AdbConfig(port=server.port), local=False)
    return Farm.local(kinds=["adb-litert"], config=config, cache_dir=str(cache), executor="threads")


def test_a_farm_on_threads_measures_resumes_and_quarantines_without_ray(
    phones: tuple[AdbStandinServer, dict[str, StandinDevice]], tmp_path: Path
) -> None:
    server, devices = phones
    devices["phone-b"].fault = "vanish"  # unplugged during its first measurement
    tasks = block_tasks("ofa-mbv3", width=1.2, resolutions=[64])[:6]
    with Store(tmp_path / "tables.db") as store, _farm(server, tmp_path / "cache") as farm:
        assert sorted(d.device_id for d in farm.devices("adb-litert")) == ["adb-litert:phone-a", "adb-litert:phone-b"]
        report = measure_tasks(farm, store, tasks, kind="adb-litert", spec=SPEC, description="threads")
        rerun = measure_tasks(farm, store, tasks, kind="adb-litert", spec=SPEC, description="rerun")
        rows = store.rows(store.tables(device="adb-litert")[0], "block")
        status = farm.status()
    assert report.done == 6 and report.failed == [] and report.quarantined == ["adb-litert:phone-b"]
    assert rerun.skipped == 6 and rerun.done == 0
    assert sorted(r.item for r in rows) == sorted(t.item for t in tasks) and {r.device_id for r in rows} == {"adb-litert:phone-a"}
    exporters = {r.measurement().extra["exporter"] for r in rows}  # type: ignore[union-attr]
    assert exporters == {exporter_identity("tflite")} == {"direct-tflite1-weights1"}  # the direct writer's .tflite
    health = {d["device_id"]: d for d in status["devices"]}
    assert (
        health["adb-litert:phone-b"]["health"] == "quarantined"
        and "lost ADB connection" in health["adb-litert:phone-b"]["detail"]
    )
    assert [(j["description"], j["state"], j["done"]) for j in status["jobs"]] == [("threads", "done", 6), ("rerun", "done", 0)]
    assert "ray" not in sys.modules or not __import__("ray").is_initialized()  # no Ray was started


def test_executor_names_are_checked(tmp_path: Path) -> None:
    with pytest.raises(SettingError, match="executor must be one of ray, threads"):
        Farm.local(kinds=["ort-cpu"], config=AgentsConfig(adb=None), executor="processes")


def test_no_device_of_the_kind_on_threads(tmp_path: Path) -> None:
    with (
        Farm.local(kinds=["ort-cpu"], config=AgentsConfig(adb=None), cache_dir=str(tmp_path), executor="threads") as farm,
        Store(tmp_path / "t.db") as store,
        pytest.raises(FarmError, match="no healthy adb-litert device"),
    ):
        measure_tasks(
            farm, store, block_tasks("ofa-mbv3", width=1.2, resolutions=[64])[:1], kind="adb-litert", spec=SPEC, description="x"
        )
