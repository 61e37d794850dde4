"""The DyNAS-T accuracy data shipped with the package, and the accuracy source fitted on it.

``nag/accuracy/data/dynast-ofa-mbv3-w1.0/dynast.csv``: 2,162 distinct ``ofa-mbv3`` networks with real
ImageNet top-1 (IntelLabs/DyNAS-T, Apache-2.0; provenance and changes in that folder's README.md), all
measured at width 1.0 and 224 px. A latency table paired with this source must be measured at the same
width and resolution (:data:`WIDTH`, :data:`RESOLUTION`) to be a fair pairing.
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from pathlib import Path

from nag.accuracy.fitted import FittedAccuracyPredictor

__all__ = ["DATA_DIR", "RESOLUTION", "SPACE", "TABLE", "WIDTH", "DynastRow", "dynast_rows", "dynast_source", "dynast_table"]

SPACE = "ofa-mbv3"
WIDTH = 1.0  # OFA's ofa_mbv3_d234_e346_k357_w1.0 supernet
RESOLUTION = 224  # every row was evaluated at 224 px
DATA_DIR = Path(__file__).resolve().parent / "data" / "dynast-ofa-mbv3-w1.0"
TABLE = DATA_DIR / "dynast.csv"
PROVENANCE = "IntelLabs/DyNAS-T notebooks/data/mbnv3w10_*.csv @ 251cb5e0 (Apache-2.0), width 1.0, 224 px"


@dataclass(frozen=True)
class DynastRow:
    """One distinct network of the shipped table (repeats of the raw data averaged)."""

    arch: str  # canonical ofa-mbv3 string
    accuracy: float  # ImageNet top-1 fraction, mean of the repeats
    macs: int  # DyNAS-T's MACs at width 1.0, 224 px, classifier included
    params: int  # DyNAS-T's parameter count
    n_rows: int  # raw rows averaged
    spread_points: float  # max - min top-1 of those rows, percent points
    source_file: str  # raw DyNAS-T files the rows came from, ';'-separated


@functools.lru_cache(maxsize=1)
def dynast_rows() -> tuple[DynastRow, ...]:
    """The shipped rows, read once per process."""
    with TABLE.open(newline="", encoding="utf-8") as handle:
        return tuple(
            DynastRow(
                arch=row["arch"],
                accuracy=float(row["accuracy"]),
                macs=int(row["macs"]),
                params=int(row["params"]),
                n_rows=int(row["n_rows"]),
                spread_points=float(row["spread_points"]),
                source_file=row["source_file"],
            )
            for row in csv.DictReader(handle)
        )


def dynast_table() -> tuple[list[str], list[float]]:
    """Canonical architecture strings and their top-1 fractions (new lists each call)."""
    rows = dynast_rows()
    return [row.arch for row in rows], [row.accuracy for row in rows]


@functools.lru_cache(maxsize=4)
def dynast_source(*, seed: int = 0) -> FittedAccuracyPredictor:
    """The :class:`FittedAccuracyPredictor` fitted on the shipped rows; fitted once per process and seed.

    The predictor is read-only, so the cached instance is safe to share.
    """
    archs, accuracy = dynast_table()
    return FittedAccuracyPredictor.fit(archs, accuracy, space=SPACE, seed=seed, provenance=PROVENANCE)
