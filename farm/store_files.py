"""Latency tables as files: CSV and Parquet export and import of a :class:`farm.store.Store`.

One record per entry, with the columns :data:`farm.store.EXPORT_COLUMNS` (the table key, the item, the
statistics, the samples, flags and measurement as JSON text). An export is written atomically; an import
checks every value first (:class:`farm.errors.TableFileError` names the line and column), then inserts all
of it in one transaction, skipping entries the store already holds, so importing twice changes nothing.
Calibrations are not exported: refit them from the network entries.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from farm.errors import InvalidEntryError, TableFileError
from farm.store import (
    EXPORT_COLUMNS,
    JSON_COLUMNS,
    ImportResult,
    Store,
    Summary,
    TableKey,
    check_item,
    check_number,
    now_iso,
)
from nag.data import atomic_write
from nag.errors import MissingDependencyError

__all__ = ["export_csv", "export_parquet", "import_csv", "import_parquet"]

_FLOAT_COLUMNS = ("mean_ms", "std_ms", "median_ms", "mad_ms", "p10_ms", "p90_ms")


def export_csv(store: Store, path: str | Path, *, tables: Sequence[TableKey] | None = None) -> int:
    """Write the entries of ``tables`` (default: all) to a CSV file, atomically; returns the entry count.

    Columns: :data:`EXPORT_COLUMNS`; an empty cell is NULL; floats are written exactly (``repr``).
    """
    records = list(store.records(tables))

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=EXPORT_COLUMNS)
            writer.writeheader()
            writer.writerows({k: "" if v is None else v for k, v in record.items()} for record in records)

    atomic_write(path, write)
    return len(records)


def import_csv(store: Store, path: str | Path) -> ImportResult:
    """Merge a file written by :func:`export_csv`, in one transaction (all or nothing). Entries the store
    already holds are skipped, so importing twice changes nothing. Bad content raises :class:`TableFileError`
    naming the line and column."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            _check_columns(path, reader.fieldnames or [])
            parsed = [_parse_record(f"{path}:{reader.line_num}", record) for record in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise TableFileError(f"cannot read {path} as a CSV latency table: {exc}") from exc
    return store.import_records(parsed)


def export_parquet(store: Store, path: str | Path, *, tables: Sequence[TableKey] | None = None) -> int:
    """:func:`export_csv` as Parquet (needs pyarrow; :class:`MissingDependencyError` otherwise)."""
    pa, pq = _pyarrow()
    records = list(store.records(tables))
    types = {"width": pa.float64(), "resolution": pa.int64(), "count": pa.int64()}
    types.update({name: pa.float64() for name in _FLOAT_COLUMNS})
    schema = pa.schema([(name, types.get(name, pa.string())) for name in EXPORT_COLUMNS])
    table = pa.Table.from_pylist(records, schema=schema)
    atomic_write(path, lambda tmp: pq.write_table(table, tmp))
    return len(records)


def import_parquet(store: Store, path: str | Path) -> ImportResult:
    """:func:`import_csv` from a file written by :func:`export_parquet` (needs pyarrow)."""
    _, pq = _pyarrow()
    path = Path(path)
    try:
        table = pq.read_table(path)
    except (OSError, ValueError) as exc:  # pyarrow.ArrowInvalid derives from ValueError
        raise TableFileError(f"cannot read {path} as a Parquet latency table: {exc}") from exc
    _check_columns(path, table.column_names)
    return store.import_records([_parse_record(f"{path}: row {i + 1}", record) for i, record in enumerate(table.to_pylist())])


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise MissingDependencyError(
            f"Parquet tables need pyarrow, which is not installed ({exc}); pip install pyarrow, or use CSV (export_csv / import_csv)"
        ) from exc
    return pa, pq


def _check_columns(path: Path, columns: Sequence[str]) -> None:
    missing = [name for name in EXPORT_COLUMNS if name not in columns]
    if missing:
        raise TableFileError(
            f"{path} lacks the column(s) {', '.join(missing)} of a latency table export; write it with Store.export_csv / export_parquet"
        )


def _parse_record(where: str, record: Mapping[str, Any]) -> tuple[TableKey, str, str, dict[str, Any]]:
    """A record of an exported file -> (table key, item kind, item, entry columns), every value checked."""

    def cell(name: str) -> Any:
        value = record.get(name)
        return None if value is None or value == "" else value

    def number(name: str, convert: Callable[[Any], Any], *, required: bool) -> Any:
        value = cell(name)
        if value is None:
            if required:
                raise TableFileError(f"{where}: column {name} is empty; every entry needs it")
            return None
        try:
            return convert(value)
        except (TypeError, ValueError) as exc:
            raise TableFileError(f"{where}: column {name} holds {value!r}, not a number") from exc

    try:
        table = TableKey(
            space=cell("space") or "", width=number("width", float, required=True), resolution=number("resolution", int, required=True),
            device=cell("device") or "", fingerprint=cell("fingerprint") or "", runtime=cell("runtime") or "",
            runtime_version=str(cell("runtime_version") or ""), spec_key=cell("spec_key") or "",
        )  # fmt: skip
        item_kind, item = str(cell("item_kind")), str(cell("item") or "")
        check_item(item_kind, item)
        values: dict[str, Any] = {name: number(name, float, required=name in ("mean_ms", "std_ms")) for name in _FLOAT_COLUMNS}
        values["count"] = number("count", int, required=True)
        Summary(mean_ms=values["mean_ms"], std_ms=values["std_ms"], count=values["count"])
        for name in _FLOAT_COLUMNS:
            if values[name] is not None:
                check_number(name, values[name], minimum=0.0)
        for name in JSON_COLUMNS:
            values[name] = cell(name)
            if values[name] is not None:
                json.loads(values[name])
        if values["samples_ms"] is not None and len(json.loads(values["samples_ms"])) != values["count"]:
            raise InvalidEntryError(f"count {values['count']} != number of samples in samples_ms")
    except json.JSONDecodeError as exc:
        raise TableFileError(f"{where}: a JSON column does not parse ({exc})") from exc
    except InvalidEntryError as exc:
        raise TableFileError(f"{where}: {exc}") from exc
    values["device_id"] = cell("device_id")
    values["created_at"] = cell("created_at") or now_iso()
    return table, item_kind, item, values
