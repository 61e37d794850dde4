"""Time to build the full ofa-mbv3 block table at one resolution on one ``ort-cpu`` agent, and the table's
validation figures against measured whole networks.

    python benchmarks/table_build.py [--resolution 224] [--n 30] [--runs 30]

Runs the real commands (``nag table build``, then ``nag table validate``) on a local farm into a fresh
store. Baselines measured in the same run: for the build, the device time the 96 measurements report
(the part no orchestration can remove), so wall / device time is the cost of exports, scheduling and
storage; for the validation, the uncalibrated table sum, against which the calibrated (cross-fitted)
figures are compared.
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
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--n", type=int, default=30)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    work, env = local_cpu_workspace("nag-table-bench-")
    db = work / "tables.db"
    common = ["--kind", "ort-cpu", "--db", str(db), "--resolution", str(args.resolution), "--runs", str(args.runs)]
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "nag", "table", "build", *common], check=True, env=env)
    build_s = time.perf_counter() - start
    with sqlite3.connect(db) as conn:
        measurements = [json.loads(m) for (m,) in conn.execute("SELECT measurement FROM entries WHERE item_kind = 'block'")]
    device_s = sum(m["extra"]["duration_s"] for m in measurements)
    start = time.perf_counter()
    validated = subprocess.run(
        [sys.executable, "-m", "nag", "table", "validate", *common, "--n", str(args.n), "--json", "--plot", str(work / "validation.png")],
        check=True, env=env, capture_output=True, text=True,
    )  # fmt: skip
    validate_s = time.perf_counter() - start
    report = json.loads(validated.stdout)
    raw = report["uncalibrated"]
    print(f"\nort-cpu, 1 thread, {args.runs} samples per block, resolution {args.resolution}; store and plot in {work}\n")
    print("| figure | value | baseline (same run) | ratio |")
    print("|---|---:|---:|---:|")
    print(
        f"| full table build, {len(measurements)} blocks (wall s) | {build_s:.0f} | device time {device_s:.0f} s | {build_s / device_s:.2f}x |"
    )
    print(f"| validation of {args.n} networks (wall s) | {validate_s:.0f} | | |")
    for key, label in (
        ("within_5pct", "within +-5%"),
        ("within_10pct", "within +-10%"),
        ("mape", "MAPE"),
        ("kendall_tau", "Kendall tau"),
    ):
        value, base = report[key], raw[key]
        ratio = f"{value / base:.2f}x" if base else "-"
        print(f"| {label}, calibrated (cross-fitted) | {value:.3f} | uncalibrated sum {base:.3f} | {ratio} |")
    calibration = report["calibration"]
    print(
        f"\ncalibration: latency = {calibration['offset_ms']:.3f} ms + {calibration['scale']:.3f} x table sum (n={calibration['n']}, outliers {calibration['outliers']})"
    )


if __name__ == "__main__":
    main()
