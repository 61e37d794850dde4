"""``nag table`` end to end on this machine's CPU (a local farm on Ray, real ONNX Runtime, real SQLite):
build (killed with SIGKILL midway, then resumed), validate, predict, export/import OFA LUT files."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytest.importorskip("ray")

TINY = "2,2,2,2,2:3,3,0,0,3,3,0,0,3,3,0,0,3,3,0,0,3,3,0,0:3,3,0,0,3,3,0,0,3,3,0,0,3,3,0,0,3,3,0,0"
FAST = ["--runs", "5", "--warmup", "2"]


def _env(tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "agents.yaml"
    config.write_text("adb: null\n")
    return {
        **os.environ, "RAY_AUTH_MODE": "disabled", "NAG_RAY_NODE_IP": "127.0.0.2", "NAG_AGENTS_CONFIG": str(config),
        "NAG_CACHE_DIR": str(tmp_path / "cache"),
    }  # fmt: skip


def nag(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nag", *args], capture_output=True, text=True, timeout=900, env=_env(tmp_path))


def _rows(db: Path) -> int:
    try:
        with sqlite3.connect(db) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def test_build_killed_and_resumed_then_validate_predict_and_exchange(tmp_path: Path) -> None:
    db = tmp_path / "tables.db"
    build = [
        "table",
        "build",
        "--space",
        "ofa-mbv3",
        "--width",
        "1.2",
        "--resolution",
        "32",
        "--kind",
        "ort-cpu",
        "--db",
        str(db),
        *FAST,
    ]
    driver = subprocess.Popen(
        [sys.executable, "-m", "nag", *build], env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 600
    while _rows(db) < 8 and time.monotonic() < deadline and driver.poll() is None:
        time.sleep(0.5)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    before = _rows(db)
    assert 8 <= before < 96, "the driver should have been killed midway"

    # The resumed build loses its only device's actor process midway: Ray restarts it and the build completes.
    resumed, killed = _run_killing_the_device_actor(tmp_path, build, db, after_rows=before + 4)
    assert killed, "the device actor should have been killed midway"
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    measured = int(resumed.stdout.split(" measured")[0].split()[-1])
    assert measured == 96 - before and f"{before} already in" in resumed.stdout  # nothing finished was measured again
    assert "0 failed" in resumed.stdout and "quarantined" not in resumed.stderr
    assert _rows(db) == 96
    # Ray's own account of the dead worker goes to its log file, never to stdout (which holds our one summary line)
    assert resumed.stdout.strip().count("\n") == 0 and "raylet" not in resumed.stdout, resumed.stdout
    ray_log = tmp_path / "cache" / "logs" / "ray-driver.log"
    assert "worker died" in ray_log.read_text().lower() and str(ray_log) in resumed.stderr

    validated = nag(
        tmp_path,
        "table",
        "validate",
        "--db",
        str(db),
        "--kind",
        "ort-cpu",
        "--resolution",
        "32",
        "--n",
        "6",
        "--json",
        "--plot",
        str(tmp_path / "v.png"),
        *FAST,
    )
    assert validated.returncode == 0, validated.stderr[-2000:]
    report = json.loads(validated.stdout)
    for key in ("within_5pct", "within_10pct", "mape", "kendall_tau"):
        assert key in report
    assert 0 <= report["within_10pct"] <= 1 and report["mape"] >= 0 and report["n"] == 6
    assert report["calibrated"] == (report["calibration"] is not None)
    assert (tmp_path / "v.png").read_bytes()[:4] == b"\x89PNG"

    predicted = nag(tmp_path, "table", "predict", "--db", str(db), "--device", "ort-cpu", "--resolution", "32", TINY, "--json")
    assert predicted.returncode == 0, predicted.stderr
    (row,) = json.loads(predicted.stdout)
    assert row["arch"] == TINY and row["latency_ms"] > 0 and row["calibrated"] is report["calibrated"]
    assert 0 < row["low_ms"] < row["latency_ms"] < row["high_ms"]  # the 95% interval

    exported = nag(tmp_path, "table", "export-ofa", "--db", str(db), "--device", "ort-cpu", "--out", str(tmp_path / "lut"))
    assert exported.returncode == 0, exported.stderr
    lut = yaml.safe_load((tmp_path / "lut" / "32_lookup_table.yaml").read_text())
    assert len(lut) == 96 and all(set(v) == {"count", "mean", "std"} for v in lut.values())
    imported = nag(
        tmp_path, "table", "import-ofa", str(tmp_path / "lut" / "32_lookup_table.yaml"), "--device", "my-laptop", "--db", str(db)
    )
    assert imported.returncode == 0, imported.stderr
    again = nag(tmp_path, "table", "predict", "--db", str(db), "--device", "my-laptop", "--resolution", "32", TINY, "--json")
    assert again.returncode == 0, again.stderr
    uncalibrated_sum = sum(v["mean"] for k, v in lut.items() if k in _keys(TINY))
    assert json.loads(again.stdout)[0]["latency_ms"] == pytest.approx(uncalibrated_sum, rel=1e-3)


def _descendants(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of every process below ``pid``, from ``ps``."""
    table = subprocess.run(["ps", "-e", "-o", "pid=,ppid=,args="], capture_output=True, text=True, check=True).stdout
    rows = [line.split(None, 2) for line in table.splitlines() if line.strip()]
    found, below = True, {pid}
    while found:
        found = False
        for child, parent, *_ in rows:
            if int(parent) in below and int(child) not in below:
                below.add(int(child))
                found = True
    return [(int(r[0]), r[2] if len(r) > 2 else "") for r in rows if int(r[0]) in below and int(r[0]) != pid]


