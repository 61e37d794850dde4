"""Architecture tables: architectures with measured latency and (optionally) accuracy, read from files.

Formats, chosen by the file's suffix:

- ``.csv``: a header row naming the columns; the architecture column holds canonical strings (or OFA
  dicts as JSON), the latency column milliseconds, the accuracy column fractions or percent.
- ``.parquet`` / ``.pq``: the same named columns (needs ``pyarrow``).
- ``.json``: the published PNAG data format, a JSON list of
  ``{"arch": "d:k:e", "w1.2": {"top1_acc": 0.78, "mobile_latency": 0.0799, "cpu_latency": ..., "gpu_latency": ...}}``
  with accuracy a fraction and latency in **seconds** (converted to ms); ``device`` picks the latency.

Accuracy may be written as fractions (all values in [0, 1]) or percent (all values in (1, 100]); a column
mixing the two is refused. The table records which (:attr:`ArchTable.accuracy_scale`) and stores fractions.

What is checked, so that a table trains nothing silently wrong:

- text: UTF-8, or UTF-8/16/32 with a byte-order mark (read, and said so in the notes); anything else, NUL
  characters included (UTF-16 without a BOM), is refused. CSV fields over 131,072 characters are refused.
- numbers: finite; at most :data:`MAX_NUMBER_CHARS` characters; latency in
  [:data:`MIN_LATENCY_MS`, :data:`MAX_LATENCY_MS`] milliseconds after unit conversion.
- repeated architectures: rows whose latency and accuracy agree within :data:`DUPLICATE_REL_TOL` are
  averaged into one (said so in :attr:`ArchTable.notes`); conflicting ones are refused, naming both rows.
- JSON: nesting deeper than Python's parser allows, and integers over :data:`MAX_NUMBER_CHARS` digits.

Every bad row raises :class:`TableError` naming the file, the row and the column, the value, and the fix.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from nag.errors import ArchitectureError, MissingDependencyError, NagError, show_value
from nag.files import atomic_write, atomic_write_bytes  # re-exported: the table writers' callers use them from here
from nag.space import SearchSpace, get_space

__all__ = [
    "DEVICES",
    "DUPLICATE_REL_TOL",
    "MAX_LATENCY_MS",
    "MIN_LATENCY_MS",
    "ArchTable",
    "TableError",
    "atomic_write",
    "atomic_write_bytes",
    "load_table",
    "write_csv",
]

DEVICES = ("mobile", "cpu", "gpu")
MIN_LATENCY_MS = 1e-6  # a nanosecond: below it a "latency" is a unit slip or an underflow, not a measurement
MAX_LATENCY_MS = 1e7  # about 2.8 hours for one inference: above it, not a measurement either
DUPLICATE_REL_TOL = 0.05  # repeated rows of one architecture agreeing within 5% (of the larger) are averaged
MAX_NUMBER_CHARS = 64  # a number written with more characters is not a measurement (e.g. a 5,000-digit value)
_BOMS = (  # UTF-32 first: its little-endian mark starts with UTF-16's
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
AccuracyScale = Literal["fraction", "percent", "absent"]


class TableError(NagError, ValueError):
    """A table file is missing, has an unknown format, lacks a column, or holds a bad row."""


@dataclass(frozen=True, eq=False)
class ArchTable:
    """Rows of architectures with latency (ms) and, when the file has it, accuracy (fractions)."""

    space: str  # registry name of the search space the architectures belong to
    archs: tuple[str, ...]  # canonical architecture strings, one per row
    latency_ms: tuple[float, ...]  # latency per row, milliseconds, > 0
    accuracy: tuple[float, ...] | None  # top-1 accuracy per row as fractions in [0, 1]; None without a column
    accuracy_scale: AccuracyScale  # how the file wrote accuracy: "fraction", "percent" (divided by 100), "absent"
    source: str  # where the rows came from (a path, or a description)
    notes: tuple[str, ...] = ()  # what reading did besides reading: an encoding from a BOM, duplicates averaged

    def __post_init__(self) -> None:
        if len(self.latency_ms) != len(self.archs) or (self.accuracy is not None and len(self.accuracy) != len(self.archs)):
            raise TableError(f"{self.source}: archs, latency and accuracy must have one value per row")

    def __len__(self) -> int:
        return len(self.archs)

    def describe(self) -> str:
        """One line for the user: rows, latency range, and how accuracy was read."""
        text = f"{self.source}: {len(self)} rows, latency {min(self.latency_ms):.3f}..{max(self.latency_ms):.3f} ms"
        if self.accuracy is None:
            text += ", no accuracy column"
        else:
            scale = "percent (divided by 100)" if self.accuracy_scale == "percent" else "fractions"
            text += f", accuracy {min(self.accuracy):.4f}..{max(self.accuracy):.4f} read as {scale}"
        return "; ".join((text, *self.notes))


def load_table(
    path: str | os.PathLike[str],
    *,
    space: str | SearchSpace[Any] = "ofa-mbv3",
    arch_column: str = "arch",
    latency_column: str = "latency_ms",
    accuracy_column: str | None = "accuracy",
    device: str = "mobile",
    width_key: str | None = None,
    require_accuracy: bool = True,
) -> ArchTable:
    """Read a CSV, Parquet or PNAG JSON table (see the module docstring).

    ``accuracy_column=None`` or a missing accuracy column with ``require_accuracy=False`` gives a
    latency-only table. ``device`` and ``width_key`` apply to PNAG JSON only (``width_key`` defaults to the
    entries' only key besides ``arch``, e.g. ``"w1.2"``). Raises :class:`TableError`.
    """
    file = Path(path)
    resolved = get_space(space) if isinstance(space, str) else space
    if not file.is_file():
        raise TableError(f"table file {str(file)!r} does not exist (or is not a file); give a .csv, .parquet or .json path")
    suffix = file.suffix.lower()
    if suffix == ".json":
        return _load_pnag_json(file, resolved, device=device, width_key=width_key)
    notes: list[str] = []
    if suffix == ".csv":
        columns, rows = _read_csv(file, notes)
    elif suffix in (".parquet", ".pq"):
        columns, rows = _read_parquet(file)
    else:
        raise TableError(f"table file {str(file)!r} has suffix {suffix!r}; use .csv, .parquet (or .pq) or .json (PNAG format)")
    for name in (arch_column, latency_column):
        if name not in columns:
            raise TableError(
                f"{file}: no column {name!r}; the file has {show_value(columns, 200)}. Name the right one with --arch-column/--latency-column"
            )
    use_accuracy = accuracy_column is not None and accuracy_column in columns
    if require_accuracy and not use_accuracy:
        raise TableError(
            f"{file}: no accuracy column {accuracy_column!r}; the file has {show_value(columns, 200)}. Name it with --accuracy-column"
        )
    parsed = [
        (
            where,
            _arch(file, where, arch_column, row.get(arch_column), resolved),
            _latency_ms(file, where, latency_column, row.get(latency_column)),
            _number(file, where, str(accuracy_column), row.get(str(accuracy_column))) if use_accuracy else None,
        )
        for where, row in rows
    ]
    return _table(file, resolved, parsed, str(accuracy_column) if use_accuracy else None, str(file), notes)


def _table(
    file: Path,
    space: SearchSpace[Any],
    parsed: Sequence[tuple[str, str, float, float | None]],
    accuracy_column: str | None,
    source: str,
    notes: list[str],
) -> ArchTable:
    """The table of parsed rows (where, arch, latency ms, accuracy as written): units checked, duplicates merged."""
    if not parsed:
        raise TableError(f"{file}: the table has no rows")
    where = [row[0] for row in parsed]
    archs = [row[1] for row in parsed]
    latency = [row[2] for row in parsed]
    accuracy: list[float] | None = None
    scale: AccuracyScale = "absent"
    if accuracy_column is not None:
        written = [row[3] for row in parsed if row[3] is not None]  # every row has one when the column is used
        fractions, scale = _as_fractions(file, accuracy_column, written, where)
        accuracy = list(fractions)
    archs, latency, accuracy = _merge_duplicates(file, where, archs, latency, accuracy, notes)
    return ArchTable(
        space.name, tuple(archs), tuple(latency), None if accuracy is None else tuple(accuracy), scale, source, tuple(notes)
    )


def _read_text(file: Path, notes: list[str]) -> str:
    """The file's text: UTF-8, or UTF-8/16/32 with a byte-order mark (noted); anything else is a TableError."""
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise TableError(f"cannot read {file}: {exc.strerror}; check the path and its permissions") from None
    encoding = next((name for bom, name in _BOMS if data.startswith(bom)), "utf-8")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise TableError(
            f"{file} is not valid {encoding.upper()} text (byte {data[exc.start]:#04x} at offset {exc.start}); "
            "save it as UTF-8 (or UTF-16 with a byte-order mark)"
        ) from None
    if "\x00" in text:
        raise TableError(
            f"{file} holds NUL characters (offset {text.index(chr(0))}): UTF-16 without a byte-order mark, or not a text "
            "file; save it as UTF-8"
        )
    if encoding != "utf-8":
        notes.append(f"read as {encoding.upper().replace('-SIG', '')} (byte-order mark)")
    return text


def _read_csv(file: Path, notes: list[str]) -> tuple[list[str], list[tuple[str, Mapping[str, Any]]]]:
    reader = csv.DictReader(io.StringIO(_read_text(file, notes), newline=""))
    try:
        columns = list(reader.fieldnames or [])
        rows: list[tuple[str, Mapping[str, Any]]] = [(f"line {reader.line_num}", row) for row in reader]
    except csv.Error as exc:
        if "field limit" in str(exc):
            raise TableError(
                f"{file} line {reader.line_num + 1}: a field is over {csv.field_size_limit():,} characters; a table field is "
                "an architecture or a number: check for an unclosed quote, or a file that is not CSV"
            ) from None
        raise TableError(f"{file} line {reader.line_num + 1}: not readable as CSV ({exc}); fix the line") from None
    if not columns:
        raise TableError(f"{file}: the CSV file is empty; it needs a header row naming its columns")
    return columns, rows


def _read_parquet(file: Path) -> tuple[list[str], list[tuple[str, Mapping[str, Any]]]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingDependencyError(f"reading {file} needs pyarrow: pip install pyarrow (or give a .csv table)") from None
    try:
        data = pq.read_table(file).to_pylist()
        columns = pq.read_schema(file).names
    except (OSError, ValueError) as exc:  # pyarrow.ArrowInvalid is a ValueError
        raise TableError(f"{file}: not a readable Parquet file: {exc}") from None
    return columns, [(f"row {n + 1}", row) for n, row in enumerate(data)]


def _arch(file: Path, where: str, column: str, value: Any, space: SearchSpace[Any]) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TableError(f"{file} {where}, column {column!r}: expected an architecture string, got {show_value(value)}")
    try:
        return space.format(space.parse(value))
    except ArchitectureError as exc:
        raise TableError(f"{file} {where}, column {column!r}: {exc}; fix or drop the row") from None


def _number(file: Path, where: str, column: str, value: Any, *, positive: bool = False) -> float:
    """A finite number, > 0 when ``positive`` else >= 0, written in at most MAX_NUMBER_CHARS characters."""
    if isinstance(value, str) and len(value) > MAX_NUMBER_CHARS:
        raise TableError(
            f"{file} {where}, column {column!r}: {show_value(value)} ({len(value)} characters) is not a number of at "
            f"most {MAX_NUMBER_CHARS} characters; fix or drop the row"
        )
    try:
        if isinstance(value, bool):
            raise TypeError
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise TableError(f"{file} {where}, column {column!r}: {show_value(value)} is not a number") from None
    if not math.isfinite(number) or (positive and number <= 0) or number < 0:
        need = "a positive" if positive else "a non-negative"
        raise TableError(
            f"{file} {where}, column {column!r}: {show_value(value)} is not {need} finite number; fix or drop the row"
        )
    return number


def _latency_ms(file: Path, where: str, column: str, value: Any, *, unit_ms: float = 1.0, unit: str = "ms") -> float:
    """A latency in ms from a value in ``unit`` (``unit_ms`` ms each), within [MIN_LATENCY_MS, MAX_LATENCY_MS]."""
    number = _number(file, where, column, value, positive=True)
    ms = number * unit_ms
    if not MIN_LATENCY_MS <= ms <= MAX_LATENCY_MS:
        shown = f"{number:g} {unit}" + (f" = {ms:g} ms" if unit != "ms" else "")
        bound = f"below {MIN_LATENCY_MS:g} ms (a nanosecond)" if ms < MIN_LATENCY_MS else f"above {MAX_LATENCY_MS:g} ms"
        raise TableError(
            f"{file} {where}, column {column!r}: latency {shown} is {bound}, not a measured latency; "
            f"check the column's unit ({unit}) or fix or drop the row"
        )
    return ms


def _as_fractions(
    file: Path, column: str, values: Sequence[float], where: Sequence[str]
) -> tuple[tuple[float, ...], AccuracyScale]:
    """Values as fractions, and whether the file wrote fractions (all <= 1) or percent (all above 1, <= 100)."""
    largest = max(values)
    if largest <= 1.0:
        return tuple(values), "fraction"
    if largest > 100.0:
        row = where[values.index(largest)]
        raise TableError(
            f"{file} {row}, column {column!r}: accuracy {largest} is neither a fraction (0..1) nor percent (0..100); "
            "fix the row or name the right column with --accuracy-column"
        )
    smallest = min(values)
    if smallest <= 1.0:
        raise TableError(
            f"{file}: column {column!r} mixes percent and fractions: {where[values.index(largest)]} has {largest:g} "
            f"(percent) but {where[values.index(smallest)]} has {smallest:g} (a fraction, or under 1%); "
            "write every row in one unit"
        )
    return tuple(v / 100.0 for v in values), "percent"


def _merge_duplicates(
    file: Path,
    where: Sequence[str],
    archs: list[str],
    latency: list[float],
    accuracy: list[float] | None,
    notes: list[str],
) -> tuple[list[str], list[float], list[float] | None]:
    """One row per architecture: repeats agreeing within DUPLICATE_REL_TOL averaged (noted), others refused."""
    rows: dict[str, list[int]] = {}
    for index, arch in enumerate(archs):
        rows.setdefault(arch, []).append(index)
    repeated = [indices for indices in rows.values() if len(indices) > 1]
    if not repeated:
        return archs, latency, accuracy
    columns = [("latency", latency, " ms")] + ([("accuracy", accuracy, "")] if accuracy is not None else [])
    for indices in repeated:
        for name, values, unit in columns:
            low = min(indices, key=lambda i: values[i])
            high = max(indices, key=lambda i: values[i])
            if values[high] - values[low] > DUPLICATE_REL_TOL * values[high]:
                raise TableError(
                    f"{file}: architecture {archs[low]} is repeated with conflicting {name}: {where[low]} has "
                    f"{values[low]:g}{unit}, {where[high]} has {values[high]:g}{unit} (over {DUPLICATE_REL_TOL:.0%} apart); "
                    "keep the right row and drop the other"
                )
    merged = list(rows.values())
    first = repeated[0]
    notes.append(
        f"averaged {sum(map(len, repeated))} rows of {len(repeated)} repeated architecture(s) that agree within "
        f"{DUPLICATE_REL_TOL:.0%} (e.g. {', '.join(where[i] for i in first)})"
    )
    return (
        [archs[indices[0]] for indices in merged],
        [math.fsum(latency[i] for i in indices) / len(indices) for indices in merged],
        None if accuracy is None else [math.fsum(accuracy[i] for i in indices) / len(indices) for indices in merged],
    )


def _json_int(token: str) -> int:
    if len(token) > MAX_NUMBER_CHARS:
        raise TableError(f"a number of {len(token)} digits (starting {token[:20]}...) is not a measurement")
    return int(token)


def _load_pnag_json(file: Path, space: SearchSpace[Any], *, device: str, width_key: str | None) -> ArchTable:
    if device not in DEVICES:
        raise TableError(f"device {device!r} is not in the PNAG data; choose from {', '.join(DEVICES)}")
    notes: list[str] = []
    text = _read_text(file, notes)
    try:
        entries = json.loads(text, parse_int=_json_int)
    except TableError as exc:
        raise TableError(f"{file}: {exc}; fix the file") from None
    except json.JSONDecodeError as exc:
        raise TableError(f"{file}: not valid JSON ({exc}); the PNAG format is a JSON list of entries") from None
    except RecursionError:
        raise TableError(f"{file}: JSON nested too deeply to read; the PNAG format is a flat list of entries") from None
    if not isinstance(entries, list) or not entries:
        raise TableError(f"{file}: the PNAG format is a non-empty JSON list of {{'arch': ..., 'w1.2': {{...}}}} entries")
    parsed = []
    for n, entry in enumerate(entries, start=1):
        where = f"entry {n}"
        if not isinstance(entry, dict):
            raise TableError(f"{file} {where}: expected an object with 'arch' and a width key, got {type(entry).__name__}")
        key = width_key or _only_width_key(file, where, entry)
        values = entry.get(key)
        if not isinstance(values, dict):
            keys = sorted(show_value(k, 30) for k in entry)[:10]
            raise TableError(f"{file} {where}: no object under width key {key!r}; the entry has keys {keys}")
        arch = _arch(file, where, "arch", entry.get("arch"), space)
        column = f"{key}.{device}_latency"
        latency = _latency_ms(file, where, column, values.get(f"{device}_latency"), unit_ms=1000.0, unit="s")
        parsed.append((where, arch, latency, _number(file, where, f"{key}.top1_acc", values.get("top1_acc"))))
    return _table(file, space, parsed, "top1_acc", f"{file} ({device} latency)", notes)


def _only_width_key(file: Path, where: str, entry: Mapping[str, Any]) -> str:
    keys = [k for k in entry if k != "arch"]
    if len(keys) != 1:
        raise TableError(
            f"{file} {where}: expected one width key besides 'arch' (e.g. 'w1.2'), found {show_value(keys, 120)}; pick one with width_key"
        )
    return str(keys[0])


def write_csv(
    path: str | os.PathLike[str],
    archs: Iterable[str],
    latency_ms: Iterable[float],
    accuracy: Iterable[float] | None = None,
    *,
    columns: tuple[str, str, str] = ("arch", "latency_ms", "accuracy"),
) -> Path:
    """Write a table as CSV, durably (see :func:`atomic_write_bytes`); returns the path."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    if accuracy is None:
        writer.writerow(columns[:2])
        writer.writerows(zip(archs, latency_ms, strict=True))
    else:
        writer.writerow(columns)
        writer.writerows(zip(archs, latency_ms, accuracy, strict=True))
    return atomic_write_bytes(path, buffer.getvalue().encode("utf-8"))
