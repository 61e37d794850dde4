"""Running a bench: the methods (and PNAG's K sweep) on one task, scored, summarised.

The summary compares every method on the same budgets: mean accuracy of the source, feasibility, the
hypervolume against a stated reference point, time; PNAG against per-budget evolution budget by budget
(accuracy difference in points, time ratio); and, when the task knows its exact optimum (a known-answer
problem), every answer's regret to it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
from tqdm import tqdm

from nag.bench.evaluate import ScoredRun, hypervolume, satisfaction, score_run
from nag.errors import SettingError
from nag.latency import LatencyPredictor
from nag.search.methods import METHODS, SearchTask, get_method

__all__ = ["BenchResult", "BenchSpec", "KnownOptimum", "budget_list", "int_list", "name_list", "run_bench"]


@runtime_checkable
class KnownOptimum(Protocol):
    """A task whose best accuracy under any budget is known exactly (a known-answer problem)."""

    def best_under(self, budget_ms: float) -> Any:
        """``(accuracy, latency_ms, arch)`` of the optimum under the budget, or None when nothing fits."""


@dataclass(frozen=True)
class BenchSpec:
    """What a bench runs."""

    budgets_ms: tuple[float, ...]  # the budgets every method answers (ms, positive, finite)
    methods: tuple[str, ...]  # registry names (see nag.search.methods.METHODS)
    k_sweep: tuple[int, ...] = ()  # extra PNAG runs, one per K (labelled pnag-k<K>), as the paper's Table 5
    draws: int = 1000  # raw policy draws per budget for the budget-satisfaction rate (Fig. 3)
    evolution_generations: int = 500  # OFA's setting
    random_samples: int = 1000  # N of random search

    def __post_init__(self) -> None:
        if not self.budgets_ms:
            raise SettingError("a bench needs at least one budget: give --budgets-ms, e.g. 80,110,140")
        bad = [b for b in self.budgets_ms if not (isinstance(b, (int, float)) and math.isfinite(b) and b > 0)]
        if bad:
            raise SettingError(f"budgets must be positive finite milliseconds, got {bad[0]!r}; e.g. --budgets-ms 80,110,140")
        if not self.methods and not self.k_sweep:
            raise SettingError(f"a bench needs at least one method: --methods from {', '.join(METHODS)}")
        unknown = [m for m in self.methods if m not in METHODS and ":" not in m]
        if unknown:
            raise SettingError(f"unknown method {unknown[0]!r}; valid: {', '.join(METHODS)}")
        if any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in self.k_sweep):
            raise SettingError(f"--k-sweep takes positive integers (numbers of training budgets), got {list(self.k_sweep)}")
        if self.draws < 0 or self.evolution_generations < 0 or self.random_samples < 1:
            raise SettingError("draws and evolution generations must be >= 0, random samples >= 1")

    def plan(self) -> list[tuple[str, dict[str, Any]]]:
        """(registry name, constructor options) per run, in order."""
        from nag.search.methods.evolution import EvolutionSettings

        options: dict[str, dict[str, Any]] = {
            "evolution": {"settings": EvolutionSettings(generations=self.evolution_generations)},
            "random": {"samples": self.random_samples},
        }
        runs = [(name, options.get(name, {})) for name in self.methods]
        return runs + [("pnag", {"k": k}) for k in self.k_sweep]


@dataclass(frozen=True, eq=False)
class BenchResult:
    """Every scored run, the uniform-sampling reference of Fig. 3, and the summary."""

    spec: BenchSpec  # what ran
    runs: tuple[ScoredRun, ...]  # one per method run, in order
    uniform_ms: tuple[float, ...]  # latencies of uniformly sampled architectures (Fig. 3 (a))
    summary: dict[str, Any] = field(default_factory=dict)  # see summarise()
    task_notes: dict[str, Any] = field(default_factory=dict)  # where the data and the sources came from

    def results(self) -> list[dict[str, Any]]:
        return [r.to_dict() for run in self.runs for r in run.results]


def run_bench(
    task: SearchTask,
    spec: BenchSpec,
    *,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    optimum: KnownOptimum | None = None,
    task_notes: dict[str, Any] | None = None,
    on_ray: bool = False,
    measure: Callable[[list[str]], LatencyPredictor] | None = None,
) -> BenchResult:
    """Run every method of ``spec`` on ``task``, score each answer by the task's sources, and summarise.

    ``on_ray``: the methods run as parallel Ray tasks (Ray already initialised; :mod:`nag.bench.parallel`).
    ``measure``: given every answered architecture, returns the latency source that scores the answers
    instead of ``task.latency`` (``nag bench --measure``: whole networks measured on the farm).
    """
    say = log or (lambda _line: None)
    plan = spec.plan()
    if on_ray:
        from nag.bench.parallel import run_methods_on_ray

        say(f"{len(plan)} method runs as Ray tasks")
        finished = run_methods_on_ray(plan, task, spec.budgets_ms, progress=progress)
    else:
        finished = []
        for name, options in tqdm(plan, desc="methods", unit="method", disable=not progress):
            method = get_method(name, **options)
            say(f"{method.name}: {'trains once for all budgets' if method.amortised else 'searches each budget'}")
            started = time.perf_counter()
            finished.append(method.run(task, spec.budgets_ms, progress=progress))
            say(f"{method.name}: {time.perf_counter() - started:.1f} s")
    runs_out = [each for run in finished for each in (run, *run.variants)]
    latency: LatencyPredictor = task.latency
    notes = dict(task_notes or {})
    if measure is not None:
        latency = measure(sorted({a.arch for run in runs_out for a in run.answers}))
        notes["answers' latency"] = f"measured on the farm ({getattr(latency, 'where', 'the farm')}), not predicted"
    runs: list[ScoredRun] = []
    for run in runs_out:
        scored = score_run(run, accuracy=task.accuracy, latency=latency, draws=spec.draws, draws_latency=task.latency)
        runs.append(scored)
        say(f"{run.method}: mean accuracy (source) {100 * np.mean([r.accuracy for r in scored.results]):.2f}%")
    uniform = tuple(float(v) for v in task.latency.predict_ms(task.space.sample_many(max(spec.draws, 1), seed=task.seed)))
    result = BenchResult(spec, tuple(runs), uniform, task_notes=notes)
    result.summary.update(summarise(result, task, optimum))
    return result


def _reference(task: SearchTask, spec: BenchSpec) -> dict[str, Any]:
    accuracy = float(np.min(task.accuracy_labels))
    return {
        "latency_ms": max(spec.budgets_ms),
        "accuracy": accuracy,
        "why": "the largest budget, and the lowest accuracy among the task's labelled architectures",
    }


def summarise(result: BenchResult, task: SearchTask, optimum: KnownOptimum | None) -> dict[str, Any]:
    """Per method and across methods: the figures of the report's tables (JSON-ready)."""
    spec = result.spec
    reference = _reference(task, spec)
    ref = (reference["latency_ms"], 100 * reference["accuracy"])
    methods: dict[str, Any] = {}
    for scored in result.runs:
        rows = scored.results
        per_budget = [r.time_s for r in rows]
        methods[scored.method] = {
            "amortised": scored.run.amortised,
            "mean_accuracy": float(np.mean([r.accuracy for r in rows])),
            "feasible_rate": float(np.mean([r.feasible for r in rows])),
            "hypervolume": hypervolume([(r.latency_ms, 100 * r.accuracy) for r in rows if r.feasible], ref),
            "setup_s": round(scored.run.setup_s, 3),
            "median_budget_time_s": float(np.median(per_budget)),
            "total_s": round(scored.run.total_s, 3),
            "satisfaction": ({f"{b:g}": satisfaction(d, b) for b, d in scored.draws_ms.items()} if scored.draws_ms else None),
            "notes": scored.run.notes,
        }
    summary: dict[str, Any] = {
        "budgets_ms": list(spec.budgets_ms),
        "reference_point": reference,
        "hypervolume_units": "ms x accuracy points (percent)",
        "methods": methods,
        "uniform_satisfaction": {f"{b:g}": satisfaction(result.uniform_ms, b) for b in spec.budgets_ms},
    }
    by_method = {s.method: s for s in result.runs}
    if "pnag" in by_method and "evolution" in by_method:
        summary["pnag_vs_evolution"] = [
            {
                "budget_ms": p.budget_ms,
                "accuracy_difference_points": 100 * (p.accuracy - e.accuracy),
                "time_ratio": e.time_s / p.time_s if p.time_s > 0 else None,
                "pnag_feasible": p.feasible,
                "evolution_feasible": e.feasible,
            }
            for p, e in zip(by_method["pnag"].results, by_method["evolution"].results, strict=True)
        ]
    if optimum is not None:
        best = [optimum.best_under(b) for b in spec.budgets_ms]
        summary["optimum"] = [
            {
                "budget_ms": b,
                "accuracy": None if o is None else float(o[0]),
                "regret_points": {
                    s.method: None if o is None or not r.feasible else 100 * (float(o[0]) - r.accuracy)
                    for s in result.runs
                    for r in s.results
                    if r.budget_ms == b
                },
            }
            for b, o in zip(spec.budgets_ms, best, strict=True)
        ]
    return summary


def budget_list(text: str) -> tuple[float, ...]:
    """``"80,110,140"`` -> budgets; raises :class:`SettingError` naming the bad entry."""
    values = []
    for part in text.split(","):
        part = part.strip()
        try:
            value = float(part)
        except ValueError:
            raise SettingError(
                f"--budgets-ms: {part!r} is not a number; give milliseconds separated by commas, e.g. 80,110,140"
            ) from None
        values.append(value)
    return tuple(values)


def name_list(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def int_list(text: str, *, option: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise SettingError(f"{option}: {text!r} is not a list of integers, e.g. 2,5,10,30") from None
