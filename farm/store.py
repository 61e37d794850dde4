"""Durable latency tables in SQLite.

A *table* is every entry measured (or imported) for one (search space, width, resolution, device, device
fingerprint, runtime and version, measurement spec): a :class:`TableKey`. An *entry* is one block (its
key, named as OFA names it) or one whole network (its canonical architecture string) of that table, with
its statistics and, when measured here, every raw sample and the full provenance of the measurement.

Durability. The database runs in WAL mode and every ``put_*`` is its own transaction, committed before
the call returns: a measurement is never held only in memory. ``synchronous=FULL`` is the default: the
WAL is fsynced at every commit, so a returned put survives a power cut or a kernel crash of the head
node, not only the death of the process (which ``NORMAL`` already survives). An fsync costs milliseconds
and a measurement takes seconds to minutes, so the price is invisible; ``NORMAL`` may be passed for bulk
work on a scratch copy. Puts are idempotent: a row exists at most once per (table, item kind, item), and
a retried or duplicated task's put returns ``False`` and changes nothing.

Concurrency. One :class:`Store` object serializes its own use with a lock, so threads may share it. The
farm funnels every write through one process (the driver that runs the scheduler); other processes and
connections may read at any time (WAL readers never block the writer nor wait for it). A second writing
process is tolerated -- SQLite's file lock serializes it, waiting up to ``timeout_s`` -- but not the design.

Schema (version 2)::

    store_meta(key TEXT PRIMARY KEY, value TEXT)              -- 'schema_version', 'application'
    tables(id INTEGER PRIMARY KEY, space, width REAL, resolution INTEGER, device, fingerprint, runtime,
           runtime_version, spec_key, created_at, UNIQUE(space .. spec_key))
    entries(table_id -> tables.id, item_kind 'block'|'network', item,
            mean_ms, std_ms, count,                           -- always present
            median_ms, mad_ms, p10_ms, p90_ms, samples_ms (JSON list), flags (JSON list),
            device_id, measurement (Measurement.to_dict() as JSON),  -- NULL for imported summaries
            created_at, PRIMARY KEY (table_id, item_kind, item))
    calibrations(table_id PRIMARY KEY -> tables.id, calibration JSON, fitted_at)
    reference_series(table_id -> tables.id, point INTEGER, phase 'start'|'during'|'end'|'recheck', arch,
            device_id, median_ms, mean_ms, std_ms, count, ci_low_ms, ci_high_ms (NULL when undefined),
            measured_at, PRIMARY KEY (table_id, point, device_id, arch))   -- added in version 2

Exporters. A measurement the farm takes names the exporter that wrote its model in ``extra["exporter"]``
(:func:`nag.space.export.exporter_identity`: the direct writer or torch's, with its graph's version): the same
block from another exporter is another graph (the direct ``.tflite`` is NHWC, litert-torch's NCHW with
transposes at both ends). The table key does not hold it, so the puts of measurements keep each table to one:
a measurement whose exporter differs from the one recorded by the table's entries raises
:class:`~farm.errors.TableConflictError`. Entries measured before exporters were recorded (and imported
summaries) record none, so nothing is compared with them: which exporter wrote them cannot be told.

A store of an older version is migrated when opened to write (version 1 -> 2 adds ``reference_series``):
each step of ``_MIGRATIONS`` is additive, so every table, entry and calibration stays as it was. A store
opened to read (``Store(path, read_only=True)``: ``nag farm status``, ``nag table predict`` and the other
commands that only read) is read as it is, through SQLite's read-only mode, so a store on a read-only file
or directory can be read and is never changed: a version-1 store reads as having no reference series.

CSV and Parquet export and import (``Store.export_csv`` and friends) live in :mod:`farm.store_files`.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from farm.errors import (
    CorruptStoreError,
    InvalidEntryError,
    NotAStoreError,
    SchemaVersionError,
    StoreError,
    StoreNotFoundError,
    TableConflictError,
    TableNotFoundError,
)
from nag.errors import show_value

if TYPE_CHECKING:
    from agents.types import Measurement

__all__ = [
    "EXPORT_COLUMNS",
    "ITEM_KINDS",
    "MAX_COUNT",
    "REFERENCE_PHASES",
    "SCHEMA_VERSION",
    "ImportResult",
    "ItemKind",
    "ReferenceRow",
    "Row",
    "Store",
    "Summary",
    "TableKey",
    "check_reference_row",
    "connect_read_only",
    "is_corruption",
    "now_iso",
]

SCHEMA_VERSION = 2
APPLICATION = "nag-farm latency store"
ITEM_KINDS = ("block", "network")
ItemKind = Literal["block", "network"]
REFERENCE_PHASES = ("start", "during", "end", "recheck")
_CHUNK = 500  # host parameters per IN (...) query; SQLite's oldest limit is 999
_CORRUPTION_CODES = (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB
_READONLY_CODE = 8  # SQLITE_READONLY
MAX_COUNT = 10**12  # timed samples behind one entry; more is not a measurement (and overflows SQLite's INTEGER near 9.2e18)

_SCHEMA = """
CREATE TABLE store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE tables (
    id INTEGER PRIMARY KEY,
    space TEXT NOT NULL, width REAL NOT NULL, resolution INTEGER NOT NULL, device TEXT NOT NULL,
    fingerprint TEXT NOT NULL, runtime TEXT NOT NULL, runtime_version TEXT NOT NULL, spec_key TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (space, width, resolution, device, fingerprint, runtime, runtime_version, spec_key)
);
CREATE TABLE entries (
    table_id INTEGER NOT NULL REFERENCES tables (id),
    item_kind TEXT NOT NULL CHECK (item_kind IN ('block', 'network')),
    item TEXT NOT NULL CHECK (item <> ''),
    mean_ms REAL NOT NULL, std_ms REAL NOT NULL, count INTEGER NOT NULL CHECK (count >= 1),
    median_ms REAL, mad_ms REAL, p10_ms REAL, p90_ms REAL, samples_ms TEXT, flags TEXT,
    device_id TEXT, measurement TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (table_id, item_kind, item)
);
CREATE TABLE calibrations (
    table_id INTEGER PRIMARY KEY REFERENCES tables (id),
    calibration TEXT NOT NULL, fitted_at TEXT NOT NULL
);
"""
_REFERENCE_SERIES = """
CREATE TABLE reference_series (
    table_id INTEGER NOT NULL REFERENCES tables (id),
    point INTEGER NOT NULL CHECK (point >= 0),
    phase TEXT NOT NULL CHECK (phase IN ('start', 'during', 'end', 'recheck')),
    arch TEXT NOT NULL CHECK (arch <> ''),
    device_id TEXT NOT NULL,
    median_ms REAL NOT NULL, mean_ms REAL NOT NULL, std_ms REAL NOT NULL, count INTEGER NOT NULL CHECK (count >= 1),
    ci_low_ms REAL, ci_high_ms REAL,
    measured_at TEXT NOT NULL,
    PRIMARY KEY (table_id, point, device_id, arch)
);
"""
# Version n -> n + 1, additive only (an older store keeps every row it has).
_MIGRATIONS = {1: _REFERENCE_SERIES}
_SERIES_VERSION = 2  # the first version with reference_series (an older store read as it is has no series)
_KEY_COLUMNS = ("space", "width", "resolution", "device", "fingerprint", "runtime", "runtime_version", "spec_key")
_VALUE_COLUMNS = (
    "mean_ms", "std_ms", "count", "median_ms", "mad_ms", "p10_ms", "p90_ms", "samples_ms", "flags", "device_id",
    "measurement", "created_at",
)  # fmt: skip


def now_iso() -> str:
    """The current UTC time, ISO 8601 with milliseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass(frozen=True, order=True)
