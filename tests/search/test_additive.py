"""The additive latency model fitted from whole-network measurements."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nag.data import ArchTable
from nag.latency import LatencyPredictor
from nag.latency.additive import AdditiveLatencyPredictor, LatencyFitError, nnls
from nag.search.synthetic import SyntheticProblem


def test_recovers_an_exactly_additive_latency(problem: SyntheticProblem, table: ArchTable) -> None:
    predictor = AdditiveLatencyPredictor.fit(table.archs, table.latency_ms)
    assert isinstance(predictor, LatencyPredictor) and predictor.space == "ofa-mbv3"
    report = predictor.report
    assert report is not None and report.rows == 1000 and report.heldout_rows == 200
    assert report.rmse_ms < 1e-4 and report.heldout_rmse_ms < 1e-4 and report.max_abs_error_ms < 1e-3
    fresh = problem.sample_uniform(50, seed=9)
    assert predictor.predict_ms(fresh) == pytest.approx(problem.predict_ms(fresh), abs=1e-4)
    assert min(predictor.terms_ms.values()) >= 0.0 and predictor.constant_ms >= 0.0  # like a table's entries
    # A later layer's term is the synthetic problem's own block latency (first layers share the constant).
    assert predictor.terms_ms["stage3/later/k5/e4"] == pytest.approx(problem.lat[2, 1, 1, 1], abs=1e-6)


def test_reports_the_error_of_a_non_additive_latency(table: ArchTable) -> None:
    rng = np.random.default_rng(0)
    noisy = [v * (1 + 0.05 * rng.standard_normal()) for v in table.latency_ms]
    report = AdditiveLatencyPredictor.fit(table.archs, noisy).report
    assert report is not None and 0.02 < report.heldout_mape < 0.08 and report.heldout_rmse_ms > report.rmse_ms


def test_json_round_trip(table: ArchTable) -> None:
    predictor = AdditiveLatencyPredictor.fit(table.archs[:400], table.latency_ms[:400])
    again = AdditiveLatencyPredictor.from_dict(json.loads(json.dumps(predictor.to_dict())))
    assert again.predict_ms(table.archs[400:450]) == predictor.predict_ms(table.archs[400:450])
    assert again.report == predictor.report


def test_blocks_no_row_uses_cannot_be_priced(table: ArchTable) -> None:
    with pytest.raises(LatencyFitError, match="no row uses the block"):
        AdditiveLatencyPredictor.fit(table.archs[:20], table.latency_ms[:20])


def test_nnls_matches_the_constrained_optimum() -> None:
    rng = np.random.default_rng(1)
    design = rng.standard_normal((40, 6))
    target = design @ np.array([1.0, -2.0, 0.5, 0.0, 3.0, -1.0]) + 0.1 * rng.standard_normal(40)
    solution = nnls(design.T @ design, design.T @ target)
    assert (solution >= 0).all() and solution[1] == 0.0 and solution[5] == 0.0
    gradient = design.T @ (design @ solution - target)  # KKT: zero on the free set, >= 0 on the bound set
    assert np.allclose(gradient[solution > 0], 0.0, atol=1e-8) and (gradient[solution == 0] >= -1e-8).all()
