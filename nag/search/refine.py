"""Refinement of an inferred architecture by local search under the accuracy source (not in the paper).

The paper's inference returns the best feasible draw of the generator. Measured with ``nag bench`` on
the embedded default (DyNAS-T accuracy, this machine's table), even the best of 10,000 draws stayed
0.06-0.16 points of top-1 below a per-budget evolutionary search: the generator puts its mass in the
right region, not on its best point. Refinement climbs from the best draw:

- **Single moves**: every one-decision change of the current architecture (a used slot's kernel or
  expand ratio; a stage one layer deeper, the new layer copying its predecessor; a stage one shallower).
- **Trades**: at a budget's edge every improving move is too slow, so pairs of moves (one that gains
  accuracy but is over the budget, one that saves time) are tried too. Their value is first estimated as
  the sum of the two moves' measured changes; the ``pairs`` best estimates that fit the budget are then
  labelled by the source like every other candidate.

Each step moves to the best feasible neighbour if it is better, else stops (a local optimum under single
moves and trades). Every candidate is priced by the latency predictor and labelled by the accuracy
source, so refinement needs a source that answers quickly (a table, a fitted predictor); its queries are
counted and reported. A source that labels neighbours faster than arbitrary rows
(:class:`nag.accuracy.LocalAccuracySource`: the fitted kernel predictor) ranks a step's candidates that
way; the pick is then labelled by the source itself, so every reported accuracy is the source's own. The bench's ``local`` method runs the same climb from uniform samples instead of the
generator's draws: on the embedded default it comes within 0.03 points of refined PNAG on average
(BENCHMARKS.md), so on a landscape this smooth most of the final gain is the climb's, not the start's.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from nag.search.layout import DecisionKind, StagedLayout
from nag.search.scoring import CandidateScorer

__all__ = ["Refined", "neighbours", "refine"]

_SLOT_KINDS: tuple[DecisionKind, ...] = ("kernel", "expand")


@dataclass(frozen=True)
class Refined:
    """The result of a climb."""

    actions: np.ndarray  # (T,) canonical action row
    latency_ms: float  # the latency predictor's value
    accuracy: float  # the accuracy source's value
    steps: int  # moves taken (0: the start was already a local optimum)
    evaluated: int  # distinct candidates priced and labelled during the climb


def neighbours(layout: StagedLayout, row: np.ndarray) -> np.ndarray:
    """Every architecture one decision away from the canonical action row ``row``: ``(m, T)`` canonical rows.

    Per stage, in order: each used slot's other kernels and expand ratios (layer by layer), then the stage one
    layer shallower and one deeper (a new layer copies the last used one).
    """
    steps, slots, choices, stages = _slot_choices(layout)
    keep = layout.slot_used(row[None, :])[0][slots] & (row[steps] != choices)
    slot_moves = np.repeat(row[None, :], int(keep.sum()), axis=0)
    slot_moves[np.arange(len(slot_moves)), steps[keep]] = choices[keep]
    depth_moves, depth_stages = [], []
    depth_index = row[layout.depth_steps]
    for stage in range(layout.num_stages):
        depth = layout.depth_choices[depth_index[stage]]
        for delta in (-1, 1):
            index = depth_index[stage] + delta
            if not 0 <= index < len(layout.depth_choices):
                continue
            moved = row.copy()
            moved[layout.depth_step(stage)] = index
            for layer in range(depth, layout.depth_choices[index]):  # new layers copy the last used one
                for kind in _SLOT_KINDS:
                    moved[layout.slot_step(stage, layer, kind)] = row[layout.slot_step(stage, depth - 1, kind)]
            depth_moves.append(moved)
            depth_stages.append(stage)
    found = np.concatenate([slot_moves, np.asarray(depth_moves, dtype=row.dtype).reshape(-1, len(row))])
    order = np.argsort(np.concatenate([stages[keep], np.asarray(depth_stages, dtype=np.int64)]), kind="stable")
    return layout.canonical_actions(found[order])


@lru_cache(maxsize=16)
def _slot_choices(layout: StagedLayout) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every value a slot decision can take, in :func:`neighbours`' order: its step, slot, choice and stage."""
    found = []
    for stage in range(layout.num_stages):
        for layer in range(layout.slots_per_stage):
            for kind in _SLOT_KINDS:
                step = layout.slot_step(stage, layer, kind)
                found += [
                    (step, stage * layout.slots_per_stage + layer, choice, stage) for choice in range(len(layout.choices(kind)))
                ]
    steps, slots, choices, stages = (np.asarray(column, dtype=np.int64) for column in zip(*found, strict=True))
    return steps, slots, choices, stages


