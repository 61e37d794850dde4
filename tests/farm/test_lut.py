"""OFA LUT YAML import/export, the LUT predictor and its calibration, and the validation figures."""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from farm.errors import (
    CalibrationError,
    InvalidEntryError,
    MissingBlockError,
    TableAmbiguousError,
    TableConflictError,
    TableFileError,
    UnknownBlockError,
    ValidationInputError,
)
from farm.lut import Calibration, LutPredictor, calibrate, fit_calibration
from farm.ofa_lut import export_ofa_yaml, import_ofa_yaml, read_ofa_yaml, resolution_from_name
from farm.store import Store, TableKey
from farm.validation import kendall_tau, plot_validation, validate
from nag.latency import LatencyPredictor
from nag.space import get_space
from nag.space.ofa_mbv3 import OFAMobileNetV3Space
from tests.conftest import PNAG_80_MOBILE
from tests.farm.test_store import make_measurement
from tests.tables import put_block_table


def write_ofa_file(path: Path, entries: dict[str, tuple[int, float, float]]) -> None:
    """A LUT file laid out as OFA publishes them: ``key:`` then indented count, mean, std."""
    lines = []
    for key, (count, mean, std) in entries.items():
        lines += [f"{key}:", f"  count: {count}", f"  mean: {mean!r}", f"  std: {std!r}"]
    path.write_text("\n".join(lines) + "\n")


def ofa_entries(space: OFAMobileNetV3Space, *, width: float, resolution: int, seed: int) -> dict[str, tuple[int, float, float]]:
    rng = random.Random(seed)
    return {
        block.key: (rng.choice([10, 100, 1000]), round(rng.uniform(0.02, 2.0), 6), round(rng.uniform(0.001, 0.05), 6))
        for block in space.all_blocks(width=width, resolution=resolution)
    }


def imported_key(resolution: int, *, width: float = 1.2, device: str = "note10") -> TableKey:
    return TableKey(space="ofa-mbv3", width=width, resolution=resolution, device=device, fingerprint="", runtime="ofa-lut",
                    runtime_version="", spec_key="")  # fmt: skip


# -- OFA LUT files --------------------------------------------------------------------------------
def test_ofa_yaml_round_trip(tmp_path: Path, space: OFAMobileNetV3Space) -> None:
    originals = {res: ofa_entries(space, width=1.2, resolution=res, seed=res) for res in (224, 160)}
    paths = []
    for res, entries in originals.items():
        assert len(entries) == 96
        write_ofa_file(tmp_path / f"{res}_lookup_table.yaml", entries)
        paths.append(tmp_path / f"{res}_lookup_table.yaml")
    with Store(tmp_path / "t.db") as store:
        imported = import_ofa_yaml(store, paths, device="note10")
        assert [(i.table, i.blocks, i.changed) for i in imported] == [(imported_key(224), 96, 96), (imported_key(160), 96, 96)]
        assert [i.changed for i in import_ofa_yaml(store, paths, device="note10")] == [0, 0]  # same files again: no change
        written = export_ofa_yaml(store, tmp_path / "out", device="note10")
    assert [p.name for p in written] == ["160_lookup_table.yaml", "224_lookup_table.yaml"]
    for res, entries in originals.items():
        exported = yaml.safe_load((tmp_path / "out" / f"{res}_lookup_table.yaml").read_text())
        assert exported == {key: {"count": c, "mean": m, "std": s} for key, (c, m, s) in entries.items()}  # identical numbers
        assert list(exported) == [block.key for block in space.all_blocks(width=1.2, resolution=res)]


