"""Wall and CPU time of ``nag search`` (defaults) on a 16,000-row table against a baseline revision, with
the search's quality on both; then the per-budget time of ``nag generate`` against per-budget searches.

    python benchmarks/search_speed.py [--rows 16000] [--baseline REV] [--repeats 1] [--budgets 10] [--search-only]

The table comes from :class:`nag.search.synthetic.SyntheticProblem` (exact additive latency, accuracy
with diminishing returns), so the accuracy of every answer, and the best possible one, are known.

**Search speed against a baseline, same run.** The baseline is ``nag search`` as it was at ``--baseline``
(default ``00e6278``, main before issue 13's search work): that revision's ``nag/`` is extracted with
``git archive`` and run as a process on the same table, alternating with this tree's ``nag search``
(``--repeats`` pairs; the first run of each pair alternates). Reported per run: wall seconds, the
process's user and system CPU seconds (less sensitive to other load on the machine than wall time), the
load average before and after, and the stages from the run's ``metrics.json`` (prepare: labels, split and
accuracy surrogate; evaluator: its training and held-out pairwise accuracy; generator: its training and
the selection inference; the rest of the process: start-up, imports, reading the table, writing the run).

**Quality, same seeds.** Both run directories are answered by this tree's ``generate`` at ``--budgets``
budgets (evenly between the 10% and 90% latency quantiles); the regret is the exact optimum's accuracy
minus the answer's true accuracy, in points of accuracy. Also the evaluator's held-out pairwise accuracy.

**Generation** (skipped with ``--search-only``; the issue-5 comparison). Baselines measured in the same
run, with the same latency predictor and the same accuracy estimate (the run's surrogate) as PNAG's
inference:

- per-budget search, the alternative PNAG replaces (paper Table 4): OFA-style regularised evolution for
  each budget (population 100, 25 parents, mutation probability 0.1, half mutation half crossover,
  ``--generations`` generations, infeasible children discarded). Its total over all budgets is set
  against ``nag search``'s one-off cost, and its time per budget against ``generate``'s;
- random search per budget: 1,000 uniformly sampled architectures, the feasible one with the best
  estimate (the cheapest thing that answers a budget without training anything).

Prints Markdown tables for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nag.data import write_csv
from nag.search.api import generate as generate_in_process
from nag.search.model import SearchModel
from nag.search.rundir import load_run
from nag.search.synthetic import SyntheticProblem

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "00e6278"  # main before issue 13's search work
STAGES = ("prepare", "evaluator", "generator", "rest of the process")


@dataclass(frozen=True)
class SearchRun:
    """One ``nag search`` process: its times and the run directory it wrote."""

    code: str  # "baseline" or "this tree"
    run_dir: Path
    wall_s: float
    user_s: float
    system_s: float
    load_before: float  # 1-minute load average
    load_after: float
    stages_s: dict[str, float]


def baseline_tree(revision: str, into: Path) -> Path:
    """``nag/`` as it was at ``revision`` (``git archive``), extracted under ``into``; returns the folder to import from."""
    archive = subprocess.run(["git", "archive", revision, "nag"], cwd=ROOT, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def nag_process(source: Path, *args: str) -> tuple[float, float, float, subprocess.CompletedProcess[str]]:
    """Run ``python -m nag ARGS`` importing ``nag`` from ``source`` (its working directory, which ``-m`` puts first
    on the path); wall, user and system CPU seconds, and the result."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(source)}
    command = [sys.executable, "-m", "nag", *args]
    result = subprocess.run(command, capture_output=True, text=True, check=False, env=env, cwd=source)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"nag {' '.join(args)} (from {source}) failed:\n{result.stderr}")
    return wall, after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime, result


def check_source(source: Path) -> None:
    """Refuse to measure if a process started as :func:`nag_process` starts it would import ``nag`` from elsewhere."""
    probe = [sys.executable, "-c", "import nag; print(nag.__file__)"]
    found = subprocess.run(
        probe, capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(source)}, cwd=source
    )
    if Path(found.stdout.strip()).resolve() != (source / "nag" / "__init__.py").resolve():
        raise SystemExit(f"a process meant to import nag from {source} imports {found.stdout.strip()}")


def search(code: str, source: Path, csv: Path, run_dir: Path) -> SearchRun:
    load_before = os.getloadavg()[0]
    wall, user, system, _ = nag_process(source, "search", "--table", str(csv), "--out", str(run_dir), "--quiet")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    trial = metrics["trials"][metrics["best_trial"]]
    stages = {
        "prepare": metrics["timings_s"]["prepare"],
        "evaluator": trial["evaluator"]["seconds"],
        "generator": trial["generator"]["seconds"],
    }
    stages["rest of the process"] = wall - sum(stages.values())
    return SearchRun(code, run_dir, wall, user, system, load_before, os.getloadavg()[0], stages)


