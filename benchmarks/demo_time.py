"""``nag demo`` end to end on this machine: a first run from empty caches, then a second run that reuses it.

    python benchmarks/demo_time.py [--quick]

Runs the demo (the default configuration, or ``--quick``) into a temporary folder with an empty model
cache, then again into the same folder. The baseline is the first run; the table gives each stage's
seconds in both runs and the second run's total as a ratio of the first. Also prints the report's
headline figures (table error, accuracy-latency trend, generated architectures). The local farm runs on
loopback (``NAG_RAY_NODE_IP=127.0.0.2``) without token auth, as the tests do.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        os.environ.update(
            NAG_CACHE_DIR=str(Path(scratch) / "cache"), NAG_RAY_NODE_IP="127.0.0.2", RAY_AUTH_MODE="disabled",
            RAY_USAGE_STATS_ENABLED="0",
        )  # fmt: skip
        from nag.demo import QUICK, DemoConfig, run_demo

        config = QUICK if args.quick else DemoConfig()
        runs = []
        for _ in range(2):
            started = time.perf_counter()
            result = run_demo(Path(scratch) / "demo", config, progress=False)
            runs.append((time.perf_counter() - started, result))
    (first_s, first), (second_s, second) = runs
    print(f"nag demo{' --quick' if args.quick else ''}: {os.cpu_count()} CPUs")
    print(f"{'stage':48}{'first (s)':>10}{'second (s)':>11}")
    for a, b in zip(first.stages, second.stages, strict=True):
        print(f"{a.name:48}{a.seconds:10.1f}{b.seconds:11.1f}{'  (reused)' if b.reused else ''}")
    print(f"{'total, including Ray start and the report':48}{first_s:10.1f}{second_s:11.1f}   ratio {second_s / first_s:.2f}x")
    validation = first.table["validation"]
    trend = first.summary["sampled"]["accuracy_vs_latency"]
    print(
        f"table: {validation['n']} networks, MAPE {validation['mape']:.1%}, within 10% {validation['within_10pct']:.0%}, "
        f"Kendall tau {validation['kendall_tau']:.3f} (calibrated: {validation['calibrated']})"
    )
    print(
        f"accuracy vs latency over {first.summary['sampled']['n']} subnets: Spearman rho {trend['rho']:.3f} (p {trend['p_value']:.2g})"
    )
    print("quintile mean top-1: " + ", ".join(f"{100 * q['y']:.1f}%" for q in trend["quintiles"]))
    for g in first.generated:
        print(f"  budget {g['budget_ms']:g} ms: measured {g['measured_ms']:.2f} ms, top-1 {100 * g['top1']:.1f}%")


if __name__ == "__main__":
    main()
