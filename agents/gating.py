"""Thermal and frequency gating: wait (bounded) for a cool device, flag a run whose conditions moved."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from agents.errors import DeviceTooHotError

__all__ = ["drift_flags", "hottest", "wait_until_cool"]


def hottest(temperatures_c: Sequence[float] | None) -> float | None:
    """The hottest zone, or None where the platform exposes no temperature."""
    return max(temperatures_c) if temperatures_c else None


def wait_until_cool(
    read_temperatures: Callable[[], Sequence[float] | None],
    *,
    limit_c: float,
    timeout_s: float,
    poll_s: float = 0.5,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> float | None:
    """Poll until the hottest zone is at or below ``limit_c``; returns that temperature.

    Returns None at once where no temperature is exposed (nothing to gate on). Raises
    :class:`DeviceTooHotError` (transient) when the device is still hotter after ``timeout_s``.
    """
    deadline = clock() + timeout_s
    while True:
        current = hottest(read_temperatures())
        if current is None or current <= limit_c:
            return current
        remaining = deadline - clock()
        if remaining <= 0:
            raise DeviceTooHotError(
                f"device stayed at {current:.1f} C, above the {limit_c:.1f} C limit, for the whole {timeout_s:g} s "
                "cool-down wait; let it cool, raise max_temperature_c, or lengthen cooldown_timeout_s"
            )
        sleep(min(poll_s, remaining))


def drift_flags(
    *,
    temperature_before_c: float | None,
    temperature_after_c: float | None,
    freqs_before_khz: Sequence[int] | None,
    freqs_after_khz: Sequence[int] | None,
    max_temperature_drift_c: float,
    max_frequency_drift: float,
) -> list[str]:
    """Flags for a run whose temperature or any core's frequency moved beyond the allowed drift."""
    flags = []
    if (
        temperature_before_c is not None
        and temperature_after_c is not None
        and abs(temperature_after_c - temperature_before_c) > max_temperature_drift_c
    ):
        flags.append("temperature-drift")
    if freqs_before_khz and freqs_after_khz and len(freqs_before_khz) == len(freqs_after_khz):
        for before, after in zip(freqs_before_khz, freqs_after_khz, strict=True):
            if before > 0 and abs(after - before) / before > max_frequency_drift:
                flags.append("frequency-drift")
                break
    return flags