def test_ofa_import_infers_width_and_checks_names_and_keys(tmp_path: Path, space: OFAMobileNetV3Space) -> None:
    entries = ofa_entries(space, width=1.0, resolution=192, seed=1)
    write_ofa_file(tmp_path / "192_lookup_table.yaml", entries)
    with Store(tmp_path / "t.db") as store:
        (result,) = import_ofa_yaml(store, [tmp_path / "192_lookup_table.yaml"], device="pixel1")
        assert result.table == imported_key(192, width=1.0, device="pixel1")

        write_ofa_file(tmp_path / "lut_224.yaml", entries)
        with pytest.raises(
            TableFileError, match=r"'lut_224.yaml'.*'<resolution>_lookup_table.yaml', e.g. '224_lookup_table.yaml'"
        ):
            import_ofa_yaml(store, [tmp_path / "lut_224.yaml"], device="pixel1")

        good = next(key for key in entries if "kernel:5" in key)
        typo = {**entries, good.replace("kernel:5", "kernel:9"): entries[good]}
        (tmp_path / "typo").mkdir()
        write_ofa_file(tmp_path / "typo" / "192_lookup_table.yaml", typo)
        prefix = good.split("kernel:")[0]
        pattern = rf"{re.escape(good.replace('kernel:5', 'kernel:9'))}'.*closest valid key is '{re.escape(prefix)}kernel:[357]-"
        with pytest.raises(UnknownBlockError, match=pattern):
            import_ofa_yaml(store, [tmp_path / "typo" / "192_lookup_table.yaml"], device="pixel1")

        write_ofa_file(tmp_path / "160_lookup_table.yaml", entries)  # 192-px keys in a file named 160
        with pytest.raises(UnknownBlockError, match=r"192x192x3.* at width 1.0, resolution 160.*check the file's resolution"):
            import_ofa_yaml(store, [tmp_path / "160_lookup_table.yaml"], device="pixel1")

        key = next(iter(entries))
        (tmp_path / "208_lookup_table.yaml").write_text(f"{key}:\n  count: 10\n  mean: .nan\n  std: 0.1\n")
        with pytest.raises(TableFileError, match=r"mean nan.*finite milliseconds"):
            read_ofa_yaml(tmp_path / "208_lookup_table.yaml")
        (tmp_path / "208_lookup_table.yaml").write_text(f"{key}:\n  count: 10\n  mean: 0.5\n")
        with pytest.raises(TableFileError, match=r"exactly \{count, mean, std\}"):
            read_ofa_yaml(tmp_path / "208_lookup_table.yaml")

        changed = {k: (c, m * 2, s) for k, (c, m, s) in entries.items()}
        write_ofa_file(tmp_path / "192_lookup_table.yaml", changed)
        with pytest.raises(TableConflictError, match="replace=True"):
            import_ofa_yaml(store, [tmp_path / "192_lookup_table.yaml"], device="pixel1")
        (result,) = import_ofa_yaml(store, [tmp_path / "192_lookup_table.yaml"], device="pixel1", replace=True)
        assert result.changed == 96
        assert {r.item: r.mean_ms for r in store.rows(result.table, "block")} == {k: m for k, (_, m, _) in changed.items()}
    assert resolution_from_name("/x/224_lookup_table.yml") == 224


def test_export_of_a_measured_table_and_ambiguity(tmp_path: Path, space: OFAMobileNetV3Space) -> None:
    blocks = space.all_blocks(width=1.2, resolution=224)[:5]
    with Store(tmp_path / "t.db") as store:
        measurements = [make_measurement([0.5 + i, 0.6 + i, 0.8 + i, 0.55 + i, 0.7 + i]) for i in range(len(blocks))]
        table = TableKey.for_measurement(
            space="ofa-mbv3", width=1.2, resolution=224, device="ort-cpu", measurement=measurements[0]
        )
        for block, measurement in zip(blocks, measurements, strict=True):
            store.put_measurement(table, "block", block.key, measurement)
        store.put_measurement(table, "network", PNAG_80_MOBILE, measurements[0])
        (path,) = export_ofa_yaml(store, tmp_path / "out", device="ort-cpu")
        exported = yaml.safe_load(path.read_text())
        assert exported == {
            b.key: {"count": 5, "mean": m.mean_ms, "std": m.std_ms} for b, m in zip(blocks, measurements, strict=True)
        }  # blocks only, mean/std of the samples
        store.put_summary(imported_key(224, width=1.0, device="ort-cpu"), "block", "Conv-input:224x224x3-output:112x112x16",
                          mean_ms=0.3, std_ms=0.01, count=10)  # fmt: skip
        with pytest.raises(TableAmbiguousError, match=r"2 tables at resolution 224.*narrow with width="):
            export_ofa_yaml(store, tmp_path / "out", device="ort-cpu")
        assert len(export_ofa_yaml(store, tmp_path / "out", device="ort-cpu", width=1.0)) == 1


