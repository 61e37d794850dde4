"""The :class:`Agent` interface: one device, one measurement at a time.

Call order::

    agent = AgentClass.open(device_id, config)   # connect; raises UnknownDeviceError / DeviceUnavailableError
    info = agent.describe()                      # kind, stable device id, fingerprint
    prepared = agent.prepare("block.tflite")     # copy to the device once per content hash
    result = agent.measure(prepared, spec)       # gate on temperature, warm up, sample, summarize
    agent.health()                               # cheap liveness check, any time
    agent.close()                                # idempotent; also via 'with'

The base class owns the shared lifecycle: model validation and hashing, the thermal gate, the sampling
loop (fixed count or adaptive until the median's confidence interval is tight), statistics, drift flags and
provenance. A kind implements the device-specific hooks: ``probe``, ``open``, ``describe``, ``runtime``,
``_place`` (put a file on the device) and ``_open_runner`` (a :class:`Runner` that times inferences), and
optionally ``read_temperatures`` and ``read_cpu_freqs``.

Thread-safety: ``measure`` holds a per-agent lock, so one device never runs two measurements at once;
other methods may be called from any thread. Errors are :class:`agents.errors.TransientAgentError`
(retry may help) or :class:`agents.errors.PermanentAgentError` (it cannot).
"""

from __future__ import annotations

import math
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar, Protocol

from agents.config import AgentsConfig
from agents.errors import MeasurementTimeoutError, OutputParseError, SpecError, UnknownDeviceError, UnsupportedModelError
from agents.gating import drift_flags, hottest, wait_until_cool
from agents.stats import summarize
from agents.types import DeviceInfo, Health, Measurement, MeasurementSpec, PreparedModel, file_sha256

__all__ = ["Agent", "Runner", "check_device_id"]


class Runner(Protocol):
    """Times inferences of one prepared model with one spec's runtime settings."""

    def warmup(self, runs: int) -> None:
        """Run ``runs`` untimed inferences (a no-op where every sample warms up on its own)."""

    def sample(self, runs: int) -> float:
        """Mean latency in ms of ``runs`` consecutive timed inferences. Raises, never returns 0 for a failure."""

    def close(self) -> None:
        """Release the runtime's resources."""


