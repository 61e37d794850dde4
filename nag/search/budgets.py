"""Training budgets and their embeddings (PNAG Sec. 3.2).

K budgets are spaced evenly over the latency range of the data (``numpy.linspace`` between two quantiles
of the latencies, by default the minimum and the maximum, so every budget inside the data's range is
covered by interpolation). Each trained budget has a learned embedding; a budget B between two adjacent
trained budgets B1 < B < B2 is represented by the paper's linear interpolation::

    b = xi * g(B1) + (1 - xi) * g(B2),    xi = (B2 - B) / (B2 - B1)

Outside [B_min, B_max] neither the paper nor its code says what to do. :data:`OutsidePolicy`:

- ``"clamp"`` (default): use the nearest trained budget's embedding. The generator then aims at B_min
  (or B_max); inference still filters candidates by the requested budget, so a budget below the range is
  met only if the generator's cheapest architectures happen to fit. Extrapolated embeddings lie outside
  anything the networks were trained on, which is why clamping is the default.
- ``"extrapolate"``: continue the line through the two nearest trained budgets.
- ``"error"``: refuse with :class:`BudgetError`.

Every lookup returns a :class:`BudgetPlacement` so the output can say which case applied. The learned
embeddings themselves are :class:`nag.search.budget_embedding.BudgetEmbedding` (torch, for training) and
their numpy copies at inference; this module needs neither torch nor the networks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from nag import stored
from nag.errors import NagError, SettingError, show_value

__all__ = ["OUTSIDE_POLICIES", "BudgetError", "BudgetPlacement", "BudgetSet", "OutsidePolicy", "mix_embeddings"]

OutsidePolicy = Literal["clamp", "extrapolate", "error"]
OUTSIDE_POLICIES: tuple[str, ...] = ("clamp", "extrapolate", "error")
_TOLERANCE_MS = 1e-9


class BudgetError(NagError, ValueError):
    """A requested budget is unusable (not a positive number, or outside the range under policy 'error')."""


@dataclass(frozen=True)
class BudgetPlacement:
    """Where a requested budget falls relative to the trained budgets, and how its embedding is mixed."""

    budget_ms: float  # the requested budget
    lower: int  # index of the trained budget weighted by ``xi``
    upper: int  # index of the trained budget weighted by ``1 - xi`` (== lower for an exact or clamped budget)
    xi: float  # weight of ``lower`` (may leave [0, 1] only under "extrapolate")
    interpolated: bool  # True when the embedding mixes two trained budgets (the budget is not a trained one)
    outside: Literal["below", "above"] | None  # set when the budget is outside [B_min, B_max]
    policy: OutsidePolicy  # the outside policy in force


@dataclass(frozen=True)
class BudgetSet:
    """The K trained budgets (ms, strictly increasing) and the policy for budgets outside their range."""

    budgets_ms: tuple[float, ...]  # trained budgets, strictly increasing, at least 1
    outside: OutsidePolicy = "clamp"  # what a budget outside [B_min, B_max] does (see the module docstring)

    def __post_init__(self) -> None:
        if not self.budgets_ms:
            raise SettingError("a budget set needs at least one budget")
        if any(not np.isfinite(b) or b <= 0 for b in self.budgets_ms):
            raise SettingError(f"budgets must be positive finite milliseconds, got {show_value(list(self.budgets_ms), 200)}")
        if any(b2 <= b1 for b1, b2 in zip(self.budgets_ms, self.budgets_ms[1:], strict=False)):
            raise SettingError(f"budgets must be strictly increasing, got {show_value(list(self.budgets_ms), 200)}")
        if self.outside not in OUTSIDE_POLICIES:
            raise SettingError(
                f"outside-range policy must be one of {', '.join(OUTSIDE_POLICIES)}, got {show_value(self.outside)}"
            )

    @classmethod
    def evenly(
        cls,
        latency_ms: Sequence[float] | np.ndarray,
        k: int,
        *,
        quantiles: tuple[float, float] = (0.0, 1.0),
        outside: OutsidePolicy = "clamp",
    ) -> BudgetSet:
        """K budgets evenly spaced between two quantiles of ``latency_ms`` (both ends included)."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise SettingError(f"number of budgets K must be a positive integer, got {k!r}; the paper uses 10")
        low_q, high_q = quantiles
        if not 0.0 <= low_q < high_q <= 1.0:
            raise SettingError(f"budget quantiles must satisfy 0 <= low < high <= 1, got {quantiles}")
        values = np.asarray(latency_ms, dtype=np.float64)
        low, high = (float(v) for v in np.quantile(values, [low_q, high_q]))
        if k > 1 and not high > low:
            raise SettingError(f"the latencies span no range ({low} ms to {high} ms); K > 1 budgets need distinct latencies")
        points = [high] if k == 1 else [float(v) for v in np.linspace(low, high, k)]
        return cls(budgets_ms=tuple(points), outside=outside)

    @property
    def k(self) -> int:
        return len(self.budgets_ms)

    def place(self, budget_ms: float) -> BudgetPlacement:
        """Where ``budget_ms`` falls; raises :class:`BudgetError` for a bad value or outside under 'error'."""
        if isinstance(budget_ms, bool) or not isinstance(budget_ms, (int, float)) or not np.isfinite(budget_ms) or budget_ms <= 0:
            raise BudgetError(f"a budget must be a positive number of milliseconds, got {budget_ms!r}")
        trained = self.budgets_ms
        b = float(budget_ms)
        for index, value in enumerate(trained):
            if abs(b - value) <= _TOLERANCE_MS * max(1.0, value):
                return BudgetPlacement(b, index, index, 1.0, False, None, self.outside)
        if trained[0] < b < trained[-1]:
            upper = int(np.searchsorted(trained, b))
            xi = (trained[upper] - b) / (trained[upper] - trained[upper - 1])
            return BudgetPlacement(b, upper - 1, upper, xi, True, None, self.outside)
        side: Literal["below", "above"] = "below" if b < trained[0] else "above"
        if self.outside == "error":
            raise BudgetError(
                f"budget {b:g} ms is {side} the trained range {trained[0]:.3f}..{trained[-1]:.3f} ms; "
                "ask for a budget inside it, or use the 'clamp' or 'extrapolate' policy"
            )
        edge = 0 if side == "below" else self.k - 1
        if self.outside == "clamp" or self.k == 1:
            return BudgetPlacement(b, edge, edge, 1.0, False, side, self.outside)
        lower, upper = (0, 1) if side == "below" else (self.k - 2, self.k - 1)
        xi = (trained[upper] - b) / (trained[upper] - trained[lower])
        return BudgetPlacement(b, lower, upper, xi, True, side, self.outside)

    def to_dict(self) -> dict[str, object]:
        return {"budgets_ms": list(self.budgets_ms), "outside": self.outside}

    @classmethod
    def from_dict(cls, value: Any, *, where: str = "budgets") -> BudgetSet:
        """The budgets :meth:`to_dict` wrote (other keys are ignored); raises :class:`nag.stored.StoredValueError`
        naming a missing or mistyped entry, :class:`SettingError` for budgets out of order or range."""
        values = stored.dataclass_values(cls, value, where, unknown=True)
        return cls(budgets_ms=tuple(float(b) for b in values["budgets_ms"]), outside=values.get("outside", "clamp"))


def mix_embeddings(table: np.ndarray, placements: Sequence[BudgetPlacement]) -> np.ndarray:
    """Embeddings ``(n, D)`` of placed budgets from a ``(K, D)`` float32 table of trained ones (Sec. 3.2):
    ``xi * g(lower) + (1 - xi) * g(upper)``, in float32 as the networks compute it."""
    lower = table[[p.lower for p in placements]]
    upper = table[[p.upper for p in placements]]
    xi = np.asarray([p.xi for p in placements], dtype=np.float32)[:, None]
    return xi * lower + (1.0 - xi) * upper
