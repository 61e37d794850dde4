"""The agent contract: every registered kind passes the same tests, each against its real environment.

Driven by the registry: a kind registered in :mod:`agents` without an environment below fails here, so a
new kind cannot ship untested. Environments: this machine's CPU runtimes; an ADB stand-in phone speaking
the real wire protocol and running the pushed model with LiteRT; a real OpenSSH server on 127.0.0.1; a
CUDA GPU where one exists (skipped otherwise).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from agents import Agent, AgentsConfig, MeasurementSpec, agent_class, available_kinds
from agents.errors import SpecError, UnknownDeviceError, UnsupportedModelError
from nag.space import get_space
from nag.space.export import cached_export

TINY_NETWORK = "2,2,2,2,2:3,3,0,0,3,3,0,0,3,3,0,0,3,3,0,0,3,3,0,0:3,3,0,0,3,3,0,0,3,3,0,0,3,3,0,0,3,3,0,0"
FAST = MeasurementSpec(warmup_runs=2, runs=8)


@dataclass
class Environment:
    config: AgentsConfig
    device_id: str | None  # None: the kind's first device


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


def model_files(cache: Path, fmt: str) -> tuple[Path, Path]:
    """(one small block, a whole small network), exported once per session."""
    space = get_space("ofa-mbv3")
    small = next(b for b in space.all_blocks(resolution=96) if b.key.startswith("Conv_2"))
    network = space.blocks(space.parse(TINY_NETWORK), resolution=160)
    return cached_export(small, fmt=fmt, cache_dir=cache), cached_export(network, fmt=fmt, cache_dir=cache)


def _local() -> Iterator[Environment]:
    yield Environment(config=AgentsConfig(adb=None), device_id=None)


def _adb(tmp_path: Path) -> Iterator[Environment]:
    from agents.config import AdbConfig
    from agents.testing.adb_standin import AdbStandinServer, StandinDevice

    devices = [
        StandinDevice(serial="standin-1", root=tmp_path / "phone-1"),
        StandinDevice(serial="standin-2", root=tmp_path / "phone-2"),
    ]
    with AdbStandinServer(devices) as server:
        yield Environment(config=AgentsConfig(adb=AdbConfig(port=server.port)), device_id="adb-litert:standin-2")


def _ssh(tmp_path: Path, runtime: str) -> Iterator[Environment]:
    import sys

    from tests.sshd import Sshd

    fields: dict[str, str] = {"python": sys.executable}
    if runtime == "benchmark_model":  # the board's tool: the benchmark_model stand-in, as an executable
        tool = tmp_path / "benchmark_model"
        root = Path(__file__).resolve().parents[2]
        tool.write_text(f'#!/bin/sh\nPYTHONPATH={root} exec {sys.executable} -m agents.testing.benchmark_model "$@"\n')
        tool.chmod(0o755)
        fields = {"benchmark_model": str(tool)}
    with Sshd.start(tmp_path / "sshd") as sshd:
        board = sshd.board(runtime=runtime, remote_dir=str(tmp_path / "board"), name=f"loopback-{runtime}", **fields)
        yield Environment(config=AgentsConfig(adb=None, ssh=(board,)), device_id=f"ssh:{board.name}")


def _cuda() -> Iterator[Environment]:
    from agents.cuda import CudaAgent

    if not CudaAgent.probe(AgentsConfig(adb=None)):
        pytest.skip("no CUDA GPU on this machine")
    yield Environment(config=AgentsConfig(adb=None), device_id=None)


def _tmp(request: pytest.FixtureRequest, name: str) -> Path:
    return Path(request.getfixturevalue("tmp_path_factory").mktemp(name))


# kind -> {variant: environment factory}; every registered kind must appear.
ENVIRONMENTS: dict[str, dict[str, Callable[[pytest.FixtureRequest], Iterator[Environment]]]] = {
    "ort-cpu": {"local": lambda request: _local()},
    "litert-cpu": {"local": lambda request: _local()},
    "adb-litert": {"standin-phone": lambda request: _adb(_tmp(request, "adb"))},
    "cuda": {"gpu": lambda request: _cuda()},
    "ssh": {
        "sshd-ort": lambda request: _ssh(_tmp(request, "ssh-ort"), "ort"),
        "sshd-benchmark_model": lambda request: _ssh(_tmp(request, "ssh-bm"), "benchmark_model"),
    },
}
PARAMS = [(kind, variant) for kind in available_kinds() for variant in ENVIRONMENTS.get(kind, {"missing": None})]  # type: ignore[arg-type]


@pytest.fixture(params=PARAMS, ids=[f"{kind}-{variant}" for kind, variant in PARAMS], scope="module")
def kind_env(request: pytest.FixtureRequest) -> Iterator[tuple[str, Environment]]:
    kind, variant = request.param
    if kind not in ENVIRONMENTS:
        pytest.fail(f"agent kind {kind!r} is registered but has no test environment in {__file__}")
    environment = ENVIRONMENTS[kind][variant](request)
    yield kind, next(environment)
    environment.close()


@pytest.fixture
def agent(kind_env: tuple[str, Environment]) -> Iterator[Agent]:
    kind, env = kind_env
    with agent_class(kind).open(env.device_id, env.config) as opened:
        yield opened


def _format(agent: Agent) -> str:
    return agent.export_format


def test_one_export_format_per_device_and_per_kind_where_it_is_one(agent: Agent) -> None:
    """The format a device is sent is decided by its agent only (worker, prefetch and CLI ask it)."""
    assert f".{agent.export_format}" in agent.model_formats and agent.export_format in ("onnx", "tflite", "pt2")
    if type(agent).format_per_device:
        with pytest.raises(SpecError, match="run different model formats"):
            type(agent).kind_export_format()
    else:
        assert type(agent).kind_export_format() == agent.export_format


def test_describe_is_stable(agent: Agent, kind_env: tuple[str, Environment]) -> None:
    kind, env = kind_env
    info = agent.describe()
    assert info.kind == kind and info.device_id and info.fingerprint
    with agent_class(kind).open(info.device_id, env.config) as again:
        assert again.describe() == info
    assert info.device_id in [d.device_id for d in agent_class(kind).probe(env.config)]
    with pytest.raises(UnknownDeviceError, match="reachable"):
        agent_class(kind).open("no-such-device", env.config)


def test_prepare_validates_and_copies_once(agent: Agent, model_cache: Path, tmp_path: Path) -> None:
    small, _ = model_files(model_cache, _format(agent))
    first = agent.prepare(small)
    second = agent.prepare(small)
    assert first.sha256 == second.sha256 and len(first.sha256) == 64
    assert second.copied is False and second.device_path == first.device_path
    wrong = tmp_path / "model.pb"
    wrong.write_bytes(b"x")
    with pytest.raises(UnsupportedModelError, match="runs"):
        agent.prepare(wrong)
    with pytest.raises(UnsupportedModelError, match="does not exist"):
        agent.prepare(tmp_path / f"missing{agent.model_formats[0]}")


def test_measure_returns_honest_statistics_and_provenance(agent: Agent, model_cache: Path) -> None:
    small, _ = model_files(model_cache, _format(agent))
    prepared = agent.prepare(small)
    result = agent.measure(prepared, FAST)
    assert result.count == FAST.runs == len(result.samples_ms)
    assert all(math.isfinite(s) and s > 0 for s in result.samples_ms)
    assert result.median_ms == pytest.approx(statistics.median(result.samples_ms))
    assert result.min_ms <= result.p10_ms <= result.median_ms <= result.p90_ms <= result.max_ms
    assert result.ci95_low_ms <= result.median_ms <= result.ci95_high_ms
    assert result.kind == agent.kind and result.device_id == agent.describe().device_id
    assert result.fingerprint == agent.describe().fingerprint
    assert result.runtime and result.runtime_version and result.model_sha256 == prepared.sha256
    assert result.spec == FAST
    assert datetime.fromisoformat(result.timestamp).tzinfo is not None
    assert result.extra["duration_s"] > 0 and all(result.extra[k] == v for k, v in agent.provenance().items())
    if _format(agent) == "tflite":  # a LiteRT runtime says which delegate ran the model, as an app's would
        assert result.extra["delegate"].startswith("xnnpack"), result.extra


def test_a_bigger_network_measures_slower(agent: Agent, model_cache: Path) -> None:
    small, network = model_files(model_cache, _format(agent))
    small_ms = agent.measure(agent.prepare(small), FAST).median_ms
    network_ms = agent.measure(agent.prepare(network), FAST).median_ms
    assert network_ms > 3 * small_ms


def test_adaptive_mode_stops_within_bounds(agent: Agent, model_cache: Path) -> None:
    small, _ = model_files(model_cache, _format(agent))
    spec = MeasurementSpec(warmup_runs=2, runs=6, target_rel_ci=0.2, max_runs=40)
    result = agent.measure(agent.prepare(small), spec)
    assert spec.runs <= result.count <= spec.max_runs
    half_width = (result.ci95_high_ms - result.ci95_low_ms) / 2 / result.median_ms
    if "not-converged" in result.flags:
        assert result.count == spec.max_runs and half_width > spec.target_rel_ci
    else:
        assert half_width <= spec.target_rel_ci


def test_corrupt_model_is_a_permanent_error(agent: Agent, tmp_path: Path) -> None:
    corrupt = tmp_path / f"corrupt{agent.model_formats[0]}"
    corrupt.write_bytes(b"this is not a model" * 100)
    with pytest.raises(UnsupportedModelError):
        agent.measure(agent.prepare(corrupt), FAST)


def test_health_and_idempotent_close(agent: Agent) -> None:
    health = agent.health()
    assert health.ok, health.detail
    agent.close()
    agent.close()