# -- the LUT predictor ----------------------------------------------------------------------------
def _measured_table(store: Store, space: OFAMobileNetV3Space) -> TableKey:
    rng = random.Random(5)
    table = None
    for block in space.all_blocks(width=1.2, resolution=224):
        base = rng.uniform(0.05, 1.5)
        measurement = make_measurement([base * (1 + rng.gauss(0, 0.03)) for _ in range(5)])
        table = table or TableKey.for_measurement(
            space="ofa-mbv3", width=1.2, resolution=224, device="ort-cpu", measurement=measurement
        )
        store.put_measurement(table, "block", block.key, measurement)
    assert table is not None
    return table


def test_predictor_sums_blocks_with_standard_errors(tmp_path: Path, space: OFAMobileNetV3Space) -> None:
    with Store(tmp_path / "t.db") as store:
        table = _measured_table(store, space)
        rows = {row.item: row for row in store.rows(table, "block")}
        predictor = LutPredictor(store, table)
        assert isinstance(predictor, LatencyPredictor) and predictor.space == "ofa-mbv3"
        assert predictor.statistic == "median" and predictor.statistic_note is None and predictor.missing_blocks() == []
        medians = {key: row.median_ms for key, row in rows.items() if row.median_ms is not None}
        archs = [PNAG_80_MOBILE, *[space.format(a) for a in space.sample_many(5, seed=3)]]
        repeated = 0
        for arch, (latency, std) in zip(archs, predictor.predict_with_std(archs), strict=True):
            uses = Counter(block.key for block in space.blocks(space.parse(arch), width=1.2, resolution=224))
            median_sum = sum(times * medians[key] for key, times in uses.items())
            # a block used twice adds its standard error twice (the same estimate), the blocks then in quadrature
            variance = sum((times * math.sqrt(math.pi / 2) * rows[key].std_ms / math.sqrt(5)) ** 2 for key, times in uses.items())
            assert latency == pytest.approx(median_sum, rel=1e-12) and std == pytest.approx(math.sqrt(variance), rel=1e-12)
            repeated += max(uses.values()) > 1
        assert repeated > 0  # the repeated-block case is exercised
        assert predictor.predict_ms([space.parse(PNAG_80_MOBILE)]) == predictor.predict_ms([PNAG_80_MOBILE])
        mean_predictor = LutPredictor(store, table, statistic="mean")
        expected = sum(rows[b.key].mean_ms for b in space.blocks(space.parse(PNAG_80_MOBILE), width=1.2, resolution=224))
        assert mean_predictor.predict_ms([PNAG_80_MOBILE])[0] == pytest.approx(expected, rel=1e-12)


def test_prediction_intervals_hold_the_latency_and_widen_with_the_level(tmp_path: Path, space: OFAMobileNetV3Space) -> None:
    from statistics import NormalDist

    from nag.errors import SettingError

    with Store(tmp_path / "t.db") as store:
        predictor = LutPredictor(store, _measured_table(store, space))
    archs = [PNAG_80_MOBILE, *[space.format(a) for a in space.sample_many(4, seed=8)]]
    narrow, wide = predictor.predict_interval(archs, level=0.5), predictor.predict_interval(archs, level=0.99)
    for (latency, std), (mid, low, high), (_, low99, high99) in zip(predictor.predict_with_std(archs), narrow, wide, strict=True):
        assert mid == latency and 0 < low99 < low < latency < high < high99
        z = NormalDist().inv_cdf(0.995)
        assert math.log(high99 / latency) == pytest.approx(z * std / latency, rel=1e-9)  # on the log scale
    with pytest.raises(SettingError, match="level must be between 0 and 1"):
        predictor.predict_interval(archs, level=1.0)