def regrets(problem: SyntheticProblem, run_dir: Path, budgets: list[float]) -> tuple[list[float], float]:
    """Points of accuracy below the exact optimum of this tree's ``generate`` answers, and held-out pairwise accuracy."""
    answers = generate_in_process(run_dir, budgets)
    found = [
        100 * (problem.best_under(b)[0] - problem.accuracy([a.arch])[0])  # type: ignore[index]
        for b, a in zip(budgets, answers, strict=True)
    ]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return found, float(np.mean(list(metrics["evaluator_heldout_pairwise_accuracy"].values())))


def report_search(runs: list[SearchRun], quality: dict[str, tuple[list[float], float]], budgets: list[float]) -> None:
    base = [r for r in runs if r.code == "baseline"]
    ours = [r for r in runs if r.code == "this tree"]
    print(f"## `nag search` on the table: this tree against the baseline ({os.cpu_count()} CPUs)\n")
    print("| run | code | wall (s) | user CPU (s) | system CPU (s) | load before / after | " + " | ".join(STAGES) + " |")
    print("|---|---|---:|---:|---:|---|" + "---:|" * len(STAGES))
    for n, r in enumerate(runs):
        stages = " | ".join(f"{r.stages_s[s]:.1f}" for s in STAGES)
        print(
            f"| {n + 1} | {r.code} | {r.wall_s:.1f} | {r.user_s:.1f} | {r.system_s:.1f} | "
            f"{r.load_before:.1f} / {r.load_after:.1f} | {stages} |"
        )

    def mean(rs: list[SearchRun], key: str) -> float:
        return float(np.mean([getattr(r, key) for r in rs]))

    print("\n| figure (mean over runs) | baseline | this tree | ratio |")
    print("|---|---:|---:|---:|")
    for key, name in (("wall_s", "wall (s)"), ("user_s", "user CPU (s)")):
        print(f"| {name} | {mean(base, key):.1f} | {mean(ours, key):.1f} | {mean(ours, key) / mean(base, key):.2f}x |")
    for stage in STAGES:
        b, o = (float(np.mean([r.stages_s[stage] for r in rs])) for rs in (base, ours))
        print(f"| {stage} (wall s) | {b:.1f} | {o:.1f} | {o / b:.2f}x |")

    (base_regret, base_pairwise), (our_regret, our_pairwise) = quality["baseline"], quality["this tree"]
    print(f"\nQuality (first run of each; answers by this tree's `generate` at {len(budgets)} budgets, seed 0):\n")
    print("| figure | baseline | this tree |")
    print("|---|---:|---:|")
    print(f"| evaluator held-out pairwise accuracy (mean over K) | {base_pairwise:.3f} | {our_pairwise:.3f} |")
    print(f"| regret to the exact optimum, mean (points) | {np.mean(base_regret):.3f} | {np.mean(our_regret):.3f} |")
    print(f"| regret, worst budget (points) | {np.max(base_regret):.3f} | {np.max(our_regret):.3f} |")
    print("\n| budget (ms) | baseline regret (points) | this tree regret (points) |")
    print("|---:|---:|---:|")
    for budget, b, o in zip(budgets, base_regret, our_regret, strict=True):
        print(f"| {budget:.2f} | {b:.3f} | {o:.3f} |")


def _estimate(model: SearchModel, archs: list[Any], budget: float) -> tuple[Any, int]:
    """The feasible architecture with the best surrogate estimate, and how many were feasible."""
    latency = np.asarray(model.latency.predict_ms(archs))
    feasible = [a for a, lat in zip(archs, latency, strict=True) if lat <= budget]
    if not feasible:
        return None, 0
    with torch.no_grad():
        scores = model.surrogate(model.layout.encode_archs(model.space, feasible))
    return feasible[int(torch.argmax(scores))], len(feasible)


def random_search(model: SearchModel, budget: float, *, samples: int, seed: int) -> Any:
    return _estimate(model, model.space.sample_many(samples, seed=seed), budget)[0]


