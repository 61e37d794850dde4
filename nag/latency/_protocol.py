"""The :class:`LatencyPredictor` protocol."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

__all__ = ["LatencyPredictor", "StorableLatencyPredictor"]


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
