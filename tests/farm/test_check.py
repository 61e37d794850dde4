"""Fleet agreement (``nag farm check``): the arithmetic on made-up measurements, then stand-in phones of which
one is 15% slower, on the farm without Ray and through the command on a Ray farm."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agents import AgentsConfig, Measurement, MeasurementSpec
from farm.check import agreement, check_fleet
from farm.client import Farm
from farm.reference import REFERENCE_COUNT, reference_archs
from farm.registry import DeviceGroup
from nag.errors import SettingError
from nag.space import get_space
from tests.farm.test_store import make_measurement

GROUP = DeviceGroup("abc", "litert", "2.3")


def _measurement(median: float, spread: float = 0.02) -> Measurement:
    """30 samples spread evenly over median x (1 +- spread): the statistics and CI an agent would compute."""
    return make_measurement([median * (1 + spread * (i - 14.5) / 14.5) for i in range(30)])


def test_reference_networks_span_the_cost_range_and_are_fixed() -> None:
    space = get_space("ofa-mbv3")
    refs = reference_archs("ofa-mbv3")
    costs = [space.costs(space.parse(a)).madds for a in refs]
    assert len(refs) == REFERENCE_COUNT == len(set(refs)) and costs == sorted(costs) and costs[-1] > 1.5 * costs[0]
    assert reference_archs("ofa-mbv3") == refs


def test_the_odd_device_of_three_is_flagged_and_the_others_agree() -> None:
    refs = ["r1", "r2", "r3"]
    base = {"r1": 2.0, "r2": 5.0, "r3": 9.0}
    results = {
        "a": {r: _measurement(base[r] * 1.01) for r in refs},
        "b": {r: _measurement(base[r] * 0.99) for r in refs},
        "c": {r: _measurement(base[r] * 1.15) for r in refs},
    }
    found = {d.device_id: d for d in agreement(results, dict.fromkeys(results, GROUP), tolerance=0.05)}
    assert found["c"].flagged and found["c"].ratio == pytest.approx(1.15 / 1.01, rel=1e-9)
    assert found["c"].low > 1.05 and "1.139x its group's median" in found["c"].note
    assert not found["a"].flagged and not found["b"].flagged and found["a"].peers == 3
    noisy = {d: {r: _measurement(m.median_ms, spread=1.5) for r, m in rs.items()} for d, rs in results.items()}
    assert not any(d.flagged for d in agreement(noisy, dict.fromkeys(noisy, GROUP), tolerance=0.05))  # noise: not proven


def test_groups_are_compared_apart_and_a_lone_device_is_not_judged() -> None:
    other = DeviceGroup("def", "litert", "2.3")
    results = {"a": {"r": _measurement(1.0)}, "b": {"r": _measurement(1.0)}, "c": {"r": _measurement(3.0)}}
    found = {d.device_id: d for d in agreement(results, {"a": GROUP, "b": GROUP, "c": other}, tolerance=0.05)}
    assert not any(d.flagged for d in found.values())  # c is slower, but it is another model of phone
    assert found["c"].peers == 1 and "alone in its group" in found["c"].note and math.isinf(found["c"].high)


SLEEP = "agents.testing.sleep:SleepAgent"
SPEC = MeasurementSpec(warmup_runs=1, runs=25)


@pytest.fixture
def three_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three stand-in devices of one model whose inference sleeps 50 ms; the third is 15% slower. (Sleeping, not
    computing: devices that share this machine's two cores would disagree through contention alone.)"""
    monkeypatch.setenv("NAG_SLEEP_DEVICES", "3")
    monkeypatch.setenv("NAG_SLEEP_MS", "50")
    monkeypatch.setenv("NAG_SLEEP_SLOWDOWN", "1,1,1.15")


def test_a_device_15_percent_slower_is_flagged_then_quarantined(three_devices: None, tmp_path: Path) -> None:
    config = AgentsConfig(adb=None, local=False)
    with Farm.local(kinds=[SLEEP], config=config, cache_dir=str(tmp_path / "cache"), executor="threads") as farm:
        found = check_fleet(farm, kind=SLEEP, space="ofa-mbv3", width=1.2, resolution=96, spec=SPEC, quarantine=True)
        status = {d["device_id"].split("@")[0]: d for d in farm.status()["devices"]}
        with pytest.raises(SettingError, match="--tolerance must be a fraction"):
            check_fleet(farm, kind=SLEEP, space="ofa-mbv3", width=1.2, resolution=96, spec=SPEC, tolerance=5)
    by_id = {d.device_id.split("@")[0]: d for d in found.devices}
    assert [f.split("@")[0] for f in found.flagged] == ["sleep-2"] and found.failed == ()
    assert 1.10 < by_id["sleep-2"].ratio < 1.20 and by_id["sleep-2"].networks == REFERENCE_COUNT
    assert all(abs(by_id[f"sleep-{i}"].ratio - 1) < 0.03 for i in (0, 1))
    assert status["sleep-2"]["health"] == "quarantined" and "fleet check" in status["sleep-2"]["detail"]
    assert status["sleep-2"]["flag"] and not status["sleep-0"]["flag"]


def test_nag_farm_check_on_a_ray_farm(three_devices: None, tmp_path: Path) -> None:
    config = tmp_path / "agents.yaml"
    config.write_text("local: false\nadb: null\n")
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "NAG_RAY_NODE_IP": "127.0.0.2", "NAG_AGENTS_CONFIG": str(config),
           "NAG_CACHE_DIR": str(tmp_path / "cache")}  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "nag", "farm", "check", "--kind", SLEEP, "--resolution", "96", "--runs", "25",
         "--warmup", "1", "--json"],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert [f.split("@")[0] for f in report["flagged"]] == ["sleep-2"] and len(report["references"]) == REFERENCE_COUNT
    assert len(report["devices"]) == 3 and all(set(d) >= {"ratio", "low", "high", "flagged", "note"} for d in report["devices"])
    bad = subprocess.run(
        [sys.executable, "-m", "nag", "farm", "check", "--kind", SLEEP, "--tolerance", "0"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert bad.returncode == 2 and "--tolerance must be a fraction" in bad.stderr
