"""A store file with a damaged page: refused on open with the recovery commands; ``nag table check`` reports
it and ``--salvage`` copies every readable entry, exactly, into a new store."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from farm.errors import CorruptStoreError
from farm.store import Store, Summary, TableKey
from nag.space.ofa_mbv3 import OFAMobileNetV3Space
from tests.cli import one_line_error, run_nag
from tests.conftest import PNAG_80_MOBILE

RESOLUTIONS = (160, 176, 192, 208, 224)


def _key(resolution: int) -> TableKey:
    return TableKey(space="ofa-mbv3", width=1.2, resolution=resolution, device="note10", fingerprint="", runtime="ofa-lut",
                    runtime_version="", spec_key="")  # fmt: skip


def _entries(db: Path) -> dict[tuple[int, str], tuple[float, float, int]]:
    with Store(db, create=False) as store:
        return {
            (table.resolution, row.item): (row.mean_ms, row.std_ms, row.count)
            for table in store.tables()
            for row in store.rows(table, "block")
        }


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory, space: OFAMobileNetV3Space) -> tuple[Path, Path]:
    """An intact store of 5 x 96 blocks and a calibration, and a copy whose middle page of entries is overwritten with garbage."""
    folder = tmp_path_factory.mktemp("integrity")
    good = folder / "good.db"
    with Store(good) as store:
        for resolution in RESOLUTIONS:
            blocks = space.all_blocks(width=1.2, resolution=resolution)
            summaries = {
                b.key: Summary(mean_ms=0.1 + i / 1000 + resolution / 1e5, std_ms=0.01, count=10) for i, b in enumerate(blocks)
            }
            store.put_summaries(_key(resolution), "block", summaries)
        store.put_calibration(_key(224), {"offset_ms": 0.25, "scale": 1.1})
    data = bytearray(good.read_bytes())
    reader = sqlite3.connect(good)
    page = reader.execute("PRAGMA page_size").fetchone()[0]
    # the middle leaf page of the entries (SQLite's dbstat numbers pages from 1)
    leaves = [r[0] for r in reader.execute("SELECT pageno FROM dbstat WHERE name = 'entries' AND pagetype = 'leaf'")]
    reader.close()
    middle = sorted(leaves)[len(leaves) // 2] - 1
    data[middle * page : (middle + 1) * page] = random.Random(0).randbytes(page)
    damaged = folder / "damaged.db"
    damaged.write_bytes(bytes(data))
    conn = sqlite3.connect(damaged)  # the damage is real: SQLite itself finds it
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() != [("ok",)]
    except sqlite3.DatabaseError as exc:
        assert "malformed" in str(exc)
    finally:
        conn.close()
    return good, damaged


def test_opening_a_damaged_store_is_a_typed_error_with_the_fix(stores: tuple[Path, Path]) -> None:
    _, damaged = stores
    with pytest.raises(CorruptStoreError) as info:
        Store(damaged, create=False)
    message = str(info.value)
    assert f"the latency store {damaged} is corrupted" in message
    assert f"mv {damaged} {damaged}.corrupt" in message and "nag table build" in message
    assert f"nag table check --db {damaged}.corrupt --salvage {damaged}" in message


@pytest.mark.parametrize(
    "argv",
    [
        ["table", "predict", PNAG_80_MOBILE, "--device", "note10", "--resolution", "224"],
        ["table", "export-ofa", "--device", "note10", "--out", "OUT"],
        ["search", "--db", "DB", "--kind", "note10", "--resolution", "224", "--accuracy", "ofa", "--out", "OUT"],
    ],
    ids=["predict", "export-ofa", "search"],
)
def test_commands_on_a_damaged_store_exit_2_with_one_line(stores: tuple[Path, Path], tmp_path: Path, argv: list[str]) -> None:
    _, damaged = stores
    argv = [str(tmp_path / "out") if a == "OUT" else str(damaged) if a == "DB" else a for a in argv]
    if "--db" not in argv:
        argv += ["--db", str(damaged)]
    result = run_nag(*argv)
    one_line_error(result, f"the latency store {damaged} is corrupted", "nag table build")
    assert result.stdout == ""


def test_check_reports_and_salvage_copies_every_readable_entry_exactly(stores: tuple[Path, Path], tmp_path: Path) -> None:
    good, damaged = stores
    intact = run_nag("table", "check", "--db", str(good))
    assert intact.returncode == 0 and f"{good}: intact (SQLite integrity_check ok); 5 table(s), 480 entries" in intact.stdout

    checked = run_nag("table", "check", "--db", str(damaged))
    one_line_error(checked, "--salvage NEW.db", "nag table build")
    assert checked.stdout.startswith(f"{damaged}: damaged; SQLite's integrity_check found:\n  ")

    out = tmp_path / "salvaged.db"
    salvaged = run_nag("table", "check", "--db", str(damaged), "--salvage", str(out))
    assert salvaged.returncode == 0, salvaged.stderr
    original, copied = _entries(good), _entries(out)
    assert 0 < len(copied) < len(original)  # one page of entries is lost, the rest is not
    assert all(original[key] == value for key, value in copied.items())  # nothing copied differs from what was stored
    lost = len(original) - len(copied)
    assert f"salvaged into {out}: {len(copied)} entries of 5 table(s), 1 calibration(s)" in salvaged.stdout
    assert f"entries lost: {lost}" in salvaged.stdout
    with Store(out, create=False) as store:
        assert store.get_calibration(_key(224)) == {"offset_ms": 0.25, "scale": 1.1}
    assert run_nag("table", "check", "--db", str(out)).returncode == 0

    one_line_error(run_nag("table", "check", "--db", str(damaged), "--salvage", str(out)), f"{out} exists")  # never overwrite


def test_check_of_a_missing_or_foreign_file_is_one_line(tmp_path: Path) -> None:
    one_line_error(run_nag("table", "check", "--db", str(tmp_path / "none.db")), "no latency store at")
    (tmp_path / "notes.db").write_text("not a database\n" * 100)
    one_line_error(run_nag("table", "check", "--db", str(tmp_path / "notes.db")), "cannot be read as an SQLite database")
