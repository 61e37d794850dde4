"""The ``ssh`` agent against a real OpenSSH server on 127.0.0.1 (see :mod:`tests.sshd`): this machine is the board."""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shlex
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import agents
from agents import AgentsConfig, MeasurementSpec
from agents.config import SshBoardConfig
from agents.errors import (
    AuthenticationError,
    DeviceUnavailableError,
    HostKeyError,
    MeasurementTimeoutError,
    MissingRuntimeError,
    PermanentAgentError,
    SpecError,
    UnknownDeviceError,
    UnsupportedModelError,
)
from agents.ssh import SshAgent
from tests.sshd import Sshd, free_port, make_key

pytestmark = pytest.mark.timeout(120)

SMALL_NETWORK = "2,2,2,2,2:3,3,0,0,3,3,0,0,3,3,0,0,3,3,0,0,3,3,0,0:3,3,0,0,3,3,0,0,3,3,0,0,3,3,0,0,3,3,0,0"
FAST = MeasurementSpec(warmup_runs=3, runs=10)


@dataclass(frozen=True)
class Models:
    block_onnx: Path  # one small MBConv block at 32x32
    network_onnx: Path  # a whole (small) network at 128 px


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    with Sshd.start(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    from nag.space import get_space
    from nag.space.export import export_blocks

    folder = tmp_path_factory.mktemp("ssh-models")
    space = get_space("ofa-mbv3")
    block = space.all_blocks(resolution=64)[1]
    network = space.blocks(space.parse(SMALL_NETWORK), resolution=128)
    return Models(
        block_onnx=export_blocks(block, fmt="onnx", out=folder / "block.onnx", verify=False).path,
        network_onnx=export_blocks(network, fmt="onnx", out=folder / "network.onnx", verify=False).path,
    )


@pytest.fixture(scope="session")
def block_tflite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("litert_torch", reason="writing .tflite needs litert-torch (pip install 'nag-farm[litert]')")
    from nag.space import get_space
    from nag.space.export import export_blocks

    block = get_space("ofa-mbv3").all_blocks(resolution=64)[1]
    return export_blocks(block, fmt="tflite", out=tmp_path_factory.mktemp("ssh-tflite") / "block.tflite", verify=False).path


def _config(board: SshBoardConfig, *more: SshBoardConfig) -> AgentsConfig:
    return AgentsConfig(adb=None, ssh=(board, *more), local=False)


def _ort_board(sshd: Sshd, tmp_path: Path, **fields: Any) -> SshBoardConfig:
    """A board running 'ort' with this interpreter (it has onnxruntime) and a remote_dir of the test's own."""
    values: dict[str, Any] = {"python": sys.executable, "remote_dir": str(tmp_path / "board"), **fields}
    return sshd.board(runtime="ort", **values)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _processes_with(text: str) -> list[int]:
    """Pids whose command line contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if text in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _sshd_ancestor(pid: int) -> tuple[int, str]:
    """(pid, name) of the nearest sshd process above ``pid``: the one serving its connection."""
    while pid > 1:
        pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        name = Path(f"/proc/{pid}/comm").read_text().strip()
        if name.startswith("sshd"):
            return pid, name
    raise AssertionError("the runner has no sshd ancestor")


def _wait_until(condition: Callable[[], object], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def _local_sysfs(pattern: str) -> list[str]:
    """This machine's files matching ``pattern``, in natural order: what the board (this machine) reads."""
    return sorted(map(str, Path("/").glob(pattern)), key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p)])


