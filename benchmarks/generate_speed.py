"""Speed of ``nag generate``: per budget in process, and a 10-budget process, against the torch path.

    python benchmarks/generate_speed.py [--repeats 7] [--baseline-src DIR] [--out DIR]

Makes two small run directories on the synthetic table (:mod:`nag.search.synthetic`; the networks have the
default sizes, only the training is short): one searched on the table's accuracy (``nag generate`` then
selects by the run's surrogate), one with ``--accuracy dynast`` (selects by the DyNAS-T predictor and refines
under it). Each is measured three ways, in the same run:

- **numpy**: the run directory as ``nag search`` now writes it (``inference.npz``): no torch, no Ray;
- **torch path**: the same directory without ``inference.npz`` (as an older nag wrote it), which loads through
  torch, as every run did before;
- **before** (with ``--baseline-src DIR``, a checkout of the code before this change, e.g. ``git worktree add
  /tmp/nag-base <rev>``): that code on the same directory, the baseline of the figures in BENCHMARKS.md.

In process: the median of the per-budget ``time_ms`` that ``generate`` reports (loading and the warm-up
excluded), over ``--repeats`` calls for 10 budgets, and the same for each budget asked alone (so the effect
of sampling all budgets in one pass shows). Process: the median wall time of ``python -m nag generate --run
RUN --budget ... (10 budgets) --json`` from start to exit. Prints Markdown tables for BENCHMARKS.md.

The baseline's answers are compared with the numpy path's (marked "answers differ!" where they are not the
same architectures, latencies and accuracies): other code on the same run directory, so a change of what
``generate`` answers shows. The torch path's are not compared: it copies the same weights into the same numpy
inference, so its answers equal the numpy path's by construction. Whether that numpy inference answers as
the run's torch networks do is checked in tests/search/test_numpy_inference.py, against the networks run by torch.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGETS = [28.0, 30.0, 32.0, 34.0, 36.0, 38.0, 40.0, 42.0, 44.0, 46.0]
TRAINING = ["--evaluator-steps", "1000", "--generator-iterations", "300", "--quiet"]
IN_PROCESS = (
    "import json, sys, time\n"
    "from nag.search.api import generate\n"
    "run, budgets, alone = sys.argv[1], [float(b) for b in sys.argv[2].split(',')], sys.argv[3] == '1'\n"
    "options = {}\n"
    "if sys.argv[4] == 'source':  # as nag generate does for a run searched with --accuracy dynast\n"
    "    from nag.accuracy.dynast import dynast_source\n"
    "    options = {'select_by': 'source', 'accuracy': dynast_source()}\n"
    "started = time.perf_counter()\n"
    "answers = [generate(run, [b], **options)[0] for b in budgets] if alone else generate(run, budgets, **options)\n"
    "answers = [a if isinstance(a, dict) else a.to_dict() for a in answers]  # the baseline's generate() returned dicts\n"
    "print(json.dumps({'time_ms': [a['time_ms'] for a in answers], 'call_s': time.perf_counter() - started,\n"
    "                  'answers': [[a['arch'], a['latency_ms'], a['accuracy']] for a in answers]}))\n"
)


def _env(source: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(source)}


def _nag(source: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "nag", *args], capture_output=True, text=True, env=_env(source), check=False)
    if result.returncode != 0:
        raise SystemExit(f"nag {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result


def make_runs(folder: Path) -> dict[str, Path]:
    """The two run directories, and copies of each without inference.npz (the torch path)."""
    sys.path.insert(0, str(ROOT))
    from nag.data import write_csv
    from nag.search.synthetic import SyntheticProblem

    table = SyntheticProblem(seed=0).table(2000, seed=1)
    csv = write_csv(folder / "table.csv", table.archs, table.latency_ms, table.accuracy)
    runs = {"surrogate": folder / "run", "source (dynast, refined)": folder / "run-dynast"}
    if all((run / "manifest.json").is_file() for run in runs.values()):
        return runs  # --out with the runs of an earlier invocation
    _nag(ROOT, "search", "--table", str(csv), "--out", str(runs["surrogate"]), *TRAINING)
    _nag(ROOT, "search", "--table", str(csv), "--accuracy", "dynast", "--num-archs", "2000", "--out", str(runs["source (dynast, refined)"]), *TRAINING)  # fmt: skip
    return runs


def without_inference_file(run: Path, where: Path) -> Path:
    """``run`` as a nag from before inference.npz wrote it (and without the stored source fit)."""
    shutil.rmtree(where, ignore_errors=True)
    copy = Path(shutil.copytree(run, where))
    for name in ("inference.npz", "accuracy.npz"):
        (copy / name).unlink(missing_ok=True)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["files"] = [f for f in manifest["files"] if f != "inference.npz"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy


def in_process(source: Path, run: Path, *, alone: bool, repeats: int, select_by: str) -> tuple[float, float, list[list[object]]]:
    """Median per-budget time_ms and median generate() wall per budget (load included; a source is fitted
    before), and the answers."""
    per_budget, calls, answers = [], [], []
    for _ in range(repeats):
        argv = [sys.executable, "-c", IN_PROCESS, str(run), ",".join(map(str, BUDGETS)), "1" if alone else "0", select_by]
        found = json.loads(subprocess.run(argv, capture_output=True, text=True, env=_env(source), check=True).stdout)
        per_budget += found["time_ms"]
        calls.append(found["call_s"] * 1000 / len(BUDGETS))
        answers = found["answers"]
    return statistics.median(per_budget), statistics.median(calls), answers


def process_wall(source: Path, run: Path, repeats: int) -> float:
    argv = [
        sys.executable,
        "-m",
        "nag",
        "generate",
        "--run",
        str(run),
        *[x for b in BUDGETS for x in ("--budget", str(b))],
        "--json",
    ]
    subprocess.run(argv, check=True, capture_output=True, env=_env(source))  # warm the page cache
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, env=_env(source))
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def bare_python(repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--baseline-src", type=Path, default=None, help="a checkout of the code before this change")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="keep the run directories here, and reuse them on the next run (default: a temporary folder)",
    )
    args = parser.parse_args()
    folder = args.out or Path(tempfile.mkdtemp(prefix="nag-generate-speed-"))
    folder.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    runs = make_runs(folder)
    print(
        f"## `nag generate` speed ({len(BUDGETS)} budgets, median of {args.repeats}; load average {load_before[0]:.1f} at the start)\n"
    )
    print(
        "| selection | path | in process, ms a budget (`time_ms`) | each budget alone | `generate()` call incl. load, ms a budget | process, 10 budgets (s) |"
    )
    print("|---|---|---:|---:|---:|---:|")
    figures: dict[tuple[str, str], tuple[float, float]] = {}
    for selection, run in runs.items():
        old = without_inference_file(run, folder / f"{run.name}-old")
        variants = [("numpy (inference.npz)", ROOT, "new"), ("torch path (no inference.npz)", ROOT, "old")]  # (name, code, run)
        if args.baseline_src is not None:
            variants.append(("before this change", args.baseline_src.resolve(), "old"))
        reference = None  # the numpy path's answers
        for name, source, which in variants:
            target = run if which == "new" else old
            select_by = "source" if "source" in selection else "surrogate"
            per_budget, call, answers = in_process(source, target, alone=False, repeats=args.repeats, select_by=select_by)
            alone, _, _ = in_process(source, target, alone=True, repeats=max(1, args.repeats // 2), select_by=select_by)
            wall = process_wall(source, target, args.repeats)
            same = "" if name != "before this change" or answers == reference else " (answers differ!)"
            reference = reference or answers
            figures[(selection, name)] = (per_budget, wall)
            print(f"| {selection} | {name}{same} | {per_budget:.2f} | {alone:.2f} | {call:.1f} | {wall:.2f} |")
    print(f"\n`python -c pass`: {bare_python(args.repeats):.3f} s. Load average at the end: {os.getloadavg()[0]:.1f}.\n")
    baseline = "before this change" if args.baseline_src is not None else "torch path (no inference.npz)"
    print(f"| selection | in process, ratio to {baseline} | process, ratio |")
    print("|---|---:|---:|")
    for selection in runs:
        new, base = figures[(selection, "numpy (inference.npz)")], figures[(selection, baseline)]
        print(f"| {selection} | {new[0] / base[0]:.2f}x | {new[1] / base[1]:.2f}x |")
    print(f"\n(run directories in {folder})")


if __name__ == "__main__":
    main()
