"""Per-budget REINFORCE with the rewards PNAG is compared against (paper Table 2).

For each budget B the PNAG generator (the same LSTM, K = 1) is trained from scratch by REINFORCE with the
same settings as PNAG's (iterations, N per iteration, baseline, entropy weight), but rewarded by:

- ``mnasnet``: MnasNet's soft constraint, R = acc * (lat / B) ** w with w = -0.07 (Tan et al., 2019);
- ``tunas``: TuNAS's absolute reward, R = acc + beta * |lat / B - 1| with beta = -0.07 (Bender et al., 2020).

``acc`` in the reward is the accuracy surrogate fitted on the task's labelled rows (the training split,
exactly the model PNAG reports with), so these rewards see the same accuracy knowledge as PNAG's
evaluator; ``lat`` is the task's latency predictor. Each budget is then answered by the same inference as
PNAG (sample, keep the feasible, pick by ``select_by``). The surrogate is fitted once (setup); every
budget's own time is its REINFORCE training plus its inference.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch

from nag.search.layout import StagedLayout
from nag.search.methods._base import Answer, MethodRun, SearchTask
from nag.search.methods.pnag import answer, proposer
from nag.search.model import SearchModel
from nag.search.surrogate import AccuracySurrogate
from nag.search.training import RewardFn

__all__ = ["MNASNET_W", "TUNAS_BETA", "MnasNet", "TuNAS"]

MNASNET_W = -0.07  # MnasNet's exponent (both sides of the target: its soft constraint)
TUNAS_BETA = -0.07  # TuNAS's absolute-reward coefficient


class _PerBudgetReinforce:
    amortised = False
    name = "reinforce"

    def __init__(self, *, select_by: str | None = None) -> None:
        self._select_by = select_by

    def shape(self, accuracy: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def run(self, task: SearchTask, budgets_ms: Sequence[float], *, progress: bool = False) -> MethodRun:
        from nag.search.budgets import BudgetSet
        from nag.search.model import new_generator
        from nag.search.prepare import prepare
        from nag.search.training import train_generator

        started = time.perf_counter()
        config = task.config.replace(num_budgets=1, budgets_ms=(float(budgets_ms[0]),))
        prepared = prepare(
            task.space, task.archs, task.latency_ms, task.accuracy_labels, config, latency=task.latency, progress=progress
        )
        setup_s = time.perf_counter() - started
        select_by = self._select_by or ("source" if task.fast_accuracy else "surrogate")
        models: dict[float, SearchModel] = {}
        answers = []
        for budget in budgets_ms:
            started = time.perf_counter()
            budget_config = config.replace(budgets_ms=(float(budget),))
            generator = new_generator(prepared.layout, budget_config, seed=task.seed + 1)
            reward = self._reward(task, prepared.layout, prepared.surrogate, float(budget))
            train_generator(generator, None, task.space, budget_config, seed=task.seed + 2, progress=progress, reward=reward)
            model = SearchModel(
                task.space, prepared.layout, BudgetSet((float(budget),)), None, generator, prepared.surrogate, task.latency,
                budget_config,
            )  # fmt: skip
            models[float(budget)] = model
            found = answer(model, task, budget, select_by=select_by)
            answers.append(Answer(found.budget_ms, found.arch, time.perf_counter() - started))
        return MethodRun(self.name, tuple(answers), setup_s, propose=proposer(models, task.seed), notes={"select_by": select_by})

    def _reward(self, task: SearchTask, layout: StagedLayout, surrogate: AccuracySurrogate, budget_ms: float) -> RewardFn:
        @torch.no_grad()
        def reward(raw: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
            actions = torch.where(active, raw, 0).numpy()
            archs = layout.actions_to_archs(task.space, actions)
            ratio = torch.as_tensor(np.asarray(task.latency.predict_ms(archs)) / budget_ms, dtype=torch.float32)
            return self.shape(surrogate(layout.encode_any(task.space, actions)), ratio)

        return reward


class MnasNet(_PerBudgetReinforce):
    """Per-budget REINFORCE with R = acc * (lat / B) ** -0.07."""

    name = "mnasnet"

    def shape(self, accuracy: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
        return accuracy * ratio.pow(MNASNET_W)


class TuNAS(_PerBudgetReinforce):
    """Per-budget REINFORCE with R = acc - 0.07 * |lat / B - 1|."""

    name = "tunas"

    def shape(self, accuracy: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
        return accuracy + TUNAS_BETA * (ratio - 1.0).abs()
