"""How far whole-network measurements agree with themselves: the ceiling any table's figures can reach.

    python benchmarks/table_noise.py [--resolution 224] [--n 30] [--runs 30] [--width 1.2]

On this machine's ``ort-cpu`` (one thread, threads executor, a fresh store and model cache), builds the block
table, then measures the same ``n`` random whole networks (``nag table validate``'s seeded ones) twice, in two
separate passes, into two stores. Reported, all in ``nag table validate``'s figures:

- **pass 2 against pass 1**: one measurement predicting another of the same networks. No predictor of a single
  pass can be expected to beat this by much: its Kendall tau is the ceiling that noise (and the machine's
  drift between passes) leaves to the table's.
- **the table against pass 1**: calibrated and cross-fitted, exactly what ``nag table validate`` reports (the
  baseline, same run).
- **the table against the mean of both passes**: the same, with half the noise variance in the reference.

The issue-11 goal (Kendall tau >= 0.9) is judged against these figures in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics

from _local import local_cpu_workspace

SPACE = "ofa-mbv3"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--n", type=int, default=30)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--width", type=float, default=1.2)
    args = parser.parse_args()
    work, env = local_cpu_workspace("nag-table-noise-")
    os.environ.update(env)

    from agents import MeasurementSpec, load_config
    from farm.client import Farm
    from farm.crossval import cross_fitted_predictions
    from farm.lut import LutPredictor, network_latencies
    from farm.store import Store
    from farm.tables import build_tables, measure_tasks, network_tasks, validation_archs
    from farm.validation import ValidationReport, validate

    spec = MeasurementSpec(warmup_runs=10, runs=args.runs, threads=1)
    archs = validation_archs(SPACE, args.n)
    tasks = network_tasks(SPACE, archs, width=args.width, resolution=args.resolution)
    setting = {"space": SPACE, "width": args.width, "resolutions": [args.resolution], "kind": "ort-cpu", "spec": spec}
    with (
        Farm.local(kinds=["ort-cpu"], config=load_config(), cache_dir=env["NAG_CACHE_DIR"], executor="threads") as farm,
        Store(work / "pass1.db") as first,
        Store(work / "pass2.db") as second,
    ):
        print(f"building the block table ({args.resolution} px) ...", flush=True)
        build_tables(farm, first, **setting)
        for store, name in ((first, "pass 1"), (second, "pass 2")):
            print(f"measuring {len(tasks)} networks, {name} ...", flush=True)
            measure_tasks(farm, store, tasks, kind="ort-cpu", spec=spec, description=f"noise {name}")
        (table,) = first.tables(device="ort-cpu")
        (table2,) = second.tables(device="ort-cpu")
        predictor = LutPredictor(first, table, use_calibration=False)
        pass1 = network_latencies(first, table, statistic=predictor.statistic)
        pass2 = network_latencies(second, table2, statistic=predictor.statistic)
    m1 = [pass1[a] for a in archs]
    m2 = [pass2[a] for a in archs]
    mean = [math.sqrt(a * b) for a, b in zip(m1, m2, strict=True)]  # geometric: errors are relative
    sums = [predictor.table_sum_ms(a) for a in archs]

    def table_against(measured: list[float]) -> ValidationReport:
        return validate(cross_fitted_predictions(sums, measured, statistic=predictor.statistic), measured)

    rows = [
        ("pass 2 against pass 1 (the noise ceiling)", validate(m2, m1)),
        ("table against pass 1 (what `nag table validate` reports)", table_against(m1)),
        ("table against the mean of both passes", table_against(mean)),
    ]
    ratios = sorted(b / a for a, b in zip(m1, m2, strict=True))
    print(
        f"\nort-cpu, 1 thread, {args.runs} samples, w{args.width:g} at {args.resolution} px, {len(archs)} networks "
        f"{min(m1):.2f}-{max(m1):.2f} ms; stores in {work}\n"
    )
    print("| comparison | within +-10% | within +-5% | MAPE | Kendall tau |")
    print("|---|---:|---:|---:|---:|")
    for label, r in rows:
        print(f"| {label} | {r.within_10pct:.1%} | {r.within_5pct:.1%} | {r.mape:.1%} | {r.kendall_tau:.3f} |")
    print(
        f"\npass 2 / pass 1: median {statistics.median(ratios):.3f}, range {ratios[0]:.3f}-{ratios[-1]:.3f} "
        "(a median away from 1 is the machine's drift between the passes)"
    )


if __name__ == "__main__":
    main()
