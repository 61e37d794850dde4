"""The SQLite latency store: durability across SIGKILL, concurrent writers and readers, idempotence,
typed errors, CSV/Parquet round trips."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from agents.stats import summarize
from agents.types import Measurement, MeasurementSpec
from farm.errors import (
    InvalidEntryError,
    NotAStoreError,
    SchemaVersionError,
    StoreError,
    StoreNotFoundError,
    TableConflictError,
    TableFileError,
    TableNotFoundError,
)
from farm.store import SCHEMA_VERSION, Store, TableKey
from nag.errors import MissingDependencyError, NagError

REPO = Path(__file__).resolve().parents[2]
SPEC = MeasurementSpec(runs=5, warmup_runs=2)


def make_measurement(
    samples: list[float], *, device_id: str = "ort-cpu@lab1", fingerprint: dict[str, str] | None = None
) -> Measurement:
    """A measurement as an agent returns it, with statistics computed from ``samples``."""
    stats = summarize(samples)
    return Measurement(
        samples_ms=tuple(samples), median_ms=stats.median, mean_ms=stats.mean, std_ms=stats.std, mad_ms=stats.mad,
        p10_ms=stats.p10, p90_ms=stats.p90, min_ms=stats.minimum, max_ms=stats.maximum, ci95_low_ms=stats.ci_low,
        ci95_high_ms=stats.ci_high, count=stats.count, kind="ort-cpu", device_id=device_id,
        fingerprint=fingerprint or {"cpu": "Test CPU 3000", "os": "Linux 6.1"}, runtime="onnxruntime",
        runtime_version="1.20.1", binary_sha256=None, model_sha256="ab" * 32, spec=SPEC, temperature_before_c=41.0,
        temperature_after_c=42.5, cpu_freq_before_khz=(2_400_000, 2_400_000), cpu_freq_after_khz=(2_300_000, 2_400_000),
        flags=(), timestamp="2025-01-01T00:00:00.000+00:00", extra={"duration_s": 0.5},
    )  # fmt: skip


def samples_for(i: int) -> list[float]:
    """Deterministic, distinct samples for entry ``i`` (so a reopened row can be checked exactly)."""
    return [1.0 + i / 7.0 + k * 0.013 for k in range(5)]


def table_for(measurement: Measurement, *, resolution: int = 224) -> TableKey:
    return TableKey.for_measurement(space="ofa-mbv3", width=1.2, resolution=resolution, device="ort-cpu", measurement=measurement)


TABLE = table_for(make_measurement(samples_for(0)))


def test_measurement_round_trip_and_table_key(tmp_path: Path) -> None:
    measurement = make_measurement(samples_for(3))
    with Store(tmp_path / "t.db") as store:
        assert store.put_measurement(TABLE, "block", "Conv-input:224x224x3-output:112x112x24", measurement)
        (row,) = store.rows(TABLE, "block")
        assert store._connection().execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL: fsync at every commit
    assert sqlite3.connect(tmp_path / "t.db").execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert TABLE.fingerprint == measurement.fingerprint_hash and TABLE.spec_key == SPEC.key() and TABLE.is_measured
    assert (row.item, row.median_ms, row.mean_ms, row.std_ms, row.count) == (
        "Conv-input:224x224x3-output:112x112x24", measurement.median_ms, measurement.mean_ms, measurement.std_ms, 5,
    )  # fmt: skip
    assert row.samples_ms == measurement.samples_ms and row.device_id == "ort-cpu@lab1"
    assert row.p10_ms == measurement.p10_ms and row.mad_ms == measurement.mad_ms
    assert row.measurement() == measurement  # the full provenance survives


def test_puts_are_idempotent(tmp_path: Path) -> None:
    with Store(tmp_path / "t.db") as store:
        first, retry = make_measurement(samples_for(1)), make_measurement(samples_for(2), device_id="ort-cpu@lab2")
        assert store.put_measurement(TABLE, "block", "b", first) is True
        assert store.put_measurement(TABLE, "block", "b", retry) is False  # a retried task: no change
        assert store.put_measurement(TABLE, "network", "b", retry) is True  # another item kind is another entry
        (row,) = store.rows(TABLE, "block")
        assert row.samples_ms == first.samples_ms and row.device_id == "ort-cpu@lab1"
        imported = TableKey(space="ofa-mbv3", width=1.2, resolution=160, device="pixel", fingerprint="", runtime="ofa-lut",
                            runtime_version="", spec_key="")  # fmt: skip
        assert store.put_summary(imported, "block", "k", mean_ms=1.5, std_ms=0.1, count=10) is True
        assert store.put_summary(imported, "block", "k", mean_ms=1.5, std_ms=0.1, count=10) is False
        with pytest.raises(TableConflictError, match=r"mean 1.5 ms.*replace=True"):
            store.put_summary(imported, "block", "k", mean_ms=1.7, std_ms=0.1, count=10)
        assert store.put_summary(imported, "block", "k", mean_ms=1.7, std_ms=0.1, count=10, replace=True) is True
        (row,) = store.rows(imported, "block")
        assert (row.mean_ms, row.median_ms, row.samples_ms, row.measured) == (1.7, None, None, False)
        assert store.count(TABLE) == 2 and store.count(imported, "block") == 1


def test_bad_input_raises_typed_errors(tmp_path: Path) -> None:
    store = Store(tmp_path / "t.db")
    good = make_measurement(samples_for(1))
    with pytest.raises(InvalidEntryError, match="item kind must be one of block, network, got 'layer'"):
        store.put_measurement(TABLE, "layer", "b", good)  # type: ignore[arg-type]
    with pytest.raises(InvalidEntryError, match="item must be"):
        store.put_measurement(TABLE, "block", "", good)
    nan = make_measurement(samples_for(1)).__class__(**{**good.__dict__, "median_ms": float("nan")})
    with pytest.raises(InvalidEntryError, match="median_ms must be a finite number of milliseconds, got nan"):
        store.put_measurement(TABLE, "block", "b", nan)
    other_device = make_measurement(samples_for(1), fingerprint={"cpu": "Another CPU"})
    with pytest.raises(InvalidEntryError, match=r"does not belong to table.*TableKey.for_measurement"):
        store.put_measurement(TABLE, "block", "b", other_device)
    with pytest.raises(InvalidEntryError, match="mean_ms must be a finite number"):
        store.put_summary(TABLE, "block", "b", mean_ms=float("nan"), std_ms=0.0, count=3)
    with pytest.raises(InvalidEntryError, match=r"count must be an integer from 1 to 1e\+12"):
        store.put_summary(TABLE, "block", "b", mean_ms=1.0, std_ms=0.0, count=0)
    with pytest.raises(InvalidEntryError, match=r"count must be an integer from 1 to 1e\+12.*got 10000000000000"):
        store.put_summary(TABLE, "block", "b", mean_ms=1.0, std_ms=0.0, count=10**13)
    with pytest.raises(InvalidEntryError, match=r"mean_ms must be > 0 ms, got 0\.0"):
        store.put_summary(TABLE, "block", "b", mean_ms=0.0, std_ms=0.0, count=3)
    with pytest.raises(InvalidEntryError, match="width must be a finite number > 0, got -1"):
        TableKey(
            space="ofa-mbv3", width=-1, resolution=224, device="d", fingerprint="", runtime="r", runtime_version="", spec_key=""
        )
    with pytest.raises(TableNotFoundError, match="measure or import it before calibrating"):
        store.put_calibration(TABLE, {"offset_ms": 1.0})
    assert store.rows(TABLE, "block") == []  # nothing half-written
    store.close()
    with pytest.raises(StoreError, match="is closed"):
        store.rows(TABLE, "block")

    (tmp_path / "notes.txt").write_text("hello, not a database\n" * 200)
    with pytest.raises(NotAStoreError, match="is not an SQLite database"):
        Store(tmp_path / "notes.txt")
    with pytest.raises(NotAStoreError, match="is a directory"):
        Store(tmp_path)
    foreign = sqlite3.connect(tmp_path / "other.db")
    foreign.execute("CREATE TABLE users (name TEXT)")
    foreign.commit()
    foreign.close()
    with pytest.raises(NotAStoreError, match=r"not a nag-farm latency store.*users"):
        Store(tmp_path / "other.db")
    with pytest.raises(StoreNotFoundError, match="no latency store at"):
        Store(tmp_path / "missing.db", create=False)
    assert not (tmp_path / "missing.db").exists()
    newer = sqlite3.connect(tmp_path / "t.db")
    newer.execute("UPDATE store_meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    newer.commit()
    newer.close()
    with pytest.raises(SchemaVersionError, match=f"schema version {SCHEMA_VERSION + 1}, newer.*upgrade nag-farm"):
        Store(tmp_path / "t.db")
    assert issubclass(SchemaVersionError, NagError) and issubclass(InvalidEntryError, NagError)


def test_tables_existing_and_calibration(tmp_path: Path) -> None:
    other = table_for(make_measurement(samples_for(0)), resolution=160)
    with Store(tmp_path / "t.db") as store:
        keys = [f"block-{i}" for i in range(1200)]  # more than one IN (...) chunk
        for key in keys[::3]:
            store.put_measurement(TABLE, "block", key, make_measurement(samples_for(1)))
        store.put_measurement(other, "network", "arch", make_measurement(samples_for(1)))
        assert store.existing(TABLE, "block", keys) == set(keys[::3])
        assert store.existing(TABLE, "network", keys) == set() and store.existing(other, "block", keys) == set()
        assert store.tables() == [other, TABLE]  # sorted: resolution 160 first
        assert store.tables(resolution=224) == [TABLE] and store.tables(device="ort-cpu", width=1.2, space="ofa-mbv3") == [
            other,
            TABLE,
        ]
        assert store.tables(device="pixel") == []
        assert store.get_calibration(TABLE) is None
        store.put_calibration(TABLE, {"offset_ms": 0.5, "scale": 1.1})
        store.put_calibration(TABLE, {"offset_ms": 0.25, "scale": 1.2})  # a refit replaces
        assert store.get_calibration(TABLE) == {"offset_ms": 0.25, "scale": 1.2} and store.get_calibration(other) is None
        assert store.delete_calibration(TABLE) and store.get_calibration(TABLE) is None


def test_a_table_keeps_to_the_exporter_its_entries_record(tmp_path: Path) -> None:
    """The table key does not say which exporter wrote the measured models (the direct .tflite writer or
    litert-torch): the puts refuse a measurement of another exporter's graph, naming both and the fix."""

    def by(exporter: str | None, i: int) -> Measurement:
        found = make_measurement(samples_for(i))
        return replace(found, extra={**found.extra, **({"exporter": exporter} if exporter else {})})

    direct, torch = "direct-tflite1-weights1", "torch-2.13.0-weights1"
    with Store(tmp_path / "t.db") as store:
        assert store.put_measurement(TABLE, "block", "legacy", by(None, 0))  # recorded nothing: nothing to compare
        assert store.put_measurement(TABLE, "block", "b1", by(direct, 1))
        assert store.put_measurement(TABLE, "block", "b2", by(direct, 2))
        with pytest.raises(
            TableConflictError, match=f"exporter {direct}, but block 'b3' from 'ort-cpu@lab1'.*{torch}.*new store"
        ):
            store.put_measurement(TABLE, "block", "b3", by(torch, 3))
        with pytest.raises(TableConflictError, match=f"exporter {direct}, but reference 'ref'.*{torch}"):
            store.put_reference(TABLE, point=0, phase="start", arch="ref", measurement=by(torch, 4))
        store.put_reference(TABLE, point=0, phase="start", arch="ref", measurement=by(direct, 4))
        assert store.put_measurement(TABLE, "network", "n1", by(direct, 5))
        assert store.existing(TABLE, "block", ["b1", "b2", "b3"]) == {"b1", "b2"}
        assert store.put_measurement(table_for(by(torch, 6), resolution=160), "block", "b3", by(torch, 6))  # another table


