"""Inference of an architecture for any budget (PNAG Sec. 3.5), and its refinement.

For a budget B: embed it (interpolating between trained budgets, Sec. 3.2, or by the outside-range
policy), sample ``candidates`` architectures from pi(. | b) in one batch (the generator's policy run in
numpy, :mod:`nag.search.policy`), price the distinct ones with the latency predictor, and keep those that
meet B. If none does, sample again, up to ``max_rounds`` rounds. Pick the feasible candidate with the best
accuracy by ``select_by``: the run's surrogate estimate (``"surrogate"``), the evaluator's score
(``"evaluator"``), or the accuracy source itself (``"source"``, the paper's "feasible architecture with the
highest validation accuracy"; every feasible candidate is labelled by the source, so it suits sources that
answer quickly: tables fitted or looked up, predictors).

With ``select_by="source"`` and ``refine_steps > 0`` (the default) the pick is then improved by a local
search under the source and the latency predictor (:mod:`nag.search.refine`; not in the paper, reported
per budget as ``refine_steps`` and ``accuracy_queries``). The other selections never refine: climbing a
surrogate would chase its errors.

If no round yields a feasible candidate, return the fastest candidate seen, marked ``feasible=False`` with
a note saying so: a result is never silently over budget. Sampling is seeded per (seed, budget), so a
budget's answer does not depend on which other budgets are asked for in the same call.

Everything runs in numpy on an :class:`~nag.search.numpy_model.InferenceModel` (a run directory's
``inference.npz``, or a :class:`~nag.search.model.SearchModel`'s networks copied once), so inference imports
no torch. The first round of all requested budgets is sampled in one pass (:meth:`NumpyPolicy.sample_blocks`,
up to :data:`BATCH_ROWS` rows a pass), which draws exactly the rows that sampling each budget alone would.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from threadpoolctl import threadpool_limits

from nag.accuracy import AccuracySource
from nag.errors import SettingError
from nag.latency import QuantileLatencyPredictor, check_quantile
from nag.search.budgets import BudgetPlacement
from nag.search.numpy_model import InferenceModel
from nag.search.refine import refine
from nag.search.scoring import CandidateScorer
from nag.stored import dataclass_values

if TYPE_CHECKING:
    from nag.search.model import SearchModel

__all__ = ["BATCH_ROWS", "Generated", "infer", "priced_policy_draws", "sample_policy", "warm_up"]

# Rows sampled in one pass of the policy: the first rounds of several budgets are batched up to this many
# rows (a budget asking for more is sampled alone, as it would be anyway).
BATCH_ROWS = 1024


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
    time_ms: float  # wall time for this budget (its share of a first round sampled with other budgets, plus its own work)
    note: str | None  # why the result needs attention (infeasible, outside the trained range), else None
    selected_by: str = "surrogate"  # how the pick was ranked among feasible candidates: surrogate, evaluator, source
    refine_steps: int = 0  # moves of the local search under the source after the pick (0: the best draw itself)
    accuracy_queries: int = 0  # architectures labelled by the accuracy source for this budget (pick and refinement)
    budget_quantile: float | None = None  # feasible means this quantile of the latency is under the budget (None: the estimate)

    @property
    def accuracy_is_estimate(self) -> bool:
        """True when ``accuracy`` is the run's surrogate estimate rather than the accuracy source's value."""
        return self.selected_by != "source"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "answer") -> Generated:
        """The inverse of :meth:`to_dict`; keys it does not know are ignored, and the fields added after the first
        run directories (``selected_by`` and on) take their defaults. Raises :class:`nag.stored.StoredValueError`
        (a ValueError) naming a missing or mistyped field (``where.field``)."""
        return cls(**dataclass_values(cls, data, where, unknown=True))


def _budget_seed(seed: int, budget_ms: float) -> int:
    """A sampling seed per (seed, budget); any finite budget (1e308 too) gives one."""
    microseconds = round(budget_ms * 1000) if budget_ms < 1e12 else int(budget_ms)
    return (seed * 1_000_003 + microseconds) % (2**62)


def _rng(seed: int, budget_ms: float) -> np.random.Generator:
    return np.random.default_rng(_budget_seed(seed, budget_ms))


def _note(
    feasible: bool, budget_ms: float, outside: str | None, model: InferenceModel, rounds: int, fastest_ms: float
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


@dataclass(frozen=True)
class _Options:
    candidates: int
    max_rounds: int
    select_by: str
    refine_steps: int
    refine_pairs: int
    refine_climbs: int


def _numpy(model: InferenceModel | SearchModel) -> InferenceModel:
    """The numpy form of ``model`` (a :class:`SearchModel`'s networks are copied once and kept)."""
    return model if isinstance(model, InferenceModel) else model.inference


def _unique_rows(rows: np.ndarray) -> np.ndarray:
    """The distinct rows in lexicographic order: ``np.unique(rows, axis=0)``, without its import of ``numpy.ma``
    (11 ms of a generate process)."""
    if not len(rows):
        return rows
    ordered = rows[np.lexsort(rows.T[::-1])]
    keep = np.ones(len(ordered), dtype=bool)
    keep[1:] = (ordered[1:] != ordered[:-1]).any(axis=1)
    return ordered[keep]


@dataclass(frozen=True, eq=False)
class _Asked:
    """One requested budget on its way through inference."""

    placement: BudgetPlacement  # where the budget falls among the trained ones
    rng: np.random.Generator  # its sampling stream, seeded by (seed, budget)
    first: np.ndarray  # its first round of draws (canonical rows), sampled with ``rng``
    shared_ms: float  # its share of the wall time of the pass that sampled ``first``


def _draw(model: InferenceModel, scorer: CandidateScorer, asked: _Asked, options: _Options) -> tuple[np.ndarray, np.ndarray, int]:
    """Distinct candidates (canonical action rows), their latencies, and the rounds used until one fits."""
    budget_ms, drawn = asked.placement.budget_ms, asked.first
    kept: list[np.ndarray] = []
    latencies: list[np.ndarray] = []
    seen: set[bytes] = set()
    rounds = 0
    for rounds in range(1, options.max_rounds + 1):
        if rounds > 1:
            embeddings = np.repeat(model.policy.embed([asked.placement]), options.candidates, axis=0)
            drawn = model.policy.sample(embeddings, asked.rng)
        distinct = _unique_rows(drawn)
        fresh = distinct[[row.tobytes() not in seen for row in distinct]]
        seen.update(row.tobytes() for row in fresh)
        if len(fresh):
            kept.append(fresh)
            latencies.append(scorer.latency(fresh))
        if any((lat <= budget_ms).any() for lat in latencies):
            break
    return np.concatenate(kept), np.concatenate(latencies), rounds


def _encode(model: InferenceModel, actions: np.ndarray) -> np.ndarray:
    return model.layout.encode_any_np(model.space, actions)


def _evaluator_scores(model: InferenceModel, encodings: np.ndarray, placement: BudgetPlacement) -> np.ndarray:
    if model.evaluator is None:
        return np.full(len(encodings), np.nan)
    return model.evaluator.score(encodings, placement)


def _check_selection(model: InferenceModel, scorer: CandidateScorer, select_by: str) -> None:
    if select_by == "source" and not scorer.has_accuracy:
        raise SettingError("select_by='source' needs the accuracy source: pass accuracy= (CLI: --accuracy SPEC)")
    if select_by == "evaluator" and model.evaluator is None:
        raise SettingError(
            "select_by='evaluator' needs a model with an evaluator; this one was trained without (a baseline reward)"
        )


def _first_rounds(model: InferenceModel, placements: Sequence[BudgetPlacement], seed: int, candidates: int) -> list[_Asked]:
    """Each budget with its first round of draws, sampled in passes of up to :data:`BATCH_ROWS` rows."""
    per_pass = max(1, BATCH_ROWS // candidates)
    asked: list[_Asked] = []
    for start in range(0, len(placements), per_pass):
        began = time.perf_counter()
        group = placements[start : start + per_pass]
        rngs = [_rng(seed, p.budget_ms) for p in group]
        blocks = [np.repeat(model.policy.embed([p]), candidates, axis=0) for p in group]
        drawn = model.policy.sample_blocks(blocks, rngs)
        share = (time.perf_counter() - began) * 1000.0 / len(group)
        asked += [_Asked(p, rng, first, share) for p, rng, first in zip(group, rngs, drawn, strict=True)]
    return asked


def _infer_one(model: InferenceModel, scorer: CandidateScorer, asked: _Asked, options: _Options) -> Generated:
    started = time.perf_counter()
    placement = asked.placement
    select_by, budget_ms = options.select_by, placement.budget_ms
    queries_before = scorer.accuracy_queries
    actions, latency, rounds = _draw(model, scorer, asked, options)
    feasible_rows = np.nonzero(latency <= budget_ms)[0]
    pool = feasible_rows if len(feasible_rows) else np.asarray([int(np.argmin(latency))])
    if select_by == "source":
        estimates = scorer.accuracy(actions[pool])
    elif select_by == "surrogate":
        estimates = model.surrogate(_encode(model, actions[pool])).astype(np.float64)
    else:
        estimates = _evaluator_scores(model, _encode(model, actions[pool]), placement).astype(np.float64)
    best = int(np.argmax(estimates))
    row, lat, acc = actions[pool[best]], float(latency[pool[best]]), float(estimates[best])
    steps = 0
    if select_by == "source" and options.refine_steps > 0 and len(feasible_rows):
        climbed = refine(
            actions[pool],
            latency[pool],
            estimates,
            budget_ms,
            scorer,
            steps=options.refine_steps,
            pairs=options.refine_pairs,
            climbs=options.refine_climbs,
        )
        if climbed is not None and climbed.steps:
            row, lat, acc, steps = climbed.actions, climbed.latency_ms, climbed.accuracy, climbed.steps
    chosen = row[None, :]
    if select_by == "evaluator":
        score = acc
        acc = float(model.surrogate(_encode(model, chosen))[0])
    else:
        score = float(_evaluator_scores(model, _encode(model, chosen), placement)[0])
    feasible = bool(len(feasible_rows))
    return Generated(
        budget_ms=float(budget_ms),
        arch=model.space.format(model.layout.actions_to_archs(model.space, chosen)[0]),
        latency_ms=lat,
        accuracy=acc,
        score=score,
        feasible=feasible,
        interpolated=placement.interpolated,
        outside_trained_range=placement.outside,
        budget_policy=placement.policy,
        candidates=rounds * options.candidates,
        distinct_candidates=len(actions),
        feasible_candidates=len(feasible_rows),
        rounds=rounds,
        time_ms=asked.shared_ms + (time.perf_counter() - started) * 1000.0,
        note=_note(feasible, budget_ms, placement.outside, model, rounds, float(latency.min())),
        selected_by=select_by,
        refine_steps=steps,
        accuracy_queries=scorer.accuracy_queries - queries_before,
        budget_quantile=model.latency.quantile if isinstance(model.latency, QuantileLatencyPredictor) else None,
    )


def sample_policy(model: InferenceModel | SearchModel, budget_ms: float, n: int, *, seed: int = 0) -> list[str]:
    """``n`` architectures drawn from the generator's policy for ``budget_ms``, duplicates kept and nothing
    filtered: what the generator proposes before inference checks the latency (the paper's Fig. 3 (b), (c)).
    """
    model = _numpy(model)
    return [model.space.format(a) for a in model.layout.actions_to_archs(model.space, _policy_draws(model, budget_ms, n, seed))]


def priced_policy_draws(
    model: InferenceModel | SearchModel, budget_ms: float, n: int, *, seed: int = 0
) -> list[tuple[str, float]]:
    """:func:`sample_policy`'s draws, each with its latency by the run's predictor (through its additive form when
    it has one): ``(arch, latency_ms)`` pairs, in the same order."""
    model = _numpy(model)
    actions = _policy_draws(model, budget_ms, n, seed)
    latencies = _scorer(model, None).latency(actions)
    archs = model.layout.actions_to_archs(model.space, actions)
    return [(model.space.format(a), float(ms)) for a, ms in zip(archs, latencies, strict=True)]


def _policy_draws(model: InferenceModel, budget_ms: float, n: int, seed: int) -> np.ndarray:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise SettingError(f"n must be a positive integer, got {n!r}")
    embedding = model.policy.embed([model.budgets.place(budget_ms)])
    return model.policy.sample(np.repeat(embedding, n, axis=0), _rng(seed, budget_ms))


def with_budget_quantile(model: InferenceModel, q: float | None) -> InferenceModel:
    """``model`` whose feasibility uses the ``q``-quantile of each latency (None: the run's own setting). Needs a
    predictor that knows its uncertainty (a farm block table); raises :class:`SettingError` otherwise."""
    if q is None:
        return model
    q = check_quantile(q)
    latency = model.latency
    if not isinstance(latency, QuantileLatencyPredictor):
        raise SettingError(
            f"--budget-quantile needs a latency predictor that knows its uncertainty; this run's is "
            f"{type(latency).__name__}: search with a farm table ('nag search --db DB --kind KIND') to use it"
        )
    if q == latency.quantile:
        return model
    # a quantile is not additive in the blocks (its spread is a root of summed variances): no additive form
    return replace(model, latency=latency.with_quantile(q), latency_form=None)


def _scorer(model: InferenceModel, accuracy: AccuracySource | None) -> CandidateScorer:
    return CandidateScorer(model.space, model.layout, model.latency, accuracy, form=model.latency_form)


def warm_up(model: InferenceModel | SearchModel) -> None:
    """Answer one trained budget once, untimed, so that one-time initialisation (the numpy networks, the latency
    predictor's additive form, numpy's own first calls) is not charged to a budget."""
    model = _numpy(model)
    ic = model.config.inference
    options = _Options(ic.candidates, 1, "surrogate", 0, 0, 1)
    (asked,) = _first_rounds(model, [model.budgets.place(model.budgets.budgets_ms[0])], 0, ic.candidates)
    _infer_one(model, _scorer(model, None), asked, options)


def infer(
    model: InferenceModel | SearchModel,
    budgets_ms: Sequence[float],
    *,
    seed: int = 0,
    candidates: int | None = None,
    max_rounds: int | None = None,
    select_by: str | None = None,
    accuracy: AccuracySource | None = None,
    refine_steps: int | None = None,
) -> list[Generated]:
    """One :class:`Generated` per budget, in order. Unset options come from ``model.config.inference``;
    ``accuracy`` is the source that ``select_by="source"`` asks (and that refinement climbs on).

    Raises :class:`nag.search.budgets.BudgetError` for a budget that is not a positive number (or outside
    the trained range under the 'error' policy), before any budget is answered.
    """
    model = _numpy(model)
    ic = model.config.inference
    for name, value in (("candidates", candidates), ("max_rounds", max_rounds)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise SettingError(f"{name} must be a positive integer, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise SettingError(f"seed must be an integer >= 0, got {seed!r}")
    options = _Options(
        candidates=ic.candidates if candidates is None else candidates,
        max_rounds=ic.max_rounds if max_rounds is None else max_rounds,
        select_by=select_by or ic.select_by,
        refine_steps=ic.refine_steps if refine_steps is None else refine_steps,
        refine_pairs=ic.refine_pairs,
        refine_climbs=ic.refine_climbs,
    )
    scorer = _scorer(model, accuracy)
    if not budgets_ms:
        return []
    _check_selection(model, scorer, options.select_by)
    placements = [model.budgets.place(budget) for budget in budgets_ms]
    with threadpool_limits(limits=1, user_api="blas"):
        return [_infer_one(model, scorer, asked, options) for asked in _first_rounds(model, placements, seed, options.candidates)]
