"""A stand-in device whose every inference takes a set time: for measuring the farm's own overhead.

Not a kind of the registry: name it by path, ``agents.testing.sleep:SleepAgent``. ``$NAG_SLEEP_DEVICES``
sets how many such devices this machine offers (default 1) and ``$NAG_SLEEP_MS`` how long one inference
takes (default 100). ``$NAG_SLEEP_SLOWDOWN`` lists a factor per device (``1,1,1.15``: the third device 15%
slower; missing ones are 1), read at every sample, so a test can make a device disagree or drift. Each sample
sleeps that long per inference and reports the time it really took.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from agents._base import Agent, Runner, check_device_id
from agents.config import AgentsConfig
from agents.types import DeviceInfo, MeasurementSpec, PreparedModel

__all__ = ["SleepAgent"]


def _slowdown(index: int) -> float:
    factors = [f for f in os.environ.get("NAG_SLEEP_SLOWDOWN", "").split(",") if f.strip()]
    return float(factors[index]) if index < len(factors) else 1.0


class _SleepRunner:
    def __init__(self, seconds: float, index: int) -> None:
        self._seconds = seconds
        self._index = index

    def warmup(self, runs: int) -> None:
        time.sleep(self._seconds * runs)

    def sample(self, runs: int) -> float:
        start = time.perf_counter()
        time.sleep(self._seconds * runs * _slowdown(self._index))
        return (time.perf_counter() - start) * 1000.0 / runs

    def close(self) -> None:
        """Nothing held."""


class SleepAgent(Agent):
    kind = "agents.testing.sleep:SleepAgent"
    model_formats = (".onnx",)

    def __init__(self, index: int) -> None:
        super().__init__()
        self._index = index
        self._info = DeviceInfo(
            kind=self.kind, device_id=f"sleep-{index}@{socket.gethostname()}", fingerprint={"stand-in": "sleep"}
        )

    @staticmethod
    def _count() -> int:
        return int(os.environ.get("NAG_SLEEP_DEVICES", "1"))

    @classmethod
    def probe(cls, config: AgentsConfig) -> list[DeviceInfo]:
        return [cls(i).describe() for i in range(cls._count())]

    @classmethod
    def open(cls, device_id: str | None, config: AgentsConfig) -> Agent:
        chosen = check_device_id(cls.kind, device_id, cls.probe(config))
        return cls(int(chosen.device_id.split("@")[0].removeprefix("sleep-")))

    def describe(self) -> DeviceInfo:
        return self._info

    def runtime(self) -> tuple[str, str, str | None]:
        return "sleep", os.environ.get("NAG_SLEEP_MS", "100"), None

    def _place(self, path: Path, sha256: str) -> tuple[str, bool]:
        return str(path), False

    def _open_runner(self, prepared: PreparedModel, spec: MeasurementSpec) -> Runner:
        return _SleepRunner(float(os.environ.get("NAG_SLEEP_MS", "100")) / 1000.0, self._index)
