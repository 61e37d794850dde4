"""Reading Linux's thermal and cpufreq files, wherever they come from (this machine, ``adb shell``, SSH)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

__all__ = ["PLAUSIBLE_C", "natural_key", "temperatures_c"]

PLAUSIBLE_C = (-40.0, 150.0)  # zones reading outside this range are disconnected or broken sensors


def natural_key(path: str) -> list[Any]:
    """Sort key putting thermal_zone2 before thermal_zone10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path)]


def temperatures_c(raw_values: Iterable[int]) -> list[float] | None:
    """Degrees C from thermal-zone readings (millidegrees; a few old kernels report whole degrees).

    Implausible readings are dropped; None when nothing plausible is left.
    """
    values = [v / 1000.0 if abs(v) >= 1000 else float(v) for v in raw_values]
    plausible = [v for v in values if PLAUSIBLE_C[0] < v < PLAUSIBLE_C[1]]
    return plausible or None
