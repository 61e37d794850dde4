"""Facts about the machine this process runs on: CPU fingerprint, temperatures, frequencies, pinning.

Read from Linux's /proc and /sys where they exist; every reader returns None where the platform (or a
container) does not expose the value, so callers record "unknown" rather than a made-up number.
"""

from __future__ import annotations

import contextlib
import glob
import os
import platform
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from agents._base import Agent, check_device_id
from agents.config import AgentsConfig
from agents.errors import SpecError
from agents.sysfs import natural_key, temperatures_c
from agents.types import DeviceInfo

__all__ = [
    "InProcessRunner",
    "LocalCpuAgent",
    "cpu_fingerprint",
    "local_cpu_freqs_khz",
    "local_temperatures_c",
    "pinned",
    "read_sysfs_numbers",
]


def _cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.lower().startswith(("model name", "hardware", "processor\t: arm")):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_fingerprint() -> dict[str, str]:
    """What makes this machine's CPU latencies comparable to another's."""
    return {
        "host": socket.gethostname(),
        "cpu": _cpu_model(),
        "machine": platform.machine(),
        "cores": str(os.cpu_count() or 0),
        "os": f"{platform.system()} {platform.release()}",
    }


def read_sysfs_numbers(pattern: str) -> list[int] | None:
    """The integer in each file matching ``pattern``, in natural order; None when no file is readable."""
    values = []
    for path in sorted(glob.glob(pattern), key=natural_key):
        with contextlib.suppress(OSError, ValueError), open(path) as handle:
            values.append(int(handle.read().strip()))
    return values or None


def local_temperatures_c() -> list[float] | None:
    return temperatures_c(read_sysfs_numbers("/sys/class/thermal/thermal_zone*/temp") or [])


def local_cpu_freqs_khz() -> list[int] | None:
    return read_sysfs_numbers("/sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_cur_freq")


@contextlib.contextmanager
def pinned(cpus: Sequence[int] | None) -> Iterator[tuple[int, ...] | None]:
    """Pin this process (and the threads it starts meanwhile) to ``cpus``; restore the mask afterwards.

    Yields the CPU set in force, or None when no pinning was asked for. Threads a runtime creates inside
    the block inherit the mask, so create sessions inside it.
    """
    if cpus is None:
        yield None
        return
    if not hasattr(os, "sched_setaffinity"):
        raise SpecError("CPU affinity is not supported on this platform; leave affinity unset")
    allowed = os.sched_getaffinity(0)
    wanted = set(cpus)
    if not wanted <= allowed:
        raise SpecError(f"affinity {sorted(wanted)} is not within the CPUs this process may use, {sorted(allowed)}")
    os.sched_setaffinity(0, wanted)
    try:
        yield tuple(sorted(wanted))
    finally:
        os.sched_setaffinity(0, allowed)


class LocalCpuAgent(Agent):
    """Shared base of the agents that run a runtime in this process on this machine's CPU."""

    def __init__(self) -> None:
        super().__init__()
        self._info = DeviceInfo(kind=self.kind, device_id=f"{self.kind}@{socket.gethostname()}", fingerprint=cpu_fingerprint())

    @classmethod
    def available(cls) -> bool:
        """Whether the runtime imports here (probe lists the device only then)."""
        return True

    @classmethod
    def probe(cls, config: AgentsConfig) -> list[DeviceInfo]:
        if not config.local or not cls.available():
            return []
        return [cls().describe()]

    @classmethod
    def open(cls, device_id: str | None, config: AgentsConfig) -> Agent:
        agent = cls()
        check_device_id(cls.kind, device_id, [agent.describe()])
        return agent

    def describe(self) -> DeviceInfo:
        return self._info

    def _place(self, path: Path, sha256: str) -> tuple[str, bool]:
        return str(path.resolve()), False  # the runtime reads the file where it is

    def read_temperatures(self) -> list[float] | None:
        return local_temperatures_c()

    def read_cpu_freqs(self) -> list[int] | None:
        return local_cpu_freqs_khz()


class InProcessRunner:
    """A :class:`Runner` around a zero-argument ``invoke`` callable, pinned while it lives."""

    def __init__(self, make_invoke: Callable[[], Callable[[], object]], affinity: Sequence[int] | None) -> None:
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(pinned(affinity))  # before the runtime creates its threads
        try:
            self._invoke = make_invoke()
        except BaseException:
            self._stack.close()
            raise

    def warmup(self, runs: int) -> None:
        for _ in range(runs):
            self._invoke()

    def sample(self, runs: int) -> float:
        invoke = self._invoke
        start = time.perf_counter_ns()
        for _ in range(runs):
            invoke()
        return (time.perf_counter_ns() - start) / runs / 1e6

    def close(self) -> None:
        self._stack.close()