def test_a_quantile_predictor_answers_the_intervals_edge_and_is_stored_with_it(
    tmp_path: Path, space: OFAMobileNetV3Space
) -> None:
    from nag.errors import SettingError

    with Store(tmp_path / "t.db") as store:
        table = _measured_table(store, space)
        with pytest.raises(SettingError, match="needs a calibrated table"):  # its spread would leave out the sums' bias
            LutPredictor(store, table, quantile=0.9)
        rng = random.Random(2)
        sums = {a: LutPredictor(store, table).table_sum_ms(a) for a in (space.format(x) for x in space.sample_many(12, seed=4))}
        calibrate(store, table, networks={a: 0.3 + 1.1 * s * rng.uniform(0.95, 1.05) for a, s in sums.items()})
        point = LutPredictor(store, table)
    archs = [PNAG_80_MOBILE, *[space.format(a) for a in space.sample_many(4, seed=8)]]
    estimates = point.predict_ms(archs)
    assert point.with_quantile(0.5).predict_ms(archs) == pytest.approx(estimates, rel=1e-12)  # the median: the estimate
    q975 = point.with_quantile(0.975)
    assert q975.predict_ms(archs) == pytest.approx([high for _, _, high in point.predict_interval(archs, level=0.95)])
    low = point.with_quantile(0.1).predict_ms(archs)
    assert all(a < b < c for a, b, c in zip(low, estimates, q975.predict_ms(archs), strict=True))
    stored = q975.to_dict()
    assert stored["quantile"] == 0.975 and LutPredictor.from_dict(stored).predict_ms(archs) == q975.predict_ms(archs)
    older = {k: v for k, v in stored.items() if k != "quantile"}  # run directories from before --budget-quantile
    assert LutPredictor.from_dict(older).quantile is None and point.quantile is None
    for bad in (0.0, 1.0, float("nan"), True):
        with pytest.raises(SettingError, match="between 0 and 1"):
            point.with_quantile(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [0.0, -1.5])  # (SQLite stores a NaN as NULL, which the schema refuses)
def test_predictor_refuses_a_table_holding_a_block_of_no_positive_latency(
    tmp_path: Path, space: OFAMobileNetV3Space, bad: float
) -> None:
    """A store edited by hand or written by an older version: one block's value is 0 or negative, which would
    make every sum through it silently wrong."""
    import sqlite3

    with Store(tmp_path / "t.db") as store:
        table = _measured_table(store, space)
        victim = store.rows(table, "block")[7].item
    with sqlite3.connect(tmp_path / "t.db") as conn:
        conn.execute("UPDATE entries SET mean_ms = ?, median_ms = ? WHERE item = ?", (bad, bad, victim))
    with Store(tmp_path / "t.db") as store, pytest.raises(InvalidEntryError) as caught:
        LutPredictor(store, table)
    message = str(caught.value)
    assert victim in message and "positive, finite" in message and "nag table check --db" in message


def test_missing_block_names_the_key_and_the_fix(tmp_path: Path, space: OFAMobileNetV3Space) -> None:
    entries = ofa_entries(space, width=1.2, resolution=224, seed=2)
    heavy = next(key for key in entries if "kernel:7" in key and "expand:" in key)
    del entries[heavy]
    write_ofa_file(tmp_path / "224_lookup_table.yaml", entries)
    with Store(tmp_path / "t.db") as store:
        (result,) = import_ofa_yaml(store, [tmp_path / "224_lookup_table.yaml"], device="note10")
        predictor = LutPredictor(store, result.table, statistic="median")
        assert predictor.statistic == "mean" and "no medians" in (predictor.statistic_note or "")
        assert predictor.missing_blocks() == [heavy]
        all_sevens = "4,4,4,4,4:" + ",".join(["7"] * 20) + ":" + ",".join(["6"] * 20)
        uses_heavy = next(a for a in [all_sevens, *map(space.format, space.sample_many(200, seed=0))] if heavy in
                          {b.key for b in space.blocks(space.parse(a), width=1.2, resolution=224)})  # fmt: skip
        with pytest.raises(MissingBlockError, match=rf"{re.escape(heavy)}.*nag table import-ofa"):
            predictor.predict_ms([uses_heavy])


def _synthetic(space: OFAMobileNetV3Space, store: Store) -> tuple[TableKey, dict[str, float], list[str], list[float]]:
    """An imported table of true block means, calibration networks measured as 2 ms + 1.15 x the block sum
    (1 % noise, 4 of 40 disturbed by a 50 % slowdown), and held-out networks with their true latency."""
    rng = random.Random(11)
    means = {block.key: rng.uniform(0.05, 1.0) for block in space.all_blocks(width=1.2, resolution=224)}
    table = imported_key(224)
    for key, mean in means.items():
        store.put_summary(table, "block", key, mean_ms=mean, std_ms=0.02 * mean, count=100)

    def truth(arch: str) -> float:
        return 2.0 + 1.15 * sum(means[b.key] for b in space.blocks(space.parse(arch), width=1.2, resolution=224))

    networks = {}
    for i, arch in enumerate(space.format(a) for a in space.sample_many(40, seed=21)):
        networks[arch] = truth(arch) * (1 + rng.gauss(0, 0.01)) * (1.5 if i % 10 == 3 else 1.0)
        store.put_summary(table, "network", arch, mean_ms=networks[arch], std_ms=0.1, count=30)
    held_out = [space.format(a) for a in space.sample_many(200, seed=99)]
    return table, networks, held_out, [truth(a) for a in held_out]


