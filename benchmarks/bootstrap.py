"""A new device's table from N whole networks (``nag table bootstrap``) against its full table, on real kinds.

    python benchmarks/bootstrap.py [--resolution 160] [--n 20] [--validate 30] [--case threads] [--case litert]

Cases (each a source table and a "new device" measured for real on this machine):
- ``threads``: source ``ort-cpu`` at 1 thread, new device ``ort-cpu`` at 2 threads;
- ``litert``: source ``ort-cpu`` (ONNX Runtime), new device ``litert-cpu`` (LiteRT, ``.tflite`` models).

For each: the source's full table (``nag table build``); the new device's full table and ``--validate``
random networks measured on it (``nag table build`` + ``nag table validate``: the baseline, its figures
calibrated and cross-fitted); then ``nag table bootstrap --n N`` into a fresh store, and its predictions of
the same validation networks (which it never measured) against their measurements. Reported: share within
+-10%, MAPE and Kendall tau of the bootstrap and of the full table, and the measurement time of each.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _local import local_cpu_workspace

CASES = {
    "threads": (("ort-cpu", "1"), ("ort-cpu", "2")),
    "litert": (("ort-cpu", "1"), ("litert-cpu", "1")),
}


def nag(env: dict[str, str], *args: str) -> tuple[float, str]:
    """Run ``nag ARGS``; (wall seconds, stdout)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "nag", *args], check=True, env=env, capture_output=True, text=True)
    return time.perf_counter() - start, done.stdout


def run_case(name: str, work: Path, env: dict[str, str], args: argparse.Namespace) -> dict[str, object]:
    (source_kind, source_threads), (kind, threads) = CASES[name]
    setting = ["--resolution", str(args.resolution), "--runs", str(args.runs), "--executor", "threads"]
    source_db, full_db, boot_db = (str(work / f"{name}-{what}.db") for what in ("source", "full", "boot"))
    nag(env, "table", "build", "--kind", source_kind, "--threads", source_threads, "--db", source_db, *setting)
    full_s, _ = nag(env, "table", "build", "--kind", kind, "--threads", threads, "--db", full_db, *setting)
    validate_s, out = nag(
        env, "table", "validate", "--kind", kind, "--threads", threads, "--db", full_db, "--n", str(args.validate), "--json",
        *setting,
    )  # fmt: skip
    full = json.loads(out)
    boot_s, out = nag(
        env, "table", "bootstrap", "--from", source_kind, "--from-db", source_db, "--to", kind, "--threads", threads,
        "--db", boot_db, "--n", str(args.n), "--json", *setting,
    )  # fmt: skip
    boot = json.loads(out)

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from farm.lut import LutPredictor, network_latencies, select_table
    from farm.store import Store
    from farm.tables import validation_archs
    from farm.validation import validate

    archs = validation_archs("ofa-mbv3", args.validate)
    with Store(full_db, create=False) as store:
        table = select_table(store, device=kind, space="ofa-mbv3", resolution=args.resolution)
        measured = network_latencies(store, table)
    with Store(boot_db, create=False) as store:
        table = select_table(store, device=kind, space="ofa-mbv3", resolution=args.resolution)
        predicted = LutPredictor(store, table).predict_ms(archs)
    unseen = validate(predicted, [measured[a] for a in archs])
    return {
        "case": name, "from": f"{source_kind} {source_threads} thread(s)", "to": f"{kind} {threads} thread(s)",
        "bootstrap": unseen.to_dict(), "bootstrap_cross_fitted": boot["tables"][0]["cross_fitted"],
        "full": full, "full_s": full_s + validate_s, "boot_s": boot_s, "n": args.n, "validate": args.validate,
    }  # fmt: skip


def report(results: list[dict[str, object]], args: argparse.Namespace) -> None:
    load = os.getloadavg()
    print(f"\nresolution {args.resolution}, {args.runs} samples a measurement, load average at the end {load[0]:.1f}\n")
    print("| case | table | networks measured | within +-10% | MAPE | Kendall tau | measuring (s) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in results:
        full, boot, fit = r["full"], r["bootstrap"], r["bootstrap_cross_fitted"]  # type: ignore[index]
        case = f"{r['from']} -> {r['to']}"
        print(
            f"| {case} | full table (96 blocks), calibrated, cross-fitted on the {r['validate']} networks | "
            f"96 blocks + {r['validate']} | {full['within_10pct']:.0%} | {full['mape']:.1%} | {full['kendall_tau']:.3f} | {r['full_s']:.0f} |"  # type: ignore[index]
        )
        print(
            f"| {case} | bootstrap N={r['n']}, on the {r['validate']} networks it never measured | {r['n']} | "
            f"{boot['within_10pct']:.0%} | {boot['mape']:.1%} | {boot['kendall_tau']:.3f} | {r['boot_s']:.0f} |"  # type: ignore[index]
        )
        print(
            f"| {case} | bootstrap N={r['n']}, its own cross-fitted report | {r['n']} | {fit['within_10pct']:.0%} | "  # type: ignore[index]
            f"{fit['mape']:.1%} | {fit['kendall_tau']:.3f} | |"  # type: ignore[index]
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=160)
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--validate", type=int, default=30)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--case", action="append", choices=sorted(CASES), default=None)
    args = parser.parse_args()
    work, env = local_cpu_workspace("nag-bootstrap-bench-")
    results = [run_case(name, work, env, args) for name in args.case or sorted(CASES)]
    (work / "results.json").write_text(json.dumps(results, indent=2))
    report(results, args)
    print(f"\nstores and results.json in {work}")


if __name__ == "__main__":
    main()
