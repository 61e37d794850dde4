"""Pareto dominance (Eqn. 6): each branch, antisymmetry, ties and repeated architectures carry no label."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nag.search.dominance import dominance_of_pairs, pairwise_dominance


def reference(cost_a: float, acc_a: float, cost_b: float, acc_b: float, budget: float) -> int:
    """Eqn. 6 written out, with a tie on the deciding comparison giving no label (0)."""
    if cost_a <= budget and cost_b <= budget:
        return 0 if acc_a == acc_b else (1 if acc_a >= acc_b else -1)
    return 0 if cost_a == cost_b else (1 if cost_a <= cost_b else -1)


def d(cost_a: float, acc_a: float, cost_b: float, acc_b: float, budget: float) -> int:
    t = lambda v: torch.tensor([v], dtype=torch.float64)
    return int(dominance_of_pairs(t(cost_a), t(acc_a), t(cost_b), t(acc_b), t(budget))[0, 0])


def test_each_branch_of_eqn_6() -> None:
    assert d(10, 0.70, 12, 0.75, 20) == -1  # both feasible: the more accurate wins, whatever the cost
    assert d(12, 0.75, 10, 0.70, 20) == 1
    assert d(10, 0.70, 25, 0.90, 20) == 1  # one infeasible: the cheaper wins, whatever the accuracy
    assert d(25, 0.90, 10, 0.70, 20) == -1
    assert d(30, 0.90, 25, 0.10, 20) == -1  # both infeasible: the cheaper wins
    assert d(20, 0.70, 20.5, 0.90, 20) == 1  # the budget itself is feasible (<=)


def test_ties_and_repeated_architectures_carry_no_label() -> None:
    assert d(10, 0.7, 12, 0.7, 20) == 0  # equal accuracy, both feasible
    assert d(25, 0.9, 25, 0.1, 20) == 0  # equal cost, one infeasible
    cost = torch.tensor([10.0, 30.0, 10.0], dtype=torch.float64)
    acc = torch.tensor([0.7, 0.8, 0.71], dtype=torch.float64)
    labels = pairwise_dominance(cost, acc, torch.tensor([20.0, 40.0], dtype=torch.float64), arch_ids=torch.tensor([0, 1, 0]))
    assert labels.shape == (2, 3, 3)
    assert (labels[:, 0, 2] == 0).all() and (labels[:, 2, 0] == 0).all()  # rows 0 and 2 are one architecture
    assert (labels.diagonal(dim1=1, dim2=2) == 0).all()
    assert labels[0, 0, 1] == 1 and labels[1, 0, 1] == -1  # at 20 ms row 1 is infeasible; at 40 ms it is more accurate


finite = st.floats(min_value=0.0, max_value=100.0, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(
    costs=st.lists(st.sampled_from([5.0, 10.0, 15.0, 20.0]) | finite, min_size=2, max_size=8),
    accs=st.lists(st.sampled_from([0.5, 0.7]) | st.floats(0.0, 1.0), min_size=8, max_size=8),
    budgets=st.lists(st.sampled_from([10.0, 15.0]) | finite, min_size=1, max_size=4),
)
def test_antisymmetric_and_equal_to_the_written_rule(costs: list[float], accs: list[float], budgets: list[float]) -> None:
    cost = torch.tensor(costs, dtype=torch.float64)
    acc = torch.tensor(accs[: len(costs)], dtype=torch.float64)
    bud = torch.tensor(budgets, dtype=torch.float64)
    labels = pairwise_dominance(cost, acc, bud)
    assert torch.equal(labels, -labels.transpose(1, 2))  # d(a, b, B) = -d(b, a, B), ties included
    blocks = [pairwise_dominance(cost, acc, bud, rows=slice(start, start + 3)) for start in range(0, len(costs), 3)]
    assert torch.equal(torch.cat(blocks, dim=1), labels)  # a block of rows is those rows of the whole
    for k, budget in enumerate(budgets):
        for i in range(len(costs)):
            for j in range(len(costs)):
                expected = 0 if i == j else reference(costs[i], float(acc[i]), costs[j], float(acc[j]), budget)
                assert int(labels[k, i, j]) == expected
