"""The ADB stand-in, driven only through real clients: adbutils (what the ADB agent uses) and Debian's adb.

Also the benchmark_model stand-in as a program. The stand-ins are checked against facts that would be
false if they were wrong: byte-exact files, hashes computed here, exit statuses, the count of timed runs.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import adbutils
import pytest
from adbutils.errors import AdbError, AdbTimeout

from agents.testing.adb_standin import ADB_SERVER_VERSION, AdbStandinServer, StandinDevice
from agents.testing.benchmark_model import format_stat

_FAST = "--num_runs=5 --min_secs=0 --warmup_min_secs=0"
_SUMMARY = re.compile(
    r"^INFO: Inference timings in us: Init: \d+, First inference: \d+, Warmup \(avg\): \S+, Inference \(avg\): \S+$", re.M
)


@pytest.fixture(scope="session")
def tflite_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real .tflite: one MBConv block of the ofa-mbv3 space at 64 px (exported once per session)."""
    if importlib.util.find_spec("litert_torch") is None:
        pytest.skip("litert-torch not installed (pip install 'nag-farm[litert]'); no .tflite to benchmark")
    from nag.space import get_space
    from nag.space.export import export_blocks

    block = get_space("ofa-mbv3").all_blocks(resolution=64)[1]
    return export_blocks(block, fmt="tflite", out=tmp_path_factory.mktemp("model") / "block.tflite").path


@pytest.fixture
def server(tmp_path: Path) -> Iterator[AdbStandinServer]:
    devices = [
        StandinDevice(serial="standin-a", root=tmp_path / "a"),
        StandinDevice(serial="10.0.0.7:5555", root=tmp_path / "b", props={"ro.product.model": "SM-S911B"}),
    ]
    with AdbStandinServer(devices) as running:
        yield running


@pytest.fixture
def client(server: AdbStandinServer) -> adbutils.AdbClient:
    return adbutils.AdbClient(host="127.0.0.1", port=server.port)


def _push_model(device: adbutils.AdbDevice, model: Path, remote: str = "/data/local/tmp/m.tflite") -> str:
    device.sync.push(model, remote)
    return remote


def test_server_version_and_device_list(client: adbutils.AdbClient) -> None:
    assert client.server_version() == ADB_SERVER_VERSION
    assert [(d.serial, d.state) for d in client.list()] == [("standin-a", "device"), ("10.0.0.7:5555", "device")]
    long = {d.serial: d.tags for d in client.list(extended=True)}
    assert long["10.0.0.7:5555"]["model"] == "SM_S911B"  # devices-l sanitises the model as adb does
    assert {long["standin-a"]["transport_id"], long["10.0.0.7:5555"]["transport_id"]} == {"1", "2"}
    assert client.device("10.0.0.7:5555").get_state() == "device"
    assert "shell_v2" in client.device("standin-a").get_features().split(",")


def test_unknown_serial_fails_like_adb(client: adbutils.AdbClient) -> None:
    with pytest.raises(AdbError, match="device 'nope' not found"):
        client.device("nope").shell("echo hi")


def test_getprop_one_key_and_all(client: adbutils.AdbClient) -> None:
    device = client.device("10.0.0.7:5555")
    assert device.getprop("ro.product.model") == "SM-S911B"
    assert device.prop.model == "SM-S911B"
    assert device.getprop("ro.serialno") == "10.0.0.7:5555"
    assert device.getprop("no.such.prop") == ""
    listing = device.shell("getprop").splitlines()
    assert "[ro.product.cpu.abi]: [arm64-v8a]" in listing
    assert listing == sorted(listing)


def test_push_stat_and_sha256sum(client: adbutils.AdbClient, tflite_model: Path) -> None:
    device = client.device("standin-a")
    remote = _push_model(device, tflite_model, "/data/local/tmp/models/m.tflite")  # parent folder is created
    data = tflite_model.read_bytes()
    assert device.sync.stat(remote).size == len(data)
    assert device.sync.stat("/data/local/tmp/absent").mtime is None
    assert device.sync.read_bytes(remote) == data
    result = device.shell2(f"sha256sum {remote}", v2=True)
    assert result.returncode == 0
    assert result.stdout.split() == [hashlib.sha256(data).hexdigest(), remote]
    binary = device.sync.read_bytes("/data/local/tmp/benchmark_model")  # created when the phone was plugged in
    assert device.shell("sha256sum /data/local/tmp/benchmark_model").split()[0] == hashlib.sha256(binary).hexdigest()


def test_benchmark_model_runs_the_model(client: adbutils.AdbClient, tflite_model: Path) -> None:
    device = client.device("standin-a")
    remote = _push_model(device, tflite_model)
    result = device.shell2(f"taskset f0 /data/local/tmp/benchmark_model --graph={remote} --num_threads=2 {_FAST}", v2=True)
    assert result.returncode == 0, result.output
    counts = re.findall(r"^INFO: count=(\d+) ", result.output, re.M)
    assert counts[-1] == "5"
    assert _SUMMARY.search(result.output)
    assert result.stderr == result.output  # benchmark_model logs to standard error, as the real tool does
    # shell2 without v2 reads the status from `; echo X4EXIT:$?`, which the stand-in's sh supports too
    plain = device.shell2(f"cd /data/local/tmp && ./benchmark_model --graph=m.tflite {_FAST}")
    assert plain.returncode == 0 and _SUMMARY.search(plain.output)


