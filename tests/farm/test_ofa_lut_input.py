"""Bad OFA lookup-table files through ``nag table import-ofa``: exit 2, one line naming the block and the
value, nothing stored; a good file's numbers land exactly and ``nag table predict`` prints them summed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from farm.ofa_lut import OFA_RUNTIME
from farm.store import Store, TableKey
from nag.space.ofa_mbv3 import OFAMobileNetV3Space
from tests.cli import one_line_error, run_nag, yaml_alias_bomb
from tests.conftest import PNAG_80_MOBILE


@pytest.fixture(scope="module")
def keys(space: OFAMobileNetV3Space) -> list[str]:
    return [block.key for block in space.all_blocks(width=1.2, resolution=224)]


def _lut(keys: list[str], first: tuple[str, str, str] = ("10", "0.5", "0.01")) -> str:
    """OFA's layout; the first block gets the (count, mean, std) texts given, the others good values."""
    lines = []
    for n, key in enumerate(keys):
        count, mean, std = first if n == 0 else ("10", f"{0.1 + n / 100:.2f}", "0.01")
        lines += [f"{key}:", f"  count: {count}", f"  mean: {mean}", f"  std: {std}"]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("first", "needle"),
    [
        (("10", "0", "0.01"), "mean 0 (must be finite milliseconds from 1e-06 to 1e+07)"),
        (("10", "-0.5", "0.01"), "mean -0.5 (must be finite"),
        (("10", ".nan", "0.01"), "mean nan (must be finite"),
        (("10", ".inf", "0.01"), "mean inf (must be finite"),
        (("10", "'0.5'", "0.01"), "mean '0.5' (must be finite"),
        (("10", "fast", "0.01"), "mean 'fast' (must be finite"),
        (("10", "1.0e-300", "0.01"), "mean 1e-300 (must be finite"),
        (("10", "1.0e+308", "0.01"), "mean 1e+308 (must be finite"),
        (("10", "true", "0.01"), "mean True (must be finite"),
        (("10", "0.5", ".nan"), "std nan (must be finite milliseconds from 0 to 1e+07)"),
        (("10", "0.5", "-1"), "std -1 (must be finite"),
        (("0", "0.5", "0.01"), "count 0 (must be an integer from 1 to 1e+12"),
        (("1.5", "0.5", "0.01"), "count 1.5 (must be an integer"),
        (("10000000000000000000000", "0.5", "0.01"), "count 10000000000000000000000 (must be an integer"),
        (("9" * 5000, "0.5", "0.01"), "holds a number too long to read (over 4300 digits)"),
    ],
    ids=[
        "mean-0", "mean-negative", "mean-nan", "mean-inf", "mean-string-number", "mean-word", "mean-1e-300", "mean-1e308",
        "mean-bool", "std-nan", "std-negative", "count-0", "count-1.5", "count-1e22", "count-5000-digits",
    ],
)  # fmt: skip
def test_bad_entry_is_refused_with_block_and_value(
    tmp_path: Path, keys: list[str], first: tuple[str, str, str], needle: str
) -> None:
    lut = tmp_path / "224_lookup_table.yaml"
    lut.write_text(_lut(keys, first))
    db = tmp_path / "t.db"
    line = one_line_error(run_nag("table", "import-ofa", str(lut), "--device", "note10", "--db", str(db)), needle, max_chars=500)
    if "too long" not in needle:
        assert f"block '{keys[0]}' has" in line and "fix or drop the entry" in line
    with Store(db) as store:
        assert store.tables() == []  # nothing imported


def test_hostile_files_are_one_line_errors(tmp_path: Path, keys: list[str]) -> None:
    cases = {
        "huge-key": ("? " + "x" * 100_000 + "\n: {count: 1, mean: 1.0, std: 0.0}\n", "is not a block of ofa-mbv3"),
        "long-implicit-key": ("x" * 2000 + ": {count: 1, mean: 1.0, std: 0.0}\n", "cannot read"),
        "nested": ("a: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply to read"),
        "latin1": (None, "cannot read"),
        "list": ("- 1\n- 2\n", "expected a mapping of block keys"),
        "alias-bomb": (_lut(keys, ("10", yaml_alias_bomb(), "0.01")), "has mean [['x', 'x'"),
    }
    for name, (text, needle) in cases.items():
        lut = tmp_path / name / "224_lookup_table.yaml"
        lut.parent.mkdir()
        if text is None:
            lut.write_bytes(_lut(keys).encode() + b"# caf\xe9\n")
        else:
            lut.write_text(text)
        one_line_error(run_nag("table", "import-ofa", str(lut), "--device", "x", "--db", str(tmp_path / name / "t.db")), needle)


def test_good_file_is_imported_exactly_and_predicted_positive(
    tmp_path: Path, keys: list[str], space: OFAMobileNetV3Space
) -> None:
    lut = tmp_path / "224_lookup_table.yaml"
    lut.write_text(_lut(keys, ("1000", "1.0e-6", "0")))  # the smallest mean allowed, std 0 as an int
    db = tmp_path / "t.db"
    result = run_nag("table", "import-ofa", str(lut), "--device", "note10", "--db", str(db))
    assert result.returncode == 0, result.stderr
    table = TableKey(space="ofa-mbv3", width=1.2, resolution=224, device="note10", fingerprint="", runtime=OFA_RUNTIME,
                     runtime_version="", spec_key="")  # fmt: skip
    with Store(db) as store:
        rows = {row.item: (row.count, row.mean_ms, row.std_ms) for row in store.rows(table, "block")}
    assert rows[keys[0]] == (1000, 1e-6, 0.0)
    assert rows[keys[5]] == (10, 0.15, 0.01) and len(rows) == 96
    result = run_nag("table", "predict", PNAG_80_MOBILE, "--db", str(db), "--device", "note10", "--resolution", "224", "--json")
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)
    arch_keys = [block.key for block in space.blocks(space.parse(PNAG_80_MOBILE), width=1.2, resolution=224)]
    expected = sum(rows[key][1] for key in arch_keys)
    assert row["latency_ms"] == pytest.approx(round(expected, 4)) and row["latency_ms"] > 0
