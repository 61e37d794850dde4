"""How far a latency predictor is from measured whole networks: the figures, Kendall's tau, a plot.

Errors are relative to the measurement: ``(predicted - measured) / measured``. All shares and errors are
fractions (0.05 is 5 %), as scikit-learn's ``mean_absolute_percentage_error`` reports MAPE.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from farm.errors import ValidationInputError
from nag.data import atomic_write

__all__ = ["ValidationReport", "kendall_tau", "plot_validation", "validate"]


def _check_pairs(predicted: Sequence[float], measured: Sequence[float], *, minimum: int) -> tuple[list[float], list[float]]:
    p, m = list(predicted), list(measured)
    if len(p) != len(m):
        raise ValidationInputError(f"{len(p)} predicted but {len(m)} measured latencies; pass one of each per network")
    if len(p) < minimum:
        raise ValidationInputError(f"comparing latencies needs at least {minimum} networks, got {len(p)}; measure more")
    for name, values in (("predicted", p), ("measured", m)):
        bad = next(
            (v for v in values if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0), None
        )
        if bad is not None:
            raise ValidationInputError(f"every {name} latency must be a finite number of ms > 0, got {bad!r}")
    return [float(v) for v in p], [float(v) for v in m]  # numpy scalars too: plain floats from here on


def _sign(value: float) -> int:
    return (value > 0) - (value < 0)


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b of two equally long sequences (ties handled as scipy.stats.kendalltau does).

    ``(C - D) / sqrt((P - Tx) (P - Ty))`` over the P = n(n-1)/2 pairs: C concordant, D discordant, Tx pairs
    tied in x, Ty pairs tied in y. NaN when either sequence is constant (the rank correlation is undefined).
    O(n^2): exact and plenty fast for the hundreds of networks a validation measures.
    """
    if len(x) != len(y):
        raise ValidationInputError(f"Kendall's tau needs sequences of equal length, got {len(x)} and {len(y)}")
    if len(x) < 2:
        raise ValidationInputError(f"Kendall's tau needs at least 2 pairs, got {len(x)}")
    concordant = discordant = tied_x = tied_y = 0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            sx, sy = _sign(x[i] - x[j]), _sign(y[i] - y[j])
            tied_x += sx == 0
            tied_y += sy == 0
            concordant += sx * sy > 0
            discordant += sx * sy < 0
    pairs = len(x) * (len(x) - 1) // 2
    denominator = math.sqrt((pairs - tied_x) * (pairs - tied_y))
    return (concordant - discordant) / denominator if denominator > 0 else math.nan


@dataclass(frozen=True)
class ValidationReport:
    """A predictor's error against measured whole networks (fractions, not percent)."""

    n: int  # networks compared
    within_5pct: float  # share with |predicted - measured| / measured <= 0.05
    within_10pct: float  # share with that relative error <= 0.10
    mape: float  # mean absolute relative error
    median_ape: float  # median absolute relative error
    max_ape: float  # largest absolute relative error
    bias: float  # mean signed relative error; > 0: the predictor overestimates
    kendall_tau: float  # rank agreement (tau-b); NaN when either side is constant

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: keys ``n``, ``within_5pct``, ``within_10pct``, ``mape``, ``median_ape``, ``max_ape``,
        ``bias``, ``kendall_tau`` (None where NaN)."""
        return {key: None if isinstance(v, float) and math.isnan(v) else v for key, v in asdict(self).items()}


def validate(predicted: Sequence[float], measured: Sequence[float]) -> ValidationReport:
    """Compare predicted with measured latencies (ms, one pair per network, at least 2 networks).

    Raises :class:`ValidationInputError` for unequal lengths, fewer than 2 pairs, or a value not finite and > 0.
    """
    p, m = _check_pairs(predicted, measured, minimum=2)
    errors = [(pi - mi) / mi for pi, mi in zip(p, m, strict=True)]
    absolute = [abs(e) for e in errors]
    return ValidationReport(
        n=len(p),
        within_5pct=sum(a <= 0.05 for a in absolute) / len(p),
        within_10pct=sum(a <= 0.10 for a in absolute) / len(p),
        mape=math.fsum(absolute) / len(p),
        median_ape=statistics.median(absolute),
        max_ape=max(absolute),
        bias=math.fsum(errors) / len(p),
        kendall_tau=kendall_tau(p, m),
    )


def plot_validation(predicted: Sequence[float], measured: Sequence[float], path: str | Path, *, title: str | None = None) -> Path:
    """Scatter predicted against measured latency with the y = x line and the +-10 % band; PNG written
    atomically to ``path``. Imports matplotlib (Agg backend, no display needed). Returns ``path``."""
    p, m = _check_pairs(predicted, measured, minimum=1)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    report = validate(p, m) if len(p) >= 2 else None
    low, high = 0.95 * min(*p, *m), 1.05 * max(*p, *m)
    figure, axes = plt.subplots(figsize=(5.5, 5.0), dpi=120)
    try:
        line = [low, high]
        axes.fill_between(line, [0.9 * v for v in line], [1.1 * v for v in line], color="tab:blue", alpha=0.12, label="+-10%")
        axes.plot(line, line, color="black", linewidth=1.0, label="y = x")
        axes.scatter(m, p, s=14, color="tab:orange", edgecolors="none", label="networks")
        axes.set_xlim(low, high)
        axes.set_ylim(low, high)
        axes.set_xlabel("measured latency (ms)")
        axes.set_ylabel("predicted latency (ms)")
        subtitle = ""
        if report is not None:
            tau = "n/a" if math.isnan(report.kendall_tau) else f"{report.kendall_tau:.3f}"
            subtitle = f"n={report.n}  within 10%: {report.within_10pct:.0%}  MAPE {report.mape:.1%}  tau {tau}"
        axes.set_title(f"{title}\n{subtitle}" if title else subtitle, fontsize=9)
        axes.legend(loc="upper left", fontsize=8)
        figure.tight_layout()
        return atomic_write(path, lambda tmp: figure.savefig(tmp, format="png"))
    finally:
        plt.close(figure)
