"""Reference networks over a table's life (farm.drift): a stand-in device that slows down mid-build is reported
beyond its band and its span is measured again; a steady one is not; predictions rescale by the measured factor;
a version-1 store migrates when written and is read as it is when read-only."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from agents import AgentsConfig, MeasurementSpec
from farm.client import Farm
from farm.drift import BuildOutcome, build_with_references, drift_report, rescale, series_tables
from farm.errors import ReferenceSeriesError, StoreError
from farm.lut import LutPredictor
from farm.reference import REFERENCE_COUNT, reference_archs
from farm.store import SCHEMA_VERSION, ReferenceRow, Store, TableKey, connect_read_only
from farm.store_check import salvage_store
from farm.tables import block_tasks
from nag.errors import SettingError
from tests.cli import one_line_error, run_nag
from tests.farm.test_store import make_measurement, table_for

SLEEP = "agents.testing.sleep:SleepAgent"
SPEC = MeasurementSpec(warmup_runs=1, runs=10)
RESOLUTION = 96
EVERY = 32  # 96 blocks: points at the start, after 32 and 64 blocks, and at the end


@pytest.fixture
def sleep_farm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Farm]:
    """One stand-in device whose inference sleeps 10 ms (sleeping, not computing: steady on a busy machine)."""
    monkeypatch.setenv("NAG_SLEEP_DEVICES", "1")
    monkeypatch.setenv("NAG_SLEEP_MS", "10")
    monkeypatch.setenv("NAG_SLEEP_SLOWDOWN", "1")
    config = AgentsConfig(adb=None, local=False)
    with Farm.local(kinds=[SLEEP], config=config, cache_dir=str(tmp_path / "cache"), executor="threads") as farm:
        yield farm


def _build(farm: Farm, store: Store, *, reference_every: int = EVERY, **options: object) -> BuildOutcome:
    return build_with_references(
        farm, store, space="ofa-mbv3", width=1.2, resolutions=[RESOLUTION], kind=SLEEP, spec=SPEC,
        reference_every=reference_every, **options,  # type: ignore[arg-type]
    )  # fmt: skip


def _slow_between_points(first: int, last: int, factor: str) -> Callable[[str], None]:
    """An ``on_point`` hook: the device is ``factor`` times slower from after point ``first`` until after ``last``."""
    taken = []

    def on_point(line: str) -> None:
        taken.append(line)
        if len(taken) == first + 1:
            os.environ["NAG_SLEEP_SLOWDOWN"] = factor
        if len(taken) == last + 1:
            os.environ["NAG_SLEEP_SLOWDOWN"] = "1"

    return on_point


def test_a_steady_device_shows_no_drift(sleep_farm: Farm, tmp_path: Path) -> None:
    with Store(tmp_path / "t.db") as store:
        outcome = _build(sleep_farm, store)
        (table,) = series_tables(store, kind=SLEEP)
        series = store.reference_series(table)
        report = drift_report(store, table)
    assert outcome.report.done == 96 and outcome.points == 4 and not outcome.reference_failed
    assert [r.phase for r in series if r.arch == series[0].arch] == ["start", "during", "during", "end"]
    assert len(series) == 4 * REFERENCE_COUNT and {r.arch for r in series} == set(reference_archs("ofa-mbv3"))
    assert report is not None and not report.drifted and report.affected == () and report.drifted_points == ()
    assert len(report.latest) == REFERENCE_COUNT and all(abs(r.change) < 0.05 for r in report.latest)
    assert outcome.drifted == [] and "no drift over 4 point(s)" in report.summary()


def _at(stamp: str, shift_ms: int) -> str:
    """An ISO time ``shift_ms`` from ``stamp`` (as the store writes them: UTC, milliseconds)."""
    moved = datetime.fromisoformat(stamp) + timedelta(milliseconds=shift_ms)
    return moved.isoformat(timespec="milliseconds")


@pytest.mark.parametrize("recovered", [True, False])
def test_the_affected_span_runs_from_the_last_in_band_point_to_the_recovery(tmp_path: Path, recovered: bool) -> None:
    """Points in band, in band, drifted, then in band (or drifted again): a drift began after the last in-band point
    and ended at the latest just before the next, so the entries measured between the drifted point and the recovery
    are flagged too; those after the recovery are not. With no recovery, every later entry is flagged."""
    key = table_for(make_measurement([10.0] * 5))
    entries = {}  # name -> created_at
    with Store(tmp_path / "t.db") as store:
        for name in ("before", "a", "b", "c", "d"):
            for device_id in ("dev-1", "dev-2"):  # dev-2 never drifts: none of its entries is flagged
                store.put_measurement(key, "block", f"{name}@{device_id}", make_measurement([10.0] * 5, device_id=device_id))
            entries[name] = store.rows(key, "block")[-1].created_at
            time.sleep(0.005)
        arch = reference_archs("ofa-mbv3")[0]

        def ref(point: int, device_id: str, median_ms: float, measured_at: str) -> ReferenceRow:
            return ReferenceRow(
                point=point, phase="during", arch=arch, device_id=device_id, median_ms=median_ms, mean_ms=median_ms,
                std_ms=0.1, count=30, ci_low_ms=median_ms - 0.05, ci_high_ms=median_ms + 0.05, measured_at=measured_at,
            )  # fmt: skip

        # point 0 after "before", 1 after a, 2 (drifted, 1.5x) after b, 3 after c: in band when recovered, else 1.5x
        last = 10.0 if recovered else 15.0
        medians = {0: (10.0, "before"), 1: (10.0, "a"), 2: (15.0, "b"), 3: (last, "c")}
        store.put_reference_rows(
            key,
            [
                ref(p, d, ms if d == "dev-1" else 10.0, _at(entries[e], 1))
                for p, (ms, e) in medians.items()
                for d in ("dev-1", "dev-2")
            ],
        )
        report = drift_report(store, key)
    assert report is not None and report.drifted_points == (("dev-1", 2),) + (() if recovered else (("dev-1", 3),))
    flagged = {"b@dev-1", "c@dev-1"} | (set() if recovered else {"d@dev-1"})
    assert set(report.affected) == flagged and report.drifted_now is not recovered
    assert f"{len(flagged)} block entries measured while it may have drifted" in report.summary()


def test_a_device_slow_mid_build_is_reported_and_its_span_measured_again(sleep_farm: Farm, tmp_path: Path) -> None:
    blocks = [t.item for t in block_tasks("ofa-mbv3", width=1.2, resolutions=[RESOLUTION])]
    slowed = set(blocks[EVERY : 2 * EVERY])  # measured after point 1, while the device was 1.5x slower
    span = set(blocks[EVERY:])  # and up to the end point, the first in band again: we cannot tell when it recovered
    with Store(tmp_path / "t.db") as store:
        outcome = _build(sleep_farm, store, on_point=_slow_between_points(1, 2, "1.5"))
        (table,) = series_tables(store, kind=SLEEP)
        report = drift_report(store, table)
        before = {r.item: r for r in store.rows(table, "block")}

        assert report is not None and outcome.drifted == [report]
        assert [p for _, p in report.drifted_points] == [2] and set(report.affected) == span
        assert not report.drifted_now  # the end point is back in its band
        slow = [r for r in store.reference_series(table) if r.point == 2]
        assert all(r.median_ms > 1.3 * 10 for r in slow)  # the references really were measured slower
        assert "96 block entries" not in report.summary() and "64 block entries measured while it may have" in report.summary()
        assert all(before[b].median_ms > 13 for b in slowed) and all(before[b].median_ms < 12 for b in set(blocks) - slowed)

        again = _build(sleep_farm, store, remeasure_drifted=True)
        after = {r.item: r for r in store.rows(table, "block")}
        final = drift_report(store, table)
        phases = [r.phase for r in store.reference_series(table) if r.arch == slow[0].arch]
    assert again.replaced == 64 and again.report.done == 64 and again.points == 3
    assert {b for b in blocks if after[b].created_at != before[b].created_at} == span  # exactly the span, replaced
    assert all(after[b].median_ms < 12 for b in blocks)
    assert phases == ["start", "during", "during", "end", "recheck", "during", "recheck"]
    assert final is not None and not final.drifted and final.affected == ()


def test_a_device_still_off_is_not_measured_again(sleep_farm: Farm, tmp_path: Path) -> None:
    with Store(tmp_path / "t.db") as store:
        _build(sleep_farm, store, on_point=_slow_between_points(2, 99, "1.5"))  # slow from point 2 on: end drifted
        (table,) = series_tables(store, kind=SLEEP)
        report = drift_report(store, table)
        assert report is not None and report.drifted_now and len(report.affected) == 32  # no recovery: all after point 2
        os.environ["NAG_SLEEP_SLOWDOWN"] = "1.5"  # still slow at the remeasure
        again = _build(sleep_farm, store, remeasure_drifted=True)
        assert again.replaced == 0 and again.report.done == 0 and "still beyond their band" in again.notes[0]
        assert store.count(table, "block") == 96


def test_rescale_moves_predictions_by_the_measured_factor(sleep_farm: Farm, tmp_path: Path) -> None:
    archs = reference_archs("ofa-mbv3")[:2]
    with Store(tmp_path / "t.db") as store:
        _build(sleep_farm, store, reference_every=0)
        (table,) = series_tables(store, kind=SLEEP)
        steady = rescale(sleep_farm, store, table, spec=SPEC)
        os.environ["NAG_SLEEP_SLOWDOWN"] = "1.3"
        slower = rescale(sleep_farm, store, table, spec=SPEC)
        predicted = [ms for ms, _ in LutPredictor(store, table).predict_with_std(archs)]
        with pytest.raises(SettingError, match="pass the --warmup, --threads"):
            rescale(sleep_farm, store, table, spec=MeasurementSpec(warmup_runs=3, runs=10))
        bare = TableKey(space="ofa-mbv3", width=1.2, resolution=RESOLUTION, device="note10", fingerprint="", runtime="ofa-lut",
                        runtime_version="", spec_key="")  # fmt: skip
        with pytest.raises(ReferenceSeriesError, match="no reference series"):
            rescale(sleep_farm, store, bare, spec=SPEC)
    assert abs(steady.factor - 1) < 0.05 and steady.low <= steady.factor <= steady.high
    assert 1.2 < slower.factor < 1.4 and slower.low < slower.factor < slower.high and slower.low > 1.1
    assert len(slower.references) == REFERENCE_COUNT and slower.point == 3  # start 0, end 1, then the rechecks 2 and 3
    assert all(p > 0 for p in predicted)


V1_STORE = Path(__file__).parent / "data" / "store_v1.db"  # written by the version-1 store: one OFA block and a calibration


def test_a_version_1_store_migrates_on_open(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    shutil.copyfile(V1_STORE, path)
    assert sqlite3.connect(path).execute("SELECT value FROM store_meta WHERE key = 'schema_version'").fetchone() == ("1",)
    measurement = make_measurement([2.0 + k * 0.01 for k in range(10)])
    key = TableKey.for_measurement(space="ofa-mbv3", width=1.2, resolution=224, device="ort-cpu", measurement=measurement)
    with Store(path, create=False) as store:
        (imported,) = store.tables()
        assert [(r.item, r.mean_ms) for r in store.rows(imported, "block")] == [("Conv-input:224x224x3-output:112x112x24", 1.5)]
        assert store.reference_series(imported) == [] and drift_report(store, imported) is None
        assert store.get_calibration(imported) == {"offset_ms": 0.25, "scale": 1.1}
        store.put_reference(key, point=0, phase="start", arch=reference_archs("ofa-mbv3")[0], measurement=measurement)
        assert [r.median_ms for r in store.reference_series(key)] == [measurement.median_ms]
    meta = dict(sqlite3.connect(path).execute("SELECT key, value FROM store_meta").fetchall())
    assert meta["schema_version"] == str(SCHEMA_VERSION) == "2"
    with Store(path, create=False) as store:  # and opens again as it is
        assert store.next_reference_point(key) == 1


def test_a_read_only_version_1_store_is_read_as_it_is(tmp_path: Path) -> None:
    """Status reads a v1 store on a read-only file in a read-only directory without migrating it. The tests run as
    root, whom chmod does not stop, so the file's bytes are what shows nothing wrote it, and SQLite's read-only
    mode (what the store opens with) is checked to refuse a write."""
    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "v1.db"
    shutil.copyfile(V1_STORE, path)
    with sqlite3.connect(path) as conn:  # as the version-1 store left its files: in WAL mode
        assert conn.execute("PRAGMA journal_mode=WAL").fetchone() == ("wal",)
    conn.close()
    before = path.read_bytes()
    path.chmod(0o444)
    folder.chmod(0o555)
    config = tmp_path / "agents.yaml"
    config.write_text("local: false\nadb: null\n")
    env = {"NAG_AGENTS_CONFIG": str(config), "NAG_CACHE_DIR": str(tmp_path / "cache")}
    try:
        with Store(path, read_only=True) as store:
            (imported,) = store.tables()
            assert store.count(imported, "block") == 1 and store.get_calibration(imported) == {"offset_ms": 0.25, "scale": 1.1}
            assert store.reference_series(imported) == [] and store.next_reference_point(imported) == 0
            assert drift_report(store, imported) is None and series_tables(store) == []
            with pytest.raises(StoreError, match="open read-only; open it with Store"):
                store.put_calibration(imported, {"scale": 1.0})
        refused = connect_read_only(path)
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            refused.execute("CREATE TABLE x (a)")
        refused.close()
        status = run_nag("farm", "status", "--db", str(path), "--executor", "threads", "--json", env=env)
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["drift"] == []
        checked = run_nag("table", "check", "--db", str(path), env=env)
        assert checked.returncode == 0 and "intact" in checked.stdout and "1 table(s), 1 entries" in checked.stdout
    finally:
        folder.chmod(0o755)
    assert path.read_bytes() == before
    assert sqlite3.connect(path).execute("SELECT value FROM store_meta WHERE key = 'schema_version'").fetchone() == ("1",)


def test_the_commands_report_drift_remeasure_and_rescale(sleep_farm: Farm, tmp_path: Path) -> None:
    """A table built with a slow stretch, then the commands a person runs on it (each a fresh process)."""
    db = tmp_path / "t.db"
    with Store(db) as store:
        _build(sleep_farm, store, on_point=_slow_between_points(1, 2, "1.5"))
    config = tmp_path / "agents.yaml"
    config.write_text("local: false\nadb: null\n")
    env = {"NAG_AGENTS_CONFIG": str(config), "NAG_CACHE_DIR": str(tmp_path / "cache"), "NAG_SLEEP_SLOWDOWN": "1"}
    table = ["--db", str(db), "--resolution", str(RESOLUTION)]
    farm = ["--executor", "threads", "--runs", "10", "--warmup", "1"]
    arch = reference_archs("ofa-mbv3")[1]

    predicted = run_nag("table", "predict", arch, *table, "--device", SLEEP, "--json", env=env)
    assert predicted.returncode == 0, predicted.stderr
    (row,) = json.loads(predicted.stdout)
    assert row["drifted"] is True and {"latency_ms", "low_ms", "high_ms", "std_ms", "calibrated"} <= set(row)
    assert "drift: " in predicted.stderr and "64 block entries measured while it may have drifted" in predicted.stderr

    status = run_nag("farm", "status", "--db", str(db), "--executor", "threads", "--json", env=env)
    assert status.returncode == 0, status.stderr
    (drift,) = json.loads(status.stdout)["drift"]
    assert drift["drifted"] and not drift["drifted_now"] and len(drift["affected"]) == 64
    assert [p["point"] for p in drift["drifted_points"]] == [2] and len(drift["references"]) == REFERENCE_COUNT

    build = ["table", "build", *table, "--kind", SLEEP, "--reference-every", str(EVERY), *farm]
    again = run_nag(*build, "--remeasure-drifted", env=env, timeout=600)
    assert again.returncode == 0, again.stderr
    assert "64 measured, 32 already in" in again.stdout and "64 of them measured again after drift" in again.stdout
    assert "drift: " not in again.stderr and "no drift" in again.stderr

    validated = run_nag("table", "validate", *table, "--kind", SLEEP, "--n", "6", "--json", *farm, env=env)
    assert validated.returncode == 0, validated.stderr
    report = json.loads(validated.stdout)  # the references measured again beside the networks: still no drift
    assert report["n"] == 6 and report["drift"]["points"] == 8 and report["drift"]["drifted"] is False
    settled = run_nag("table", "predict", arch, *table, "--device", SLEEP, "--json", env=env)
    (row,) = json.loads(settled.stdout)  # after validate's calibration, as --rescale sees it
    assert row["drifted"] is False and "drift: " not in settled.stderr

    env["NAG_SLEEP_SLOWDOWN"] = "1.3"  # the device is slower now: --rescale measures by how much
    rescaled = run_nag("table", "predict", arch, *table, "--device", SLEEP, "--json", "--rescale", *farm, env=env)
    assert rescaled.returncode == 0, rescaled.stderr
    (scaled,) = json.loads(rescaled.stdout)
    assert 1.2 < scaled["rescale_factor"] < 1.4 and scaled["rescale_low"] <= scaled["rescale_factor"] <= scaled["rescale_high"]
    assert scaled["unscaled_latency_ms"] == row["latency_ms"]
    assert scaled["latency_ms"] == pytest.approx(row["latency_ms"] * scaled["rescale_factor"], rel=1e-4)
    assert scaled["low_ms"] < scaled["latency_ms"] < scaled["high_ms"]
    said = re.search(r"rescaled to now: x(\d+\.\d+)", rescaled.stderr)  # the JSON's figure is rounded, the line's not
    assert said is not None and float(said.group(1)) == pytest.approx(scaled["rescale_factor"], rel=1e-3)
    assert scaled["drifted"] is True  # and the series now says the device has drifted

    one_line_error(run_nag(*build, "--reference-every", "-1", env=env), "--reference-every must be", "-1")
    one_line_error(
        run_nag("table", "predict", arch, *table, "--device", SLEEP, "--rescale", "--warmup", "3", env=env),
        "pass the --warmup, --threads",
    )  # fmt: skip


def test_salvage_copies_the_reference_series(tmp_path: Path) -> None:
    measurement = make_measurement([2.0 + k * 0.01 for k in range(10)])
    key = TableKey.for_measurement(space="ofa-mbv3", width=1.2, resolution=224, device="ort-cpu", measurement=measurement)
    with Store(tmp_path / "a.db") as store:
        for point, phase in enumerate(("start", "end")):
            for arch in reference_archs("ofa-mbv3"):
                store.put_reference(key, point=point, phase=phase, arch=arch, measurement=measurement)
        series = store.reference_series(key)
    salvage_store(tmp_path / "a.db", tmp_path / "b.db")
    with Store(tmp_path / "b.db", create=False) as copy:
        assert copy.reference_series(key) == series and len(series) == 2 * REFERENCE_COUNT


def test_salvage_drops_only_a_damaged_reference_row(tmp_path: Path) -> None:
    """A page damaged under one row (SQLite keeps text where a number was): the rest of the series is copied."""
    import sqlite3

    measurement = make_measurement([2.0 + k * 0.01 for k in range(10)])
    key = TableKey.for_measurement(space="ofa-mbv3", width=1.2, resolution=224, device="ort-cpu", measurement=measurement)
    with Store(tmp_path / "a.db") as store:
        for arch in reference_archs("ofa-mbv3"):
            store.put_reference(key, point=0, phase="start", arch=arch, measurement=measurement)
        series = store.reference_series(key)
    with sqlite3.connect(tmp_path / "a.db") as conn:
        conn.execute("UPDATE reference_series SET median_ms = 'garbled' WHERE arch = ?", (series[0].arch,))
    salvage_store(tmp_path / "a.db", tmp_path / "b.db")
    with Store(tmp_path / "b.db", create=False) as copy:
        assert copy.reference_series(key) == series[1:] and len(series) == REFERENCE_COUNT