def evolution(model: SearchModel, budget: float, *, generations: int, seed: int, population: int = 100) -> Any:
    """OFA's regularised evolution on the surrogate, under the budget (infeasible children are discarded)."""
    rng, space = random.Random(seed), model.space
    pool: list[Any] = []
    for _ in range(50):  # initial population: feasible uniform samples
        candidates = space.sample_many(population, seed=rng.randrange(2**31))
        latency = model.latency.predict_ms(candidates)
        pool += [a for a, lat in zip(candidates, latency, strict=True) if lat <= budget]
        if len(pool) >= population:
            break
    if not pool:
        return None
    pool = pool[:population]
    for _ in range(generations):
        with torch.no_grad():
            scores = model.surrogate(model.layout.encode_archs(space, pool)).tolist()
        parents = [a for _, a in sorted(zip(scores, pool, strict=True), key=lambda p: -p[0])][: population // 4]
        children = [space.mutate(rng.choice(parents), rng, prob=0.1) for _ in range(population // 2)]
        children += [space.crossover(rng.choice(parents), rng.choice(parents), rng) for _ in range(population // 2)]
        latency = model.latency.predict_ms(children)
        pool = parents + [c for c, lat in zip(children, latency, strict=True) if lat <= budget]
    return _estimate(model, pool, budget)[0]


def report_generation(
    problem: SyntheticProblem, table: Any, run: SearchRun, budgets: list[float], generations: int, search_s: float
) -> None:
    model, metrics = load_run(run.run_dir)
    generate_s, _, _, generated = nag_process(
        ROOT, "generate", "--run", str(run.run_dir), *[x for b in budgets for x in ("--budget", f"{b:.4f}")], "--json"
    )
    answers = json.loads(generated.stdout)
    rows, random_times, evolution_times = [], [], []
    for n, (budget, answer) in enumerate(zip(budgets, answers, strict=True)):
        start = time.perf_counter()
        random_pick = random_search(model, budget, samples=1000, seed=n)
        random_times.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        evolved = evolution(model, budget, generations=generations, seed=n)
        evolution_times.append((time.perf_counter() - start) * 1000)
        best = problem.best_under(budget)
        truth = [problem.accuracy([a])[0] if a is not None else float("nan") for a in (answer["arch"], random_pick, evolved)]
        latency = np.asarray(table.latency_ms)
        table_best = float(np.asarray(table.accuracy)[latency <= budget].max())
        rows.append((budget, answer, truth, table_best, best[0] if best else float("nan")))

    timings = metrics.best
    print(f"\n## PNAG generation against per-budget search ({len(table.archs):,} rows, this tree)\n")
    print("| step | wall time | baseline (same run) | baseline time |")
    print("|---|---:|---|---:|")
    print(
        f"| `nag search` (defaults) | {search_s:.0f} s | "
        f"regularised evolution per budget, {len(budgets)} budgets x {generations} generations | {sum(evolution_times) / 1000:.0f} s |"
    )
    print(f"| of which: evaluator fit | {timings.evaluator.seconds:.0f} s | | |")
    print(f"| of which: generator fit | {timings.generator.seconds:.0f} s | | |")
    print(
        f"| `nag generate`, per budget (in-process, median) | {np.median([a['time_ms'] for a in answers]):.1f} ms | "
        f"random search, 1000 samples, per budget (median) | {np.median(random_times):.1f} ms |"
    )
    print(f"| | | evolution per budget (median) | {np.median(evolution_times):.0f} ms |")
    print(f"| `nag generate` process, {len(budgets)} budgets (start-up and load included) | {generate_s:.2f} s | | |")
    print("\n| budget (ms) | PNAG: true accuracy | random search | evolution | best table row | exact optimum | PNAG time (ms) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for budget, answer, (pnag, rand, evo), table_best, optimum in rows:
        print(
            f"| {budget:.2f} | {pnag:.4f} | {rand:.4f} | {evo:.4f} | {table_best:.4f} | {optimum:.4f} | {answer['time_ms']:.1f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=16000)
    parser.add_argument("--baseline", default=BASELINE, help="git revision whose nag/ is the baseline (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=1, help="pairs of runs (baseline, this tree), order alternating")
    parser.add_argument(
        "--budgets", type=int, default=10, help="budgets to generate for (evenly between the 10%% and 90%% latency quantiles)"
    )
    parser.add_argument("--generations", type=int, default=30, help="evolution generations per budget (baseline)")
    parser.add_argument("--search-only", action="store_true", help="skip the generation comparison")
    parser.add_argument("--out", default=None, help="keep the table and run directories here (default: a temporary folder)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    folder = Path(args.out).resolve() if args.out else Path(tempfile.mkdtemp(prefix="nag-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    problem = SyntheticProblem(seed=0)
    table = problem.table(args.rows, seed=1)
    csv = write_csv(folder / "table.csv", table.archs, table.latency_ms, table.accuracy)
    sources = {"baseline": baseline_tree(args.baseline, folder / "baseline"), "this tree": ROOT}
    for source in sources.values():
        check_source(source)

    runs = []
    for repeat in range(args.repeats):
        order = ["baseline", "this tree"] if repeat % 2 == 0 else ["this tree", "baseline"]
        for code in order:
            runs.append(search(code, sources[code], csv, folder / f"run-{code.replace(' ', '-')}-{repeat}"))
            print(f"({code}: {runs[-1].wall_s:.1f} s wall, {runs[-1].user_s:.1f} s user CPU)", file=sys.stderr, flush=True)

    low, high = (float(q) for q in np.quantile(table.latency_ms, [0.1, 0.9]))
    budgets = [float(b) for b in np.linspace(low, high, args.budgets)]
    quality = {code: regrets(problem, folder / f"run-{code.replace(' ', '-')}-0", budgets) for code in sources}
    report_search(runs, quality, budgets)
    if not args.search_only:
        ours = next(r for r in runs if r.code == "this tree")
        report_generation(problem, table, ours, budgets, args.generations, ours.wall_s)
    print(f"\n(table, run directories and the baseline's code in {folder})")


if __name__ == "__main__":
    main()
