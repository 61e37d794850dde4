"""Time to build the full ofa-mbv3 block table at five resolutions (what OFA publishes per device) on one
``ort-cpu`` agent, from an empty model cache, on each local executor.

    python benchmarks/table_resolutions.py [--resolutions 160 176 192 208 224] [--runs 30] [--executors ray threads]

Runs the real command (``nag table build`` with every ``--resolution``) into a fresh store and an empty
model cache per executor. Baseline measured in the same run: the device time the measurements themselves
report (what no orchestration can remove), so wall / device time is the cost of start-up, exports,
scheduling and storage.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import time

from _local import local_cpu_workspace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[160, 176, 192, 208, 224])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--executors", nargs="+", default=["ray", "threads"], choices=["ray", "threads"])
    args = parser.parse_args()
    print(f"ort-cpu, 1 thread, {args.runs} samples per block, resolutions {args.resolutions}, empty model cache\n")
    print("| executor | blocks | wall (s) | device time (s), baseline | wall / device time |")
    print("|---|---:|---:|---:|---:|")
    for executor in args.executors:
        work, env = local_cpu_workspace(f"nag-table5-{executor}-")
        db = work / "tables.db"
        argv = ["table", "build", "--kind", "ort-cpu", "--db", str(db), "--runs", str(args.runs), "--executor", executor]
        for resolution in args.resolutions:
            argv += ["--resolution", str(resolution)]
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "nag", *argv], check=True, env=env, capture_output=True)
        wall = time.perf_counter() - start
        with sqlite3.connect(db) as conn:
            measurements = [json.loads(m) for (m,) in conn.execute("SELECT measurement FROM entries WHERE item_kind = 'block'")]
        device = sum(m["extra"]["duration_s"] for m in measurements)
        print(f"| {executor} | {len(measurements)} | {wall:.1f} | {device:.1f} | {wall / device:.2f}x |")


if __name__ == "__main__":
    main()
