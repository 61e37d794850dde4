"""A monotone piecewise-linear map of milliseconds, in numpy: how a predictor finishes an additive sum.

A calibrated block table predicts ``f(sum of blocks)`` where ``f`` is a line, or a line that turns into a
ratio below the range it was fitted on (:class:`farm.lut.Calibration`). Such an ``f`` is a
:class:`PiecewiseLinear`: knots ``(x, y)`` joined by straight lines, continued beyond the first and last
knot along the end segments. Inference keeps one beside the additive form of the sum
(:class:`nag.search.scoring.AdditiveForm`), so a calibrated table prices thousands of candidates in
one vectorised pass instead of a parse per candidate, and ``inference.npz`` stores it as a ``(m, 2)`` array.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

__all__ = ["PiecewiseLinear"]


@dataclass(frozen=True)
class PiecewiseLinear:
    """``y = f(x)``: linear between the knots, and beyond the ends along the first and last segments.

    ``xs`` strictly increasing, at least two knots, every value finite; ``ys`` non-decreasing (a latency map
    that reorders networks would not be a calibration). Raises ValueError naming what is wrong.
    """

    xs: tuple[float, ...]
    ys: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.xs) != len(self.ys) or len(self.xs) < 2:
            raise ValueError(f"a piecewise-linear map needs at least two (x, y) knots, got xs={self.xs!r}, ys={self.ys!r}")
        if not all(math.isfinite(v) for v in (*self.xs, *self.ys)):
            raise ValueError(f"knots must be finite numbers, got xs={self.xs!r}, ys={self.ys!r}")
        if any(b <= a for a, b in itertools.pairwise(self.xs)) or any(b < a for a, b in itertools.pairwise(self.ys)):
            raise ValueError(f"knots must increase in x and not decrease in y, got xs={self.xs!r}, ys={self.ys!r}")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """``f`` of every value of ``x`` (float64)."""
        x = np.asarray(x, dtype=np.float64)
        xs, ys = self.xs, self.ys
        low_slope = (ys[1] - ys[0]) / (xs[1] - xs[0])
        high_slope = (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])
        inside = np.interp(x, xs, ys)
        below = ys[0] + low_slope * (x - xs[0])
        above = ys[-1] + high_slope * (x - xs[-1])
        return np.where(x < xs[0], below, np.where(x > xs[-1], above, inside))

    def to_array(self) -> np.ndarray:
        """The knots as a ``(m, 2)`` float64 array of ``(x, y)`` rows."""
        return np.column_stack([self.xs, self.ys]).astype(np.float64)

    @classmethod
    def from_array(cls, knots: np.ndarray) -> PiecewiseLinear:
        """The inverse of :meth:`to_array`; raises ValueError for anything but a finite ``(m, 2)`` float array."""
        knots = np.asarray(knots)
        if knots.ndim != 2 or knots.shape[1] != 2 or knots.dtype.kind != "f":
            raise ValueError(f"knots must be a (m, 2) float array, got {knots.dtype}{list(knots.shape)}")
        return cls(tuple(float(v) for v in knots[:, 0]), tuple(float(v) for v in knots[:, 1]))
