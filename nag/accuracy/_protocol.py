"""The :class:`AccuracySource` protocol."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "AccuracySource",
    "EncodedAccuracySource",
    "EncodedLabeller",
    "EnumerableAccuracySource",
    "LocalAccuracySource",
    "StorableFitSource",
]


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


@runtime_checkable
class EncodedAccuracySource(AccuracySource, Protocol):
    """An accuracy source that can also label architectures given as rows of ``space.encode`` (an optional
    capability: a search scoring thousands of candidates skips parsing them). Same values as ``accuracy``.
    """

    def accuracy_encoded(self, encodings: np.ndarray) -> np.ndarray:
        """Top-1 fraction of each row of ``encodings`` (``(n, space.encoding_size)``, the space's encoding)."""


class EncodedLabeller(Protocol):
    """Labels rows of ``space.encode``: what :meth:`LocalAccuracySource.around` returns."""

    def accuracy_encoded(self, encodings: np.ndarray) -> np.ndarray:
        """Top-1 fraction of each row of ``encodings``."""


@runtime_checkable
class LocalAccuracySource(EncodedAccuracySource, Protocol):
    """An encoded source that labels the neighbours of one architecture faster than arbitrary rows (an optional
    capability, for local search). ``around(e).accuracy_encoded(rows)`` equals ``accuracy_encoded(rows)`` up to
    float rounding (relative 1e-12); a search reports values it got from ``accuracy_encoded`` itself."""

    def around(self, encoding: np.ndarray) -> EncodedLabeller:
        """The source near the architecture encoded as ``encoding`` (``(space.encoding_size,)``)."""


@runtime_checkable
class EnumerableAccuracySource(AccuracySource, Protocol):
    """An accuracy source that can label only a known, finite set of architectures (a table): a search labels
    those (``archs``) instead of sampling the space. An optional capability."""

    @property
    def archs(self) -> list[str]:
        """The architectures this source can label, canonical strings."""


@runtime_checkable
class StorableFitSource(AccuracySource, Protocol):
    """An accuracy source fitted from data whose fit can be kept as arrays (in a run directory's ``accuracy.npz``)
    and read back without fitting again. An optional capability; the class also has ``from_arrays``."""

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The fit as named arrays (no pickled objects)."""
