"""``nag bench`` on Ray: methods as parallel Ray tasks on a cluster, and answers measured on the farm.

Everything stays on loopback: a Ray head on 127.0.0.2 with authentication off for the test cluster, and a
local farm whose one ort-cpu device measures real ONNX Runtime networks at 64 px.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray")

from agents import AgentsConfig, MeasurementSpec
from farm.client import Farm
from farm.lut import LutPredictor, network_latencies
from farm.scheduler import Task
from farm.store import Store
from farm.tables import measure_tasks
from nag.search.known_answer import KnownAnswerProblem
from nag.space import get_space

SPACE = get_space("ofa-mbv3")
BENCH_SPEC = MeasurementSpec(warmup_runs=5, runs=20, threads=1)  # what 'nag bench --measure' measures with


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "RAY_AUTH_MODE": "disabled", "NAG_RAY_NODE_IP": "127.0.0.2", **extra}


def _nag(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nag", *args], capture_output=True, text=True, timeout=600, env=env or _env())


@pytest.fixture(scope="module")
def head() -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.2", 0))
        port = int(sock.getsockname()[1])
    ray_cli = [sys.executable, "-m", "ray.scripts.scripts"]
    started = subprocess.run(
        [*ray_cli, "start", "--head", "--node-ip-address=127.0.0.2", f"--port={port}", "--num-cpus=2",
         "--include-dashboard=false", "--disable-usage-stats"],
        capture_output=True, text=True, timeout=180, env=_env(),
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    try:
        yield f"127.0.0.2:{port}"
    finally:
        subprocess.run([*ray_cli, "stop", "--force"], capture_output=True, timeout=180, env=_env())


@pytest.fixture(scope="module")
def table_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = KnownAnswerProblem(seed=0).table(300, seed=1)
    path = tmp_path_factory.mktemp("table") / "archs.csv"
    lines = [
        "arch,latency_ms,accuracy",
        *(f'"{a}",{lat},{acc}' for a, lat, acc in zip(rows.archs, rows.latency_ms, rows.accuracy, strict=True)),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_methods_run_as_ray_tasks_answer_as_they_do_in_process(head: str, table_csv: Path, tmp_path: Path) -> None:
    args = ["bench", "--table", str(table_csv), "--budgets-ms", "30,40", "--methods", "random,local,evolution",
            "--evolution-generations", "5", "--random-samples", "200", "--json", "--quiet"]  # fmt: skip
    here = _nag(*args, "--out", str(tmp_path / "here"))
    there = _nag(*args, "--out", str(tmp_path / "there"), "--ray-address", head)
    assert here.returncode == 0, here.stderr[-3000:]
    assert there.returncode == 0, there.stderr[-3000:]
    answers = [{(r["method"], r["budget_ms"]): r["arch"] for r in json.loads(p.stdout)["results"]} for p in (here, there)]
    assert len(answers[0]) == 6 and answers[0] == answers[1]  # the same seeded searches, run on the cluster


def test_ray_address_with_nothing_there_exits_2(table_csv: Path, tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.2", 0))
        port = int(sock.getsockname()[1])  # nothing listens here
    found = _nag("bench", "--table", str(table_csv), "--budgets-ms", "30", "--methods", "random", "--out", str(tmp_path / "b"),
                 "--ray-address", f"127.0.0.2:{port}", "--quiet")  # fmt: skip
    assert found.returncode == 2 and "cannot reach a Ray cluster" in found.stderr and "Traceback" not in found.stderr


@pytest.fixture(scope="module")
def farm_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """A store whose ort-cpu table (64 px) is a synthetic block table under this machine's real device group.

    One real network is measured first, to learn the group (fingerprint, runtime, version) the farm's
    ort-cpu device writes under; the blocks are then put under that same table, so that the table
    predicts and the farm measures into one table, as after 'nag table build'.
    """
    db = tmp_path_factory.mktemp("farm") / "tables.db"
    seed_arch = SPACE.format(SPACE.sample_many(1, seed=99)[0])
    env = {"RAY_AUTH_MODE": "disabled", "NAG_RAY_NODE_IP": "127.0.0.2"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with Farm.local(kinds=["ort-cpu"], config=AgentsConfig(adb=None)) as farm, Store(db) as store:
            report = measure_tasks(
                farm,
                store,
                [Task("ofa-mbv3", 1.2, 64, "network", seed_arch)],
                kind="ort-cpu",
                spec=BENCH_SPEC,
                description="seed",
            )
            assert report.failed == []
            (key,) = store.tables(device="ort-cpu")
            rng = random.Random(0)
            for block in SPACE.all_blocks(width=1.2, resolution=64):
                store.put_summary(key, "block", block.key, mean_ms=0.2 + rng.random(), std_ms=0.01, count=30)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return db, key


def test_measure_scores_every_answer_by_its_measurement_on_the_farm(farm_db: tuple[Path, object], tmp_path: Path) -> None:
    db, key = farm_db
    with Store(db) as store:
        lut = LutPredictor(store, key)  # type: ignore[arg-type]
    predicted = lut.predict_ms(SPACE.sample_many(200, seed=4))
    budgets = [float(np.quantile(predicted, q)) for q in (0.3, 0.7)]
    found = _nag(
        "bench", "--db", str(db), "--kind", "ort-cpu", "--width", "1.2", "--resolution", "64", "--accuracy", "dynast",
        "--methods", "random", "--random-samples", "60", "--draws", "20", "--budgets-ms", ",".join(f"{b:.4f}" for b in budgets),
        "--measure", "--json", "--quiet", "--out", str(tmp_path / "bench"),
    )  # fmt: skip
    assert found.returncode == 0, found.stderr[-3000:]
    results = json.loads(found.stdout)["results"]
    assert len(results) == 2
    with Store(db) as store:
        measured = network_latencies(store, dataclasses.replace(key, spec_key=BENCH_SPEC.key()), statistic=lut.statistic)  # type: ignore[type-var]
        lut = LutPredictor(store, key)  # type: ignore[arg-type]
    for row in results:
        assert row["latency_ms"] == pytest.approx(measured[row["arch"]])  # the farm's number, not the table's
        assert row["latency_ms"] != pytest.approx(lut.predict_ms([row["arch"]])[0])
        assert row["feasible"] == (row["latency_ms"] <= row["budget_ms"])
    document = json.loads((tmp_path / "bench" / "bench.json").read_text())
    assert "measured on the farm" in json.dumps(document["task"])
