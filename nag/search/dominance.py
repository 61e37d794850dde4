"""Pareto dominance d(a, b, B) of the PNAG paper (Eqn. 6), vectorised over pairs and budgets.

Eqn. 6, for architectures a, b with costs c (latency, ms) and accuracies Acc, under budget B::

    d(a, b, B) =  1  if c(a) <= B and c(b) <= B and Acc(a) >= Acc(b)
                 -1  else if c(a) <= B and c(b) <= B and Acc(a) <  Acc(b)
                  1  else if c(a) <= c(b)
                 -1  otherwise

The paper states d(a, b, B) = -d(b, a, B) for a != b. Read literally, Eqn. 6 gives +1 both ways when the
deciding comparison ties (equal accuracy with both feasible, or equal cost otherwise), and the published
code (strict comparisons) gives -1 both ways. Neither is antisymmetric, so here a tie on the deciding
comparison carries **no label** (0), and so does a pair of the same architecture (the paper omits those
pairs). With ties removed, ``>=`` and ``>`` agree, and d(a, b, B) = -d(b, a, B) holds exactly.

``accuracy_condition=False`` is the paper's ablation (Remark 1, Table 2): the lower cost always wins, so
the accuracy of two feasible architectures no longer matters and the generator drifts to tiny networks.
"""

from __future__ import annotations

import torch

__all__ = ["dominance_of_pairs", "pairwise_dominance"]


def dominance_of_pairs(
    cost_a: torch.Tensor,
    acc_a: torch.Tensor,
    cost_b: torch.Tensor,
    acc_b: torch.Tensor,
    budgets: torch.Tensor,
    *,
    same: torch.Tensor | None = None,
    accuracy_condition: bool = True,
) -> torch.Tensor:
    """d(a_p, b_p, B_k) for P pairs and K budgets: an ``(P, K)`` int8 tensor of -1, 0 (no label), +1.

    ``cost_*`` and ``acc_*`` are ``(P,)``; ``budgets`` is ``(K,)``; ``same`` (optional, ``(P,)`` bool) marks
    pairs of the same architecture, which get 0. Without the ``accuracy_condition`` the cost decides every pair.
    """
    ca, cb = cost_a.unsqueeze(1), cost_b.unsqueeze(1)  # (P, 1)
    bud = budgets.unsqueeze(0)  # (1, K)
    both_feasible = (ca <= bud) & (cb <= bud) & accuracy_condition  # (P, K)
    by_accuracy = torch.sign(acc_a - acc_b).unsqueeze(1)  # (P, 1): +1 a more accurate, 0 tie
    by_cost = torch.sign(cost_b - cost_a).unsqueeze(1)  # (P, 1): +1 a cheaper, 0 tie
    label = torch.where(both_feasible, by_accuracy, by_cost).to(torch.int8)
    if same is not None:
        label = label.masked_fill(same.unsqueeze(1), 0)
    return label


def pairwise_dominance(
    cost: torch.Tensor,
    acc: torch.Tensor,
    budgets: torch.Tensor,
    *,
    arch_ids: torch.Tensor | None = None,
    accuracy_condition: bool = True,
    dtype: torch.dtype = torch.int8,
    rows: slice | None = None,
) -> torch.Tensor:
    """The full ``(K, M, M)`` tensor d(i, j, B_k) over M architectures (M^2 K entries of ``dtype``).

    ``arch_ids`` (optional, ``(M,)`` ints) identifies architectures, so repeated rows of one architecture
    carry no label; the diagonal never does. The two budget-free comparisons are made once, as ``(M, M)``
    blocks, and each budget picks between them where both architectures are feasible. ``rows`` (a slice of
    the M) gives only those rows i, a ``(K, len(rows), M)`` block: a large M is walked a block at a time.
    """
    m, k = cost.shape[0], budgets.shape[0]
    rows = slice(0, m) if rows is None else rows
    ids = torch.arange(m) if arch_ids is None else arch_ids
    differs = ids[rows].unsqueeze(1) != ids.unsqueeze(0)  # (r, M)
    by_cost = (torch.sign(cost.unsqueeze(0) - cost[rows].unsqueeze(1)) * differs).to(dtype)  # [i, j]: +1 when i is cheaper
    if not accuracy_condition:
        return by_cost.expand(k, *by_cost.shape)
    by_accuracy = (torch.sign(acc[rows].unsqueeze(1) - acc.unsqueeze(0)) * differs).to(dtype)  # +1 when i is more accurate
    feasible = cost.unsqueeze(0) <= budgets.unsqueeze(1)  # (K, M)
    return torch.where(feasible[:, rows].unsqueeze(2) & feasible.unsqueeze(1), by_accuracy, by_cost)