class TableKey:
    """The identity of a latency table. Validated on construction; ``width`` is stored as a float."""

    space: str  # search space registry name, e.g. "ofa-mbv3"
    width: float  # width multiplier the blocks were built at, e.g. 1.2
    resolution: int  # input resolution in pixels, e.g. 224
    device: str  # agent kind for measured tables ("ort-cpu"); the user's device label for imported tables
    fingerprint: str  # DeviceInfo.fingerprint_hash of the devices that measured it; "" for imports
    runtime: str  # runtime that ran the models, e.g. "onnxruntime"; "ofa-lut" for imported OFA tables
    runtime_version: str  # that runtime's version; "" for imports
    spec_key: str  # MeasurementSpec.key() of the measurements; "" for imports

    def __post_init__(self) -> None:
        for name in ("space", "device", "runtime"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise InvalidEntryError(f"table key: {name} must be a non-empty string, got {value!r}")
        for name in ("fingerprint", "runtime_version", "spec_key"):
            if not isinstance(getattr(self, name), str):
                raise InvalidEntryError(f"table key: {name} must be a string ('' when unknown), got {getattr(self, name)!r}")
        width = self.width
        if isinstance(width, bool) or not isinstance(width, (int, float)) or not math.isfinite(width) or width <= 0:
            raise InvalidEntryError(f"table key: width must be a finite number > 0, got {width!r}; e.g. 1.2")
        object.__setattr__(self, "width", float(width))
        if isinstance(self.resolution, bool) or not isinstance(self.resolution, int) or self.resolution < 1:
            raise InvalidEntryError(f"table key: resolution must be an integer number of pixels >= 1, got {self.resolution!r}")

    @classmethod
    def for_measurement(cls, *, space: str, width: float, resolution: int, device: str, measurement: Measurement) -> TableKey:
        """The key of the table a measurement belongs to: its fingerprint, runtime, version and spec key."""
        return cls(
            space=space, width=width, resolution=resolution, device=device, fingerprint=measurement.fingerprint_hash,
            runtime=measurement.runtime, runtime_version=measurement.runtime_version, spec_key=measurement.spec.key(),
        )  # fmt: skip

    @property
    def is_measured(self) -> bool:
        """True for a table measured by agents (it has a device fingerprint), False for an imported one."""
        return self.fingerprint != ""

    def label(self) -> str:
        """A one-line description for messages."""
        where = f"fingerprint {self.fingerprint}, " if self.fingerprint else ""
        version = f" {self.runtime_version}" if self.runtime_version else ""
        spec = f", spec {self.spec_key}" if self.spec_key else ""
        return (
            f"{self.space} width {self.width} resolution {self.resolution} on {self.device!r} "
            f"({where}{self.runtime}{version}{spec})"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Summary:
    """The statistics every entry has (all that OFA's LUT files hold). Validated on construction."""

    mean_ms: float  # mean latency, ms, > 0
    std_ms: float  # sample standard deviation of the samples, ms, >= 0
    count: int  # number of timed samples behind the statistics, 1..MAX_COUNT

    def __post_init__(self) -> None:
        check_number("mean_ms", self.mean_ms, minimum=0.0, strict=True)
        check_number("std_ms", self.std_ms, minimum=0.0)
        if isinstance(self.count, bool) or not isinstance(self.count, int) or not 1 <= self.count <= MAX_COUNT:
            raise InvalidEntryError(
                f"count must be an integer from 1 to {MAX_COUNT:g} (the number of timed samples), got {show_value(self.count)}"
            )


@dataclass(frozen=True)
class Row:
    """One stored entry. The measured-only fields are None for imported summaries."""

    item_kind: ItemKind  # "block" or "network"
    item: str  # a block key (OFA's naming) or an architecture's canonical string
    mean_ms: float  # mean of the samples, ms
    std_ms: float  # sample standard deviation (n - 1), ms
    count: int  # number of samples
    median_ms: float | None  # median, ms; None for imports (OFA tables hold count/mean/std only)
    mad_ms: float | None  # median absolute deviation, unscaled, ms
    p10_ms: float | None  # 10th percentile, ms
    p90_ms: float | None  # 90th percentile, ms
    samples_ms: tuple[float, ...] | None  # every raw sample, ms
    flags: tuple[str, ...]  # measurement flags ("temperature-drift", ...); () for imports
    device_id: str | None  # provenance: which device of the table's fingerprint measured it
    measurement_json: str | None  # the full Measurement.to_dict() as JSON
    created_at: str  # ISO 8601 UTC time the entry was stored

    @property
    def measured(self) -> bool:
        return self.measurement_json is not None

    def measurement(self) -> Measurement | None:
        """The full measurement (samples, statistics, provenance); None for an imported summary."""
        if self.measurement_json is None:
            return None
        from agents.types import Measurement

        return Measurement.from_dict(json.loads(self.measurement_json))


def check_reference_row(row: ReferenceRow) -> None:
    """Raise :class:`InvalidEntryError` unless every column of ``row`` is what the schema holds."""
    if row.phase not in REFERENCE_PHASES or isinstance(row.point, bool) or not isinstance(row.point, int) or row.point < 0:
        raise InvalidEntryError(f"reference row {row.arch!r}: phase {row.phase!r} or point {row.point!r} is not valid")
    check_item("network", row.arch)
    for name in ("median_ms", "mean_ms"):
        check_number(name, getattr(row, name), minimum=0.0, strict=True)
    check_number("std_ms", row.std_ms, minimum=0.0)
    if isinstance(row.count, bool) or not isinstance(row.count, int) or not 1 <= row.count <= MAX_COUNT:
        raise InvalidEntryError(f"reference row {row.arch!r}: count {row.count!r} is not a sample count from 1")
    if not isinstance(row.device_id, str) or not row.device_id or not isinstance(row.measured_at, str):
        raise InvalidEntryError(f"reference row {row.arch!r}: device {row.device_id!r} or time {row.measured_at!r} missing")


@dataclass(frozen=True)
class ReferenceRow:
    """One reference network measured by one device at one point of a table's reference series."""

    point: int  # the point's number in the table's series, 0 first; every device measured at a point shares it
    phase: str  # when in a build it was taken: one of REFERENCE_PHASES
    arch: str  # the reference network's canonical string (farm.reference.reference_archs)
    device_id: str  # the device that measured it
    median_ms: float  # its median latency, ms
    mean_ms: float  # mean, ms
    std_ms: float  # sample standard deviation, ms
    count: int  # samples
    ci_low_ms: float | None  # the median's 95% confidence interval, ms; None where undefined (too few samples)
    ci_high_ms: float | None
    measured_at: str  # ISO 8601 UTC time it was stored (comparable with the entries' created_at)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _HasToDict(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


def check_number(name: str, value: Any, *, minimum: float, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidEntryError(f"{name} must be a finite number of milliseconds, got {show_value(value)}")
    if value < minimum or (strict and value == minimum):
        relation = ">" if strict else ">="
        raise InvalidEntryError(f"{name} must be {relation} {minimum:g} ms, got {value!r}")
    return float(value)


def is_corruption(exc: sqlite3.DatabaseError) -> bool:
    """True when SQLite says the file is damaged (SQLITE_CORRUPT, SQLITE_NOTADB), not merely busy or misused."""
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None:
        return code & 0xFF in _CORRUPTION_CODES
    return "malformed" in str(exc) or "not a database" in str(exc)


def connect_read_only(path: Path, *, timeout_s: float = 30.0) -> sqlite3.Connection:
    """A connection through which SQLite never writes ``path`` (``mode=ro``), its first read done.

    SQLite reads a WAL-mode database through its ``-shm`` index, which it creates when missing; in a directory
    this process cannot write, with no ``-wal`` file beside the database (so no write is in progress and
    nothing is left to merge), the file is opened ``immutable`` instead: nobody without write access to that
    directory can start a write. Raises :class:`StoreError` when a ``-wal`` file is there but cannot be read,
    ``sqlite3.Error`` for anything else (the caller says what the file is not).
    """
    uri = path.resolve().as_uri()
    options: dict[str, Any] = {"uri": True, "timeout": timeout_s, "isolation_level": None, "check_same_thread": False}
    conn = sqlite3.connect(f"{uri}?mode=ro", **options)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError as exc:
        conn.close()
        if os.access(path.parent, os.W_OK):
            raise
        if path.with_name(path.name + "-wal").exists():
            raise StoreError(
                f"{path} cannot be read: SQLite needs to write {path.name}-shm beside its -wal file, in a directory this "
                f"user cannot write ({exc}); copy the store and its -wal file to a writable directory and read the copy"
            ) from exc
    conn = sqlite3.connect(f"{uri}?immutable=1", **options)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except BaseException:
        conn.close()
        raise
    return conn


def _check_kind(item_kind: str) -> None:
    if item_kind not in ITEM_KINDS:
        raise InvalidEntryError(f"item kind must be one of {', '.join(ITEM_KINDS)}, got {item_kind!r}")


def check_item(item_kind: str, item: str) -> None:
    _check_kind(item_kind)
    if not isinstance(item, str) or not item.strip() or item != item.strip():
        raise InvalidEntryError(
            f"item must be a block key or a canonical architecture string without surrounding spaces, got {item!r}"
        )


def _measurement_values(table: TableKey, measurement: Measurement) -> dict[str, Any]:
    """The entry columns of a measurement, after checking it belongs to ``table`` and is well formed."""
    own = (measurement.fingerprint_hash, measurement.runtime, measurement.runtime_version, measurement.spec.key())
    wanted = (table.fingerprint, table.runtime, table.runtime_version, table.spec_key)
    if own != wanted:
        raise InvalidEntryError(
            f"measurement from {measurement.device_id!r} (fingerprint {own[0]}, {own[1]} {own[2]}, spec {own[3]}) does not "
            f"belong to table {table.label()}; build the key with TableKey.for_measurement(...)"
        )
    samples = tuple(measurement.samples_ms)
    if not samples or len(samples) != measurement.count:
        raise InvalidEntryError(f"measurement count {measurement.count} != number of samples {len(samples)}")
    for index, sample in enumerate(samples):
        check_number(f"sample {index}", sample, minimum=0.0, strict=True)
    values: dict[str, Any] = {"count": measurement.count}
    for name in ("mean_ms", "median_ms", "p10_ms", "p90_ms"):
        values[name] = check_number(name, getattr(measurement, name), minimum=0.0, strict=True)
    for name in ("std_ms", "mad_ms"):
        values[name] = check_number(name, getattr(measurement, name), minimum=0.0)
    try:
        values["measurement"] = json.dumps(measurement.to_dict(), sort_keys=True, allow_nan=False)
    except ValueError as exc:
        raise InvalidEntryError(f"measurement from {measurement.device_id!r} is not JSON-serializable: {exc}") from exc
    values["samples_ms"] = json.dumps(list(samples))
    values["flags"] = json.dumps(list(measurement.flags))
    values["device_id"] = measurement.device_id
    return values


def _exporter(extra: Mapping[str, Any] | None) -> str | None:
    """The exporter a measurement's ``extra`` names (see the module docstring); None when it names none."""
    found = extra.get("exporter") if isinstance(extra, Mapping) else None
    return found if isinstance(found, str) else None


def _check_exporter(conn: sqlite3.Connection, table: TableKey, table_id: int | None, exporter: str | None, what: str) -> None:
    """Raise :class:`TableConflictError` when the table's entries record another exporter than ``exporter``."""
    if exporter is None:
        return
    held = None
    query = "SELECT measurement FROM entries WHERE table_id = ? AND measurement LIKE '%\"exporter\"%' ORDER BY rowid"
    for (text,) in conn.execute(query, (table_id,)):  # the first entry that records one: they all agree
        try:
            held = _exporter(json.loads(text).get("extra"))
        except (ValueError, AttributeError):
            continue
        if held is not None:
            break
    if held is not None and held != exporter:
        raise TableConflictError(
            f"table {table.label()} holds entries measured on models written by the exporter {held}, but {what} was "
            f"measured on one written by {exporter}: the same block is another graph, so one table must not mix them; "
            "build the table into a new store (nag table build --db NEW.db ...), or measure with the nag version "
            "(and exporter) that built it"
        )


def _row(record: sqlite3.Row) -> Row:
    return Row(
        item_kind=record["item_kind"], item=record["item"], mean_ms=record["mean_ms"], std_ms=record["std_ms"],
        count=record["count"], median_ms=record["median_ms"], mad_ms=record["mad_ms"], p10_ms=record["p10_ms"],
        p90_ms=record["p90_ms"],
        samples_ms=tuple(json.loads(record["samples_ms"])) if record["samples_ms"] is not None else None,
        flags=tuple(json.loads(record["flags"])) if record["flags"] is not None else (),
        device_id=record["device_id"], measurement_json=record["measurement"], created_at=record["created_at"],
    )  # fmt: skip


def _key(record: sqlite3.Row) -> TableKey:
    return TableKey(**{name: record[name] for name in _KEY_COLUMNS})


class Store:
    """A latency store in one SQLite file; created with the current schema when the file does not exist.

    With ``read_only``, SQLite never writes the file (see :func:`connect_read_only`): an older schema is read as
    it is rather than migrated, and a write raises :class:`~farm.errors.StoreError`. A command that only reads
    opens its store so; a command that writes migrates it (in one transaction, when opened).

    Thread-safe: one lock serializes every use of the object's connection. Raises
    :class:`~farm.errors.NotAStoreError` for a path that is not a store, :class:`~farm.errors.SchemaVersionError`
    for a newer schema, :class:`~farm.errors.StoreNotFoundError` for a missing file when ``create=False``.
    Opening runs SQLite's ``quick_check``: a damaged file raises :class:`~farm.errors.CorruptStoreError`
    (so does damage met later, on a read or a write), whose message gives the commands that recover.
    Use as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        create: bool = True,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        timeout_s: float = 30.0,
        read_only: bool = False,
    ) -> None:
        self.path = Path(path)
        self.read_only = read_only
        if synchronous not in ("FULL", "NORMAL"):
            raise StoreError(f"synchronous must be 'FULL' or 'NORMAL', got {synchronous!r}")
        if self.path.is_dir():
            raise NotAStoreError(
                f"{self.path} is a directory, not a latency store; pass a file path such as {self.path / 'tables.db'}"
            )
        if not self.path.exists():
            if not create or read_only:
                raise StoreNotFoundError(f"no latency store at {self.path}; check the path, or build one with 'nag table build'")
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        try:
            if read_only:
                conn = connect_read_only(self.path, timeout_s=timeout_s)
            else:
                conn = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None, check_same_thread=False)
        except sqlite3.DatabaseError as exc:
            if read_only:  # its first read failed
                raise self._unreadable(exc) from exc
            raise NotAStoreError(f"cannot open {self.path} as an SQLite database: {exc}") from exc
        conn.row_factory = sqlite3.Row
        try:
            # A reader leaves the journal mode as the writer set it (setting it writes the file's header).
            mode = "wal" if read_only else conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            conn.execute(f"PRAGMA synchronous={synchronous}")
            conn.execute("PRAGMA foreign_keys=ON")
            self._quick_check(conn)
            self._version = self._ensure_schema(conn)
        except CorruptStoreError:
            conn.close()
            raise
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise self._unreadable(exc) from exc
        except BaseException:
            conn.close()
            raise
        if str(mode).lower() != "wal":
            conn.close()
            raise StoreError(f"{self.path}: SQLite refused WAL mode (got {mode!r}); use a local file system, not a network share")
        self._conn = conn

    # -- lifecycle --------------------------------------------------------------------------------
    def _quick_check(self, conn: sqlite3.Connection) -> None:
        """SQLite's ``quick_check`` (every page and b-tree, not index contents): CorruptStoreError unless 'ok'."""
        found = [row[0] for row in conn.execute("PRAGMA quick_check(5)")]
        if found != ["ok"]:
            problems = [line for text in found for line in str(text).splitlines() if not line.startswith("***")]
            raise self._corrupt("; ".join(problems[:2]) or "quick_check failed")

    def _unreadable(self, exc: sqlite3.DatabaseError) -> StoreError:
        """The error for a file SQLite could not open: read-only to a writer, damaged, or not a database at all."""
        if getattr(exc, "sqlite_errorcode", 0) & 0xFF == _READONLY_CODE or "readonly database" in str(exc):
            return StoreError(
                f"{self.path} cannot be written (SQLite: {exc}); this command writes to the store: make the file and its "
                "directory writable, or work on a copy"
            )
        if is_corruption(exc) and "not a database" not in str(exc):
            return self._corrupt(str(exc))
        return NotAStoreError(
            f"{self.path} is not an SQLite database ({exc}); pass the path of a latency store (a store whose first "
            "page is damaged reads this way too: move it aside and rebuild it with 'nag table build')"
        )

    def _corrupt(self, problem: str) -> CorruptStoreError:
        path = self.path
        shown = problem if len(problem) <= 160 else problem[:157] + "..."
        return CorruptStoreError(
            f"the latency store {path} is corrupted (SQLite: {shown}); copy it aside (mv {path} {path}.corrupt), "
            f"recover what is intact with 'nag table check --db {path}.corrupt --salvage {path}', then rebuild what is "
            "missing with 'nag table build' (it measures only what the store lacks) or 'nag table import-ofa'"
        )

    def _ensure_schema(self, conn: sqlite3.Connection) -> int:
        """Check the schema of an existing store (a plain read: readers never take the write lock); create it
        in an empty database, or migrate an older store (both under the write lock, re-checked there: two
        processes may race). A read-only store is read as it is. Returns the version the store now has."""
        found = self._schema_version(conn)
        if found is not None and (found == SCHEMA_VERSION or self.read_only):
            return found
        if self.read_only:
            raise NotAStoreError(
                f"{self.path} is an empty SQLite database, not a latency store; pass the path of a store that "
                "'nag table build' or 'nag table import-ofa' wrote"
            )
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StoreError(
                f"{self.path} needs its schema created or upgraded to version {SCHEMA_VERSION}, but SQLite cannot write it "
                f"({exc}); open it once where the file is writable"
            ) from exc
        try:
            version = self._schema_version(conn)
            if version is None:
                for statement in (_SCHEMA + _REFERENCE_SERIES).split(";"):
                    if statement.strip():
                        conn.execute(statement)
                meta = [("schema_version", str(SCHEMA_VERSION)), ("application", APPLICATION), ("created_at", now_iso())]
                conn.executemany("INSERT INTO store_meta (key, value) VALUES (?, ?)", meta)
            while version is not None and version < SCHEMA_VERSION:
                conn.execute(_MIGRATIONS[version])
                version += 1
                conn.execute("UPDATE store_meta SET value = ? WHERE key = 'schema_version'", (str(version),))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return SCHEMA_VERSION

    def _schema_version(self, conn: sqlite3.Connection) -> int | None:
        """The schema version of a store this version reads, None for an empty database; raises for anything else."""
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not names:
            return None
        if "store_meta" not in names:
            raise NotAStoreError(
                f"{self.path} is an SQLite database but not a nag-farm latency store (tables: {', '.join(sorted(names))}); "
                "pass another path"
            )
        meta = dict(conn.execute("SELECT key, value FROM store_meta").fetchall())
        version = meta.get("schema_version", "")
        if meta.get("application") != APPLICATION or not version.isdigit():
            raise NotAStoreError(f"{self.path} is an SQLite database but not a nag-farm latency store (meta {meta})")
        if int(version) > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"{self.path} has store schema version {version}, newer than this nag-farm reads "
                f"(up to {SCHEMA_VERSION}); upgrade nag-farm (pip install -U nag-farm)"
            )
        return int(version)

    def close(self) -> None:
        """Close the connection (idempotent). The WAL is checkpointed by SQLite when the last connection closes."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"the store {self.path} is closed; open it again with Store(path)")
        return self._conn

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._connection()
            except sqlite3.DatabaseError as exc:
                if is_corruption(exc):
                    raise self._corrupt(str(exc)) from exc
                raise

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One transaction under the lock: committed on normal exit, rolled back on any exception."""
        if self.read_only:
            raise StoreError(f"the store {self.path} is open read-only; open it with Store(path) to write to it")
        with self._read() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @staticmethod
    def _table_id(conn: sqlite3.Connection, table: TableKey, *, create: bool) -> int | None:
        where = " AND ".join(f"{name} = ?" for name in _KEY_COLUMNS)
        params = [getattr(table, name) for name in _KEY_COLUMNS]
        found = conn.execute(f"SELECT id FROM tables WHERE {where}", params).fetchone()
        if found is not None:
            return int(found[0])
        if not create:
            return None
        cursor = conn.execute(
            f"INSERT INTO tables ({', '.join(_KEY_COLUMNS)}, created_at) VALUES ({', '.join('?' * len(_KEY_COLUMNS))}, ?)",
            [*params, now_iso()],
        )
        return int(cursor.lastrowid or 0)

    # -- writes -----------------------------------------------------------------------------------
    def put_measurement(self, table: TableKey, item_kind: ItemKind, item: str, measurement: Measurement) -> bool:
        """Store a measurement as the entry ``item`` of ``table``, committed before returning.

        Returns True when stored, False when the table already holds that entry (nothing changes: a retried
        or duplicated task never duplicates an entry). Raises :class:`InvalidEntryError` for an unknown item
        kind, an empty item, non-finite or non-positive statistics, or a measurement whose fingerprint,
        runtime, version or spec key differ from the table's.
        """
        check_item(item_kind, item)
        values = _measurement_values(table, measurement)
        return self._insert(table, item_kind, item, values, exporter=_exporter(measurement.extra))

    def put_summary(
        self, table: TableKey, item_kind: ItemKind, item: str, *, mean_ms: float, std_ms: float, count: int, replace: bool = False
    ) -> bool:
        """Store an entry known only by its mean, std and sample count (an imported OFA table's entry).

        Returns True when stored or replaced, False when an identical entry was already there. An entry
        that exists with other numbers raises :class:`TableConflictError` unless ``replace`` is set.
        """
        return (
            self.put_summaries(table, item_kind, {item: Summary(mean_ms=mean_ms, std_ms=std_ms, count=count)}, replace=replace)
            == 1
        )

    def put_summaries(
        self, table: TableKey, item_kind: ItemKind, summaries: Mapping[str, Summary], *, replace: bool = False
    ) -> int:
        """:meth:`put_summary` for many entries in one transaction (all stored, or none). Returns how many changed."""
        for item, summary in summaries.items():
            check_item(item_kind, item)
            if not isinstance(summary, Summary):
                raise InvalidEntryError(f"summary of {item!r} must be a farm.store.Summary, got {type(summary).__name__}")
        changed = 0
        with self._write() as conn:
            table_id = self._table_id(conn, table, create=True)
            for item, summary in summaries.items():
                old = conn.execute(
                    "SELECT mean_ms, std_ms, count, measurement FROM entries WHERE table_id = ? AND item_kind = ? AND item = ?",
                    (table_id, item_kind, item),
                ).fetchone()
                new = (float(summary.mean_ms), float(summary.std_ms), summary.count)
                if old is not None and tuple(old)[:3] == new and old["measurement"] is None:
                    continue
                if old is not None and not replace:
                    raise TableConflictError(
                        f"table {table.label()} already holds {item_kind} {item!r} with mean {old['mean_ms']!r} ms, "
                        f"std {old['std_ms']!r} ms, count {old['count']}; the new entry has mean {new[0]!r}, std {new[1]!r}, "
                        f"count {new[2]}: pass replace=True (--replace) to overwrite, or import under another device name"
                    )
                if old is not None:
                    conn.execute(
                        "DELETE FROM entries WHERE table_id = ? AND item_kind = ? AND item = ?", (table_id, item_kind, item)
                    )
                conn.execute(
                    "INSERT INTO entries (table_id, item_kind, item, mean_ms, std_ms, count, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (table_id, item_kind, item, *new, now_iso()),
                )
                changed += 1
        return changed

    def _insert(self, table: TableKey, item_kind: str, item: str, values: Mapping[str, Any], *, exporter: str | None) -> bool:
        columns = [name for name in _VALUE_COLUMNS if name != "created_at"]
        row = [values.get(name) for name in columns]
        with self._write() as conn:
            table_id = self._table_id(conn, table, create=True)
            _check_exporter(conn, table, table_id, exporter, f"{item_kind} {item!r} from {values['device_id']!r}")
            cursor = conn.execute(
                f"INSERT INTO entries (table_id, item_kind, item, {', '.join(columns)}, created_at) "
                f"VALUES (?, ?, ?, {', '.join('?' * len(columns))}, ?) ON CONFLICT DO NOTHING",
                [table_id, item_kind, item, *row, values.get("created_at") or now_iso()],
            )
            return cursor.rowcount == 1

    def put_calibration(self, table: TableKey, calibration: Mapping[str, Any] | _HasToDict) -> None:
        """Store (or replace) the table's calibration: a JSON-ready mapping, or an object with ``to_dict()``."""
        data = dict(calibration) if isinstance(calibration, Mapping) else calibration.to_dict()
        try:
            text = json.dumps(data, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidEntryError(f"calibration of {table.label()} is not JSON-serializable: {exc}") from exc
        with self._write() as conn:
            table_id = self._table_id(conn, table, create=False)
            if table_id is None:
                raise TableNotFoundError(f"no table {table.label()} in {self.path}; measure or import it before calibrating")
            conn.execute(
                "INSERT INTO calibrations (table_id, calibration, fitted_at) VALUES (?, ?, ?) "
                "ON CONFLICT (table_id) DO UPDATE SET calibration = excluded.calibration, fitted_at = excluded.fitted_at",
                (table_id, text, now_iso()),
            )

    def delete_calibration(self, table: TableKey) -> bool:
        """Remove the table's calibration; False when it had none."""
        with self._write() as conn:
            table_id = self._table_id(conn, table, create=False)
            return table_id is not None and conn.execute("DELETE FROM calibrations WHERE table_id = ?", (table_id,)).rowcount == 1

    # -- reference series (farm.drift) ------------------------------------------------------------
    def put_reference(self, table: TableKey, *, point: int, phase: str, arch: str, measurement: Measurement) -> None:
        """Store one reference network's measurement at ``point`` of the table's series (the table is created
        when missing), committed before returning; a repeat of the same (point, device, network) replaces it."""
        if phase not in REFERENCE_PHASES:
            raise InvalidEntryError(f"reference phase must be one of {', '.join(REFERENCE_PHASES)}, got {show_value(phase)}")
        if isinstance(point, bool) or not isinstance(point, int) or point < 0:
            raise InvalidEntryError(f"reference point must be an integer >= 0, got {show_value(point)}")
        check_item("network", arch)
        values = _measurement_values(table, measurement)
        low, high = (v if math.isfinite(v) else None for v in (measurement.ci95_low_ms, measurement.ci95_high_ms))
        with self._write() as conn:
            table_id = self._table_id(conn, table, create=True)
            _check_exporter(
                conn, table, table_id, _exporter(measurement.extra), f"reference {arch!r} from {values['device_id']!r}"
            )
            conn.execute(
                "INSERT OR REPLACE INTO reference_series (table_id, point, phase, arch, device_id, median_ms, mean_ms, std_ms, "
                "count, ci_low_ms, ci_high_ms, measured_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (table_id, point, phase, arch, values["device_id"], values["median_ms"], values["mean_ms"], values["std_ms"],
                 values["count"], low, high, now_iso()),
            )  # fmt: skip

    def put_reference_rows(self, table: TableKey, rows: Sequence[ReferenceRow]) -> int:
        """Copy reference rows as they are (times included) into the table's series, in one transaction; rows it
        already holds are skipped. Returns how many were added (a salvage copies a damaged store's series this way)."""
        for row in rows:
            check_reference_row(row)
        names = [f.name for f in fields(ReferenceRow)]
        added = 0
        with self._write() as conn:
            table_id = self._table_id(conn, table, create=True)
            for row in rows:
                added += conn.execute(
                    f"INSERT INTO reference_series (table_id, {', '.join(names)}) VALUES (?, {', '.join('?' * len(names))}) "
                    "ON CONFLICT DO NOTHING",
                    [table_id, *(getattr(row, name) for name in names)],
                ).rowcount
        return added

    def reference_series(self, table: TableKey) -> list[ReferenceRow]:
        """The table's reference series, by point, device and network; [] when it has none."""
        with self._read() as conn:
            table_id = self._table_id(conn, table, create=False)
            if table_id is None or self._version < _SERIES_VERSION:
                return []
            records = conn.execute(
                f"SELECT {', '.join(f.name for f in fields(ReferenceRow))} FROM reference_series WHERE table_id = ? "
                "ORDER BY point, device_id, arch",
                (table_id,),
            ).fetchall()
        return [ReferenceRow(**dict(record)) for record in records]

    def next_reference_point(self, table: TableKey) -> int:
        """The number the table's next reference point takes (0 for a table without a series)."""
        with self._read() as conn:
            table_id = self._table_id(conn, table, create=False)
            if table_id is None or self._version < _SERIES_VERSION:
                return 0
            found = conn.execute("SELECT MAX(point) FROM reference_series WHERE table_id = ?", (table_id,)).fetchone()[0]
        return 0 if found is None else int(found) + 1

    def delete_entries(self, table: TableKey, item_kind: ItemKind, items: Iterable[str]) -> int:
        """Remove entries of the table in one transaction (to measure them again); returns how many were removed."""
        _check_kind(item_kind)
        wanted = list(dict.fromkeys(items))
        removed = 0
        with self._write() as conn:
            table_id = self._table_id(conn, table, create=False)
            if table_id is None:
                return 0
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                removed += conn.execute(
                    f"DELETE FROM entries WHERE table_id = ? AND item_kind = ? AND item IN ({', '.join('?' * len(chunk))})",
                    [table_id, item_kind, *chunk],
                ).rowcount
        return removed

    # -- reads ------------------------------------------------------------------------------------
    def get_calibration(self, table: TableKey) -> dict[str, Any] | None:
        """The table's calibration as stored (a dict), or None when it has none."""
        with self._read() as conn:
            table_id = self._table_id(conn, table, create=False)
            if table_id is None:
                return None
            found = conn.execute("SELECT calibration FROM calibrations WHERE table_id = ?", (table_id,)).fetchone()
        return None if found is None else dict(json.loads(found[0]))

    def existing(self, table: TableKey, item_kind: ItemKind, items: Iterable[str]) -> set[str]:
        """Those of ``items`` the table already holds (the scheduler skips them)."""
        _check_kind(item_kind)
        wanted = list(dict.fromkeys(items))
        found: set[str] = set()
        with self._read() as conn:
            table_id = self._table_id(conn, table, create=False)
            if table_id is None:
                return found
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                query = (
                    f"SELECT item FROM entries WHERE table_id = ? AND item_kind = ? AND item IN ({', '.join('?' * len(chunk))})"
                )
                found.update(r[0] for r in conn.execute(query, [table_id, item_kind, *chunk]))
        return found

    def rows(self, table: TableKey, item_kind: ItemKind) -> list[Row]:
        """Every entry of one kind in the table, in the order stored; [] when the table does not exist."""
        _check_kind(item_kind)
        with self._read() as conn:
            table_id = self._table_id(conn, table, create=False)
            if table_id is None:
                return []
            records = conn.execute(
                "SELECT * FROM entries WHERE table_id = ? AND item_kind = ? ORDER BY rowid", (table_id, item_kind)
            ).fetchall()
        return [_row(record) for record in records]

    def count(self, table: TableKey, item_kind: ItemKind | None = None) -> int:
        """Number of entries in the table (of one kind, or all)."""
        with self._read() as conn:
            table_id = self._table_id(conn, table, create=False)
            if table_id is None:
                return 0
            if item_kind is None:
                return int(conn.execute("SELECT COUNT(*) FROM entries WHERE table_id = ?", (table_id,)).fetchone()[0])
            _check_kind(item_kind)
            query = "SELECT COUNT(*) FROM entries WHERE table_id = ? AND item_kind = ?"
            return int(conn.execute(query, (table_id, item_kind)).fetchone()[0])

    def tables(
        self, *, device: str | None = None, space: str | None = None, resolution: int | None = None, width: float | None = None
    ) -> list[TableKey]:
        """The tables matching every filter given, sorted."""
        filters = {"device": device, "space": space, "resolution": resolution, "width": None if width is None else float(width)}
        clauses = [(f"{name} = ?", value) for name, value in filters.items() if value is not None]
        where = ("WHERE " + " AND ".join(c for c, _ in clauses)) if clauses else ""
        with self._read() as conn:
            records = conn.execute(f"SELECT {', '.join(_KEY_COLUMNS)} FROM tables {where}", [v for _, v in clauses]).fetchall()
        return sorted(_key(record) for record in records)

    # -- tabular export / import (CSV, Parquet): the formats live in farm.store_files -----------------------
    def records(self, tables: Sequence[TableKey] | None = None) -> Iterator[dict[str, Any]]:
        """Every entry of the given tables (default: all) as a flat record with the columns of
        :data:`farm.store_files.EXPORT_COLUMNS`: the key columns, ``item_kind``, ``item``, then the entry columns
        (samples, flags and the measurement as JSON text; None where NULL). Calibrations are not part of it:
        refit them from the network entries."""
        for table in self.tables() if tables is None else list(tables):
            for item_kind in ITEM_KINDS:
                for row in self.rows(table, item_kind):  # type: ignore[arg-type]
                    yield {**table.to_dict(), "item_kind": row.item_kind, "item": row.item, **_row_values(row)}

    def export_csv(self, path: str | Path, *, tables: Sequence[TableKey] | None = None) -> int:
        """See :func:`farm.store_files.export_csv`."""
        from farm.store_files import export_csv

        return export_csv(self, path, tables=tables)

    def import_csv(self, path: str | Path) -> ImportResult:
        """See :func:`farm.store_files.import_csv`."""
        from farm.store_files import import_csv

        return import_csv(self, path)

    def export_parquet(self, path: str | Path, *, tables: Sequence[TableKey] | None = None) -> int:
        """See :func:`farm.store_files.export_parquet`."""
        from farm.store_files import export_parquet

        return export_parquet(self, path, tables=tables)

    def import_parquet(self, path: str | Path) -> ImportResult:
        """See :func:`farm.store_files.import_parquet`."""
        from farm.store_files import import_parquet

        return import_parquet(self, path)

    def import_records(self, parsed: Sequence[tuple[TableKey, str, str, dict[str, Any]]]) -> ImportResult:
        """Insert checked (table, item kind, item, entry columns) records in one transaction, all or nothing;
        entries the store already holds are skipped."""
        inserted = 0
        with self._write() as conn:
            for table, item_kind, item, values in parsed:
                table_id = self._table_id(conn, table, create=True)
                cursor = conn.execute(
                    f"INSERT INTO entries (table_id, item_kind, item, {', '.join(values)}) "
                    f"VALUES (?, ?, ?, {', '.join('?' * len(values))}) ON CONFLICT DO NOTHING",
                    [table_id, item_kind, item, *values.values()],
                )
                inserted += cursor.rowcount
        return ImportResult(inserted=inserted, skipped=len(parsed) - inserted)


@dataclass(frozen=True)
class ImportResult:
    """What a tabular import did."""

    inserted: int  # entries added
    skipped: int  # entries the store already held, left unchanged


EXPORT_COLUMNS: tuple[str, ...] = (*_KEY_COLUMNS, "item_kind", "item", *_VALUE_COLUMNS)
JSON_COLUMNS = ("samples_ms", "flags", "measurement")


def _row_values(row: Row) -> dict[str, Any]:
    values = {name: getattr(row, name) for name in _VALUE_COLUMNS if name not in JSON_COLUMNS}
    values["samples_ms"] = None if row.samples_ms is None else json.dumps(list(row.samples_ms))
    values["flags"] = json.dumps(list(row.flags)) if row.measured else None
    values["measurement"] = row.measurement_json
    return values
