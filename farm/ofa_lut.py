"""OFA's latency lookup-table files: import into a store, export from one.

OFA publishes one YAML file per input resolution, named ``<res>_lookup_table.yaml``, mapping each block key
to its timing in milliseconds::

    Conv-input:224x224x3-output:112x112x24:
      count: 1000
      mean: 0.4128
      std: 0.0113
    expanded_conv-input:112x112x24-output:112x112x24-expand:24-kernel:3-stride:1-idskip:1-se:0-hs:0:
      ...

``count`` is the number of timed runs, ``mean`` and ``std`` their mean and standard deviation. Block keys
are OFA's, which are exactly :attr:`nag.space.Block.key`; a network's table latency is the sum over its
blocks. A published file holds the 96 blocks of one width at one resolution.

Imported tables are stored under ``TableKey(device=NAME, fingerprint="", runtime="ofa-lut",
runtime_version="", spec_key="")``: the device name is the user's label, since the files carry no
provenance. Export writes measured tables too (``mean``/``std`` of the raw samples, ``count`` their number).
"""

from __future__ import annotations

import difflib
import functools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from farm.errors import TableAmbiguousError, TableFileError, TableNotFoundError, UnknownBlockError
from farm.store import MAX_COUNT, Store, Summary, TableKey
from nag.data import MAX_LATENCY_MS, MIN_LATENCY_MS, atomic_write
from nag.errors import show_value
from nag.space import get_space

__all__ = [
    "FILE_PATTERN",
    "OFA_RUNTIME",
    "ImportedTable",
    "export_ofa_yaml",
    "import_ofa_yaml",
    "infer_width",
    "ofa_file_name",
    "read_ofa_yaml",
    "resolution_from_name",
]

OFA_RUNTIME = "ofa-lut"  # the runtime of an imported table: the files do not say what ran them
FILE_PATTERN = re.compile(r"^(?P<res>[1-9][0-9]*)_lookup_table\.ya?ml$")
DEFAULT_WIDTHS = (1.0, 1.2)  # the widths OFA (1.0) and PNAG (1.2) publish tables for


@dataclass(frozen=True)
class ImportedTable:
    """What importing one file did."""

    path: Path  # the file read
    table: TableKey  # the table it went into
    blocks: int  # block entries in the file
    changed: int  # entries stored or replaced (0 when the same file was imported before)


def ofa_file_name(resolution: int) -> str:
    """OFA's file name for a resolution: ``224_lookup_table.yaml``."""
    return f"{resolution}_lookup_table.yaml"


def resolution_from_name(path: str | Path) -> int:
    """The input resolution in an OFA file name; :class:`TableFileError` for a name not of that pattern."""
    name = Path(path).name
    match = FILE_PATTERN.match(name)
    if match is None:
        raise TableFileError(
            f"cannot tell the resolution from the file name {name!r}: OFA's tables are named "
            "'<resolution>_lookup_table.yaml', e.g. '224_lookup_table.yaml'; rename the file"
        )
    return int(match.group("res"))


