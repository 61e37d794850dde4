"""Accuracy sources: the protocol the search sees, and sources backed by tables or predictors."""

from __future__ import annotations

from nag.accuracy._protocol import (
    AccuracySource,
    EncodedAccuracySource,
    EncodedLabeller,
    EnumerableAccuracySource,
    LocalAccuracySource,
    StorableFitSource,
)

__all__ = [
    "AccuracySource",
    "EncodedAccuracySource",
    "EncodedLabeller",
    "EnumerableAccuracySource",
    "LocalAccuracySource",
    "StorableFitSource",
]
