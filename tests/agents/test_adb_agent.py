"""The ``adb-litert`` agent against stand-in phones on the real ADB wire protocol: faults, gating, provenance."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agents import AgentsConfig, MeasurementSpec, open_agent, probe_all
from agents.adb import AdbLitertAgent
from agents.config import AdbConfig
from agents.errors import (
    DeviceTooHotError,
    DeviceUnavailableError,
    MeasurementTimeoutError,
    OutputParseError,
    PermanentAgentError,
)
from agents.testing.adb_standin import AdbStandinServer, StandinDevice
from nag.space import get_space
from nag.space.export import cached_export

FAST = MeasurementSpec(warmup_runs=1, runs=5)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    block = get_space("ofa-mbv3").all_blocks(resolution=96)[3]
    return cached_export(block, fmt="tflite", cache_dir=tmp_path_factory.mktemp("models"))


@pytest.fixture
def phones(tmp_path: Path) -> Iterator[tuple[AdbStandinServer, dict[str, StandinDevice]]]:
    devices = {
        serial: StandinDevice(serial=serial, root=tmp_path / serial, props={"ro.product.model": model})
        for serial, model in (("p7-a", "Pixel 7"), ("s23-b", "SM-S911B"))
    }
    with AdbStandinServer(devices.values()) as server:
        yield server, devices


def _config(server: AdbStandinServer, **overrides: object) -> AgentsConfig:
    return AgentsConfig(adb=AdbConfig(port=server.port, **overrides), local=False)  # type: ignore[arg-type]


def test_probe_lists_every_phone_with_its_facts(phones: tuple[AdbStandinServer, dict[str, StandinDevice]]) -> None:
    server, _ = phones
    report = probe_all(_config(server), kinds=["adb-litert"])
    by_id = {d.device_id: d for d in report.devices}
    assert set(by_id) == {"adb-litert:p7-a", "adb-litert:s23-b"}
    assert by_id["adb-litert:s23-b"].fingerprint["model"] == "SM-S911B"
    assert by_id["adb-litert:p7-a"].fingerprint_hash != by_id["adb-litert:s23-b"].fingerprint_hash


def test_push_once_per_content_hash(phones: tuple[AdbStandinServer, dict[str, StandinDevice]], model: Path) -> None:
    server, devices = phones
    with open_agent("adb-litert", "adb-litert:p7-a", _config(server)) as agent:
        first, second = agent.prepare(model), agent.prepare(model)
    assert first.copied and not second.copied
    on_phone = devices["p7-a"].root / first.device_path.lstrip("/")
    assert hashlib.sha256(on_phone.read_bytes()).hexdigest() == first.sha256
    assert not list(on_phone.parent.glob("*.part-*"))  # the temporary name is gone


def test_measurement_provenance_from_the_phone(phones: tuple[AdbStandinServer, dict[str, StandinDevice]], model: Path) -> None:
    server, devices = phones
    devices["s23-b"].temperatures_c = [41.5, 38.0, 35.5]
    with open_agent("adb-litert", "adb-litert:s23-b", _config(server)) as agent:
        result = agent.measure(agent.prepare(model), MeasurementSpec(warmup_runs=1, runs=4, affinity=(4, 5), threads=2))
    binary = devices["s23-b"].root / "data/local/tmp/benchmark_model"
    assert result.binary_sha256 == hashlib.sha256(binary.read_bytes()).hexdigest()
    assert result.runtime == "benchmark_model" and result.runtime_version == f"binary-{result.binary_sha256[:12]}"
    assert result.temperature_before_c == result.temperature_after_c == 41.5
    assert result.cpu_freq_before_khz is not None and len(result.cpu_freq_before_khz) == 8
    assert result.flags == ()


def test_hot_phone_is_waited_for_then_measured(phones: tuple[AdbStandinServer, dict[str, StandinDevice]], model: Path) -> None:
    server, devices = phones
    start = time.monotonic()
    devices["p7-a"].temperatures_c = lambda: [max(30.0, 48.0 - 20.0 * (time.monotonic() - start))]  # cools 20 C/s
    with open_agent("adb-litert", "adb-litert:p7-a", _config(server)) as agent:
        agent.cooldown_poll_s = 0.1  # type: ignore[misc]
        result = agent.measure(
            agent.prepare(model), MeasurementSpec(warmup_runs=1, runs=3, max_temperature_c=40.0, cooldown_timeout_s=5)
        )
    assert time.monotonic() - start >= 0.4  # it waited for 48 C to fall below 40 C
    assert result.temperature_before_c is not None and result.temperature_before_c <= 40.0
    devices["p7-a"].temperatures_c = [70.0]
    with (
        open_agent("adb-litert", "adb-litert:p7-a", _config(server)) as agent,
        pytest.raises(DeviceTooHotError, match=r"70\.0 C"),
    ):
        agent.cooldown_poll_s = 0.1  # type: ignore[misc]
        agent.measure(agent.prepare(model), MeasurementSpec(max_temperature_c=40.0, cooldown_timeout_s=0.3))


def test_drift_during_the_run_is_flagged(phones: tuple[AdbStandinServer, dict[str, StandinDevice]], model: Path) -> None:
    server, devices = phones
    readings = iter([36.0] * 2 + [49.0] * 1000)  # heats up after the first readings
    freqs = iter([[1803000] * 8] * 2 + [[900000] * 8] * 1000)  # throttles
    devices["s23-b"].temperatures_c = lambda: [next(readings)]
    devices["s23-b"].cpu_freqs_khz = lambda: next(freqs)
    with open_agent("adb-litert", "adb-litert:s23-b", _config(server)) as agent:
        result = agent.measure(agent.prepare(model), FAST)
    assert set(result.flags) == {"temperature-drift", "frequency-drift"}


@pytest.mark.parametrize(
    ("fault", "error", "message"),
    [
        ("garbage", OutputParseError, "no 'Inference timings in us' line"),
        ("vanish", DeviceUnavailableError, "lost ADB connection to p7-a"),
        ("hang", MeasurementTimeoutError, "timed out"),
    ],
)
def test_device_faults_are_typed_transient_errors(
    phones: tuple[AdbStandinServer, dict[str, StandinDevice]], model: Path, fault: str, error: type[Exception], message: str
) -> None:
    server, devices = phones
    with open_agent("adb-litert", "adb-litert:p7-a", _config(server, command_timeout_s=1.0)) as agent:
        prepared = agent.prepare(model)
        devices["p7-a"].fault = fault
        with pytest.raises(error, match=message):
            agent.measure(prepared, FAST)
    if fault == "vanish":
        assert "p7-a" not in server.serials()
        assert [d.device_id for d in AdbLitertAgent.probe(_config(server))] == ["adb-litert:s23-b"]


def test_missing_benchmark_binary_is_permanent(phones: tuple[AdbStandinServer, dict[str, StandinDevice]], model: Path) -> None:
    server, _ = phones
    config = _config(server, benchmark_model="/data/local/tmp/nowhere/benchmark_model")
    with (
        open_agent("adb-litert", None, config) as agent,
        pytest.raises(PermanentAgentError, match="push it with 'adb -s p7-a push"),
    ):
        agent.measure(agent.prepare(model), FAST)
