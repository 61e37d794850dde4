"""The :class:`AccuracySource` protocol."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

__all__ = ["AccuracySource"]


@runtime_checkable
class AccuracySource(Protocol):
    """Gives top-1 accuracy (a fraction in [0, 1]) of architectures of one search space.

    A table source knows only its rows; a predictor or a supernet can label any architecture. ``accuracy``
    raises :class:`nag.errors.NagError` subclasses for architectures it cannot label, never a default.
    """

    @property
    def space(self) -> str:
        """Registry name of the search space."""

    def accuracy(self, archs: Sequence[Any]) -> list[float]:
        """Top-1 accuracy fraction of each architecture, in order."""
