"""Validate a block table against measured whole networks, honestly: the calibrated figures are
cross-fitted (each network's calibrated prediction comes from a calibration fitted without it).

For every table of a kind at a setting that holds both blocks and the validated networks: the
uncalibrated table sums, a K-fold cross-fitted calibrated prediction (K = min(5, n)), their error
statistics (:func:`farm.validation.validate`), and finally the calibration fitted on all networks, stored
with the table for later predictions. Needs at least 4 networks for the calibrated figures. Where no sane
calibration can be fitted (too few or too noisy networks), the result says so (``calibrated: false``,
``calibration_error``), its figures are the uncalibrated sums', and any old calibration is removed.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents import MeasurementSpec
from farm.errors import CalibrationError
from farm.lut import Calibration, LutPredictor, calibrate, fit_calibration, network_latencies
from farm.registry import DeviceGroup
from farm.store import Store, TableKey
from farm.validation import ValidationReport, plot_validation, validate

__all__ = ["TableValidation", "cross_fitted_predictions", "cross_validated"]

MIN_NETWORKS = 4  # each fold's fit needs at least 3 networks


@dataclass(frozen=True)
class TableValidation:
    """One table's validation against measured whole networks."""

    table: TableKey
    figures: ValidationReport  # calibrated and cross-fitted when ``calibration`` is set; else the raw sums'
    uncalibrated: ValidationReport  # the plain table sums'
    calibration: Calibration | None  # fitted on all networks and stored with the table; None when none could be
    calibration_error: str | None = None  # why no calibration could be fitted

    @property
    def calibrated(self) -> bool:
        return self.calibration is not None

    @property
    def group(self) -> DeviceGroup:
        """The devices whose table this is, as ``DeviceRecord.group``."""
        return DeviceGroup(self.table.fingerprint, self.table.runtime, self.table.runtime_version)

    def to_dict(self) -> dict[str, Any]:
        """JSON (the ``nag table validate --json`` contract): the figures' keys, ``calibrated``, ``calibration``,
        ``calibration_error`` (only when calibration failed), ``table``, ``uncalibrated``."""
        head = {**self.figures.to_dict(), "calibrated": self.calibrated, "calibration": None}
        if self.calibration is not None:
            head["calibration"] = self.calibration.to_dict()
        if self.calibration_error is not None:
            head["calibration_error"] = self.calibration_error
        return {**head, "table": self.table.to_dict(), "uncalibrated": self.uncalibrated.to_dict()}


def cross_fitted_predictions(
    sums: Sequence[float], measured: Sequence[float], *, statistic: str, folds: int = 5, seed: int = 0
) -> list[float]:
    """Calibrated predictions where network i's calibration was fitted on the other folds only."""
    n = len(sums)
    k = min(folds, n)
    order = list(range(n))
    random.Random(seed).shuffle(order)
    fold_of = {index: position % k for position, index in enumerate(order)}
    predictions = [0.0] * n
    for fold in range(k):
        train = [i for i in range(n) if fold_of[i] != fold]
        calibration = fit_calibration([sums[i] for i in train], [measured[i] for i in train], statistic=statistic)  # type: ignore[arg-type]
        for i in range(n):
            if fold_of[i] == fold:
                predictions[i] = calibration.apply(sums[i])
    return predictions


def cross_validated(
    store: Store,
    *,
    kind: str,
    space: str,
    width: float,
    resolution: int,
    spec: MeasurementSpec,
    archs: Sequence[str],
    plot: str | None = None,
) -> list[TableValidation]:
    """One result per table of ``kind`` at the setting (see the module docstring)."""
    from farm.errors import FarmError

    tables = [t for t in store.tables(device=kind, space=space, resolution=resolution, width=width) if t.spec_key == spec.key()]
    results = []
    for table in tables:
        predictor = LutPredictor(store, table, use_calibration=False)
        measured_all = network_latencies(store, table, statistic=predictor.statistic)
        names = [a for a in archs if a in measured_all]
        if len(names) < MIN_NETWORKS:
            continue
        sums = [predictor.table_sum_ms(a) for a in names]
        measured = [measured_all[a] for a in names]
        uncalibrated = validate(sums, measured)
        try:
            fitted = cross_fitted_predictions(sums, measured, statistic=predictor.statistic)
            calibration = calibrate(store, table, statistic=predictor.statistic, networks=dict(zip(names, measured, strict=True)))
        except CalibrationError as exc:  # e.g. networks too noisy to fit: report the raw sums, say why, store nothing
            store.delete_calibration(table)
            result = TableValidation(table, uncalibrated, uncalibrated, None, calibration_error=str(exc))
            fitted = sums
        else:
            result = TableValidation(table, validate(fitted, measured), uncalibrated, calibration)
        if plot is not None:
            target = Path(plot) if len(tables) == 1 else Path(plot).with_stem(f"{Path(plot).stem}-{table.fingerprint}")
            how = "calibrated, cross-fitted" if result.calibrated else "uncalibrated"
            plot_validation(fitted, measured, target, title=f"{kind} at {resolution}px: LUT ({how}) vs measured")
        results.append(result)
    if not results:
        raise FarmError(
            f"no {kind} table at {resolution}px holds blocks and at least {MIN_NETWORKS} of the validated networks; "
            f"build it first with 'nag table build --kind {kind} --resolution {resolution} ...' (same --runs/--warmup/--threads)"
        )
    return results
