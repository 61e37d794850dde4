"""PNAG on a problem whose optimum under any budget is known exactly (:mod:`nag.search.synthetic`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nag.data import ArchTable
from nag.search.api import generate
from nag.search.rundir import load_run
from nag.search.synthetic import SyntheticProblem


def _table_best(table: ArchTable, budget_ms: float) -> float:
    latency, accuracy = np.asarray(table.latency_ms), np.asarray(table.accuracy)
    return float(accuracy[latency <= budget_ms].max())


def test_exact_optimum_dominates_every_sampled_architecture(problem: SyntheticProblem, table: ArchTable) -> None:
    # The knapsack front is exact: no sampled architecture beats it at its own latency.
    for latency, accuracy in zip(table.latency_ms[:300], table.accuracy, strict=False):  # type: ignore[arg-type]
        best = problem.best_under(latency)
        assert best is not None and best[0] >= accuracy - 1e-12
    accuracy, latency, arch = problem.best_under(40.0)  # type: ignore[misc]
    assert (
        latency <= 40.0
        and problem.accuracy([arch]) == pytest.approx([accuracy])
        and problem.predict_ms([arch]) == pytest.approx([latency])
    )


def test_evaluator_ranks_heldout_pairs(trained_run: Path) -> None:
    _, metrics = load_run(trained_run)
    per_budget = list(metrics.evaluator_heldout_pairwise_accuracy.values())
    assert len(per_budget) == 10
    assert float(np.mean(per_budget)) >= 0.85, per_budget  # 0.5 is chance
    assert min(per_budget) >= 0.8, per_budget


def test_generated_architectures_meet_budgets_and_beat_the_table(
    trained_run: Path, problem: SyntheticProblem, table: ArchTable
) -> None:
    budgets = [float(b) for b in np.quantile(table.latency_ms, [0.1, 0.3, 0.5, 0.7, 0.9])]
    for result, budget in zip(generate(trained_run, budgets), budgets, strict=True):
        true_latency = problem.predict_ms([result.arch])[0]
        true_accuracy = problem.accuracy([result.arch])[0]
        assert result.feasible and true_latency <= budget
        assert result.latency_ms == pytest.approx(true_latency, abs=1e-4)  # the additive model is exact here
        assert true_accuracy > _table_best(table, budget), (budget, result.arch)
        assert true_accuracy <= problem.best_under(budget)[0] + 1e-12  # type: ignore[index]
        assert abs(result.accuracy - true_accuracy) < 0.01  # the surrogate's estimate


def test_interpolated_budgets_behave_sensibly(trained_run: Path, problem: SyntheticProblem, table: ArchTable) -> None:
    model, _ = load_run(trained_run)
    trained = model.budgets.budgets_ms
    budgets = [float(b) for b in np.linspace(np.quantile(table.latency_ms, 0.2), np.quantile(table.latency_ms, 0.8), 13)]
    results = generate(trained_run, budgets)
    accuracy = [problem.accuracy([r.arch])[0] for r in results]
    for result, budget in zip(results, budgets, strict=True):
        assert result.interpolated == (min(abs(budget - b) for b in trained) > 1e-9)
        assert result.outside_trained_range is None and problem.predict_ms([result.arch])[0] <= budget
    running_best = np.maximum.accumulate(accuracy)
    assert all(a >= best - 0.006 for a, best in zip(accuracy, running_best, strict=True)), (
        accuracy
    )  # more budget, no worse (noise)
    ranks = np.argsort(np.argsort(accuracy))
    assert np.corrcoef(ranks, np.arange(len(ranks)))[0, 1] >= 0.8, accuracy


def test_budgets_outside_the_trained_range_are_reported(trained_run: Path, problem: SyntheticProblem) -> None:
    model, _ = load_run(trained_run)
    low, high = model.budgets.budgets_ms[0], model.budgets.budgets_ms[-1]
    above, below = generate(trained_run, [high * 2, low / 3])
    assert above.outside_trained_range == "above" and above.feasible and "above the trained range" in above.note
    assert not above.interpolated and problem.predict_ms([above.arch])[0] <= high * 2
    # Below every architecture of the space: nothing can be feasible, and the result says so.
    assert below.outside_trained_range == "below" and not below.feasible
    assert "no sampled architecture meets the budget" in below.note and below.rounds == model.config.inference.max_rounds


def test_generate_is_fast_and_reproducible(trained_run: Path) -> None:
    first = generate(trained_run, [35.0, 40.0, 45.0], seed=3)
    again = generate(trained_run, [45.0, 35.0], seed=3)
    assert [r.arch for r in again] == [first[2].arch, first[0].arch]  # a budget's answer does not depend on the others
    assert all(r.time_ms < 1000 for r in first)  # milliseconds per budget (about 20 ms on 2 cores); a loose bound