def _run_killing_the_device_actor(
    tmp_path: Path, argv: list[str], db: Path, *, after_rows: int
) -> tuple[subprocess.CompletedProcess[str], bool]:
    """Run ``nag ARGV``; once the store holds ``after_rows`` entries, SIGKILL the device actor's process."""
    driver = subprocess.Popen(
        [sys.executable, "-m", "nag", *argv], env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 600
    while _rows(db) < after_rows and time.monotonic() < deadline and driver.poll() is None:
        time.sleep(0.3)
    actors = [pid for pid, command in _descendants(driver.pid) if "DeviceActor" in command]
    for pid in actors:
        os.kill(pid, signal.SIGKILL)
    out, err = driver.communicate(timeout=900)
    return subprocess.CompletedProcess(driver.args, driver.returncode, out, err), bool(actors)


def _keys(arch: str) -> set[str]:
    from nag.space import get_space

    space = get_space("ofa-mbv3")
    return {b.key for b in space.blocks(space.parse(arch), resolution=32)}


def test_predict_errors_are_one_line(tmp_path: Path) -> None:
    result = nag(tmp_path, "table", "predict", "--db", str(tmp_path / "none.db"), "--device", "x", "--resolution", "32", TINY)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_build_on_threads_without_ray(tmp_path: Path) -> None:
    """The same table build on one thread per device, no Ray started: every block once, then nothing again."""
    db = tmp_path / "threads.db"
    build = ["table", "build", "--space", "ofa-mbv3", "--width", "1.2", "--resolution", "32", "--kind", "ort-cpu",
             "--db", str(db), "--runs", "3", "--warmup", "1", "--executor", "threads"]  # fmt: skip
    first = nag(tmp_path, *build)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "96 measured, 0 already in" in first.stdout and _rows(db) == 96
    assert "Started a local Ray" not in first.stderr and not (tmp_path / "cache" / "logs").exists()
    again = nag(tmp_path, *build)
    assert again.returncode == 0 and "0 measured, 96 already in" in again.stdout
    refused = nag(tmp_path, *build, "--address", "127.0.0.2:1")
    assert refused.returncode == 2 and "--executor threads is for a local farm" in refused.stderr
