"""``nag bench --measure``: the answers' latency measured on the farm, as the bench's latency source.

Every distinct architecture the methods answered is measured as a whole network on the farm's devices of
the table's kind, at the table's width and resolution, into the same store (a rerun skips what is there).
The measured latencies then score the answers instead of the table's prediction: feasibility is then a
fact of the device, not of the model. The policies' raw draws (Fig. 3) stay priced by the table, since
measuring thousands of networks per budget is not what a bench is for.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from nag.errors import NagError
from nag.space import get_space

__all__ = ["MeasuredLatency", "MeasurementMissingError", "measure_answers"]


class MeasurementMissingError(NagError, LookupError):
    """An architecture has no whole-network measurement in the store."""


class MeasuredLatency:
    """Latency of measured whole networks (a :class:`nag.latency.LatencyPredictor` over exactly those)."""

    def __init__(self, space: str, measured_ms: dict[str, float], *, where: str) -> None:
        self._space = get_space(space)
        self._values = {self._space.format(self._space.parse(a)): float(v) for a, v in measured_ms.items()}
        self.where = where  # the table the measurements are stored in, for messages and the report

    @property
    def space(self) -> str:
        return self._space.name

    def predict_ms(self, archs: Sequence[Any]) -> list[float]:
        found = []
        for arch in archs:
            name = self._space.format(self._space.parse(arch) if isinstance(arch, str) else arch)
            if name not in self._values:
                raise MeasurementMissingError(f"{name} was not measured in {self.where}; rerun 'nag bench --measure'")
            found.append(self._values[name])
        return found


def measure_answers(
    farm: Any,
    store: Any,
    predictor: Any,
    archs: Sequence[str],
    *,
    spec: Any,
    on_progress: Callable[[Any], None] | None = None,
) -> MeasuredLatency:
    """Measure ``archs`` on ``farm`` as whole networks at the setting of ``predictor``'s table (a
    :class:`farm.lut.LutPredictor`); raises :class:`nag.errors.NagError` when some could not be measured."""
    from farm.lut import network_latencies
    from farm.tables import measure_tasks, network_tasks

    table = predictor.table
    names = list(dict.fromkeys(archs))
    tasks = network_tasks(table.space, names, width=table.width, resolution=table.resolution)
    report = measure_tasks(
        farm, store, tasks, kind=table.device, spec=spec, description=f"bench: {len(names)} answers on {table.device}",
        on_progress=on_progress,
    )  # fmt: skip
    if report.failed:
        task, why = report.failed[0]
        raise NagError(f"{len(report.failed)} answer(s) could not be measured on {table.device}; first: {task.item}: {why}")
    key = dataclasses.replace(table, spec_key=spec.key())  # the table's device group, at the measuring spec
    measured = network_latencies(store, key, statistic=predictor.statistic)
    missing = [a for a in names if a not in measured]
    if missing:
        raise NagError(
            f"the farm measured {len(names) - len(missing)} of {len(names)} answers into {key.label()}; the others ran on "
            f"devices of another fingerprint than table {table.label()}: pass --fingerprint, or measure on the table's devices"
        )
    return MeasuredLatency(table.space, {a: measured[a] for a in names}, where=key.label())
