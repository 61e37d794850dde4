"""Value types of the agent layer: what to measure (:class:`MeasurementSpec`), on what
(:class:`DeviceInfo`, :class:`PreparedModel`), and what came out (:class:`Measurement`)."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from agents.errors import SpecError

__all__ = ["DeviceInfo", "Health", "Measurement", "MeasurementSpec", "PreparedModel", "file_sha256"]


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's content: a model's identity on every device."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _stable_hash(value: Any, length: int = 16) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:length]


@dataclass(frozen=True)
class MeasurementSpec:
    """How to measure. Validated on construction (:class:`SpecError` names the bad field and value).

    Each sample is the mean latency of ``runs_per_sample`` consecutive inferences (1: every inference is a
    sample). Where a benchmark tool is restarted for every sample (``benchmark_model`` over ADB or SSH),
    ``warmup_runs`` warm-up inferences precede every sample; in-process runtimes warm up once.
    """

    warmup_runs: int = 10  # untimed inferences before timing
    runs: int = 30  # timed samples; in adaptive mode, the minimum
    runs_per_sample: int = 1  # inferences averaged into one sample (raise it for very short blocks)
    target_rel_ci: float | None = None  # adaptive: stop once the median's 95% CI half-width / median <= this
    max_runs: int = 300  # adaptive: most samples to take
    threads: int = 1  # runtime threads
    affinity: tuple[int, ...] | None = None  # CPU ids to pin to, where the platform allows; None = no pinning
    pause_ms: float = 0.0  # minimum pause between samples (lets a phone's governor and temperature settle)
    max_temperature_c: float | None = None  # wait (bounded) until the device is below this before measuring
    cooldown_timeout_s: float = 120.0  # the bound on that wait
    max_temperature_drift_c: float = 5.0  # flag a result whose temperature moved more than this during the run
    max_frequency_drift: float = 0.10  # flag a result whose CPU frequency moved more than this fraction
    timeout_s: float = 600.0  # limit for one measurement (all samples)

    def __post_init__(self) -> None:
        def bad(name: str, rule: str) -> SpecError:
            return SpecError(f"measurement spec: {name} must be {rule}, got {getattr(self, name)!r}")

        for name in ("warmup_runs",):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise bad(name, "an integer >= 0")
        for name in ("runs", "runs_per_sample", "max_runs", "threads"):
            if not isinstance(getattr(self, name), int) or isinstance(getattr(self, name), bool) or getattr(self, name) < 1:
                raise bad(name, "an integer >= 1")
        if self.target_rel_ci is not None and not (0 < self.target_rel_ci < 1):
            raise bad("target_rel_ci", "a fraction in (0, 1), e.g. 0.01 for +-1%, or None for a fixed count")
        if self.max_runs < self.runs:
            raise bad("max_runs", f">= runs ({self.runs})")
        if self.affinity is not None and (not self.affinity or any(not isinstance(c, int) or c < 0 for c in self.affinity)):
            raise bad("affinity", "None or a non-empty tuple of CPU ids >= 0")
        for name in ("pause_ms", "cooldown_timeout_s", "max_temperature_drift_c", "max_frequency_drift"):
            if (
                not isinstance(getattr(self, name), (int, float))
                or not math.isfinite(getattr(self, name))
                or getattr(self, name) < 0
            ):
                raise bad(name, "a finite number >= 0")
        if not isinstance(self.timeout_s, (int, float)) or not self.timeout_s > 0:
            raise bad("timeout_s", "a number > 0")
        if self.max_temperature_c is not None and not (0 < self.max_temperature_c < 150):
            raise bad("max_temperature_c", "None or degrees Celsius in (0, 150)")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["affinity"] = list(self.affinity) if self.affinity is not None else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MeasurementSpec:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise SpecError(f"measurement spec: unknown field(s) {sorted(unknown)}; valid: {sorted(known)}")
        values = dict(data)
        if values.get("affinity") is not None:
            values["affinity"] = tuple(values["affinity"])
        return cls(**values)

    def key(self) -> str:
        """A short hash of the fields that change the numbers (not the gating and time limits)."""
        numeric = {k: v for k, v in self.to_dict().items() if k in ("warmup_runs", "runs_per_sample", "threads", "affinity")}
        return _stable_hash(numeric)


@dataclass(frozen=True)
class DeviceInfo:
    """A device an agent can measure on."""

    kind: str  # agent kind, e.g. "ort-cpu", "adb-litert"
    device_id: str  # stable across restarts, e.g. "adb-litert:R58M12ABCDE", "ort-cpu@labhost"
    fingerprint: dict[str, str]  # model, SoC/CPU, OS/build, driver: what makes two devices comparable

    @property
    def fingerprint_hash(self) -> str:
        """A short hash of the fingerprint: two devices with the same hash give comparable latencies."""
        return _stable_hash(self.fingerprint)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "device_id": self.device_id,
            "fingerprint": dict(self.fingerprint),
            "fingerprint_hash": self.fingerprint_hash,
        }


@dataclass(frozen=True)
class PreparedModel:
    """A model file made ready on a device (copied once per content hash)."""

    local_path: Path  # the file on the driving machine
    sha256: str  # content hash: the model's identity
    device_path: str  # where the runtime reads it (equal to local_path for local runtimes)
    copied: bool  # True when this prepare() transferred the file, False when the device already had it


@dataclass(frozen=True)
class Health:
    ok: bool
    detail: str  # what was checked, or what is wrong
    temperature_c: float | None = None  # hottest thermal zone, where exposed


@dataclass(frozen=True)
class Measurement:
    """One measurement: every raw sample, its statistics, and where and how it was taken."""

    samples_ms: tuple[float, ...]  # each the mean of spec.runs_per_sample inferences
    median_ms: float
    mean_ms: float
    std_ms: float
    mad_ms: float  # median absolute deviation, unscaled
    p10_ms: float
    p90_ms: float
    min_ms: float
    max_ms: float
    ci95_low_ms: float  # the median's 95% confidence interval (order statistics); None in JSON when undefined
    ci95_high_ms: float
    count: int
    kind: str
    device_id: str
    fingerprint: dict[str, str]
    runtime: str  # e.g. "onnxruntime", "litert", "benchmark_model"
    runtime_version: str
    binary_sha256: str | None  # hash of the benchmark binary when one is used
    model_sha256: str
    spec: MeasurementSpec
    temperature_before_c: float | None  # hottest zone before/after, where exposed
    temperature_after_c: float | None
    cpu_freq_before_khz: tuple[int, ...] | None  # per core, where exposed
    cpu_freq_after_khz: tuple[int, ...] | None
    flags: tuple[str, ...]  # "temperature-drift", "frequency-drift", "not-converged"
    timestamp: str  # ISO 8601 UTC, when the measurement ended
    extra: dict[str, Any] = field(default_factory=dict)  # kind-specific provenance (e.g. the tool's own statistics)

    @property
    def fingerprint_hash(self) -> str:
        return _stable_hash(self.fingerprint)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["samples_ms"] = list(self.samples_ms)
        data["spec"] = self.spec.to_dict()
        data["fingerprint_hash"] = self.fingerprint_hash
        for name in ("ci95_low_ms", "ci95_high_ms"):
            if not math.isfinite(data[name]):
                data[name] = None
        for name in ("cpu_freq_before_khz", "cpu_freq_after_khz", "flags"):
            data[name] = list(data[name]) if data[name] is not None else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Measurement:
        values = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        values["samples_ms"] = tuple(values["samples_ms"])
        values["spec"] = MeasurementSpec.from_dict(values["spec"])
        values["flags"] = tuple(values.get("flags") or ())
        for name in ("ci95_low_ms", "ci95_high_ms"):
            if values.get(name) is None:
                values[name] = -math.inf if name == "ci95_low_ms" else math.inf
        for name in ("cpu_freq_before_khz", "cpu_freq_after_khz"):
            if values.get(name) is not None:
                values[name] = tuple(values[name])
        return cls(**values)
