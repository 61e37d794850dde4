"""The agent layer's plain parts: statistics, gating, spec validation, config, registry."""

from __future__ import annotations

import math
import random
import statistics
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents import MeasurementSpec, agent_class, available_kinds, load_config, probe_all
from agents.config import AgentsConfig
from agents.errors import DeviceTooHotError, MissingRuntimeError, SpecError, UnknownDeviceError
from agents.gating import drift_flags, wait_until_cool
from agents.stats import median_ci, percentile, summarize
from agents.types import Measurement


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=0.01, max_value=1e4), min_size=1, max_size=200))
def test_summary_agrees_with_the_standard_library(samples: list[float]) -> None:
    stats = summarize(samples)
    assert stats.median == pytest.approx(statistics.median(samples))
    assert stats.mean == pytest.approx(statistics.fmean(samples))
    assert stats.minimum <= stats.p10 <= stats.median <= stats.p90 <= stats.maximum
    assert stats.mad == pytest.approx(statistics.median([abs(s - stats.median) for s in samples]))
    if len(samples) >= 6:
        assert stats.ci_low <= stats.median <= stats.ci_high
    else:
        assert math.isinf(stats.ci_rel_halfwidth)


def test_percentile_matches_numpy_linear() -> None:
    import numpy as np

    values = sorted(random.Random(0).random() for _ in range(37))
    for q in (0, 10, 33.3, 50, 90, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_median_ci_has_its_coverage() -> None:
    """Over many exponential samples, the 95% interval covers the true median at least ~95% of the time."""
    rng = random.Random(3)
    true_median = math.log(2)
    for n in (10, 30):
        covered = 0
        for _ in range(2000):
            low, high = median_ci(sorted(rng.expovariate(1.0) for _ in range(n)))
            covered += low <= true_median <= high
        assert covered / 2000 >= 0.935


def test_cooldown_waits_then_passes_or_raises() -> None:
    clock = [0.0]
    temperatures = iter([70.0, 60.0, 49.0])
    result = wait_until_cool(
        lambda: [30.0, next(temperatures)],
        limit_c=50,
        timeout_s=10,
        poll_s=1,
        clock=lambda: clock[0],
        sleep=lambda s: clock.__setitem__(0, clock[0] + s),
    )
    assert result == 49.0 and clock[0] == 2.0
    with pytest.raises(DeviceTooHotError, match=r"above the 50\.0 C limit"):
        wait_until_cool(
            lambda: [80.0],
            limit_c=50,
            timeout_s=3,
            poll_s=1,
            clock=lambda: clock[0],
            sleep=lambda s: clock.__setitem__(0, clock[0] + s),
        )
    assert wait_until_cool(lambda: None, limit_c=50, timeout_s=0) is None  # nothing exposed: nothing to gate on


def test_drift_flags() -> None:
    common = {"max_temperature_drift_c": 5.0, "max_frequency_drift": 0.1}
    assert (
        drift_flags(temperature_before_c=40, temperature_after_c=44, freqs_before_khz=[2000], freqs_after_khz=[1900], **common)
        == []
    )
    assert drift_flags(
        temperature_before_c=40, temperature_after_c=46, freqs_before_khz=[2000, 2000], freqs_after_khz=[2000, 1500], **common
    ) == [
        "temperature-drift",
        "frequency-drift",
    ]
    assert (
        drift_flags(temperature_before_c=None, temperature_after_c=60, freqs_before_khz=None, freqs_after_khz=None, **common)
        == []
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"runs": 0}, "runs must be an integer >= 1"),
        ({"warmup_runs": -1}, "warmup_runs"),
        ({"threads": 0}, "threads"),
        ({"target_rel_ci": 2.0}, "target_rel_ci"),
        ({"runs": 50, "max_runs": 10}, r"max_runs must be >= runs \(50\)"),
        ({"affinity": ()}, "affinity"),
        ({"pause_ms": -1.0}, "pause_ms"),
        ({"max_temperature_c": 500.0}, "max_temperature_c"),
    ],
)
def test_bad_specs_are_typed_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        MeasurementSpec(**kwargs)  # type: ignore[arg-type]