def test_exit_statuses(client: adbutils.AdbClient) -> None:
    device = client.device("standin-a")
    unknown = device.shell2("nosuchprogram --flag", v2=True)
    assert unknown.returncode == 127
    assert unknown.stderr == "/system/bin/sh: nosuchprogram: inaccessible or not found\n"
    assert device.shell2("nosuchprogram").returncode == 127
    missing = device.shell2("/data/local/tmp/benchmark_model --graph=/data/local/tmp/absent.tflite", v2=True)
    assert missing.returncode == 1
    assert "Could not open '/data/local/tmp/absent.tflite'" in missing.stderr
    assert device.shell2("test -d /data/local/tmp", v2=True).returncode == 0
    assert device.shell2("test -f /data/local/tmp", v2=True).returncode == 1
    assert device.shell2("taskset 100 nproc", v2=True).returncode == 1  # CPU 8 does not exist on an 8-core phone
    assert (
        device.shell2("chmod 644 /data/local/tmp/benchmark_model && /data/local/tmp/benchmark_model", v2=True).returncode == 126
    )


def test_shell_quoting_globs_and_redirection(client: adbutils.AdbClient) -> None:
    device = client.device("standin-a")
    device.sync.push(b"x", "/data/local/tmp/d/one.tflite")
    device.sync.push(b"y", "/data/local/tmp/d/two.tflite")
    assert device.shell("ls /data/local/tmp/d/*.tflite").split() == [
        "/data/local/tmp/d/one.tflite",
        "/data/local/tmp/d/two.tflite",
    ]
    assert device.shell(["echo", "/data/local/tmp/d/*.tflite", "a  b"]) == "/data/local/tmp/d/*.tflite a  b"  # quoted: no glob
    device.shell("echo hello > /data/local/tmp/d/out.txt; cat /nope 2>> /data/local/tmp/d/out.txt")
    assert device.sync.read_text("/data/local/tmp/d/out.txt") == "hello\ncat: /nope: No such file or directory\n"
    assert (
        device.shell2("rm -f /data/local/tmp/d/*.tflite /data/local/tmp/d/absent; ls /data/local/tmp/d", v2=True).stdout
        == "out.txt\n"
    )
    refused = device.shell2("ls | cat", v2=True)
    assert refused.returncode == 2 and "does not imitate" in refused.stderr


def test_garbage_fault_prints_no_timings(client: adbutils.AdbClient, server: AdbStandinServer, tflite_model: Path) -> None:
    device = client.device("standin-a")
    remote = _push_model(device, tflite_model)
    server_device = server.remove_device("standin-a")
    server_device.fault = "garbage"
    server.add_device(server_device)
    result = device.shell2(f"/data/local/tmp/benchmark_model --graph={remote} {_FAST}", v2=True)
    assert result.returncode == 0
    assert "INFO: STARTING!" in result.output
    assert "count=" not in result.output and "Inference timings" not in result.output


def test_vanish_fault_drops_the_connection_and_the_device(tmp_path: Path) -> None:
    devices = [StandinDevice(serial=f"v{n}", root=tmp_path / f"v{n}", fault="vanish") for n in (1, 2)]
    with AdbStandinServer(devices) as server:
        client = adbutils.AdbClient(host="127.0.0.1", port=server.port)
        command = "/data/local/tmp/benchmark_model --graph=/data/local/tmp/m.tflite"
        with pytest.raises(AdbError, match="shell output invalid"):  # shell v1: no exit marker ever comes
            client.device("v1").shell2(command)
        with pytest.raises(EOFError):  # shell v2: the stream ends before an exit packet (adbutils raises EOFError)
            client.device("v2").shell2(command, v2=True)
        assert client.list() == []
        with pytest.raises(AdbError, match="device 'v1' not found"):
            client.device("v1").shell("echo hi")


def test_hang_fault_answers_nothing_until_the_client_gives_up(tmp_path: Path) -> None:
    with AdbStandinServer([StandinDevice(serial="h", root=tmp_path / "h", fault="hang")]) as server:
        device = adbutils.AdbClient(host="127.0.0.1", port=server.port).device("h")
        started = time.perf_counter()
        with pytest.raises(AdbTimeout):
            device.shell2("/data/local/tmp/benchmark_model --graph=/x.tflite", timeout=0.5, v2=True)
        assert 0.4 < time.perf_counter() - started < 5
        assert device.shell("echo still here") == "still here"  # the device stays; only that run hung