# -- identity ----------------------------------------------------------------------------------------------
def test_describe_reads_the_boards_fingerprint(sshd: Sshd, tmp_path: Path) -> None:
    config = _config(_ort_board(sshd, tmp_path))
    with SshAgent.open("ssh:loopback", config) as agent:
        info = agent.describe()
        assert info.kind == "ssh" and info.device_id == "ssh:loopback"
        fingerprint = info.fingerprint
        assert fingerprint["os"] == f"{platform.system()} {platform.release()}"
        assert fingerprint["machine"] == platform.machine()
        assert fingerprint["cores"] == subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout.strip()
        cpuinfo = Path("/proc/cpuinfo").read_text()
        model_names = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")]
        if model_names:
            assert fingerprint["cpu"] == model_names[0]
        pretty = [line for line in Path("/etc/os-release").read_text().splitlines() if line.startswith("PRETTY_NAME=")]
        if pretty:
            assert fingerprint["distro"] == pretty[0].split("=", 1)[1].strip('"')
        assert ("board" in fingerprint) == Path("/proc/device-tree/model").exists()
        assert agent.model_formats == (".onnx",)
        health = agent.health()
        assert health.ok, health.detail
        temperatures, freqs = agent.read_temperatures(), agent.read_cpu_freqs()
        zones = _local_sysfs("sys/class/thermal/thermal_zone*/temp")
        cores = _local_sysfs("sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_cur_freq")
        assert (len(temperatures) if temperatures else 0) == len(zones)  # None where there is none, as here
        assert (len(freqs) if freqs else 0) == len(cores)
        assert all(0 < t < 150 for t in temperatures or []) and all(f > 0 for f in freqs or [])
    assert SshAgent.probe(config) == [info]
    assert not agent.health().ok  # closed
    agent.close()  # idempotent
    with pytest.raises(UnknownDeviceError, match="ssh:loopback"):
        SshAgent.open("ssh:no-such-board", config)


# -- files -------------------------------------------------------------------------------------------------
def test_prepare_uploads_once_by_content_hash(sshd: Sshd, models: Models, tmp_path: Path) -> None:
    config = _config(_ort_board(sshd, tmp_path))
    with SshAgent.open(None, config) as agent:
        first = agent.prepare(models.block_onnx)
        assert first.copied is True
        remote = Path(first.device_path)  # the board is this machine
        assert remote.parent == tmp_path / "board" and remote.name == f"{first.sha256[:16]}.onnx"
        assert _sha256(remote) == _sha256(models.block_onnx) == first.sha256
        second = agent.prepare(models.block_onnx)
        assert second.copied is False and second.device_path == first.device_path
        with pytest.raises(UnsupportedModelError, match=r"\.onnx"):
            agent.prepare(tmp_path / "model.tflite")
    with SshAgent.open(None, config) as again:  # a new connection finds the file too
        assert again.prepare(models.block_onnx).copied is False
        remote.write_bytes(remote.read_bytes()[:100])  # a truncated file under the final name is replaced
        third = again.prepare(models.block_onnx)
        assert third.copied is True and _sha256(remote) == first.sha256
    assert not [p.name for p in (tmp_path / "board").iterdir() if ".part-" in p.name]


# -- measuring with ONNX Runtime ---------------------------------------------------------------------------
def test_measure_ort_returns_samples_and_provenance(sshd: Sshd, models: Models, tmp_path: Path) -> None:
    import onnxruntime

    with SshAgent.open(None, _config(_ort_board(sshd, tmp_path))) as agent:
        prepared = agent.prepare(models.block_onnx)
        result = agent.measure(prepared, FAST)
        assert result.count == FAST.runs == len(result.samples_ms)
        assert all(s > 0 for s in result.samples_ms)
        assert result.median_ms == pytest.approx(statistics.median(result.samples_ms))
        assert result.min_ms <= result.median_ms <= result.max_ms
        assert (result.runtime, result.runtime_version, result.binary_sha256) == ("onnxruntime", onnxruntime.__version__, None)
        assert result.model_sha256 == prepared.sha256 and result.device_id == "ssh:loopback"
        assert result.fingerprint == agent.describe().fingerprint
        assert datetime.fromisoformat(result.timestamp).tzinfo is not None
        pinned = agent.measure(prepared, MeasurementSpec(warmup_runs=1, runs=3, affinity=(min(os.sched_getaffinity(0)),)))
        assert pinned.count == 3
        with pytest.raises(SpecError, match="affinity"):
            agent.measure(prepared, MeasurementSpec(warmup_runs=1, runs=3, affinity=(4095,)))
        corrupt = tmp_path / "corrupt.onnx"
        corrupt.write_bytes(b"not a model" * 50)
        with pytest.raises(UnsupportedModelError, match="cannot load"):
            agent.measure(agent.prepare(corrupt), FAST)


def test_a_whole_network_measures_slower_than_one_block(sshd: Sshd, models: Models, tmp_path: Path) -> None:
    with SshAgent.open(None, _config(_ort_board(sshd, tmp_path))) as agent:
        block_ms = agent.measure(agent.prepare(models.block_onnx), FAST).median_ms
        network_ms = agent.measure(agent.prepare(models.network_onnx), FAST).median_ms
    assert network_ms > 3 * block_ms


