"""PNAG search: Pareto-dominance evaluator, budget-conditioned generator, any-budget inference.

Public API (imported on first use, so ``import nag.search`` does not load torch)::

    run_search(out=..., table=..., config=SearchConfig(...)) -> Path     # train, write a run directory
    generate(run_dir, [budget_ms, ...]) -> list[Generated]              # infer one architecture per budget
    propose(run_dir, [budget_ms, ...], n=1000) -> list[list[dict]]     # raw policy draws per budget (Fig. 3)
    load_run(run_dir) -> (SearchModel, RunMetrics)                       # the trained parts, for your own use
    load_inference(run_dir) -> InferenceModel                            # what generate runs on: numpy, no torch
    read_metrics(run_dir) -> RunMetrics                                  # metrics.json, typed (nag.search.metrics)

Modules: :mod:`~nag.search.dominance` (Eqn. 6), :mod:`~nag.search.budgets` (K budgets, embeddings,
interpolation), :mod:`~nag.search.evaluator` (R and Eqn. 5), :mod:`~nag.search.generator` (the LSTM
policy), :mod:`~nag.search.training` (REINFORCE, trials), :mod:`~nag.search.tuning` (Ray Tune trials),
:mod:`~nag.search.rollouts` (Ray rollout workers), :mod:`~nag.search.inference` (Sec. 3.5),
:mod:`~nag.search.rundir` (the run directory), :mod:`~nag.search.numpy_model` (its numpy form), :mod:`~nag.search.synthetic` (a problem with a known optimum).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "BudgetSet",
    "EvaluatorConfig",
    "Generated",
    "GeneratorConfig",
    "InferenceConfig",
    "SearchConfig",
    "SearchModel",
    "SurrogateConfig",
    "TuneOptions",
    "generate",
    "load_inference",
    "load_run",
    "propose",
    "read_metrics",
    "run_search",
]

_EXPORTS = {
    "BudgetSet": "nag.search.budgets",
    "EvaluatorConfig": "nag.search.config",
    "GeneratorConfig": "nag.search.config",
    "Generated": "nag.search.inference",
    "InferenceConfig": "nag.search.config",
    "SearchConfig": "nag.search.config",
    "SurrogateConfig": "nag.search.config",
    "SearchModel": "nag.search.model",
    "TuneOptions": "nag.search.tuning",
    "generate": "nag.search.api",
    "load_inference": "nag.search.rundir",
    "load_run": "nag.search.rundir",
    "propose": "nag.search.api",
    "read_metrics": "nag.search.rundir",
    "run_search": "nag.search.api",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'nag.search' has no attribute {name!r}")
