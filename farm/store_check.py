"""Integrity of a latency store, and salvage of what is intact in a damaged one (``nag table check``).

:func:`check_store` runs SQLite's full ``integrity_check`` on a store opened read-only. :func:`salvage_store`
copies every table, entry and calibration that can still be read from a damaged store into a new one:
rows are read by scanning each table in rowid order and, past a page that cannot be read, by probing
rowids one at a time until a readable row is met again; each entry read is checked as an imported one is
(:func:`farm.store_files._parse_record`), so a row that a damaged page turned into nonsense is dropped,
not copied. Entries on unreadable pages are lost; the report counts them when the primary-key index,
which lists every entry, is itself readable.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from farm.errors import FarmError, InvalidEntryError, NotAStoreError, StoreNotFoundError, TableFileError
from farm.store import EXPORT_COLUMNS, ReferenceRow, Store, TableKey, check_reference_row, connect_read_only, is_corruption

__all__ = ["SalvageReport", "check_store", "salvage_store"]

_PROBE_GAP = 100_000  # rowids probed one by one past an unreadable page before giving up on the rest
_KEY_COLUMNS = tuple(field.name for field in fields(TableKey))  # the columns of the 'tables' table, in order


@dataclass(frozen=True)
class SalvageReport:
    """What :func:`salvage_store` copied."""

    out: Path  # the new store
    tables: int  # tables copied (those with at least one entry copied)
    entries: int  # entries copied
    rejected: int  # rows read but refused: nonsense values, or an entry whose table's row is lost
    expected: int | None  # entries the damaged store's index lists; None when the index is unreadable too
    calibrations: int  # calibrations copied

    @property
    def lost(self) -> int | None:
        """Entries not copied, when the index could tell how many there were."""
        return None if self.expected is None else max(self.expected - self.entries, 0)


def _open_read_only(path: str | Path) -> sqlite3.Connection:
    file = Path(path)
    if not file.is_file():
        raise StoreNotFoundError(f"no latency store at {file}; check the path")
    try:
        conn = connect_read_only(file)
    except sqlite3.DatabaseError as exc:
        raise NotAStoreError(f"{file} cannot be read as an SQLite database ({exc}); rebuild it with 'nag table build'") from exc
    return conn


def check_store(path: str | Path, *, limit: int = 20) -> list[str]:
    """SQLite's full ``integrity_check`` of the store (read-only): the problems found, at most ``limit``; [] when intact."""
    conn = _open_read_only(path)
    try:
        rows = [str(row[0]) for row in conn.execute(f"PRAGMA integrity_check({int(limit)})")]
    except sqlite3.DatabaseError as exc:
        rows = [f"the check itself stopped: {exc}"]
    finally:
        conn.close()
    if rows == ["ok"]:
        return []
    return [line for text in rows for line in text.splitlines() if not line.startswith("***")][:limit]


def _rows(conn: sqlite3.Connection, table: str, columns: str) -> Iterator[tuple[Any, ...]]:
    """Every readable row of ``table`` as (rowid, *columns), in rowid order, stepping over unreadable pages."""
    last = 0
    while True:
        try:
            for row in conn.execute(f"SELECT rowid, {columns} FROM {table} WHERE rowid > ? ORDER BY rowid", (last,)):
                last = row[0]
                yield row
            return
        except sqlite3.DatabaseError as exc:
            if not is_corruption(exc):
                raise
        for rowid in range(last + 1, last + 1 + _PROBE_GAP):
            try:
                row = conn.execute(f"SELECT rowid, {columns} FROM {table} WHERE rowid = ?", (rowid,)).fetchone()
            except sqlite3.DatabaseError:
                continue
            if row is not None:
                last = rowid
                yield row
                break
        else:
            return


def _count(conn: sqlite3.Connection, sql: str) -> int | None:
    try:
        return int(conn.execute(sql).fetchone()[0])
    except sqlite3.DatabaseError:
        return None


def salvage_store(path: str | Path, out: str | Path) -> SalvageReport:
    """Copy what can be read of the store at ``path`` into a new store at ``out`` (which must not exist)."""
    from farm.store_files import _parse_record

    out = Path(out)
    if out.exists():
        raise FarmError(f"{out} exists; salvage writes a new store: name a path that does not exist")
    conn = _open_read_only(path)
    try:
        keys: dict[int, dict[str, Any]] = {}
        for row in _rows(conn, "tables", "id, " + ", ".join(_KEY_COLUMNS)):
            keys[row[1]] = dict(zip(_KEY_COLUMNS, row[2:], strict=True))
        expected = _count(conn, "SELECT count(*) FROM entries INDEXED BY sqlite_autoindex_entries_1")
        parsed, rejected = [], 0
        value_columns = EXPORT_COLUMNS[len(_KEY_COLUMNS) :]
        for row in _rows(conn, "entries", "table_id, " + ", ".join(value_columns)):
            key = keys.get(row[1])
            try:
                if key is None:
                    raise TableFileError("its table's row is lost")
                parsed.append(_parse_record(f"entry {row[0]}", {**key, **dict(zip(value_columns, row[2:], strict=True))}))
            except (FarmError, InvalidEntryError, TypeError, ValueError):
                rejected += 1
        calibrations = [(row[1], row[2]) for row in _rows(conn, "calibrations", "table_id, calibration")]
        references: list[tuple[int, ReferenceRow]] = []
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'reference_series'").fetchone():  # schema 2 on
            names = [f.name for f in fields(ReferenceRow)]
            for row in _rows(conn, "reference_series", "table_id, " + ", ".join(names)):
                references.append((row[1], ReferenceRow(**dict(zip(names, row[2:], strict=True)))))
    finally:
        conn.close()
    copied_calibrations = 0
    with Store(out) as store:
        result = store.import_records(parsed)
        for table_id, text in calibrations:
            try:
                store.put_calibration(TableKey(**keys[table_id]), json.loads(text))
            except (KeyError, FarmError, TypeError, ValueError):
                continue  # not counted as copied; refit it from the network entries with 'nag table validate'
            copied_calibrations += 1
        for table_id in dict.fromkeys(t for t, _ in references):
            intact = [r for t, r in references if t == table_id and _valid_reference(r)]  # one bad row loses only itself
            try:
                store.put_reference_rows(TableKey(**keys[table_id]), intact)
            except (KeyError, FarmError, TypeError, ValueError):
                continue  # a series whose table is lost: the next build starts a new one
        tables = len(store.tables())
    return SalvageReport(
        out=out, tables=tables, entries=result.inserted, rejected=rejected, expected=expected, calibrations=copied_calibrations
    )


def _valid_reference(row: ReferenceRow) -> bool:
    try:
        check_reference_row(row)
    except (FarmError, TypeError, ValueError):
        return False
    return True
