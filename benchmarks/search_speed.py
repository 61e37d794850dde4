"""Wall time of ``nag search`` (defaults) on a 16,000-row table, and per-budget time of ``nag generate``.

    python benchmarks/search_speed.py [--rows 16000] [--budgets 10] [--out DIR]

The table comes from :class:`nag.search.synthetic.SyntheticProblem` (exact additive latency, accuracy
with diminishing returns), so the accuracy of every answer, and the best possible one, are known.

Baselines, measured in the same run on the same machine, with the same latency predictor and the same
accuracy estimate (the run's surrogate) as PNAG's inference:

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
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nag.data import write_csv
from nag.search.model import SearchModel
from nag.search.rundir import load_run
from nag.search.synthetic import SyntheticProblem

SHIM = (
    "import argparse, sys\n"
    "from nag.cli import build_parser, main\n"
    "from nag.cli.search import register\n"
    "from nag.errors import NagError\n"
    "parser = build_parser()\n"
    "commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))\n"
    "if 'search' in commands.choices: sys.exit(main(sys.argv[1:]))\n"
    "register(commands)\n"
    "args = parser.parse_args(sys.argv[1:])\n"
    "try: sys.exit(args.handler(args))\n"
    "except NagError as exc: print('nag: error:', exc, file=sys.stderr); sys.exit(2)\n"
)


def nag(*args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run ``nag ARGS`` (through a shim until search is wired into nag.cli); returns wall seconds and the result."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", SHIM, *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"nag {' '.join(args)} failed:\n{result.stderr}")
    return time.perf_counter() - start, result


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=16000)
    parser.add_argument(
        "--budgets", type=int, default=10, help="budgets to generate for (evenly between the 10%% and 90%% latency quantiles)"
    )
    parser.add_argument("--generations", type=int, default=30, help="evolution generations per budget (baseline)")
    parser.add_argument("--out", default=None, help="keep the table and run directory here (default: a temporary folder)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    folder = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="nag-bench-"))
    problem = SyntheticProblem(seed=0)
    table = problem.table(args.rows, seed=1)
    csv = write_csv(folder / "table.csv", table.archs, table.latency_ms, table.accuracy)
    run = folder / "run"

    search_s, _ = nag("search", "--table", str(csv), "--out", str(run), "--quiet")
    model, metrics = load_run(run)
    low, high = (float(q) for q in np.quantile(table.latency_ms, [0.1, 0.9]))
    budgets = [float(b) for b in np.linspace(low, high, args.budgets)]
    generate_s, generated = nag("generate", "--run", str(run), *[x for b in budgets for x in ("--budget", f"{b:.4f}")], "--json")
    answers = json.loads(generated.stdout)

    rows, random_times, evolution_times = [], [], []
    for n, (budget, answer) in enumerate(zip(budgets, answers, strict=True)):
        start = time.perf_counter()
        random_pick = random_search(model, budget, samples=1000, seed=n)
        random_times.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        evolved = evolution(model, budget, generations=args.generations, seed=n)
        evolution_times.append((time.perf_counter() - start) * 1000)
        best = problem.best_under(budget)
        truth = [problem.accuracy([a])[0] if a is not None else float("nan") for a in (answer["arch"], random_pick, evolved)]
        latency = np.asarray(table.latency_ms)
        table_best = float(np.asarray(table.accuracy)[latency <= budget].max())
        rows.append((budget, answer, truth, table_best, best[0] if best else float("nan")))

    timings = metrics["trials"][metrics["best_trial"]]
    print(f"## PNAG search speed ({args.rows:,} rows, synthetic problem, {torch.get_num_threads()} torch thread, this machine)\n")
    print("| step | wall time | baseline (same run) | baseline time |")
    print("|---|---:|---|---:|")
    print(
        f"| `nag search` (defaults: K=10, evaluator 3000 steps, generator 800 iterations) | {search_s:.0f} s | "
        f"regularised evolution per budget, {args.budgets} budgets x {args.generations} generations | {sum(evolution_times) / 1000:.0f} s |"
    )
    print(f"| of which: evaluator fit | {timings['evaluator']['seconds']:.0f} s | | |")
    print(f"| of which: generator fit | {timings['generator']['seconds']:.0f} s | | |")
    print(
        f"| `nag generate`, per budget (in-process, median) | {np.median([a['time_ms'] for a in answers]):.1f} ms | "
        f"random search, 1000 samples, per budget (median) | {np.median(random_times):.1f} ms |"
    )
    print(f"| | | evolution per budget (median) | {np.median(evolution_times):.0f} ms |")
    print(f"| `nag generate` process, {args.budgets} budgets (start-up and load included) | {generate_s:.2f} s | | |")
    pairwise = float(np.mean(list(metrics["evaluator_heldout_pairwise_accuracy"].values())))
    print(f"\nEvaluator held-out pairwise accuracy (mean over K=10 budgets): {pairwise:.3f}\n")
    print("| budget (ms) | PNAG: true accuracy | random search | evolution | best table row | exact optimum | PNAG time (ms) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for budget, answer, (pnag, rand, evo), table_best, optimum in rows:
        print(
            f"| {budget:.2f} | {pnag:.4f} | {rand:.4f} | {evo:.4f} | {table_best:.4f} | {optimum:.4f} | {answer['time_ms']:.1f} |"
        )
    print(f"\n(table, run directory and answers in {folder})")


if __name__ == "__main__":
    main()