class Agent(ABC):
    """A measurement agent bound to one device."""

    kind: ClassVar[str]  # registry name, e.g. "ort-cpu"
    model_formats: tuple[str, ...]  # accepted model file suffixes, e.g. (".onnx",); an instance may narrow it
    format_per_device: ClassVar[bool] = False  # True where each device's runtime decides (ssh boards)
    cooldown_poll_s: ClassVar[float] = 0.5

    def __init__(self) -> None:
        self._measure_lock = threading.Lock()
        self._closed = False

    # -- discovery and identity ----------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def probe(cls, config: AgentsConfig) -> list[DeviceInfo]:
        """Every device of this kind reachable with ``config`` (empty when none; never raises for 'none')."""

    @classmethod
    @abstractmethod
    def open(cls, device_id: str | None, config: AgentsConfig) -> Agent:
        """An agent for ``device_id`` (None: the only, or first, device of the kind)."""

    @abstractmethod
    def describe(self) -> DeviceInfo:
        """Kind, stable device id and fingerprint."""

    @abstractmethod
    def runtime(self) -> tuple[str, str, str | None]:
        """(runtime name, runtime version, SHA-256 of the benchmark binary or None)."""

    def provenance(self) -> dict[str, Any]:
        """How the runtime runs a model, beyond its name and version (e.g. the delegate: ``{"delegate":
        "xnnpack"}``); kept in each measurement's ``extra``. Not part of the table key."""
        return {}

    # -- device hooks ---------------------------------------------------------------------------------
    @abstractmethod
    def _place(self, path: Path, sha256: str) -> tuple[str, bool]:
        """Make ``path`` readable by the runtime; returns (device path, whether it was copied now)."""

    @abstractmethod
    def _open_runner(self, prepared: PreparedModel, spec: MeasurementSpec) -> Runner:
        """A runner for ``prepared`` with the spec's threads and affinity."""

    def read_temperatures(self) -> list[float] | None:
        """Thermal zone temperatures in degrees C, or None where the platform exposes none."""
        return None

    def read_cpu_freqs(self) -> list[int] | None:
        """Current CPU core frequencies in kHz, or None where the platform exposes none."""
        return None

    # -- lifecycle -------------------------------------------------------------------------------------
    # -- the model format: decided here only (worker, prefetch and CLI all ask) ------------------------
    @property
    def export_format(self) -> str:
        """The format this device is sent, as exports name it ('onnx', 'tflite', 'pt2'): its first accepted one."""
        return self.model_formats[0].lstrip(".")

    @classmethod
    def kind_export_format(cls) -> str:
        """The format every device of this kind is sent, known before any device is opened.

        Raises :class:`SpecError` for a kind whose devices differ (ssh boards: each board's runtime decides);
        ask an open agent's :attr:`export_format` then.
        """
        if cls.format_per_device:
            raise SpecError(
                f"{cls.kind} devices run different model formats (each board's runtime decides); export for one "
                "device at a time (its agent's export_format), not for the whole kind"
            )
        return cls.model_formats[0].lstrip(".")

    def prepare(self, model_path: str | Path) -> PreparedModel:
        """Validate the model file and place it on the device, once per content hash."""
        path = Path(model_path)
        if path.suffix not in self.model_formats:
            raise UnsupportedModelError(
                f"{self.kind} runs {' or '.join(self.model_formats)} models, not {path.name!r}; "
                f"export one with 'nag arch export ... --format {self.export_format}'"
            )
        if not path.is_file():
            raise UnsupportedModelError(f"model file {path} does not exist")
        sha256 = file_sha256(path)
        device_path, copied = self._place(path, sha256)
        return PreparedModel(local_path=path, sha256=sha256, device_path=device_path, copied=copied)

    def health(self) -> Health:
        """A cheap check that the device answers; the default asks for its description and temperature."""
        try:
            info = self.describe()
            temperature = hottest(self.read_temperatures())
        except Exception as exc:  # health reports, it does not raise
            return Health(ok=False, detail=f"{type(exc).__name__}: {exc}")
        return Health(ok=True, detail=f"{info.device_id} answers", temperature_c=temperature)

    def close(self) -> None:
        """Release the connection; idempotent."""
        self._closed = True

    def __enter__(self) -> Agent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- measurement -----------------------------------------------------------------------------------
    def measure(self, prepared: PreparedModel, spec: MeasurementSpec | None = None) -> Measurement:
        """Measure ``prepared`` under ``spec`` (default :class:`MeasurementSpec`); one at a time per device."""
        spec = spec or MeasurementSpec()
        with self._measure_lock:
            started = time.monotonic()
            if spec.max_temperature_c is not None:
                wait_until_cool(
                    self.read_temperatures, limit_c=spec.max_temperature_c, timeout_s=spec.cooldown_timeout_s,
                    poll_s=self.cooldown_poll_s,
                )  # fmt: skip
            deadline = time.monotonic() + spec.timeout_s
            temperature_before = hottest(self.read_temperatures())
            freqs_before = self.read_cpu_freqs()
            samples, converged = self._sample_loop(prepared, spec, deadline)
            temperature_after = hottest(self.read_temperatures())
            freqs_after = self.read_cpu_freqs()
        stats = summarize(samples)
        flags = drift_flags(
            temperature_before_c=temperature_before, temperature_after_c=temperature_after,
            freqs_before_khz=freqs_before, freqs_after_khz=freqs_after,
            max_temperature_drift_c=spec.max_temperature_drift_c, max_frequency_drift=spec.max_frequency_drift,
        )  # fmt: skip
        if not converged:
            flags.append("not-converged")
        info = self.describe()
        runtime, version, binary_sha256 = self.runtime()
        return Measurement(
            samples_ms=tuple(samples), median_ms=stats.median, mean_ms=stats.mean, std_ms=stats.std, mad_ms=stats.mad,
            p10_ms=stats.p10, p90_ms=stats.p90, min_ms=stats.minimum, max_ms=stats.maximum, ci95_low_ms=stats.ci_low,
            ci95_high_ms=stats.ci_high, count=stats.count, kind=info.kind, device_id=info.device_id,
            fingerprint=dict(info.fingerprint), runtime=runtime, runtime_version=version, binary_sha256=binary_sha256,
            model_sha256=prepared.sha256, spec=spec, temperature_before_c=temperature_before,
            temperature_after_c=temperature_after, cpu_freq_before_khz=_tuple_or_none(freqs_before),
            cpu_freq_after_khz=_tuple_or_none(freqs_after), flags=tuple(flags),
            timestamp=datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            extra={"duration_s": round(time.monotonic() - started, 3), **self.provenance()},
        )  # fmt: skip

    def _sample_loop(self, prepared: PreparedModel, spec: MeasurementSpec, deadline: float) -> tuple[list[float], bool]:
        """Warm up, then sample until the fixed count, or (adaptive) until the CI target or ``max_runs``."""
        runner = self._open_runner(prepared, spec)
        samples: list[float] = []
        try:
            if spec.warmup_runs:
                runner.warmup(spec.warmup_runs)
            while True:
                value = runner.sample(spec.runs_per_sample)
                if not (isinstance(value, float) and math.isfinite(value) and value > 0):
                    raise OutputParseError(f"{self.kind} runner returned an impossible latency {value!r} ms")
                samples.append(value)
                if spec.target_rel_ci is None:
                    if len(samples) >= spec.runs:
                        return samples, True
                elif len(samples) >= spec.runs:
                    if summarize(samples).ci_rel_halfwidth <= spec.target_rel_ci:
                        return samples, True
                    if len(samples) >= spec.max_runs:
                        return samples, False
                if time.monotonic() > deadline:
                    raise MeasurementTimeoutError(
                        f"measurement on {self.kind} exceeded its {spec.timeout_s:g} s limit after {len(samples)} "
                        "samples; raise timeout_s or lower runs / max_runs"
                    )
                if spec.pause_ms:
                    time.sleep(spec.pause_ms / 1000.0)
        finally:
            runner.close()


def _tuple_or_none(values: Sequence[int] | None) -> tuple[int, ...] | None:
    return tuple(values) if values is not None else None


def check_device_id(kind: str, wanted: str | None, available: Sequence[DeviceInfo]) -> DeviceInfo:
    """The device among ``available`` with id ``wanted`` (None: the first); a typed error lists the others."""
    if not available:
        raise UnknownDeviceError(f"no {kind} device is reachable; 'nag agent probe' lists the devices this machine can reach")
    if wanted is None:
        return available[0]
    for info in available:
        if info.device_id == wanted:
            return info
    raise UnknownDeviceError(f"no {kind} device {wanted!r}; reachable: {', '.join(i.device_id for i in available)}")
