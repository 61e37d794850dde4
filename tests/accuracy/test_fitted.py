"""The shipped DyNAS-T table and the fitted accuracy predictor (nag.accuracy.fitted, nag.accuracy.dynast)."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from nag.accuracy import AccuracySource
from nag.accuracy.dynast import RESOLUTION, WIDTH, dynast_rows, dynast_source, dynast_table
from nag.accuracy.fitted import CrossFitReport, FittedAccuracyPredictor, FittedModelError, FittingDataError
from nag.errors import ArchitectureError, SettingError
from nag.space import get_space

SPACE = get_space("ofa-mbv3")


def test_shipped_table_has_the_distinct_dynast_networks() -> None:
    rows = dynast_rows()
    archs, accuracy = dynast_table()
    # 2,223 distinct raw OFA dicts are 2,162 networks once the ignored slots past each depth are zeroed
    assert len(archs) == len(set(archs)) == 2162
    assert sum(row.n_rows for row in rows) == 2373
    assert all(SPACE.format(SPACE.parse(a)) == a for a in archs)
    assert min(accuracy) >= 0.70 and max(accuracy) <= 0.78
    assert max(row.spread_points for row in rows) < 0.1
    assert (WIDTH, RESOLUTION) == (1.0, 224)


def test_shipped_macs_and_params_equal_nag_arch_info_at_width_1() -> None:
    rows = random.Random(0).sample(dynast_rows(), 25)
    for row in rows:
        costs = SPACE.costs(SPACE.parse(row.arch), width=WIDTH, resolution=RESOLUTION)
        # tolerance 0: DyNAS-T's MACs are our MAdds with the classifier, exactly
        assert (costs.madds_total, costs.params) == (row.macs, row.params), row.arch


def test_dynast_source_ranks_held_out_networks_well() -> None:
    archs, accuracy = dynast_table()
    report = FittedAccuracyPredictor.cross_validate(archs, accuracy, folds=5, seed=0)
    assert isinstance(report, CrossFitReport) and (report.n, report.folds) == (2162, 5)
    # measured: tau 0.965, RMSE 0.065 points, top-10% RMSE 0.031 points (FIT.md)
    assert report.kendall_tau > 0.9
    assert report.rmse_points < 0.12 and report.top_decile_rmse_points < 0.08
    source = dynast_source()
    assert source is dynast_source()  # one fit per process
    assert isinstance(source, AccuracySource) and source.space == "ofa-mbv3"
    fitted = np.asarray(source.accuracy(archs[:200]))
    assert np.abs(fitted - np.asarray(accuracy[:200])).max() < 0.005
    uniform = source.accuracy(SPACE.sample_many(50, seed=1))
    assert all(0.0 <= v <= 1.0 for v in uniform)


def _linear_problem(n: int, seed: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    archs = [SPACE.format(a) for a in SPACE.sample_many(n, seed=seed)]
    weights = np.random.default_rng(seed).normal(0.0, 0.002, SPACE.encoding_size)
    x = np.asarray([SPACE.encode(SPACE.parse(a)) for a in archs])
    return archs, x, 0.7 + x @ weights


def test_fit_recovers_a_linear_function_of_the_encoding() -> None:
    archs, _, truth = _linear_problem(1200, seed=3)
    predictor = FittedAccuracyPredictor.fit(archs[:1000], truth[:1000].tolist(), alpha=1e-4)
    held_out = np.asarray(predictor.accuracy(archs[1000:]))
    spread = truth.std()
    assert np.sqrt(np.mean((held_out - truth[1000:]) ** 2)) < 0.1 * spread
    # and it is not a constant: ordering of the held-out networks is kept
    assert np.corrcoef(held_out, truth[1000:])[0, 1] > 0.99


def test_to_dict_round_trips_through_json_exactly() -> None:
    archs, _, truth = _linear_problem(60, seed=4)
    predictor = FittedAccuracyPredictor.fit(archs, truth.tolist(), provenance="synthetic")
    stored = json.loads(json.dumps(predictor.to_dict()))
    assert stored["kind"] == "fitted" and stored["space"] == "ofa-mbv3" and "synthetic" in stored["provenance"]
    assert stored["train_range"] == [truth.min(), truth.max()]
    again = FittedAccuracyPredictor.from_dict(stored)
    probe = SPACE.sample_many(100, seed=5)
    assert again.accuracy(probe) == predictor.accuracy(probe)
    assert again.to_dict() == predictor.to_dict()


def test_accuracy_accepts_strings_dicts_and_parsed_archs_alike() -> None:
    archs, _, truth = _linear_problem(40, seed=6)
    predictor = FittedAccuracyPredictor.fit(archs, truth.tolist())
    parsed = SPACE.parse(archs[0])
    assert predictor.accuracy([archs[0], parsed.to_ofa_dict(), parsed]) == [predictor.accuracy([parsed])[0]] * 3
    assert predictor.accuracy([]) == []


def test_bad_inputs_raise_typed_errors_naming_the_value() -> None:
    archs, _, truth = _linear_problem(30, seed=7)
    percent = (truth * 100).tolist()
    with pytest.raises(FittingDataError, match=rf"row 1 is {percent[0]!r}.*divide the accuracies by 100"):
        FittedAccuracyPredictor.fit(archs, percent)
    with pytest.raises(FittingDataError, match="row 3 is nan"):
        FittedAccuracyPredictor.fit(archs, [*truth[:2], float("nan"), *truth[3:]])
    with pytest.raises(FittingDataError, match=r"row 2 is -0\.5"):
        FittedAccuracyPredictor.fit(archs, [truth[0], -0.5, *truth[2:]])
    with pytest.raises(FittingDataError, match="at least 20 distinct architectures, got 19"):
        FittedAccuracyPredictor.fit(archs[:19], truth[:19].tolist())
    with pytest.raises(FittingDataError, match="30 architectures and 29 accuracies"):
        FittedAccuracyPredictor.fit(archs, truth[:29].tolist())
    with pytest.raises(ArchitectureError, match="depth of stage 1 is 9"):
        FittedAccuracyPredictor.fit(["9" + archs[0][1:], *archs[1:]], truth.tolist())
    with pytest.raises(SettingError, match="gamma must be a finite number > 0, got -1"):
        FittedAccuracyPredictor.fit(archs, truth.tolist(), gamma=-1)
    with pytest.raises(SettingError, match=r"folds must be .* got 1"):
        FittedAccuracyPredictor.cross_validate(archs, truth.tolist(), folds=1)
    predictor = FittedAccuracyPredictor.fit(archs, truth.tolist())
    with pytest.raises(ArchitectureError, match="'x' at position 1"):
        predictor.accuracy(["x,2,2,2,2:" + archs[0].split(":", 1)[1]])
    with pytest.raises(FittedModelError, match=r"kind 'fitted'.*got \('table', None\)"):
        FittedAccuracyPredictor.from_dict({"kind": "table"})
    broken = {**predictor.to_dict(), "dual": [0.1]}
    with pytest.raises(FittedModelError, match="got 1 weights for 30 architectures"):
        FittedAccuracyPredictor.from_dict(broken)


def test_to_arrays_round_trips_without_parsing_and_damage_is_refused() -> None:
    archs, _, accuracy = _linear_problem(120, seed=4)
    fitted = FittedAccuracyPredictor.fit(archs, list(accuracy), seed=2)
    arrays = fitted.to_arrays()
    again = FittedAccuracyPredictor.from_arrays(arrays)
    probe = SPACE.sample_many(300, seed=9)
    assert again.to_dict() == fitted.to_dict() and again.accuracy(probe) == fitted.accuracy(probe)
    encodings = np.asarray([SPACE.encode(a) for a in probe], dtype=np.float32)
    assert np.array_equal(again.accuracy_encoded(encodings), fitted.accuracy_encoded(encodings))
    active, support = arrays["active"], arrays["support"]
    swapped = active.copy()
    swapped[[0, -1]] = active[[-1, 0]]  # two rows exchanged: each row a valid encoding, of the other architecture
    repeated = active.copy()
    repeated[3, 1] = repeated[3, 0]  # a column twice in one row
    for change, expected in [
        ({"dual": arrays["dual"][:-1]}, r"dual is float64\[119\], expected finite float64\[120\]"),
        ({"dual": np.full_like(arrays["dual"], np.nan)}, "dual is float64.* with values that are not finite"),
        ({"active": active + 200}, "active columns must lie in 0..120"),
        ({"active": active.astype(np.float64)}, r"active is float64\[120, 40\], expected integers\[120, columns\]"),
        ({"active": active[:-1]}, r"active is uint8\[119, 40\]"),
        ({"active": swapped}, r"active row 0 is not the encoding of support\[0\]"),
        ({"active": repeated}, "an active row names a column twice"),
        ({"support": np.concatenate([support[:-1], support[:1]])}, "support repeats an architecture"),
        ({"support": np.asarray([b"\xff" + a[1:] for a in support])}, "support holds bytes that are not ASCII"),
        ({"support": np.asarray([b"x" + a[1:] for a in support])}, "support holds an architecture that does not parse"),
        ({"train_range": np.asarray([0.2, 0.1])}, r"train_range \[0\.2, 0\.1\] and offset"),
        ({"offset": np.asarray(2.0)}, "offset 2.0 must be accuracy fractions"),
        ({"offset": np.asarray(0.5, dtype=np.float32)}, r"offset is float32\[\], expected finite float64\[\]"),
        ({"space": np.asarray("no-such-space")}, "space 'no-such-space' is not known"),
        ({"provenance": np.asarray(3)}, r"provenance is int64\[\], not a string"),
        ({"kind": np.asarray("table")}, "expected a fitted predictor of kind 'fitted'"),
        ({"gamma": np.asarray(-1.0)}, "gamma must be a finite number > 0"),
        ({"support": None}, "expected .*write them with to_arrays"),
    ]:
        damaged = {k: v for k, v in {**arrays, **change}.items() if v is not None}
        with pytest.raises((FittedModelError, SettingError), match=expected):
            FittedAccuracyPredictor.from_arrays(damaged)


def test_encoded_accuracy_reads_the_kernel_from_a_table_with_the_same_values() -> None:
    """exp(2 gamma k) looked up by the shared column count k: bit for bit what computing each exp gives."""
    archs, _, accuracy = _linear_problem(80, seed=6)
    fitted = FittedAccuracyPredictor.fit(archs, list(accuracy))
    dense = np.asarray([SPACE.encode(a) for a in SPACE.sample_many(500, seed=3)], dtype=np.float64)
    support = np.asarray([SPACE.encode(SPACE.parse(a)) for a in fitted.support], dtype=np.float32).T
    shared = (dense.astype(np.float32) @ support).astype(np.float64)
    weights = np.exp(-fitted.gamma * np.asarray(support.sum(axis=0), dtype=np.int64)) * fitted.dual
    scale = np.exp(-fitted.gamma * dense.sum(axis=1))
    expected = np.clip(fitted.offset + scale * (np.exp((2.0 * fitted.gamma) * shared) @ weights), 0.0, 1.0)
    assert np.array_equal(fitted.accuracy_encoded(dense), expected)