def _unseen(rows: np.ndarray, seen: set[bytes]) -> np.ndarray:
    """The rows not in ``seen`` (first of equal rows only), which are then added to it."""
    keep = []
    for index, row in enumerate(rows):
        key = row.tobytes()
        if key not in seen:
            seen.add(key)
            keep.append(index)
    return rows[keep]


def _trades(
    row: np.ndarray,
    moves: np.ndarray,
    gain: np.ndarray,
    cost: np.ndarray,
    slack_ms: float,
    pairs: int,
    layout: StagedLayout,
) -> np.ndarray:
    """Up to ``pairs`` rows combining an over-budget gain with a time saving, best estimated gain first."""
    ups = np.nonzero((gain > 0) & (cost > slack_ms))[0]
    downs = np.nonzero(cost < 0)[0]
    if not len(ups) or not len(downs) or pairs <= 0:
        return np.zeros((0, len(row)), dtype=row.dtype)
    estimate = gain[ups][:, None] + gain[downs][None, :]
    fits = cost[ups][:, None] + cost[downs][None, :] <= slack_ms
    changed = moves != row
    clash = (changed[ups][:, None, :] & changed[downs][None, :, :]).any(axis=2)
    estimate = np.where(fits & ~clash & (estimate > 0), estimate, -np.inf)
    order = np.argsort(-estimate, axis=None)[:pairs]
    order = order[np.isfinite(estimate.flat[order])]
    up, down = np.unravel_index(order, estimate.shape)
    combined = np.where(changed[ups[up]], moves[ups[up]], moves[downs[down]])
    return layout.canonical_actions(combined)


def refine(
    starts: np.ndarray,
    latency_ms: np.ndarray,
    accuracy: np.ndarray,
    budget_ms: float,
    scorer: CandidateScorer,
    *,
    steps: int,
    pairs: int,
    climbs: int = 1,
) -> Refined | None:
    """Climb from each of the ``climbs`` most accurate feasible rows of ``starts`` (canonical rows, priced and
    labelled) and return the best end; None if no start meets the budget. At most ``steps`` moves per climb;
    ``pairs`` trades tried per move. The climbs share what they have seen, so none re-labels a candidate.
    """
    feasible = np.nonzero(latency_ms <= budget_ms)[0]
    if not len(feasible):
        return None
    seen = {r.tobytes() for r in starts}
    ends = [
        _climb(starts[i].copy(), float(latency_ms[i]), float(accuracy[i]), budget_ms, scorer, seen, steps, pairs)
        for i in feasible[np.argsort(-accuracy[feasible], kind="stable")[:climbs]]
    ]
    best = max(ends, key=lambda end: end.accuracy)
    return Refined(best.actions, best.latency_ms, best.accuracy, best.steps, sum(end.evaluated for end in ends))


def _climb(
    row: np.ndarray,
    lat: float,
    acc: float,
    budget_ms: float,
    scorer: CandidateScorer,
    seen: set[bytes],
    steps: int,
    pairs: int,
) -> Refined:
    evaluated, taken = 0, 0
    layout = scorer.layout
    for _ in range(steps):
        moves = _unseen(neighbours(layout, row), seen)  # distinct by construction: each changes another decision
        if not len(moves):
            break
        label = scorer.around(row)
        move_lat, move_acc = scorer.latency(moves), label(moves)
        trades = _trades(row, moves, move_acc - acc, move_lat - lat, budget_ms - lat, pairs, layout)
        trades = _unseen(trades, seen)
        candidates, cand_lat, cand_acc = moves, move_lat, move_acc
        if len(trades):
            candidates = np.concatenate([moves, trades])
            cand_lat = np.concatenate([move_lat, scorer.latency(trades)])
            cand_acc = np.concatenate([move_acc, label(trades)])
        evaluated += len(candidates)
        better = np.nonzero((cand_lat <= budget_ms) & (cand_acc > acc))[0]
        if not len(better):
            break
        pick = int(better[np.argmax(cand_acc[better])])
        picked = float(scorer.accuracy(candidates[pick : pick + 1])[0]) if scorer.local else float(cand_acc[pick])
        if picked <= acc:  # ranked better only by rounding
            break
        row, lat, acc = candidates[pick].copy(), float(cand_lat[pick]), picked
        taken += 1
    return Refined(actions=row, latency_ms=lat, accuracy=acc, steps=taken, evaluated=evaluated)