def read_ofa_yaml(path: str | Path) -> dict[str, Summary]:
    """Parse one OFA LUT file into block key -> :class:`~farm.store.Summary` (ms); structure and numbers checked.

    Every entry needs a ``mean`` of finite milliseconds in [MIN_LATENCY_MS, MAX_LATENCY_MS] (a block takes
    time: a mean of 0 would make every network's table latency wrong), a ``std`` of finite milliseconds >= 0
    and a ``count`` from 1 to MAX_COUNT; :class:`TableFileError` names the block and the value otherwise.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise TableFileError(f"cannot read {path} as an OFA lookup table (YAML): {exc}") from exc
    except ValueError:  # PyYAML's int() of a number over 4300 digits
        raise TableFileError(f"{path} holds a number too long to read (over 4300 digits); fix the file") from None
    except RecursionError:
        raise TableFileError(f"{path} is nested too deeply to read; an OFA lookup table is two levels deep") from None
    if not isinstance(data, Mapping) or not data:
        raise TableFileError(
            f"{path} is not an OFA lookup table: expected a mapping of block keys to {{count, mean, std}}, got {type(data).__name__}"
        )
    found: dict[str, Summary] = {}
    for key, entry in data.items():
        if not isinstance(key, str) or not isinstance(entry, Mapping) or set(entry) != {"count", "mean", "std"}:
            raise TableFileError(
                f"{path}: entry {show_value(key, 120)} must map a block key to exactly {{count, mean, std}}, got {show_value(entry)}"
            )
        count, mean, std = entry["count"], entry["mean"], entry["std"]
        if isinstance(count, float) and count.is_integer():
            count = int(count)
        problems = []
        if not _finite(mean) or not MIN_LATENCY_MS <= mean <= MAX_LATENCY_MS:
            problems.append(
                f"mean {show_value(mean)} (must be finite milliseconds from {MIN_LATENCY_MS:g} to {MAX_LATENCY_MS:g})"
            )
        if not _finite(std) or not 0 <= std <= MAX_LATENCY_MS:
            problems.append(f"std {show_value(std)} (must be finite milliseconds from 0 to {MAX_LATENCY_MS:g})")
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
            problems.append(f"count {show_value(count)} (must be an integer from 1 to {MAX_COUNT:g}, the timed runs)")
        if problems:
            raise TableFileError(f"{path}: block {show_value(key, 120)} has {'; '.join(problems)}; fix or drop the entry")
        found[key] = Summary(mean_ms=float(mean), std_ms=float(std), count=count)
    return found


def _finite(value: Any) -> bool:
    """A real number a float can hold: not a bool, NaN, an infinity, or an integer too large for a float (YAML
    reads 400 digits as an int, which ``math.isfinite`` cannot even convert)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def infer_width(space_name: str, keys: Iterable[str], *, resolution: int, widths: Sequence[float] = DEFAULT_WIDTHS) -> float:
    """The one width among ``widths`` at which every key is a block of the space at ``resolution``.

    Raises :class:`UnknownBlockError` naming the first key that fits no width and its closest valid key,
    and :class:`TableAmbiguousError` when several widths fit (pass the width explicitly then).
    """
    space = get_space(space_name)
    keys = list(keys)
    valid = {width: {block.key for block in space.all_blocks(width=width, resolution=resolution)} for width in widths}
    fitting = [width for width, known in valid.items() if known.issuperset(keys)]
    if len(fitting) == 1:
        return fitting[0]
    if len(fitting) > 1:
        raise TableAmbiguousError(
            f"the {len(keys)} block keys fit {space_name} at widths {', '.join(str(float(w)) for w in fitting)}; pass the width explicitly"
        )
    best = max(widths, key=lambda width: len(valid[width].intersection(keys)))
    unknown = next(key for key in keys if key not in valid[best])
    raise UnknownBlockError(
        _unknown_key_message(unknown, valid[best], f"{space_name} at width {float(best)}, resolution {resolution}")
    )


def _unknown_key_message(key: str, valid: Iterable[str], where: str) -> str:
    close = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.0) if len(key) <= 200 else []
    hint = f"; the closest valid key is {close[0]!r}" if close else ""
    return f"block key {show_value(key, 200)} is not a block of {where}{hint}; check the file's resolution and width"


