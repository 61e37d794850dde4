"""Scoring every method's answers by the sources, never by a method's own estimate.

Per (method, budget): the answer's accuracy from the accuracy source, its latency from the latency source,
whether it meets the budget, and the method's time for it. Across budgets: the hypervolume of the feasible
answers against a stated reference point, and for methods with a policy, the share of 1,000 raw draws
that meet each budget (the paper's Fig. 3).

The hypervolume (latency minimised, accuracy maximised) is the area of the (latency, accuracy) plane that
the feasible answers dominate and that dominates the reference point ``(latency_ms, accuracy)``; an answer
over its budget, slower than the reference latency or less accurate than the reference accuracy counts
for nothing. Units: ms x accuracy points (percent).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from nag.accuracy import AccuracySource
from nag.latency import LatencyPredictor
from nag.search.methods import MethodRun

__all__ = ["Result", "ScoredRun", "hypervolume", "satisfaction", "score_run"]


@dataclass(frozen=True)
class Result:
    """One answer, scored by the sources: a row of the bench's ``results``."""

    method: str  # the method's label
    budget_ms: float  # the budget asked for
    arch: str  # the architecture it answered
    accuracy: float  # the accuracy source's value, a fraction
    latency_ms: float  # the latency source's value
    feasible: bool  # latency_ms <= budget_ms
    time_s: float  # the method's time for this budget alone (inference, or its whole per-budget search)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, eq=False)
class ScoredRun:
    """A method's run with its answers scored and its draws priced."""

    run: MethodRun  # what the method returned
    results: tuple[Result, ...]  # one per budget, in order
    draws_ms: dict[float, list[float]]  # budget -> latencies of the policy's raw draws (empty without a policy)

    @property
    def method(self) -> str:
        return self.run.method


def hypervolume(points: Sequence[tuple[float, float]], reference: tuple[float, float]) -> float:
    """Area dominated by ``(latency, accuracy)`` points and dominating ``reference``, latency minimised."""
    ref_latency, ref_accuracy = reference
    kept = sorted((lat, acc) for lat, acc in points if lat <= ref_latency and acc >= ref_accuracy)
    area, best = 0.0, ref_accuracy
    for n, (latency, accuracy) in enumerate(kept):
        best = max(best, accuracy)
        right = kept[n + 1][0] if n + 1 < len(kept) else ref_latency
        area += (right - latency) * (best - ref_accuracy)
    return area


def satisfaction(draws_ms: Sequence[float], budget_ms: float) -> float:
    """The share of draws whose latency meets the budget."""
    return float(np.mean(np.asarray(draws_ms) <= budget_ms)) if len(draws_ms) else float("nan")


def score_run(
    run: MethodRun,
    *,
    accuracy: AccuracySource,
    latency: LatencyPredictor,
    draws: int = 1000,
    draws_latency: LatencyPredictor | None = None,
) -> ScoredRun:
    """Score ``run``'s answers with the sources; price ``draws`` raw policy draws per budget when it has a policy
    (by ``draws_latency``, default ``latency``: measured answers still have their draws priced by the table)."""
    archs = [a.arch for a in run.answers]
    accuracies = accuracy.accuracy(archs)
    latencies = latency.predict_ms(archs)
    results = tuple(
        Result(run.method, a.budget_ms, a.arch, float(acc), float(lat), bool(lat <= a.budget_ms), round(a.time_s, 6))
        for a, acc, lat in zip(run.answers, accuracies, latencies, strict=True)
    )
    priced: dict[float, list[float]] = {}
    if run.propose is not None and draws > 0:
        for answer in run.answers:
            drawn = run.propose(answer.budget_ms, draws)
            priced[answer.budget_ms] = [float(v) for v in (draws_latency or latency).predict_ms(drawn)]
    return ScoredRun(run, results, priced)
