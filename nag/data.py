"""Architecture tables: architectures with measured latency and (optionally) accuracy, read from files.

Formats, chosen by the file's suffix:

- ``.csv``: a header row naming the columns; the architecture column holds canonical strings (or OFA
  dicts as JSON), the latency column milliseconds, the accuracy column fractions or percent.
- ``.parquet`` / ``.pq``: the same named columns (needs ``pyarrow``).
- ``.json``: the published PNAG data format, a JSON list of
  ``{"arch": "d:k:e", "w1.2": {"top1_acc": 0.78, "mobile_latency": 0.0799, "cpu_latency": ..., "gpu_latency": ...}}``
  with accuracy a fraction and latency in **seconds** (converted to ms); ``device`` picks the latency.

Accuracy may be written as fractions (all values in [0, 1]) or percent (some value above 1, all in
[0, 100]); the table records which (:attr:`ArchTable.accuracy_scale`) and stores fractions. Every bad row
raises :class:`TableError` naming the file, the row and the column, the value, and the fix.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from nag.errors import ArchitectureError, MissingDependencyError, NagError
from nag.space import SearchSpace, get_space

__all__ = ["DEVICES", "ArchTable", "TableError", "atomic_write", "atomic_write_bytes", "load_table", "write_csv"]

DEVICES = ("mobile", "cpu", "gpu")
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

    def __post_init__(self) -> None:
        if len(self.latency_ms) != len(self.archs) or (self.accuracy is not None and len(self.accuracy) != len(self.archs)):
            raise TableError(f"{self.source}: archs, latency and accuracy must have one value per row")

    def __len__(self) -> int:
        return len(self.archs)

    def describe(self) -> str:
        """One line for the user: rows, latency range, and how accuracy was read."""
        text = f"{self.source}: {len(self)} rows, latency {min(self.latency_ms):.3f}..{max(self.latency_ms):.3f} ms"
        if self.accuracy is None:
            return text + ", no accuracy column"
        scale = "percent (divided by 100)" if self.accuracy_scale == "percent" else "fractions"
        return text + f", accuracy {min(self.accuracy):.4f}..{max(self.accuracy):.4f} read as {scale}"


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
    if suffix == ".csv":
        columns, rows = _read_csv(file)
    elif suffix in (".parquet", ".pq"):
        columns, rows = _read_parquet(file)
    else:
        raise TableError(f"table file {str(file)!r} has suffix {suffix!r}; use .csv, .parquet (or .pq) or .json (PNAG format)")
    return _from_columns(
        file,
        resolved,
        columns,
        rows,
        arch_column=arch_column,
        latency_column=latency_column,
        accuracy_column=accuracy_column,
        require_accuracy=require_accuracy,
    )


def _read_csv(file: Path) -> tuple[list[str], list[tuple[str, Mapping[str, Any]]]]:
    with file.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = list(reader.fieldnames or [])
        rows: list[tuple[str, Mapping[str, Any]]] = [(f"line {reader.line_num}", row) for row in reader]
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


def _from_columns(
    file: Path,
    space: SearchSpace[Any],
    columns: list[str],
    rows: list[tuple[str, Mapping[str, Any]]],
    *,
    arch_column: str,
    latency_column: str,
    accuracy_column: str | None,
    require_accuracy: bool,
) -> ArchTable:
    for name in (arch_column, latency_column):
        if name not in columns:
            raise TableError(
                f"{file}: no column {name!r}; the file has {columns}. Name the right one with --arch-column/--latency-column"
            )
    use_accuracy = accuracy_column is not None and accuracy_column in columns
    if require_accuracy and not use_accuracy:
        raise TableError(
            f"{file}: no accuracy column {accuracy_column!r}; the file has {columns}. Name it with --accuracy-column"
        )
    archs, latency, accuracy = [], [], []
    for where, row in rows:
        archs.append(_arch(file, where, arch_column, row.get(arch_column), space))
        latency.append(_number(file, where, latency_column, row.get(latency_column), positive=True))
        if use_accuracy:
            accuracy.append(_number(file, where, str(accuracy_column), row.get(str(accuracy_column)), positive=False))
    if not archs:
        raise TableError(f"{file}: the table has no rows")
    if not use_accuracy:
        return ArchTable(space.name, tuple(archs), tuple(latency), None, "absent", str(file))
    fractions, scale = _as_fractions(file, str(accuracy_column), accuracy, [where for where, _ in rows])
    return ArchTable(space.name, tuple(archs), tuple(latency), fractions, scale, str(file))


def _arch(file: Path, where: str, column: str, value: Any, space: SearchSpace[Any]) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TableError(f"{file} {where}, column {column!r}: expected an architecture string, got {value!r}")
    try:
        return space.format(space.parse(value))
    except ArchitectureError as exc:
        raise TableError(f"{file} {where}, column {column!r}: {exc}; fix or drop the row") from None


def _number(file: Path, where: str, column: str, value: Any, *, positive: bool) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TableError(f"{file} {where}, column {column!r}: {value!r} is not a number") from None
    if not math.isfinite(number) or (positive and number <= 0) or number < 0:
        need = "a positive" if positive else "a non-negative"
        raise TableError(f"{file} {where}, column {column!r}: {value!r} is not {need} finite number; fix or drop the row")
    return number


def _as_fractions(
    file: Path, column: str, values: Sequence[float], where: Sequence[str]
) -> tuple[tuple[float, ...], AccuracyScale]:
    """Values as fractions, and whether the file wrote fractions or percent (some value above 1)."""
    largest = max(values)
    if largest <= 1.0:
        return tuple(values), "fraction"
    if largest <= 100.0:
        return tuple(v / 100.0 for v in values), "percent"
    row = where[values.index(largest)]
    raise TableError(
        f"{file} {row}, column {column!r}: accuracy {largest} is neither a fraction (0..1) nor percent (0..100); "
        "fix the row or name the right column with --accuracy-column"
    )


def _load_pnag_json(file: Path, space: SearchSpace[Any], *, device: str, width_key: str | None) -> ArchTable:
    if device not in DEVICES:
        raise TableError(f"device {device!r} is not in the PNAG data; choose from {', '.join(DEVICES)}")
    try:
        entries = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TableError(f"{file}: not valid JSON ({exc}); the PNAG format is a JSON list of entries") from None
    if not isinstance(entries, list) or not entries:
        raise TableError(f"{file}: the PNAG format is a non-empty JSON list of {{'arch': ..., 'w1.2': {{...}}}} entries")
    archs, latency, accuracy = [], [], []
    for n, entry in enumerate(entries, start=1):
        where = f"entry {n}"
        if not isinstance(entry, dict):
            raise TableError(f"{file} {where}: expected an object with 'arch' and a width key, got {type(entry).__name__}")
        key = width_key or _only_width_key(file, where, entry)
        values = entry.get(key)
        if not isinstance(values, dict):
            raise TableError(f"{file} {where}: no object under width key {key!r}; the entry has keys {sorted(entry)}")
        archs.append(_arch(file, where, "arch", entry.get("arch"), space))
        seconds = _number(file, where, f"{key}.{device}_latency", values.get(f"{device}_latency"), positive=True)
        latency.append(seconds * 1000.0)
        accuracy.append(_number(file, where, f"{key}.top1_acc", values.get("top1_acc"), positive=False))
    fractions, scale = _as_fractions(file, "top1_acc", accuracy, [f"entry {n}" for n in range(1, len(entries) + 1)])
    return ArchTable(space.name, tuple(archs), tuple(latency), fractions, scale, f"{file} ({device} latency)")


def _only_width_key(file: Path, where: str, entry: Mapping[str, Any]) -> str:
    keys = [k for k in entry if k != "arch"]
    if len(keys) != 1:
        raise TableError(
            f"{file} {where}: expected one width key besides 'arch' (e.g. 'w1.2'), found {keys}; pick one with width_key"
        )
    return str(keys[0])


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], object]) -> Path:
    """Write a file durably: ``write(tmp)`` fills a temporary file beside ``path``, which is fsynced and renamed
    over ``path``, and the folder is fsynced. A crash leaves the old file or the new one, never a part. The file
    gets the usual permissions (0666 less the umask). Returns ``path`` as a :class:`Path`.
    """
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=file.parent, prefix=f".{file.name}.", suffix=".tmp")
    os.close(fd)
    temp = Path(name)
    try:
        write(temp)
        with open(temp, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(temp, 0o666 & ~_umask())
        os.replace(temp, file)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    folder = os.open(file.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
    return file


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """:func:`atomic_write` of ``data``."""
    return atomic_write(path, lambda temp: temp.write_bytes(data))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


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