def import_ofa_yaml(
    store: Store,
    paths: Sequence[str | Path],
    *,
    device: str,
    space: str = "ofa-mbv3",
    width: float | None = None,
    replace: bool = False,
) -> list[ImportedTable]:
    """Import OFA LUT files into ``store`` under the device label ``device``; one transaction per file.

    The resolution comes from each file name, the width from the keys unless given; every key must be a
    block of the space at that setting (:class:`UnknownBlockError` otherwise). Importing the same file
    again changes nothing; a file whose numbers differ from what is stored raises
    :class:`~farm.errors.TableConflictError` unless ``replace``. Every file is parsed and checked before any is
    stored; each is then stored in its own transaction (a file's entries all land, or none of them).
    """
    parsed = []
    for path in paths:
        resolution = resolution_from_name(path)
        summaries = read_ofa_yaml(path)
        if width is None:
            file_width = infer_width(space, summaries, resolution=resolution)
        else:
            file_width = width
            valid = {block.key for block in get_space(space).all_blocks(width=width, resolution=resolution)}
            for key in summaries:
                if key not in valid:
                    raise UnknownBlockError(
                        f"{path}: "
                        + _unknown_key_message(key, valid, f"{space} at width {float(width)}, resolution {resolution}")
                    )
        table = TableKey(
            space=space, width=file_width, resolution=resolution, device=device, fingerprint="", runtime=OFA_RUNTIME,
            runtime_version="", spec_key="",
        )  # fmt: skip
        parsed.append((Path(path), table, summaries))
    return [
        ImportedTable(
            path=path, table=table, blocks=len(summaries), changed=store.put_summaries(table, "block", summaries, replace=replace)
        )
        for path, table, summaries in parsed
    ]


def export_ofa_yaml(
    store: Store,
    out_dir: str | Path,
    *,
    device: str,
    space: str = "ofa-mbv3",
    width: float | None = None,
    fingerprint: str | None = None,
    runtime: str | None = None,
) -> list[Path]:
    """Write one ``<res>_lookup_table.yaml`` per resolution of the device's tables into ``out_dir``, atomically.

    Only block entries are written (``count``, ``mean``, ``std`` in ms), in the space's block order; a
    resolution whose table holds no blocks gets no file. When a resolution has several tables for the device
    (widths, fingerprints, runtimes), narrow with ``width``, ``fingerprint`` or ``runtime``
    (:class:`TableAmbiguousError` lists them). Returns the paths written.
    """
    tables = [
        table
        for table in store.tables(device=device, space=space, width=width)
        if (fingerprint is None or table.fingerprint == fingerprint) and (runtime is None or table.runtime == runtime)
    ]
    if not tables:
        known = sorted({t.device for t in store.tables(space=space)})
        raise TableNotFoundError(
            f"no {space} table for device {device!r} in {store.path} (with the filters given); devices there: {', '.join(known) or 'none'}"
        )
    by_resolution: dict[int, list[TableKey]] = {}
    for table in tables:
        by_resolution.setdefault(table.resolution, []).append(table)
    written = []
    for resolution, candidates in sorted(by_resolution.items()):
        if len(candidates) > 1:
            listed = "; ".join(t.label() for t in candidates)
            raise TableAmbiguousError(
                f"device {device!r} has {len(candidates)} tables at resolution {resolution}: {listed}; "
                "narrow with width=, fingerprint= or runtime= (--width / --fingerprint / --runtime)"
            )
        table = candidates[0]
        data = _ofa_mapping(table, {row.item: row for row in store.rows(table, "block")})
        if data:
            text = yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
            written.append(atomic_write(Path(out_dir) / ofa_file_name(resolution), functools.partial(_write_text, text=text)))
    if not written:
        raise TableNotFoundError(f"the {space} tables of device {device!r} in {store.path} hold no block entries to export")
    return written


def _write_text(path: Path, *, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def _ofa_mapping(table: TableKey, rows: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Block key -> {count, mean, std}, in the space's block order (keys it does not know last, sorted)."""
    order = [block.key for block in get_space(table.space).all_blocks(width=table.width, resolution=table.resolution)]
    keys = [key for key in order if key in rows] + sorted(set(rows) - set(order))
    return {key: {"count": rows[key].count, "mean": rows[key].mean_ms, "std": rows[key].std_ms} for key in keys}
