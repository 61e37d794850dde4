"""Cross-fitted validation of a block table: honest calibrated figures, and a clear result when no
calibration can be fitted."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from agents import MeasurementSpec
from farm.crossval import cross_fitted_predictions, cross_validated
from farm.errors import FarmError
from farm.store import Store, TableKey
from nag.space import get_space
from tests.tables import put_block_table

SPEC = MeasurementSpec()


def _table(store: Store, *, network_latency: object) -> tuple[TableKey, list[str]]:
    space = get_space("ofa-mbv3")
    rng = random.Random(4)
    table, means = put_block_table(store, lambda _i, _key: rng.uniform(0.05, 1.0), fingerprint="f00", spec=SPEC)
    archs = [space.format(a) for a in space.sample_many(12, seed=2)]
    for i, arch in enumerate(archs):
        total = sum(means[b.key] for b in space.blocks(space.parse(arch), resolution=64))
        store.put_summary(table, "network", arch, mean_ms=network_latency(i, total), std_ms=0.01, count=30)  # type: ignore[operator]
    return table, archs


def test_calibrated_figures_are_cross_fitted(tmp_path: Path) -> None:
    with Store(tmp_path / "t.db") as store:
        table, archs = _table(store, network_latency=lambda i, total: 1.5 + 0.8 * total * (1 + 0.02 * ((i % 3) - 1)))
        (result,) = cross_validated(store, kind="ort-cpu", space="ofa-mbv3", width=1.2, resolution=64, spec=SPEC, archs=archs)
        assert result.calibrated and result.figures.n == 12 and result.table == table
        assert result.figures.mape < 0.05 < result.uncalibrated.mape
        assert result.calibration is not None and store.get_calibration(table) == result.calibration.to_dict()
        shown = result.to_dict()  # the 'nag table validate --json' contract
        assert list(shown)[:8] == ["n", "within_5pct", "within_10pct", "mape", "median_ape", "max_ape", "bias", "kendall_tau"]
        assert list(shown)[8:] == ["calibrated", "calibration", "table", "uncalibrated"]
        assert shown["calibration"] == result.calibration.to_dict() and shown["uncalibrated"]["mape"] == result.uncalibrated.mape


def test_cross_fitting_never_predicts_a_network_with_its_own_fit() -> None:
    sums = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
    measured = [2 * s for s in sums]
    measured[3] = 40.0  # one wild network: its own prediction must come from fits that did not see it
    predictions = cross_fitted_predictions(sums, measured, statistic="median", folds=8)
    assert predictions[3] == pytest.approx(8.0, rel=0.05)


def test_unfittable_networks_are_reported_not_crashed(tmp_path: Path) -> None:
    with Store(tmp_path / "t.db") as store:
        table, archs = _table(store, network_latency=lambda i, total: 100.0 / total)  # slower where the table says faster
        (result,) = cross_validated(store, kind="ort-cpu", space="ofa-mbv3", width=1.2, resolution=64, spec=SPEC, archs=archs)
        assert result.calibrated is False and result.calibration_error is not None and "scale" in result.calibration_error
        assert result.figures.mape == result.uncalibrated.mape and store.get_calibration(table) is None
        shown = result.to_dict()
        assert shown["calibrated"] is False and shown["calibration"] is None and "scale" in shown["calibration_error"]
        with pytest.raises(FarmError, match="build it first"):
            cross_validated(store, kind="ort-cpu", space="ofa-mbv3", width=1.2, resolution=224, spec=SPEC, archs=archs)