# A writer that acknowledges each committed put on stdout; the test SIGKILLs it mid-stream.
_WRITER = """
import sys
from farm.store import Store
from tests.farm.test_store import TABLE, make_measurement, samples_for
store = Store(sys.argv[1])
end = int(sys.argv[2])
for i in range(end):
    stored = store.put_measurement(TABLE, "block", f"block-{i}", make_measurement(samples_for(i), device_id=f"dev-{i % 3}"))
    print(i, int(stored), flush=True)
"""


def test_every_acknowledged_put_survives_sigkill(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    child = subprocess.Popen([sys.executable, "-c", _WRITER, str(db), "1000000"], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    acknowledged = []
    for line in child.stdout:
        acknowledged.append(int(line.split()[0]))
        if len(acknowledged) == 300:
            os.kill(child.pid, signal.SIGKILL)  # mid-stream: the writer is putting entry 300 or later
            break
    acknowledged += [int(line.split()[0]) for line in child.stdout]  # acks already in the pipe
    assert child.wait(timeout=30) == -signal.SIGKILL
    assert acknowledged == list(range(len(acknowledged)))

    with Store(db) as store:
        assert store._connection().execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = {row.item: row for row in store.rows(TABLE, "block")}
        for i in acknowledged:  # every put that returned is there, intact
            expected = make_measurement(samples_for(i), device_id=f"dev-{i % 3}")
            assert rows[f"block-{i}"].measurement() == expected
        assert set(rows) <= {f"block-{i}" for i in range(len(acknowledged) + 1)}  # at most the one in flight besides

    # Rerun (resume): everything stored is skipped, the rest added, nothing duplicated.
    rerun = subprocess.run(
        [sys.executable, "-c", _WRITER, str(db), str(len(acknowledged) + 20)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    stored_again = [int(line.split()[1]) for line in rerun.stdout.splitlines()]
    assert stored_again[: len(acknowledged)] == [0] * len(acknowledged)
    with Store(db) as store:
        items = [row.item for row in store.rows(TABLE, "block")]
        assert sorted(items) == sorted(f"block-{i}" for i in range(len(acknowledged) + 20))


def test_concurrent_writer_threads(tmp_path: Path) -> None:
    results: list[tuple[str, bool]] = []
    lock = threading.Lock()
    with Store(tmp_path / "t.db") as store:

        def work(worker: int) -> None:
            for i in range(60):  # everyone puts the 60 shared entries (duplicated tasks), then 15 of its own
                stored = store.put_measurement(
                    TABLE, "block", f"shared-{i}", make_measurement(samples_for(i), device_id=f"w{worker}")
                )
                with lock:
                    results.append((f"shared-{i}", stored))
            for i in range(15):
                stored = store.put_measurement(TABLE, "block", f"own-{worker}-{i}", make_measurement(samples_for(i)))
                with lock:
                    results.append((f"own-{worker}-{i}", stored))

        threads = [threading.Thread(target=work, args=(w,)) for w in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        items = [row.item for row in store.rows(TABLE, "block")]
    assert len(items) == len(set(items)) == 60 + 6 * 15
    stored = [item for item, ok in results if ok]
    assert sorted(stored) == sorted(items)  # exactly one put per entry reported True


# A reader in another process: prints the entry count until it sees them all.
_READER = """
import sys, time
from farm.store import Store
from tests.farm.test_store import TABLE
store = Store(sys.argv[1], create=False)
print("ready", flush=True)
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    n = len(store.rows(TABLE, "block"))
    print(n, flush=True)
    if n >= int(sys.argv[2]):
        break
"""


def test_reader_process_sees_commits_while_writing(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    total = 150
    with Store(db) as store:
        reader = subprocess.Popen(
            [sys.executable, "-c", _READER, str(db), str(total)], cwd=REPO, stdout=subprocess.PIPE, text=True
        )
        assert reader.stdout is not None and reader.stdout.readline().strip() == "ready"
        for i in range(total):
            store.put_measurement(TABLE, "block", f"block-{i}", make_measurement(samples_for(i)))
            time.sleep(0.002)
        counts = [int(line) for line in reader.stdout]
        assert reader.wait(timeout=30) == 0
    assert counts[-1] == total and counts == sorted(counts)  # never an error, never a count going back
    assert len({c for c in counts if 0 < c < total}) >= 3  # it read while the writes went on


def _fill(store: Store) -> None:
    for i in range(4):
        store.put_measurement(TABLE, "block", f"block-{i}", make_measurement(samples_for(i)))
    store.put_measurement(TABLE, "network", "2,2,2,2,2:" + ",".join(["3"] * 20), make_measurement(samples_for(9)))
    imported = TableKey(space="ofa-mbv3", width=1.0, resolution=192, device="note10", fingerprint="", runtime="ofa-lut",
                        runtime_version="", spec_key="")  # fmt: skip
    store.put_summary(imported, "block", "Conv-input:192x192x3-output:96x96x16", mean_ms=0.1 + 0.2, std_ms=1 / 3, count=20)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_tabular_round_trip(tmp_path: Path, fmt: str) -> None:
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    with Store(tmp_path / "a.db") as source, Store(tmp_path / "b.db") as target:
        _fill(source)
        path = tmp_path / f"tables.{fmt}"
        assert getattr(source, f"export_{fmt}")(path) == 6
        result = getattr(target, f"import_{fmt}")(path)
        assert (result.inserted, result.skipped) == (6, 0)
        assert list(source.records()) == list(target.records())  # every value exact, floats included
        again = getattr(target, f"import_{fmt}")(path)
        assert (again.inserted, again.skipped) == (0, 6)
        assert target.tables() == source.tables()


def test_csv_import_rejects_bad_rows_atomically(tmp_path: Path) -> None:
    with Store(tmp_path / "a.db") as source:
        _fill(source)
        source.export_csv(tmp_path / "t.csv")
    lines = (tmp_path / "t.csv").read_text().splitlines()
    header = lines[0].split(",")
    fields = lines[2].split(",")
    fields[header.index("mean_ms")] = "fast"
    (tmp_path / "bad.csv").write_text("\n".join([lines[0], lines[1], ",".join(fields), *lines[3:]]) + "\n")
    with Store(tmp_path / "b.db") as target:
        with pytest.raises(TableFileError, match=r"bad.csv:3: column mean_ms holds 'fast', not a number"):
            target.import_csv(tmp_path / "bad.csv")
        assert target.tables() == []  # parsed before anything is written
        (tmp_path / "cols.csv").write_text("space,item\nofa-mbv3,x\n")
        with pytest.raises(TableFileError, match="lacks the column"):
            target.import_csv(tmp_path / "cols.csv")


def test_parquet_without_pyarrow_is_a_typed_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # what an environment without pyarrow looks like to import
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with Store(tmp_path / "a.db") as store, pytest.raises(MissingDependencyError, match="pip install pyarrow"):
        store.export_parquet(tmp_path / "t.parquet")


def test_measurement_json_is_strict(tmp_path: Path) -> None:
    with Store(tmp_path / "t.db") as store:
        store.put_measurement(TABLE, "block", "b", make_measurement(samples_for(1)))
        (row,) = store.rows(TABLE, "block")
    assert row.measurement_json is not None
    assert json.loads(row.measurement_json)["ci95_low_ms"] is None  # 5 samples: undefined, stored as null, not Infinity
