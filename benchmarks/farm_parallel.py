"""Parallel efficiency of the farm: N stand-in devices whose inference takes a known time.

    python benchmarks/farm_parallel.py [--tasks 48] [--sleep-ms 200] [--devices 1 2 4 8] [--executors ray threads]

For each N, a local Ray farm with N sleep devices (``agents.testing.sleep``) measures the same job of
``--tasks`` blocks, one sample of one inference each (no warm-up), into a fresh SQLite store. The baseline
is the ideal makespan, total device time / N, computed from the device time the measurements themselves
report; the table gives makespan / ideal and the orchestration overhead per measurement,
(makespan - ideal) x N / tasks. Exports are cached before timing (their cost is not orchestration).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no traffic off this machine
os.environ.setdefault("NAG_RAY_NODE_IP", "127.0.0.2")

from agents import AgentsConfig, MeasurementSpec
from farm.client import Farm
from farm.store import Store
from farm.tables import block_tasks, measure_tasks
from farm.worker import task_blocks
from nag.space.export import cached_export

KIND = "agents.testing.sleep:SleepAgent"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=48)
    parser.add_argument("--sleep-ms", type=float, default=200.0)
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--executors", nargs="+", default=["ray", "threads"], choices=["ray", "threads"])
    args = parser.parse_args()
    os.environ["NAG_SLEEP_MS"] = str(args.sleep_ms)
    work = Path(tempfile.mkdtemp(prefix="nag-bench-"))
    tasks = block_tasks("ofa-mbv3", width=1.2, resolutions=[32])[: args.tasks]
    for task in tasks:  # warm the export cache the devices read
        cached_export(task_blocks(task), fmt="onnx", cache_dir=work / "cache")
    spec = MeasurementSpec(warmup_runs=0, runs=1)
    print(f"{len(tasks)} tasks of {args.sleep_ms:g} ms on N sleep devices (2 cores)\n")
    print(
        "| executor | devices N | makespan (s) | ideal = device time / N (s) | makespan / ideal | overhead per measurement (ms) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for executor, n in [(e, n) for e in args.executors for n in args.devices]:
        os.environ["NAG_SLEEP_DEVICES"] = str(n)
        with (
            Farm.local(kinds=[KIND], config=AgentsConfig(adb=None), cache_dir=str(work / "cache"), executor=executor) as farm,
            Store(work / f"{executor}-n{n}.db") as store,
        ):
            start = time.perf_counter()
            report = measure_tasks(farm, store, tasks, kind=KIND, spec=spec, description=f"bench N={n}")
            makespan = time.perf_counter() - start
            rows = store.rows(store.tables()[0], "block")
        assert report.done == len(tasks) and not report.failed
        device_s = sum(r.median_ms for r in rows if r.median_ms is not None) / 1000.0
        ideal = device_s / n
        overhead_ms = (makespan - ideal) * n / len(tasks) * 1000.0
        print(f"| {executor} | {n} | {makespan:.2f} | {ideal:.2f} | {makespan / ideal:.2f}x | {overhead_ms:.1f} |")


if __name__ == "__main__":
    main()