def test_calibration_beats_the_plain_sum_and_resists_disturbed_networks(tmp_path: Path, space: OFAMobileNetV3Space) -> None:
    with Store(tmp_path / "t.db") as store:
        table, networks, held_out, truth = _synthetic(space, store)
        plain = LutPredictor(store, table)
        calibration = calibrate(store, table)
        assert store.get_calibration(table) == calibration.to_dict()
        calibrated = LutPredictor(store, table)
        assert calibrated.calibration == calibration and plain.calibration is None
        assert (calibration.statistic, calibration.method, calibration.n) == ("mean", "huber-relative", 40)
        assert calibration.outliers >= 4 and calibration.residual_rel_std == pytest.approx(0.01, abs=0.004)
        archs = list(networks)
        sums = [plain.table_sum_ms(a) for a in archs]
        least_squares = fit_calibration(sums, list(networks.values()), method="least-squares")
        clean = [i for i in range(len(archs)) if i % 10 != 3]  # the oracle: least squares without the disturbed networks
        oracle = fit_calibration([sums[i] for i in clean], [networks[archs[i]] for i in clean], method="least-squares")
        assert abs(calibration.scale - oracle.scale) < 0.25 * abs(least_squares.scale - oracle.scale)
        assert calibration.scale == pytest.approx(1.15, abs=0.05) and calibration.offset_ms == pytest.approx(2.0, abs=0.5)
        plain_report = validate(plain.predict_ms(held_out), truth)
        huber_report = validate(calibrated.predict_ms(held_out), truth)
        ls_report = validate([least_squares.apply(plain.table_sum_ms(a)) for a in held_out], truth)
        assert plain_report.within_10pct < 0.5 and plain_report.mape > 0.1  # the raw sum misses the overhead and scale
        assert huber_report.within_5pct == 1.0 and huber_report.mape < 0.01
        assert ls_report.mape > 3 * huber_report.mape  # the disturbed networks drag a least-squares line

        latency, std = calibrated.predict_with_std([held_out[0]])[0]
        total, error = plain.predict_with_std([held_out[0]])[0]
        assert latency == pytest.approx(calibration.offset_ms + calibration.scale * total)
        assert std == pytest.approx(math.hypot(calibration.scale * error, calibration.residual_rel_std * latency))


def test_calibration_errors_and_serialization(tmp_path: Path, space: OFAMobileNetV3Space) -> None:
    with pytest.raises(CalibrationError, match="at least 3 whole-network measurements, got 2"):
        fit_calibration([10.0, 20.0], [12.0, 22.0])
    with pytest.raises(CalibrationError, match=r"nearly\) all equal"):
        fit_calibration([10.0, 10.0, 10.0], [12.0, 13.0, 11.0])
    with pytest.raises(CalibrationError, match=r"scale is .* <= 0"):
        fit_calibration([10.0, 20.0, 30.0], [30.0, 20.0, 10.0])
    with pytest.raises(CalibrationError, match="finite number of ms > 0, got nan"):
        fit_calibration([10.0, 20.0, 30.0], [12.0, float("nan"), 30.0])
    exact = fit_calibration([10.0, 20.0, 30.0, 40.0], [13.0, 24.0, 35.0, 46.0], statistic="mean")
    assert (exact.offset_ms, exact.scale) == (pytest.approx(2.0), pytest.approx(1.1)) and exact.residual_rel_std == pytest.approx(
        0, abs=1e-12
    )
    assert Calibration.from_dict(exact.to_dict()) == exact
    with pytest.raises(CalibrationError, match="refit it"):
        Calibration.from_dict({"offset_ms": 1.0})
    with Store(tmp_path / "t.db") as store:
        table = _measured_table(store, space)
        plain = LutPredictor(store, table)
        networks = {space.format(a): 0.5 + 1.1 * plain.table_sum_ms(a) for a in space.sample_many(5, seed=4)}
        assert calibrate(store, table, networks=networks).statistic == "median"
        with pytest.raises(CalibrationError, match=r"fitted on median sums.*statistic='median'"):
            LutPredictor(store, table, statistic="mean")
        assert LutPredictor(store, table, statistic="mean", use_calibration=False).calibration is None


