"""``adb-litert``: an Android phone over ADB, measured with LiteRT's ``benchmark_model`` on the phone.

Talks to an ``adb`` server through ``adbutils`` (never ``os.system``): every shell command is an argument
vector quoted with ``shlex``. Models are pushed once per content hash, to a temporary name first and then
renamed, so an interrupted push never leaves a truncated model under the final name. Device facts come
from ``getprop``, temperatures from ``/sys/class/thermal`` and CPU frequencies from ``/sys/devices/system/cpu``,
all over the same connection.

Each sample is one ``benchmark_model`` invocation: ``warmup_runs`` warm-ups, then ``runs_per_sample``
timed inferences whose mean the tool reports (see :mod:`agents.benchmark_model`).
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

from agents._base import Agent, Runner, check_device_id
from agents.benchmark_model import BenchmarkModelRunner, shell_command
from agents.config import AdbConfig, AgentsConfig
from agents.errors import (
    AgentError,
    DeviceUnavailableError,
    MeasurementTimeoutError,
    PermanentAgentError,
    UnknownDeviceError,
)
from agents.gating import hottest
from agents.sysfs import natural_key, temperatures_c
from agents.types import DeviceInfo, Health, MeasurementSpec, PreparedModel

__all__ = ["AdbLitertAgent"]

ID_PREFIX = "adb-litert:"
FINGERPRINT_PROPS = {
    "model": "ro.product.model",
    "manufacturer": "ro.product.manufacturer",
    "soc": "ro.soc.model",
    "platform": "ro.board.platform",
    "android": "ro.build.version.release",
    "sdk": "ro.build.version.sdk",
    "build": "ro.build.fingerprint",
    "abi": "ro.product.cpu.abi",
}
_PROP_LINE = re.compile(r"^\[(?P<key>[^\]]+)\]: \[(?P<value>.*)\]$")


@contextlib.contextmanager
def _adb_errors(serial: str) -> Iterator[None]:
    """Map adbutils' and socket errors to the agent's transient errors."""
    import adbutils

    try:
        yield
    except AgentError:
        raise
    except adbutils.AdbTimeout as exc:
        raise MeasurementTimeoutError(f"adb command on {serial} timed out: {exc}") from exc
    except (adbutils.AdbError, OSError, EOFError) as exc:
        raise DeviceUnavailableError(f"lost ADB connection to {serial}: {type(exc).__name__}: {exc}") from exc


def _client(config: AdbConfig) -> Any:
    import adbutils

    return adbutils.AdbClient(host=config.host, port=config.port, socket_timeout=30)


class AdbLitertAgent(Agent):
    kind: ClassVar[str] = "adb-litert"
    model_formats = (".tflite",)

    def __init__(self, device: Any, config: AdbConfig) -> None:
        super().__init__()
        self._device = device
        self._serial: str = device.serial
        self._config = config
        self._info: DeviceInfo | None = None
        self._binary_sha256: str | None = None
        self._thermal_files: list[str] | None = None
        self._freq_files: list[str] | None = None

    # -- discovery ------------------------------------------------------------------------------------
    @classmethod
    def _devices(cls, config: AgentsConfig) -> list[Any]:
        if config.adb is None:
            return []
        where = f"{config.adb.host}:{config.adb.port}"
        # adbutils starts an adb server of its own when none answers; never start daemons behind the user's back.
        try:
            socket.create_connection((config.adb.host, config.adb.port), timeout=2).close()
        except OSError as exc:
            raise DeviceUnavailableError(
                f"no adb server listens at {where} ({exc.strerror or exc}); start one with 'adb start-server', "
                "or set adb.host/adb.port (or adb: null) in the agents config"
            ) from exc
        client = _client(config.adb)
        try:
            return [d for d in client.device_list()]
        except Exception as exc:  # adbutils raises several types when no server listens
            raise DeviceUnavailableError(
                f"no adb server answers at {where} ({type(exc).__name__}: {exc}); start one with 'adb start-server' "
                "or set adb.host/adb.port in the agents config"
            ) from exc

    @classmethod
    def probe(cls, config: AgentsConfig) -> list[DeviceInfo]:
        if config.adb is None:
            return []
        found = []
        for device in cls._devices(config):
            with contextlib.suppress(DeviceUnavailableError, MeasurementTimeoutError):  # a phone that left meanwhile
                found.append(cls(device, config.adb).describe())
        return found

    @classmethod
    def open(cls, device_id: str | None, config: AgentsConfig) -> Agent:
        if config.adb is None:
            raise UnknownDeviceError("ADB is disabled in the agents config (adb: null)")
        devices = cls._devices(config)
        ids = [DeviceInfo(kind=cls.kind, device_id=ID_PREFIX + d.serial, fingerprint={}) for d in devices]
        chosen = check_device_id(cls.kind, device_id, ids)
        device = devices[ids.index(chosen)]
        return cls(device, config.adb)

    # -- device I/O -----------------------------------------------------------------------------------
    def _shell(self, argv: list[str], *, timeout: float | None = None) -> tuple[int, str]:
        """Run an argument vector on the phone; returns (exit status, stdout and stderr)."""
        with _adb_errors(self._serial):
            result = self._device.shell2(shell_command(argv), timeout=timeout or self._config.command_timeout_s, v2=True)
        return int(result.returncode), str(result.output)

    def _checked(self, argv: list[str]) -> str:
        status, output = self._shell(argv, timeout=60)
        if status != 0:
            raise DeviceUnavailableError(
                f"{shell_command(argv)!r} failed on {self._serial} (status {status}): {output.strip()[-200:]}"
            )
        return output

    def _getprops(self) -> dict[str, str]:
        props = {}
        for line in self._checked(["getprop"]).splitlines():
            match = _PROP_LINE.match(line.strip())
            if match:
                props[match.group("key")] = match.group("value")
        return props

    def describe(self) -> DeviceInfo:
        if self._info is None:
            props = self._getprops()
            # No serial: two phones of the same model and build give comparable latencies and share a table.
            fingerprint = {name: props.get(key, "") for name, key in FINGERPRINT_PROPS.items()}
            self._info = DeviceInfo(kind=self.kind, device_id=ID_PREFIX + self._serial, fingerprint=fingerprint)
        return self._info

    def _list_files(self, folder: str, pattern: str, leaf: str) -> list[str]:
        status, output = self._shell(["ls", folder], timeout=30)
        if status != 0:
            return []
        names = [n for n in output.split() if re.fullmatch(pattern, n)]
        names.sort(key=natural_key)
        return [f"{folder}/{name}/{leaf}" for name in names]

    def _read_numbers(self, files: list[str]) -> list[int]:
        if not files:
            return []
        _, output = self._shell(["cat", *files], timeout=30)  # unreadable zones print errors; keep the numbers
        return [int(token) for token in output.split() if re.fullmatch(r"-?\d+", token)]

    def read_temperatures(self) -> list[float] | None:
        if self._thermal_files is None:
            self._thermal_files = self._list_files("/sys/class/thermal", r"thermal_zone\d+", "temp")
        return temperatures_c(self._read_numbers(self._thermal_files))

    def read_cpu_freqs(self) -> list[int] | None:
        if self._freq_files is None:
            self._freq_files = self._list_files("/sys/devices/system/cpu", r"cpu\d+", "cpufreq/scaling_cur_freq")
        return self._read_numbers(self._freq_files) or None

    # -- runtime --------------------------------------------------------------------------------------
    def provenance(self) -> dict[str, str]:
        return {"delegate": "xnnpack (benchmark_model --use_xnnpack=true)" if self._config.use_xnnpack else "none (CPU kernels)"}

    def runtime(self) -> tuple[str, str, str | None]:
        if self._binary_sha256 is None:
            binary = self._config.benchmark_model
            status, output = self._shell(["sha256sum", binary], timeout=60)
            digest = output.split()[0] if status == 0 and output.split() else ""
            if not re.fullmatch(r"[0-9a-f]{64}", digest):
                raise PermanentAgentError(
                    f"benchmark_model is not at {binary} on {self._serial} ({output.strip()[-120:]}); push it with "
                    f"'adb -s {self._serial} push benchmark_model {binary}' and 'adb -s {self._serial} shell chmod 755 {binary}', "
                    "or set adb.benchmark_model in the agents config"
                )
            self._binary_sha256 = digest
        return "benchmark_model", f"binary-{self._binary_sha256[:12]}", self._binary_sha256

    def _place(self, path: Path, sha256: str) -> tuple[str, bool]:
        remote = f"{self._config.remote_dir}/{sha256[:16]}{path.suffix}"
        size = path.stat().st_size
        with _adb_errors(self._serial):
            if self._device.sync.stat(remote).size == size:
                return remote, False
            self._checked(["mkdir", "-p", self._config.remote_dir])
            partial = f"{remote}.part-{os.getpid()}"
            self._device.sync.push(str(path), partial)
            self._checked(["mv", "-f", partial, remote])
            if self._device.sync.stat(remote).size != size:
                raise DeviceUnavailableError(f"push of {path.name} to {self._serial}:{remote} left a file of the wrong size")
        return remote, True

    def _open_runner(self, prepared: PreparedModel, spec: MeasurementSpec) -> Runner:
        self.runtime()  # fail early, and permanently, when the tool is missing
        execute: Callable[[list[str]], tuple[int, str]] = lambda argv: self._shell(argv)  # noqa: E731
        return BenchmarkModelRunner(
            execute, binary=self._config.benchmark_model, graph=prepared.device_path, threads=spec.threads,
            warmup_runs=spec.warmup_runs, run_delay_s=spec.pause_ms / 1000.0, use_xnnpack=self._config.use_xnnpack,
            use_gpu=self._config.use_gpu, affinity=spec.affinity,
        )  # fmt: skip

    def health(self) -> Health:
        try:
            status, output = self._shell(["echo", "ok"], timeout=10)
        except AgentError as exc:
            return Health(ok=False, detail=str(exc))
        if status != 0 or output.strip() != "ok":
            return Health(ok=False, detail=f"echo answered {output.strip()[:80]!r} with status {status}")
        return Health(ok=True, detail=f"{ID_PREFIX}{self._serial} answers", temperature_c=hottest(self.read_temperatures()))