def test_thermal_zones_follow_a_callable(tmp_path: Path) -> None:
    started = time.monotonic()

    def cooling() -> list[float]:  # 80 C, cooling 10 C per second
        return [80.0 - 10.0 * (time.monotonic() - started), 30.25]

    device = StandinDevice(serial="t", root=tmp_path / "t", temperatures_c=cooling, cpu_freqs_khz=[1_800_000, 2_400_000])
    with AdbStandinServer([device]) as server:
        phone = adbutils.AdbClient(host="127.0.0.1", port=server.port).device("t")
        first = [int(v) for v in phone.shell("cat /sys/class/thermal/thermal_zone*/temp").split()]
        time.sleep(0.3)
        later = int(phone.shell("cat /sys/class/thermal/thermal_zone0/temp"))
        assert first[1] == 30250
        assert 75_000 < first[0] <= 80_000 and later < first[0] - 2_000
        assert phone.shell("cat /sys/class/thermal/thermal_zone1/type") == "cpu-thermal1"
        assert phone.shell("nproc") == "2"
        assert phone.shell("cat /sys/devices/system/cpu/cpu1/cpufreq/scaling_cur_freq") == "2400000"
        assert phone.sync.read_text("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq") == "1800000\n"
        assert phone.shell2("echo 1 > /sys/class/thermal/thermal_zone0/temp", v2=True).returncode == 1


def test_debian_adb_client(server: AdbStandinServer, tmp_path: Path) -> None:
    adb = shutil.which("adb")
    if adb is None:
        pytest.skip("Debian's adb is not installed (apt-get install adb)")
    base = [adb, "-H", "127.0.0.1", "-P", str(server.port)]

    def adb_run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*base, *args], capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)

    listing = adb_run("devices")
    assert listing.returncode == 0, listing.stderr
    assert "standin-a\tdevice" in listing.stdout.splitlines()
    assert adb_run("-s", "10.0.0.7:5555", "shell", "getprop", "ro.product.model").stdout == "SM-S911B\n"
    payload = tmp_path / "payload.bin"
    payload.write_bytes(bytes(range(256)) * 300)  # more than one 64 KiB DATA chunk
    assert adb_run("-s", "standin-a", "push", str(payload), "/data/local/tmp/x").returncode == 0
    assert (tmp_path / "a" / "data" / "local" / "tmp" / "x").read_bytes() == payload.read_bytes()
    assert adb_run("-s", "standin-a", "shell", "nosuchprogram").returncode == 127


def test_benchmark_model_as_a_program(tflite_model: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "agents.testing.benchmark_model", f"--graph={tflite_model}", "--num_threads=1", *_FAST.split()],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # like the real tool, everything goes to standard error
    assert re.findall(r"^INFO: count=(\d+) ", done.stderr, re.M)[-1] == "5"
    assert done.stderr.count("XNNPACK delegate") == 1 and _SUMMARY.search(done.stderr)
    bad = subprocess.run(
        [sys.executable, "-m", "agents.testing.benchmark_model", f"--graph={tflite_model}", "--nosuchflag=1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1 and "ERROR: Unconsumed cmdline flags: --nosuchflag=1" in bad.stderr


def test_stat_line_follows_the_tools_arithmetic() -> None:
    assert format_stat([]) == "count=0 p5=0 median=0 p95=0"
    assert format_stat([7]) == "count=1 curr=7 p5=7 median=7 p95=7"
    assert format_stat([5, 5]) == "count=2 curr=5(all same) p5=5 median=5 p95=5"
    # avg 50.3333 (6 significant digits); variance 0.889 kept as an integer 0 -> std 0; median = sorted[3*50//100]
    assert format_stat([51, 51, 49]) == "count=3 first=51 curr=49 min=49 max=51 avg=50.3333 std=0 p5=49 median=51 p95=51"
    assert format_stat([100, 300]) == "count=2 first=100 curr=300 min=100 max=300 avg=200 std=100 p5=100 median=300 p95=300"


def test_a_slower_stand_in_phone_stretches_every_inference(tflite_model: Path) -> None:
    """``StandinDevice.slowdown`` (here through ``run_streaming``): a factor of 3 makes every timed run at least
    about 3x as long (a sleep of tens of microseconds overshoots, so only the lower bound is sharp)."""
    from agents.testing.benchmark_model import run_streaming

    def fastest_us(factor: float) -> int:
        """The timed phase's fastest run: contention on a shared machine only ever adds to a run, so the
        minimum compares the two settings where an average would compare the load."""
        lines: list[str] = []
        argv = [
            f"--graph={tflite_model}",
            "--num_threads=1",
            "--num_runs=20",
            "--warmup_runs=2",
            "--min_secs=0",
            "--warmup_min_secs=0",
        ]
        assert run_streaming(argv, emit=lines.append, slowdown=lambda: factor) == 0
        found = re.findall(r"count=20 .*? min=(\d+)", "\n".join(lines))
        assert found, lines
        return int(found[-1])

    plain, slowed = fastest_us(1.0), fastest_us(3.0)
    assert slowed / plain > 2.5, (plain, slowed)
    with pytest.raises(ValueError, match="slowdown must be a factor >= 1"):
        StandinDevice(serial="x", root=Path("/nonexistent"), slowdown=0.5).current_slowdown()
