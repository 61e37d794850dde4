"""The learned budget embeddings g(B_k) of PNAG (Sec. 3.2), one per trained budget, for training (torch).

A budget between trained ones is embedded by :meth:`nag.search.budgets.BudgetSet.place`'s interpolation;
inference does the same on numpy copies of the table (:mod:`nag.search.policy`, :mod:`nag.search.numpy_model`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nag.search.budgets import BudgetPlacement

__all__ = ["BudgetEmbedding"]


class BudgetEmbedding(nn.Module):
    """One learned ``dim``-vector per trained budget; any budget is embedded by :meth:`nag.search.budgets.BudgetSet.place`."""

    def __init__(self, k: int, dim: int) -> None:
        super().__init__()
        self.table = nn.Embedding(k, dim)

    def trained(self, index: torch.Tensor) -> torch.Tensor:
        """Embeddings of trained budgets by index: ``(n,)`` -> ``(n, dim)``."""
        return self.table(index)

    def mix(self, placements: Sequence[BudgetPlacement]) -> torch.Tensor:
        """Embeddings of placed budgets (interpolated per Sec. 3.2): ``(len(placements), dim)``."""
        lower = torch.tensor([p.lower for p in placements], dtype=torch.long)
        upper = torch.tensor([p.upper for p in placements], dtype=torch.long)
        xi = torch.tensor([p.xi for p in placements], dtype=torch.float32).unsqueeze(1)
        return xi * self.table(lower) + (1.0 - xi) * self.table(upper)