def test_adaptive_mode_stops_at_or_before_max_runs(sshd: Sshd, models: Models, tmp_path: Path) -> None:
    target = 0.05
    spec = MeasurementSpec(warmup_runs=2, runs=5, target_rel_ci=target, max_runs=25)
    with SshAgent.open(None, _config(_ort_board(sshd, tmp_path))) as agent:
        result = agent.measure(agent.prepare(models.block_onnx), spec)
    assert spec.runs <= result.count <= spec.max_runs
    half_width = (result.ci95_high_ms - result.ci95_low_ms) / 2 / result.median_ms
    if "not-converged" in result.flags:
        assert result.count == spec.max_runs and half_width > target
    else:
        assert half_width <= target


def test_a_sample_past_the_command_timeout_is_a_timeout_and_stops_the_runner(sshd: Sshd, models: Models, tmp_path: Path) -> None:
    board = _ort_board(sshd, tmp_path, command_timeout_s=3.0)
    spec = MeasurementSpec(warmup_runs=1, runs=1, runs_per_sample=1_000_000)  # one sample takes far longer than 3 s
    with SshAgent.open(None, _config(board)) as agent:
        prepared = agent.prepare(models.block_onnx)
        started = time.monotonic()
        with pytest.raises(MeasurementTimeoutError, match="3 s"):
            agent.measure(prepared, spec)
        assert time.monotonic() - started < 10
        assert agent.health().ok  # the connection survives a timed-out command
    # the abandoned runner ends with its channel instead of burning the board's CPU
    assert _wait_until(lambda: not _processes_with(str(tmp_path / "board")), 5.0)


# -- refused connections -----------------------------------------------------------------------------------
def _fingerprint_of(public_line: str, tmp_path: Path) -> str:
    """OpenSSH's own SHA256 fingerprint of a public key line."""
    pub = tmp_path / "key.pub"
    pub.write_text(public_line + "\n")
    return subprocess.run(["ssh-keygen", "-lf", str(pub)], capture_output=True, text=True, check=True).stdout.split()[1]


