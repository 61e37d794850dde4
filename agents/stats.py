"""Robust statistics of latency samples, and the adaptive stopping rule.

The median is the headline figure (latency distributions are right-skewed: a preempted run is slow, never
fast). Its 95% confidence interval is distribution-free: the order statistics whose ranks come from the
Binomial(n, 1/2) distribution, so no normality is assumed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["SampleStats", "median_ci", "percentile", "summarize"]

MIN_SAMPLES_FOR_CI = 6  # below this, no pair of order statistics covers the median with 95% confidence


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of already sorted values, linearly interpolated (numpy's default)."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    position = (len(sorted_values) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def _binomial_cdf_half(k: int, n: int) -> float:
    """P(X <= k) for X ~ Binomial(n, 1/2)."""
    return sum(math.comb(n, i) for i in range(k + 1)) / 2**n


def median_ci(sorted_values: Sequence[float], *, confidence: float = 0.95) -> tuple[float, float]:
    """Distribution-free confidence interval of the median from order statistics.

    Returns (low, high) = (x_(j), x_(n-j+1)) with the largest j such that the interval covers the median
    with at least ``confidence``; (-inf, inf) when there are too few samples for any such j.
    """
    n = len(sorted_values)
    alpha = (1.0 - confidence) / 2.0
    if n < MIN_SAMPLES_FOR_CI:
        return (-math.inf, math.inf)
    if n > 1000:  # normal approximation of the binomial ranks; exact sums get slow and agree closely
        j = max(1, math.floor(n / 2 - 1.959964 * math.sqrt(n) / 2))
    else:
        j = 0
        while _binomial_cdf_half(j, n) <= alpha:  # P(X <= j) = P(median < x_(j+1))
            j += 1
        if j == 0:
            return (-math.inf, math.inf)
    return (sorted_values[j - 1], sorted_values[n - j])


@dataclass(frozen=True)
class SampleStats:
    count: int
    median: float
    mean: float
    std: float  # sample standard deviation (n - 1); 0 for one sample
    mad: float  # median absolute deviation from the median, unscaled
    p10: float
    p90: float
    minimum: float
    maximum: float
    ci_low: float  # 95% confidence interval of the median (order statistics); infinite below 6 samples
    ci_high: float

    @property
    def ci_rel_halfwidth(self) -> float:
        """Half-width of the median's 95% CI relative to the median (inf when undefined)."""
        if not math.isfinite(self.ci_low) or not math.isfinite(self.ci_high) or self.median <= 0:
            return math.inf
        return (self.ci_high - self.ci_low) / 2.0 / self.median


def summarize(samples: Sequence[float]) -> SampleStats:
    """Statistics of a non-empty sequence of samples."""
    if not samples:
        raise ValueError("no samples to summarize")
    values = sorted(samples)
    n = len(values)
    median = percentile(values, 50)
    mean = math.fsum(values) / n
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    deviations = sorted(abs(v - median) for v in values)
    low, high = median_ci(values)
    return SampleStats(
        count=n, median=median, mean=mean, std=std, mad=percentile(deviations, 50), p10=percentile(values, 10),
        p90=percentile(values, 90), minimum=values[0], maximum=values[-1], ci_low=low, ci_high=high,
    )  # fmt: skip
