"""The :class:`LatencyPredictor` protocol."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from nag.latency.piecewise import PiecewiseLinear

__all__ = ["LatencyPredictor", "QuantileLatencyPredictor", "StorableLatencyPredictor", "SummedLatencyPredictor", "check_quantile"]


@runtime_checkable
class LatencyPredictor(Protocol):
    """Predicts the latency of architectures of one search space, at one setting, on one device.

    ``predict_ms`` takes architectures as the space's canonical strings or parsed objects and returns
    milliseconds in the same order. Implementations are read-only after construction and thread-safe.
    They raise :class:`nag.errors.NagError` subclasses for architectures they cannot price (for example a
    block missing from a table), never a default value.
    """

    @property
    def space(self) -> str:
        """Registry name of the search space whose architectures this predictor prices."""

    def predict_ms(self, archs: Sequence[Any]) -> list[float]:
        """Predicted latency in ms of each architecture, in order."""


@runtime_checkable
class StorableLatencyPredictor(LatencyPredictor, Protocol):
    """A latency predictor that a run directory can keep: ``to_dict()`` gives JSON with its registered ``kind``
    (see :data:`nag.search.rundir.LATENCY_KINDS`), and the class's ``from_dict`` restores it."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters, with ``"kind"``: the predictor's registry name."""


@runtime_checkable
class QuantileLatencyPredictor(LatencyPredictor, Protocol):
    """A latency predictor that knows its uncertainty and can answer a quantile instead of its point estimate:
    ``with_quantile(q).predict_ms`` gives latencies that hold with probability ``q`` (the q-quantile), so a
    budget met by them is met with probability q (``nag search``/``nag generate --budget-quantile``)."""

    @property
    def quantile(self) -> float | None:
        """The quantile ``predict_ms`` answers, or None for the point estimate."""

    def with_quantile(self, q: float | None) -> QuantileLatencyPredictor:
        """A copy answering the ``q``-quantile (None: the point estimate); raises SettingError unless 0 < q < 1."""


@runtime_checkable
class SummedLatencyPredictor(LatencyPredictor, Protocol):
    """A latency predictor that is a fixed increasing piecewise-linear map of another predictor's values (a block
    table's calibration of its sums): inference prices candidates through the inner predictor's additive form
    and then the map (:class:`nag.search.scoring.AdditiveForm`), checked against ``predict_ms`` itself."""

    def summed(self) -> tuple[LatencyPredictor, PiecewiseLinear] | None:
        """``(inner, f)`` with ``predict_ms(a) == f(inner.predict_ms(a))`` for every architecture, or None when this
        predictor is not such a map at present (e.g. it answers a quantile)."""


def check_quantile(q: Any) -> float | None:
    """``q`` as a quantile in (0, 1), or None; raises :class:`nag.errors.SettingError` with the fix otherwise."""
    import math

    from nag.errors import SettingError, show_value

    if q is None:
        return None
    if isinstance(q, bool) or not isinstance(q, (int, float)) or not math.isfinite(q) or not 0 < q < 1:
        raise SettingError(
            f"a budget quantile must be a number between 0 and 1 (exclusive), got {show_value(q)}; e.g. 0.9: "
            "an architecture is feasible when its latency is under the budget with probability 0.9"
        )
    return float(q)