# -- validation figures ---------------------------------------------------------------------------
def test_kendall_tau_on_hand_computed_lists() -> None:
    assert kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)  # C=5, D=1
    assert kendall_tau([1, 2, 3], [3, 2, 1]) == -1.0
    assert kendall_tau([1, 2, 2, 3], [1, 2, 3, 3]) == pytest.approx(0.8)  # C=4, D=0, one tie each side: 4/sqrt(5*5)
    assert kendall_tau([1, 1, 2], [1, 2, 2]) == pytest.approx(0.5)  # C=1, 1/sqrt(2*2)
    assert math.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValidationInputError, match="equal length"):
        kendall_tau([1, 2], [1])


def test_kendall_tau_agrees_with_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = random.Random(0)
    x = [rng.randint(0, 8) for _ in range(60)]
    y = [xi + rng.randint(-3, 3) for xi in x]
    assert kendall_tau(x, y) == pytest.approx(stats.kendalltau(x, y).statistic, abs=1e-12)


def test_validate_figures_and_plot(tmp_path: Path) -> None:
    report = validate([104.0, 92.0, 200.0, 50.0], [100.0, 100.0, 200.0, 40.0])  # errors +4%, -8%, 0, +25%
    data = report.to_dict()
    assert {"within_5pct", "within_10pct", "mape", "kendall_tau", "n", "bias"} <= set(data)
    assert (data["n"], data["within_5pct"], data["within_10pct"]) == (4, 0.5, 0.75)
    assert data["mape"] == pytest.approx(0.0925) and data["bias"] == pytest.approx(0.0525)
    assert data["max_ape"] == pytest.approx(0.25) and data["median_ape"] == pytest.approx(0.06)
    assert data["kendall_tau"] == pytest.approx(5 / math.sqrt(30))  # C=5, one pair tied in measured
    assert validate([1.0, 1.0], [1.0, 2.0]).to_dict()["kendall_tau"] is None  # constant predictions: undefined
    with pytest.raises(ValidationInputError, match="3 predicted but 2 measured"):
        validate([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValidationInputError, match=r"measured latency must be a finite number of ms > 0, got 0.0"):
        validate([1.0, 2.0], [1.0, 0.0])
    path = plot_validation(
        [104.0, 92.0, 200.0, 50.0], [100.0, 100.0, 200.0, 40.0], tmp_path / "plots" / "lut.png", title="ort-cpu 224"
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_a_negative_offset_is_not_extrapolated_below_zero() -> None:
    # Block tables over-count a per-block overhead: measured = 0.9 x sum - 1 ms over sums of 10..20 ms.
    sums = [10.0, 12.0, 14.0, 16.0, 18.0, 20.0]
    calibration = fit_calibration(sums, [0.9 * s - 1.0 for s in sums], method="least-squares")
    assert calibration.offset_ms == pytest.approx(-1.0) and calibration.scale == pytest.approx(0.9)
    assert calibration.apply(15.0) == pytest.approx(12.5)  # the line inside the fitted range
    assert calibration.apply(0.5) == pytest.approx(0.5 * 8.0 / 10.0)  # the line would give -0.55 ms
    assert all(calibration.apply(s) > 0 for s in (0.01, 0.1, 1.0, 5.0, 100.0))
    with pytest.raises(CalibrationError, match="not positive over its fitted range"):
        Calibration.from_dict({**calibration.to_dict(), "offset_ms": -50.0})


def test_a_huge_stored_spread_widens_the_interval_instead_of_raising(tmp_path: Path) -> None:
    """Standard errors add in quadrature without squaring: 1e200 ms squared would overflow a float."""
    with Store(tmp_path / "t.db") as store:
        table, _ = put_block_table(store, lambda i, _key: 0.1 + 0.01 * i, std_fraction=1e201)
        predictor = LutPredictor(store, table)
        arch = get_space("ofa-mbv3").sample(random.Random(0))
        ((latency, std),) = predictor.predict_with_std([arch])
    assert math.isfinite(latency) and latency > 0
    assert std > 1e200  # the spread the entries claim, honestly enormous
