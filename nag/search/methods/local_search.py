"""Local search per budget: PNAG's refinement started from uniform samples instead of the generator's draws.

The control for PNAG's refinement (:mod:`nag.search.refine`): the same climb (single moves and trades,
every candidate labelled by the accuracy source), the same number of climbs, from the most accurate of
``samples`` uniform samples that meet the budget, and run until it stops improving (``steps`` is only a
cap). The difference between ``pnag`` and ``local`` in a bench is what the generator's starting points are
worth. When no sample meets the budget, the fastest one is returned (the bench then reports it infeasible).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from threadpoolctl import threadpool_limits

from nag.errors import SettingError
from nag.search.layout import StagedLayout
from nag.search.methods._base import Answer, MethodRun, SearchTask
from nag.search.refine import refine
from nag.search.scoring import CandidateScorer

__all__ = ["LocalSearch"]


class LocalSearch:
    """Climb from the best of ``samples`` uniform samples under each budget."""

    amortised = False
    name = "local"

    def __init__(self, *, samples: int = 100, steps: int = 100, pairs: int = 30, climbs: int = 3) -> None:
        for label, value in (("samples", samples), ("steps", steps), ("climbs", climbs), ("pairs", pairs)):
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if label == "pairs" else 1):
                raise SettingError(f"local search: {label} must be a positive integer, got {value!r}")
        self.samples, self.steps, self.pairs, self.climbs = samples, steps, pairs, climbs

    def run(self, task: SearchTask, budgets_ms: Sequence[float], *, progress: bool = False) -> MethodRun:
        if not task.fast_accuracy:
            raise SettingError(
                "local search asks the accuracy source for hundreds of architectures per budget; this source is slow "
                "(a supernet evaluation): use a predictor or leave local out"
            )
        with threadpool_limits(limits=1, user_api="blas"):  # small products: one thread (see nag.search.api)
            return self._run(task, budgets_ms)

    def _run(self, task: SearchTask, budgets_ms: Sequence[float]) -> MethodRun:
        layout = StagedLayout.for_space(task.space)
        scorer = CandidateScorer(task.space, layout, task.latency, task.accuracy)
        answers, steps = [], []
        for n, budget in enumerate(budgets_ms):
            started = time.perf_counter()
            starts = np.unique(layout.archs_to_actions(task.space.sample_many(self.samples, seed=task.seed * 1000 + n)), axis=0)
            latency = scorer.latency(starts)
            feasible = latency <= budget
            accuracy = np.full(len(starts), -np.inf)
            accuracy[feasible] = scorer.accuracy(starts[feasible])
            found = refine(starts, latency, accuracy, budget, scorer, steps=self.steps, pairs=self.pairs, climbs=self.climbs)
            row = found.actions if found is not None else starts[int(np.argmin(latency))]
            steps.append(found.steps if found is not None else 0)
            arch = task.space.format(layout.actions_to_archs(task.space, row[None, :])[0])
            answers.append(Answer(float(budget), arch, time.perf_counter() - started))
        notes = {"samples": self.samples, "climbs": self.climbs, "moves_taken": steps}
        return MethodRun(self.name, tuple(answers), 0.0, notes=notes)
