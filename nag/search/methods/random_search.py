"""Random search per budget: the most accurate (by the accuracy source) of N uniform samples that meet it.

The cheapest thing that answers a budget without training anything. When no sample meets the budget,
the fastest one is returned (the bench then reports it infeasible).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from nag.errors import SettingError
from nag.search.methods._base import Answer, MethodRun, SearchTask

__all__ = ["RandomSearch"]


class RandomSearch:
    """Best of ``samples`` uniformly sampled architectures under each budget."""

    amortised = False
    name = "random"

    def __init__(self, *, samples: int = 1000) -> None:
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise SettingError(f"random search needs a positive number of samples, got {samples!r}")
        self.samples = samples

    def run(self, task: SearchTask, budgets_ms: Sequence[float], *, progress: bool = False) -> MethodRun:
        if not task.fast_accuracy:
            raise SettingError(
                f"random search asks the accuracy source for up to {self.samples} architectures per budget; this source is "
                "slow (a supernet evaluation): use a predictor or leave random out"
            )
        answers = []
        for n, budget in enumerate(budgets_ms):
            started = time.perf_counter()
            archs = task.space.sample_many(self.samples, seed=task.seed * 1000 + n)
            latency = np.asarray(task.latency.predict_ms(archs))
            feasible = [a for a, ms in zip(archs, latency, strict=True) if ms <= budget]
            if feasible:
                scores = task.accuracy.accuracy(feasible)
                pick = feasible[int(np.argmax(scores))]
            else:
                pick = archs[int(latency.argmin())]
            answers.append(Answer(float(budget), task.space.format(pick), time.perf_counter() - started))
        return MethodRun(self.name, tuple(answers), 0.0, notes={"samples": self.samples})