def test_an_unknown_host_key_is_refused_with_the_fix(sshd: Sshd, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    offered = _fingerprint_of(sshd.host_key_pub, tmp_path)
    for known_hosts in (empty, tmp_path / "missing_known_hosts"):
        config = _config(_ort_board(sshd, tmp_path, known_hosts=str(known_hosts)))
        with pytest.raises(HostKeyError) as refused:
            SshAgent.open(None, config)
        message = str(refused.value)
        assert "UNKNOWN" in message and offered in message, message
        assert f"ssh-keyscan -p {sshd.port} 127.0.0.1 >> {known_hosts}" in message
        with pytest.raises(HostKeyError, match="UNKNOWN"):  # probe does not skip it silently
            SshAgent.probe(config)
    assert isinstance(refused.value, PermanentAgentError)


def test_a_changed_host_key_is_refused(sshd: Sshd, tmp_path: Path) -> None:
    other = make_key(tmp_path / "other_host_key", comment="impostor")
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{sshd.port} {' '.join(other.split()[:2])}\n")
    config = _config(_ort_board(sshd, tmp_path, known_hosts=str(known_hosts)))
    with pytest.raises(HostKeyError, match="CHANGED") as refused:
        SshAgent.open(None, config)
    message = str(refused.value)
    assert _fingerprint_of(other, tmp_path) in message and _fingerprint_of(sshd.host_key_pub, tmp_path) in message
    assert "ssh-keygen -R" in message and "ssh-keyscan" in message
    with pytest.raises(HostKeyError, match="CHANGED"):
        SshAgent.probe(config)


def test_a_wrong_client_key_is_a_permanent_auth_error(sshd: Sshd, tmp_path: Path) -> None:
    make_key(tmp_path / "stranger")
    config = _config(_ort_board(sshd, tmp_path, key_file=str(tmp_path / "stranger")))
    with pytest.raises(AuthenticationError, match="refused key") as refused:
        SshAgent.open(None, config)
    assert isinstance(refused.value, PermanentAgentError)
    with pytest.raises(AuthenticationError, match="does not exist"):
        SshAgent.open(None, _config(_ort_board(sshd, tmp_path, key_file=str(tmp_path / "no_such_key"))))


def test_an_unreachable_board_is_unavailable_and_left_out_of_the_probe(sshd: Sshd, tmp_path: Path) -> None:
    dead = _ort_board(sshd, tmp_path, name="dead", port=free_port())  # nothing listens there
    with pytest.raises(DeviceUnavailableError, match="unreachable"):
        SshAgent.open("ssh:dead", _config(dead))
    alive = _ort_board(sshd, tmp_path)
    assert [d.device_id for d in SshAgent.probe(_config(dead, alive))] == ["ssh:loopback"]
    report = agents.probe_all(_config(dead, alive), kinds=["ssh"])
    assert [d.device_id for d in report.devices] == ["ssh:loopback"] and not report.notes


def test_a_connection_dropped_mid_measurement_is_unavailable(sshd: Sshd, models: Models, tmp_path: Path) -> None:
    """Kill the sshd process serving this connection while the runner it started is sampling."""
    board_dir = str(tmp_path / "board")  # unique to this test: the runner's command line names it
    spec = MeasurementSpec(warmup_runs=1, runs=2000, max_runs=2000, runs_per_sample=100)  # well over 10 s
    killed: list[tuple[int, str]] = []

    def drop_connection() -> None:
        if not _wait_until(lambda: _processes_with(board_dir), 20.0):
            return
        time.sleep(1.0)  # let it load the model and take samples
        (runner,) = _processes_with(board_dir)
        session, name = _sshd_ancestor(runner)
        assert session != sshd.process.pid  # the connection's own sshd process, not the listener
        os.kill(session, signal.SIGKILL)
        killed.append((session, name))

    with SshAgent.open(None, _config(_ort_board(sshd, tmp_path))) as agent:
        prepared = agent.prepare(models.block_onnx)
        dropper = threading.Thread(target=drop_connection)
        dropper.start()
        started = time.monotonic()
        try:
            with pytest.raises(DeviceUnavailableError, match="connection dropped"):
                agent.measure(prepared, spec)
        finally:
            dropper.join()
        assert killed and time.monotonic() - started < 10
        assert not agent.health().ok
    assert _wait_until(lambda: not _processes_with(board_dir), 5.0)  # the runner did not outlive its connection
    with SshAgent.open(None, _config(_ort_board(sshd, tmp_path))) as again:  # the server itself is fine
        assert again.health().ok


# -- measuring with benchmark_model ------------------------------------------------------------------------
@pytest.fixture(scope="session")
def benchmark_model_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An executable standing in for LiteRT's benchmark_model binary: agents.testing.benchmark_model as a program."""
    pytest.importorskip("agents.testing.benchmark_model")
    root = Path(agents.__file__).resolve().parent.parent
    binary = tmp_path_factory.mktemp("bin") / "benchmark_model"
    binary.write_text(
        "#!/bin/sh\n"
        f"PYTHONPATH={shlex.quote(str(root))}${{PYTHONPATH:+:$PYTHONPATH}}; export PYTHONPATH\n"
        f'exec {shlex.quote(sys.executable)} -m agents.testing.benchmark_model "$@"\n'
    )
    binary.chmod(0o755)
    return binary


def test_measure_benchmark_model_on_the_board(
    sshd: Sshd, block_tflite: Path, benchmark_model_binary: Path, tmp_path: Path
) -> None:
    board = sshd.board(runtime="benchmark_model", remote_dir=str(tmp_path / "board"), benchmark_model=str(benchmark_model_binary))
    spec = MeasurementSpec(warmup_runs=2, runs=3, runs_per_sample=5)
    with SshAgent.open(None, _config(board)) as agent:
        assert agent.model_formats == (".tflite",)
        with pytest.raises(UnsupportedModelError, match=r"\.tflite"):
            agent.prepare(tmp_path / "model.onnx")
        prepared = agent.prepare(block_tflite)
        result = agent.measure(prepared, spec)
    assert result.count == 3 and all(s > 0 for s in result.samples_ms)
    assert result.median_ms == pytest.approx(statistics.median(result.samples_ms))
    assert result.runtime == "benchmark_model" and result.runtime_version
    assert result.binary_sha256 == _sha256(benchmark_model_binary)
    assert result.model_sha256 == prepared.sha256


def test_a_missing_benchmark_model_is_a_missing_runtime(sshd: Sshd, block_tflite: Path, tmp_path: Path) -> None:
    board = sshd.board(runtime="benchmark_model", remote_dir=str(tmp_path / "board"), benchmark_model=str(tmp_path / "nowhere"))
    with SshAgent.open(None, _config(board)) as agent, pytest.raises(MissingRuntimeError, match="not on the board"):
        agent.measure(agent.prepare(block_tflite), MeasurementSpec(warmup_runs=1, runs=2))