def test_spec_round_trip_and_key() -> None:
    spec = MeasurementSpec(runs=12, affinity=(0, 1), target_rel_ci=0.02)
    assert MeasurementSpec.from_dict(spec.to_dict()) == spec
    assert spec.key() == MeasurementSpec(runs=99, affinity=(0, 1)).key()  # runs do not change what one sample is
    assert spec.key() != MeasurementSpec(affinity=(0,)).key()
    with pytest.raises(SpecError, match="unknown field"):
        MeasurementSpec.from_dict({"runz": 3})


def test_config_file(tmp_path: Path) -> None:
    path = tmp_path / "agents.yaml"
    path.write_text(
        "adb: {host: 127.0.0.1, port: 6037}\n"
        "ssh:\n  - {name: rpi, host: 127.0.0.1, user: pi, key_file: /k, runtime: benchmark_model}\n"
    )
    config = load_config(path)
    assert config.adb is not None and config.adb.port == 6037 and config.ssh[0].runtime == "benchmark_model"
    path.write_text("ssh:\n  - {name: rpi, host: h, user: u, key_file: k, runtime: tvm}\n")
    with pytest.raises(SpecError, match="runtime must be 'ort' or 'benchmark_model'"):
        load_config(path)
    path.write_text("adb: {hots: x}\n")
    with pytest.raises(SpecError, match=r"unknown key\(s\) 'hots'; valid keys: host, port"):
        load_config(path)
    with pytest.raises(SpecError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_registry() -> None:
    assert available_kinds() == ["ort-cpu", "litert-cpu", "adb-litert", "cuda", "ssh"]
    with pytest.raises(UnknownDeviceError, match="valid kinds: ort-cpu"):
        agent_class("tpu")
    with pytest.raises(UnknownDeviceError, match=r"not an agents\.Agent subclass"):
        agent_class("agents.types:MeasurementSpec")
    with pytest.raises(MissingRuntimeError, match="cannot load"):
        agent_class("agents_nowhere.mod:Agent")


def test_probe_lists_local_runtimes_and_notes_missing_adb_server() -> None:
    from agents.config import AdbConfig

    report = probe_all(AgentsConfig(adb=AdbConfig(port=1)), kinds=["ort-cpu", "litert-cpu", "adb-litert"])
    assert [d.kind for d in report.devices] == ["ort-cpu", "litert-cpu"]
    assert any("no adb server listens at 127.0.0.1:1" in note for note in report.notes)


def test_measurement_json_round_trip() -> None:
    spec = MeasurementSpec(runs=3)
    stats = summarize([1.0, 2.0, 3.0])
    measurement = Measurement(
        samples_ms=(1.0, 2.0, 3.0), median_ms=stats.median, mean_ms=stats.mean, std_ms=stats.std, mad_ms=stats.mad,
        p10_ms=stats.p10, p90_ms=stats.p90, min_ms=1.0, max_ms=3.0, ci95_low_ms=stats.ci_low, ci95_high_ms=stats.ci_high,
        count=3, kind="ort-cpu", device_id="d", fingerprint={"cpu": "x"}, runtime="onnxruntime", runtime_version="1",
        binary_sha256=None, model_sha256="ab", spec=spec, temperature_before_c=None, temperature_after_c=None,
        cpu_freq_before_khz=(1, 2), cpu_freq_after_khz=None, flags=("frequency-drift",), timestamp="t",
    )  # fmt: skip
    data = measurement.to_dict()
    assert data["ci95_low_ms"] is None  # 3 samples: undefined, and JSON has no infinity
    import json

    assert Measurement.from_dict(json.loads(json.dumps(data))) == measurement
