"""Inference of an architecture for any budget (PNAG Sec. 3.5).

For a budget B: embed it (interpolating between trained budgets, Sec. 3.2, or by the outside-range
policy), sample ``candidates`` architectures from pi(. | b) in one batch, price the distinct ones with the
latency predictor, and keep those that meet B. If none does, sample again, up to ``max_rounds`` rounds.
Return the feasible candidate with the best accuracy by ``select_by``: the run's surrogate estimate
(``"surrogate"``), the evaluator's score (``"evaluator"``), or the accuracy source itself (``"source"``,
the paper's "feasible architecture with the highest validation accuracy"; every feasible candidate is
labelled by the source, so it suits sources that answer quickly: tables fitted or looked up, predictors). If no round yields a feasible candidate, return the fastest candidate seen, marked
``feasible=False`` with a note saying so: a result is never silently over budget.

Sampling is seeded per (seed, budget), so a budget's answer does not depend on which other budgets are
asked for in the same call.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from nag.accuracy import AccuracySource
from nag.errors import SettingError
from nag.search.model import SearchModel

__all__ = ["Generated", "infer", "sample_policy", "warm_up"]


@dataclass(frozen=True)
class Generated:
    """The architecture inferred for one budget."""

    budget_ms: float  # the requested budget
    arch: str  # canonical architecture string
    latency_ms: float  # predicted latency of ``arch``
    accuracy: (
        float  # accuracy of ``arch``, a fraction: the source's when ``selected_by`` is "source", else the surrogate's estimate
    )
    score: float  # evaluator score R(arch | B)
    feasible: bool  # predicted latency <= budget
    interpolated: bool  # the budget embedding mixes two trained budgets
    outside_trained_range: str | None  # "below" / "above" the trained budgets, else None
    budget_policy: str  # the outside-range policy in force (clamp, extrapolate, error)
    candidates: int  # architectures sampled, all rounds
    distinct_candidates: int  # distinct architectures among them
    feasible_candidates: int  # distinct ones meeting the budget
    rounds: int  # sampling rounds used
    time_ms: float  # wall time for this budget
    note: str | None  # why the result needs attention (infeasible, outside the trained range), else None
    selected_by: str = "surrogate"  # how the pick was ranked among feasible candidates: surrogate, evaluator, source

    @property
    def accuracy_is_estimate(self) -> bool:
        """True when ``accuracy`` is the run's surrogate estimate rather than the accuracy source's value."""
        return self.selected_by != "source"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _budget_seed(seed: int, budget_ms: float) -> int:
    return (seed * 1_000_003 + round(budget_ms * 1000)) % (2**62)


@torch.no_grad()
def _sample_round(model: SearchModel, embedding: torch.Tensor, count: int, sampler: torch.Generator) -> np.ndarray:
    actions = model.generator.sample_actions(embedding.expand(count, -1), generator=sampler)
    return np.unique(actions, axis=0)


def _note(
    feasible: bool, budget_ms: float, outside: str | None, model: SearchModel, rounds: int, fastest_ms: float
) -> str | None:
    parts = []
    if outside is not None:
        trained = model.budgets.budgets_ms
        parts.append(
            f"budget {budget_ms:g} ms is {outside} the trained range {trained[0]:.3f}..{trained[-1]:.3f} ms "
            f"(policy '{model.budgets.outside}')"
        )
    if not feasible:
        parts.append(
            f"no sampled architecture meets the budget after {rounds} round(s); the fastest found ({fastest_ms:.3f} ms) is returned"
        )
    return "; ".join(parts) or None


@torch.no_grad()
def _infer_one(
    model: SearchModel,
    budget_ms: float,
    *,
    seed: int,
    candidates: int,
    max_rounds: int,
    select_by: str,
    accuracy: AccuracySource | None = None,
) -> Generated:
    started = time.perf_counter()
    placement = model.budgets.place(budget_ms)
    embedding = model.generator.budget_embedding.mix([placement])
    sampler = torch.Generator().manual_seed(_budget_seed(seed, budget_ms))
    seen: set[bytes] = set()
    kept: list[np.ndarray] = []
    latencies: list[float] = []
    rounds = 0
    for rounds in range(1, max_rounds + 1):  # noqa: B007 - rounds is reported
        fresh = [row for row in _sample_round(model, embedding, candidates, sampler) if row.tobytes() not in seen]
        seen.update(row.tobytes() for row in fresh)
        if fresh:
            batch = np.stack(fresh)
            kept.append(batch)
            latencies += model.latency.predict_ms(model.layout.actions_to_archs(model.space, batch))
        if any(lat <= budget_ms for lat in latencies):
            break
    actions, latency = np.concatenate(kept), np.asarray(latencies)
    feasible_rows = np.nonzero(latency <= budget_ms)[0]
    pool = feasible_rows if len(feasible_rows) else np.asarray([int(np.argmin(latency))])
    encodings = model.layout.encode_any(model.space, actions[pool])
    if select_by == "source":
        if accuracy is None:
            raise SettingError("select_by='source' needs the accuracy source: pass accuracy= (CLI: --accuracy SPEC)")
        estimates = torch.tensor(
            accuracy.accuracy(model.layout.actions_to_archs(model.space, actions[pool])), dtype=torch.float64
        )
    else:
        estimates = model.surrogate(encodings)
    if model.evaluator is not None:
        scores = model.evaluator.score(encodings, model.evaluator.budget_embedding.mix([placement]).expand(len(pool), -1))
    elif select_by == "evaluator":
        raise SettingError(
            "select_by='evaluator' needs a model with an evaluator; this one was trained without (a baseline reward)"
        )
    else:
        scores = torch.full((len(pool),), float("nan"))
    best = int(torch.argmax(scores if select_by == "evaluator" else estimates))
    row = int(pool[best])
    arch = model.space.format(model.layout.actions_to_archs(model.space, actions[row : row + 1])[0])
    feasible = bool(len(feasible_rows))
    return Generated(
        budget_ms=float(budget_ms),
        arch=arch,
        latency_ms=float(latency[row]),
        accuracy=float(estimates[best]),
        score=float(scores[best]),
        feasible=feasible,
        interpolated=placement.interpolated,
        outside_trained_range=placement.outside,
        budget_policy=placement.policy,
        candidates=rounds * candidates,
        distinct_candidates=len(actions),
        feasible_candidates=len(feasible_rows),
        rounds=rounds,
        time_ms=(time.perf_counter() - started) * 1000.0,
        note=_note(feasible, budget_ms, placement.outside, model, rounds, float(latency.min())),
        selected_by=select_by,
    )


@torch.no_grad()
def sample_policy(model: SearchModel, budget_ms: float, n: int, *, seed: int = 0) -> list[str]:
    """``n`` architectures drawn from the generator's policy for ``budget_ms``, duplicates kept and nothing
    filtered: what the generator proposes before inference checks the latency (the paper's Fig. 3 (b), (c)).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise SettingError(f"n must be a positive integer, got {n!r}")
    embedding = model.generator.budget_embedding.mix([model.budgets.place(budget_ms)])
    sampler = torch.Generator().manual_seed(_budget_seed(seed, budget_ms))
    actions = model.generator.sample_actions(embedding.expand(n, -1), generator=sampler)
    return [model.space.format(a) for a in model.layout.actions_to_archs(model.space, actions)]


def warm_up(model: SearchModel) -> None:
    """Answer one trained budget once, untimed, so that one-time initialisation is not charged to a budget."""
    ic = model.config.inference
    _infer_one(model, model.budgets.budgets_ms[0], seed=0, candidates=ic.candidates, max_rounds=1, select_by="surrogate")


def infer(
    model: SearchModel,
    budgets_ms: Sequence[float],
    *,
    seed: int = 0,
    candidates: int | None = None,
    max_rounds: int | None = None,
    select_by: str | None = None,
    accuracy: AccuracySource | None = None,
) -> list[Generated]:
    """One :class:`Generated` per budget, in order. Unset options come from ``model.config.inference``;
    ``accuracy`` is the source that ``select_by="source"`` asks.

    Raises :class:`nag.search.budgets.BudgetError` for a budget that is not a positive number (or outside
    the trained range under the 'error' policy).
    """
    ic = model.config.inference
    return [
        _infer_one(
            model,
            budget,
            seed=seed,
            candidates=candidates or ic.candidates,
            max_rounds=max_rounds or ic.max_rounds,
            select_by=select_by or ic.select_by,
            accuracy=accuracy,
        )
        for budget in budgets_ms
    ]
