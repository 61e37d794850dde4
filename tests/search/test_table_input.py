"""Hostile architecture tables: through ``nag search --table`` (exit 2, one line, no traceback) and the loader.

Repeated architectures (conflicting: refused; consistent: averaged and noted), a column mixing percent and
fractions, absurd latencies, encodings, oversized fields and numbers, deeply nested JSON. A property-based
test feeds generated CSV files to :func:`load_table`: a valid table or a :class:`TableError`, nothing else.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from nag.data import MAX_LATENCY_MS, MIN_LATENCY_MS, TableError, load_table
from nag.space.ofa_mbv3 import OFAMobileNetV3Space
from tests.cli import one_line_error, run_nag
from tests.conftest import PNAG_80_MOBILE

OTHER = "2,2,2,2,2:3,3,0,0,3,3,0,0,3,3,0,0,3,3,0,0,3,3,0,0:3,3,0,0,3,3,0,0,3,3,0,0,3,3,0,0,3,3,0,0"


def _csv(rows: list[tuple[object, ...]], header: tuple[str, ...] = ("arch", "latency_ms", "accuracy")) -> str:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


BAD_TABLES: dict[str, tuple[str, bytes, list[str]]] = {
    "conflicting-duplicates": (
        ".csv",
        _csv([(PNAG_80_MOBILE, 10, 0.78), (OTHER, 5, 0.7), (PNAG_80_MOBILE, 999, 0.99)]).encode(),
        [f"architecture {PNAG_80_MOBILE} is repeated with conflicting latency: line 2 has 10 ms, line 4 has 999 ms"],
    ),
    "conflicting-accuracy": (
        ".csv",
        _csv([(PNAG_80_MOBILE, 10, 0.5), (PNAG_80_MOBILE, 10, 0.99)]).encode(),
        ["repeated with conflicting accuracy: line 2 has 0.5, line 3 has 0.99"],
    ),
    "mixed-percent": (
        ".csv",
        _csv([(PNAG_80_MOBILE, 10, 78), (OTHER, 5, 0.7)]).encode(),
        ["column 'accuracy' mixes percent and fractions: line 2 has 78 (percent) but line 3 has 0.7"],
    ),
    "latency-1e-300": (
        ".csv",
        _csv([(PNAG_80_MOBILE, "1e-300", 0.7)]).encode(),
        ["line 2, column 'latency_ms': latency 1e-300 ms is below 1e-06 ms"],
    ),
    "latency-1e308": (".csv", _csv([(PNAG_80_MOBILE, "1e308", 0.7)]).encode(), ["latency 1e+308 ms is above 1e+07 ms"]),
    "latency-0": (".csv", _csv([(PNAG_80_MOBILE, 0, 0.7)]).encode(), ["'0' is not a positive finite number"]),
    "latency-nan": (".csv", _csv([(PNAG_80_MOBILE, "nan", 0.7)]).encode(), ["'nan' is not a positive finite number"]),
    "latency-inf": (".csv", _csv([(PNAG_80_MOBILE, "-inf", 0.7)]).encode(), ["'-inf' is not a positive finite number"]),
    "latency-5000-digits": (
        ".csv",
        _csv([(PNAG_80_MOBILE, "9" * 5000, 0.7)]).encode(),
        ["(5000 characters) is not a number of at most 64 characters"],
    ),
    "arch-5000-digits": (".csv", _csv([("9" * 5000, 10, 0.7)]).encode(), ["architecture text is 5000 characters"]),
    "utf16-without-bom": (
        ".csv",
        _csv([(PNAG_80_MOBILE, 10, 0.7)]).encode("utf-16-le"),
        ["holds NUL characters", "UTF-16 without a byte-order mark", "save it as UTF-8"],
    ),
    "latin1": (
        ".csv",
        _csv([(PNAG_80_MOBILE, 10, 0.7, "café")], ("arch", "latency_ms", "accuracy", "note")).encode("latin-1"),
        ["is not valid UTF-8 text (byte 0xe9 at offset"],
    ),
    "field-over-131072": (
        ".csv",
        _csv([(PNAG_80_MOBILE, 10, 0.7), (OTHER, 5, "x" * 140_000)]).encode(),
        ["line 3: a field is over 131,072 characters"],
    ),
    "json-nested": (".json", b"[" * 100_000 + b"]" * 100_000, ["JSON nested too deeply to read"]),
    "json-5000-digits": (
        ".json",
        b'[{"arch": "' + PNAG_80_MOBILE.encode() + b'", "w1.2": {"top1_acc": 0.7, "mobile_latency": ' + b"1" * 5000 + b"}}]",
        ["a number of 5000 digits"],
    ),
    "json-nan-latency": (
        ".json",
        b'[{"arch": "' + PNAG_80_MOBILE.encode() + b'", "w1.2": {"top1_acc": 0.7, "mobile_latency": NaN}}]',
        ["entry 1, column 'w1.2.mobile_latency': nan is not a positive finite number"],
    ),
    "json-latency-1e-300-s": (
        ".json",
        b'[{"arch": "' + PNAG_80_MOBILE.encode() + b'", "w1.2": {"top1_acc": 0.7, "mobile_latency": 1e-300}}]',
        ["latency 1e-300 s = 1e-297 ms is below 1e-06 ms"],
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_TABLES))
def test_bad_table_through_nag_search_is_one_line_exit_2(tmp_path: Path, name: str) -> None:
    suffix, content, needles = BAD_TABLES[name]
    table = tmp_path / f"table{suffix}"
    table.write_bytes(content)
    line = one_line_error(run_nag("search", "--table", str(table), "--out", str(tmp_path / "run")), *needles)
    assert line.startswith(f"nag: error: {table}")
    assert not (tmp_path / "run").exists()  # refused before any work


def test_consistent_duplicates_are_averaged_and_noted(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(_csv([(PNAG_80_MOBILE, 10.0, 0.78), (OTHER, 5.0, 0.70), (f" {PNAG_80_MOBILE} ", 10.2, 0.79)]))
    table = load_table(path)
    assert table.archs == (PNAG_80_MOBILE, OTHER)
    assert table.latency_ms == pytest.approx((10.1, 5.0), rel=1e-12)
    assert table.accuracy == pytest.approx((0.785, 0.70), rel=1e-12)
    assert table.notes == ("averaged 2 rows of 1 repeated architecture(s) that agree within 5% (e.g. line 2, line 4)",)
    assert table.describe().endswith("read as fractions; " + table.notes[0])


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-8-sig", "utf-32"])
def test_text_with_a_byte_order_mark_is_read_exactly(tmp_path: Path, encoding: str) -> None:
    text = _csv([(PNAG_80_MOBILE, 12.5, 77.5), (OTHER, 4.25, 70.0)])
    data = text.encode(encoding)
    if encoding == "utf-16-be":  # Python's utf-16-be writes no mark; a file from another tool may have one
        data = codecs.BOM_UTF16_BE + data
    path = tmp_path / "t.csv"
    path.write_bytes(data)
    table = load_table(path)
    assert table.archs == (PNAG_80_MOBILE, OTHER) and table.latency_ms == (12.5, 4.25)
    assert table.accuracy == pytest.approx((0.775, 0.70), rel=1e-12) and table.accuracy_scale == "percent"
    assert table.notes == (f"read as {encoding.upper().replace('-SIG', '').replace('-BE', '')} (byte-order mark)",)


def test_limits_accept_the_edges(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(_csv([(PNAG_80_MOBILE, MIN_LATENCY_MS, 1.0), (OTHER, MAX_LATENCY_MS, 0.0)]))
    table = load_table(path)
    assert table.latency_ms == (MIN_LATENCY_MS, MAX_LATENCY_MS) and table.accuracy == (1.0, 0.0) and table.notes == ()
    path.write_text(_csv([(PNAG_80_MOBILE, 10.0, 100), (OTHER, 5.0, 1.5)]))  # all percent, one low
    assert load_table(path).accuracy == pytest.approx((1.0, 0.015))


# -- property: any CSV gives a valid table or a TableError -----------------------------------------------
_SPACE = OFAMobileNetV3Space()
_ARCHS = [_SPACE.format(a) for a in _SPACE.sample_many(6, seed=5)] + [PNAG_80_MOBILE]
_ARCH_CELL = st.one_of(
    st.sampled_from(_ARCHS), st.text(max_size=30), st.just("9" * 5000), st.sampled_from(_ARCHS).map(lambda a: a[:-1])
)
_NUMBER_CELL = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(min_value=1e-9, max_value=1e9).map(str),
    st.sampled_from(["0", "-1", "nan", "inf", "1e-300", "1e308", "", "x", "9" * 5000, "0.5", "50", "100", "101", "1.0"]),
)
_ROW = st.tuples(_ARCH_CELL, _NUMBER_CELL, _NUMBER_CELL)


@st.composite
def _csv_bytes(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):  # a clean table, then perhaps one damage: most of these must load
        percent = draw(st.booleans())
        rows: list[tuple[object, ...]] = [
            (arch, draw(st.floats(0.01, 1000.0)), draw(st.floats(1.5, 100.0) if percent else st.floats(0.0, 1.0)))
            for arch in draw(st.lists(st.sampled_from(_ARCHS), min_size=1, max_size=6, unique=True))
        ]
        for index in draw(st.lists(st.integers(0, len(rows) - 1), max_size=3)):  # repeats, near or far
            arch, latency, accuracy = rows[index]
            factor = draw(st.sampled_from([1.0, 1.01, 0.97, 2.0]))
            rows.append((arch, float(latency) * factor, accuracy))  # type: ignore[arg-type]
    else:
        rows = list(draw(st.lists(_ROW, max_size=8)))
    text = _csv(rows)
    if draw(st.integers(0, 3)) == 0:  # damage the text: an odd quote, a NUL, a cut, a cell
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(['"', "\x00", "", ",", "\n", "9" * 5000, "e999"])) + text[at + 1 :]
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-32", "latin-1"]))
    try:
        return text.encode(encoding)
    except UnicodeEncodeError:
        return text.encode("utf-8", errors="surrogatepass")


@settings(max_examples=250, deadline=2000, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(content=_csv_bytes(), seed=st.integers(0, 2**16))
def test_property_load_table_gives_a_valid_table_or_a_table_error(tmp_path: Path, content: bytes, seed: int) -> None:
    path = tmp_path / f"t{random.Random(seed).random()}.csv"
    path.write_bytes(content)
    try:
        table = load_table(path)
    except TableError as exc:
        event("refused")
        assert len(str(exc)) < 1000  # one readable line, whatever the input
        return
    finally:
        path.unlink()
    event("read" + (" (duplicates averaged)" if any("averaged" in note for note in table.notes) else ""))
    event("percent" if table.accuracy_scale == "percent" else "fraction")
    assert len(table) >= 1 and len(set(table.archs)) == len(table.archs)
    assert all(_SPACE.format(_SPACE.parse(a)) == a for a in table.archs)
    assert all(math.isfinite(ms) and MIN_LATENCY_MS <= ms <= MAX_LATENCY_MS for ms in table.latency_ms)
    assert table.accuracy is not None and all(0.0 <= a <= 1.0 for a in table.accuracy)
    json.dumps({"latency_ms": table.latency_ms, "accuracy": table.accuracy}, allow_nan=False)  # printable as JSON
