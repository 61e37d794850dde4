"""Budgets: even spacing, the interpolation of Sec. 3.2, and the outside-range policies."""

from __future__ import annotations

import pytest
import torch

from nag.errors import SettingError
from nag.search.budget_embedding import BudgetEmbedding
from nag.search.budgets import BudgetError, BudgetSet


def test_evenly_spaced_over_the_latency_range() -> None:
    budgets = BudgetSet.evenly([30.0, 12.0, 20.0, 48.0], 10)
    assert budgets.k == 10 and budgets.budgets_ms[0] == 12.0 and budgets.budgets_ms[-1] == 48.0
    steps = [b - a for a, b in zip(budgets.budgets_ms, budgets.budgets_ms[1:], strict=False)]
    assert steps == pytest.approx([4.0] * 9)
    with pytest.raises(SettingError, match="positive integer"):
        BudgetSet.evenly([1.0, 2.0], 0)
    with pytest.raises(SettingError, match="no range"):
        BudgetSet.evenly([5.0, 5.0], 3)


def test_interpolation_between_adjacent_budgets() -> None:
    budgets = BudgetSet((10.0, 20.0, 40.0))
    placed = budgets.place(25.0)
    assert (placed.lower, placed.upper, placed.interpolated, placed.outside) == (1, 2, True, None)
    assert placed.xi == pytest.approx((40.0 - 25.0) / (40.0 - 20.0))  # xi = (B2 - B) / (B2 - B1), the weight of B1
    exact = budgets.place(20.0)
    assert (exact.lower, exact.upper, exact.xi, exact.interpolated) == (1, 1, 1.0, False)
    embedding = BudgetEmbedding(3, 4)
    table = embedding.table.weight.detach()
    mixed = embedding.mix([placed, exact]).detach()
    assert torch.allclose(mixed[0], 0.75 * table[1] + 0.25 * table[2])
    assert torch.allclose(mixed[1], table[1])


def test_outside_policies() -> None:
    clamp = BudgetSet((10.0, 20.0, 40.0))
    below, above = clamp.place(5.0), clamp.place(100.0)
    assert (below.lower, below.upper, below.outside, below.interpolated) == (0, 0, "below", False)
    assert (above.lower, above.upper, above.outside) == (2, 2, "above")
    extrapolate = BudgetSet((10.0, 20.0, 40.0), outside="extrapolate").place(60.0)
    assert (extrapolate.lower, extrapolate.upper, extrapolate.outside) == (1, 2, "above")
    assert extrapolate.xi == pytest.approx(-1.0)  # the line through g(20) and g(40), continued to 60
    with pytest.raises(BudgetError, match=r"below the trained range 10\.000\.\.40\.000 ms"):
        BudgetSet((10.0, 20.0, 40.0), outside="error").place(5.0)
    for bad in (0.0, -3.0, float("nan"), float("inf")):
        with pytest.raises(BudgetError, match="positive number"):
            clamp.place(bad)


def test_budget_set_validation_and_round_trip() -> None:
    with pytest.raises(SettingError, match="strictly increasing"):
        BudgetSet((10.0, 10.0))
    with pytest.raises(SettingError, match="one of clamp"):
        BudgetSet((10.0,), outside="wrap")  # type: ignore[arg-type]
    budgets = BudgetSet((1.5, 2.5), outside="extrapolate")
    assert BudgetSet.from_dict(budgets.to_dict()) == budgets
