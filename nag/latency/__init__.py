"""Latency predictors: the protocol the search sees, and predictors fitted from measurements.

Concrete predictors live where their data does: the farm provides one backed by its block tables
(:mod:`farm`), this package one fitted from whole-network measurements alone.
"""

from __future__ import annotations

from nag.latency._protocol import (
    LatencyPredictor,
    QuantileLatencyPredictor,
    StorableLatencyPredictor,
    SummedLatencyPredictor,
    check_quantile,
)
from nag.latency.piecewise import PiecewiseLinear

__all__ = [
    "LatencyPredictor",
    "PiecewiseLinear",
    "QuantileLatencyPredictor",
    "StorableLatencyPredictor",
    "SummedLatencyPredictor",
    "check_quantile",
]
