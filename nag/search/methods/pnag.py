"""PNAG and the paper's variants of it: one generator for K budgets, its ablation, and independent search.

- ``pnag``: the generator trained once over K budgets (K from the task's config, or ``k``); each budget is
  answered by inference (Sec. 3.5), interpolating between trained budgets.
- ``pnag-no-acc``: the same with the Pareto-dominance rule stripped of its accuracy condition (paper
  Remark 1, Table 2): the lower cost always wins.
- ``independent``: the same generator and evaluator trained for one budget at a time, K = 1 at exactly
  that budget (paper Table 3, "repeated independent search").

``pnag`` asks all budgets in one inference call, as ``nag generate`` does; each budget's time is its share
of that call. Inference picks among feasible candidates by ``select_by``: by default the accuracy source itself when
it is fast (the paper: "the feasible architecture with the highest validation accuracy"), else the run's
surrogate estimate. Selecting by the source, the pick is then refined by local search under the source
(:mod:`nag.search.refine`, not in the paper); ``pnag`` then also reports the paper's inference alone, from
the same training, as the variant ``pnag-sampled``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from nag.search.methods._base import Answer, MethodRun, Proposer, SearchTask
from nag.search.model import SearchModel

__all__ = ["Independent", "Pnag", "PnagNoAccuracy", "answer", "answers", "proposer", "train_on_task"]


def train_on_task(task: SearchTask, changes: dict[str, object], *, progress: bool) -> SearchModel:
    """Prepare the task's labelled rows under the config with ``changes`` and train one PNAG trial."""
    from nag.search.api import trained_model
    from nag.search.prepare import prepare
    from nag.search.training import run_trial

    config = task.config.replace(**changes)
    prepared = prepare(
        task.space, task.archs, task.latency_ms, task.accuracy_labels, config, latency=task.latency, progress=progress
    )
    return trained_model(prepared, config, run_trial(prepared, config, progress=progress))


def _selection(task: SearchTask, select_by: str | None) -> str:
    return select_by or ("source" if task.fast_accuracy else "surrogate")


def answer(model: SearchModel, task: SearchTask, budget_ms: float, *, select_by: str, refine_steps: int | None = None) -> Answer:
    """Inference for one budget, timed on its own (``refine_steps``: None for the model's setting, 0 for none)."""
    (found,) = answers(model, task, [budget_ms], select_by=select_by, refine_steps=refine_steps)
    return found


def answers(
    model: SearchModel, task: SearchTask, budgets_ms: Sequence[float], *, select_by: str, refine_steps: int | None = None
) -> tuple[Answer, ...]:
    """Inference for all ``budgets_ms`` in one call, as ``nag generate`` asks them (the budgets' first draws
    sampled in one batched pass). The call's wall time is shared among the budgets in proportion to the time
    inference reports for each (its share of the batched pass, then its own selection and refinement), so
    the answers' times add up to the call's."""
    from nag.search.inference import infer

    started = time.perf_counter()
    found = infer(model, list(budgets_ms), seed=task.seed, select_by=select_by, accuracy=task.accuracy, refine_steps=refine_steps)
    wall = time.perf_counter() - started
    own = [g.time_ms for g in found]
    total = sum(own)
    return tuple(
        Answer(budget_ms=float(b), arch=g.arch, time_s=wall * (t / total if total > 0 else 1 / len(found)))
        for b, g, t in zip(budgets_ms, found, own, strict=True)
    )


def proposer(models: dict[float, SearchModel] | SearchModel, seed: int) -> Proposer:
    from nag.search.inference import sample_policy

    def propose(budget_ms: float, n: int) -> list[str]:
        model = models if isinstance(models, SearchModel) else models[budget_ms]
        return sample_policy(model, budget_ms, n, seed=seed)

    return propose


class Pnag:
    """The generator trained once over K budgets; every budget answered by one inference."""

    amortised = True

    def __init__(self, *, k: int | None = None, accuracy_condition: bool = True, select_by: str | None = None) -> None:
        self._k = k
        self._accuracy_condition = accuracy_condition
        self._select_by = select_by

    @property
    def name(self) -> str:
        base = "pnag" if self._accuracy_condition else "pnag-no-acc"
        return base if self._k is None else f"{base}-k{self._k}"

    def run(self, task: SearchTask, budgets_ms: Sequence[float], *, progress: bool = False) -> MethodRun:
        from nag.search.inference import warm_up

        started = time.perf_counter()
        changes: dict[str, object] = {"evaluator__accuracy_condition": self._accuracy_condition}
        if self._k is not None:
            changes |= {"num_budgets": self._k, "budgets_ms": None}
        model = train_on_task(task, changes, progress=progress)
        warm_up(model)
        setup_s = time.perf_counter() - started
        select_by = _selection(task, self._select_by)
        found = answers(model, task, budgets_ms, select_by=select_by)
        notes = {"trained_budgets_ms": list(model.budgets.budgets_ms), "select_by": select_by}
        refines = select_by == "source" and model.config.inference.refine_steps > 0
        variants: tuple[MethodRun, ...] = ()
        if refines and self._k is None:  # the paper's inference (the best draw) from the same training
            sampled = answers(model, task, budgets_ms, select_by=select_by, refine_steps=0)
            variants = (MethodRun(f"{self.name}-sampled", sampled, setup_s, notes={**notes, "refined": False}, amortised=True),)
        return MethodRun(
            self.name,
            found,
            setup_s,
            propose=proposer(model, task.seed),
            notes={**notes, "refined": refines},
            amortised=True,
            variants=variants,
        )


class PnagNoAccuracy(Pnag):
    """PNAG whose dominance rule ignores accuracy (the paper's ablation)."""

    def __init__(self, *, k: int | None = None, select_by: str | None = None) -> None:
        super().__init__(k=k, accuracy_condition=False, select_by=select_by)


class Independent:
    """The PNAG generator and evaluator trained for one budget at a time (K = 1, at that budget)."""

    amortised = False
    name = "independent"

    def __init__(self, *, select_by: str | None = None) -> None:
        self._select_by = select_by

    def run(self, task: SearchTask, budgets_ms: Sequence[float], *, progress: bool = False) -> MethodRun:
        select_by = _selection(task, self._select_by)
        models: dict[float, SearchModel] = {}
        per_budget = []
        for budget in budgets_ms:
            started = time.perf_counter()
            model = train_on_task(task, {"num_budgets": 1, "budgets_ms": (float(budget),)}, progress=progress)
            models[float(budget)] = model
            found = answer(model, task, budget, select_by=select_by)
            per_budget.append(Answer(found.budget_ms, found.arch, time.perf_counter() - started))
        return MethodRun(self.name, tuple(per_budget), 0.0, propose=proposer(models, task.seed), notes={"select_by": select_by})
