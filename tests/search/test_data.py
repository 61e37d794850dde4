"""Table formats: CSV, Parquet, PNAG JSON; fraction/percent detection; bad rows named precisely."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nag.data import TableError, load_table, write_csv
from nag.errors import MissingDependencyError
from nag.space.ofa_mbv3 import OFAMobileNetV3Space
from tests.conftest import PNAG_80_MOBILE


@pytest.fixture
def archs(space: OFAMobileNetV3Space) -> list[str]:
    return [space.format(a) for a in space.sample_many(5, seed=2)]


def test_csv_with_named_columns_and_percent_accuracy(tmp_path: Path, archs: list[str], space: OFAMobileNetV3Space) -> None:
    path = write_csv(
        tmp_path / "t.csv", archs, [10.0, 20.0, 30.0, 40.0, 50.0], [71.5, 72.0, 75.25, 76.0, 77.0], columns=("net", "ms", "top1")
    )
    table = load_table(path, arch_column="net", latency_column="ms", accuracy_column="top1")
    assert table.archs == tuple(archs) and table.latency_ms == (10.0, 20.0, 30.0, 40.0, 50.0)
    assert table.accuracy == pytest.approx((0.715, 0.72, 0.7525, 0.76, 0.77)) and table.accuracy_scale == "percent"
    assert "read as percent" in table.describe()
    fractions = load_table(write_csv(tmp_path / "f.csv", archs, [1.0] * 4 + [2.0], [0.7] * 5))
    assert fractions.accuracy_scale == "fraction" and fractions.accuracy == (0.7,) * 5
    ofa_dict = json.dumps(space.parse(archs[0]).to_ofa_dict())  # the OFA dict form is accepted and canonicalised
    assert load_table(write_csv(tmp_path / "d.csv", [ofa_dict], [3.0], [0.5])).archs == (archs[0],)
    latency_only = load_table(write_csv(tmp_path / "l.csv", archs, [1.0] * 5), require_accuracy=False)
    assert latency_only.accuracy is None and latency_only.accuracy_scale == "absent"


def test_parquet(tmp_path: Path, archs: list[str]) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "t.parquet"
    pq.write_table(
        pa.table({"arch": archs, "latency_ms": [5.0, 6.0, 7.0, 8.0, 9.0], "accuracy": [0.7, 0.71, 0.72, 0.73, 0.74]}), path
    )
    table = load_table(path)
    assert table.archs == tuple(archs) and table.latency_ms[2] == 7.0 and table.accuracy_scale == "fraction"
    pq.write_table(pa.table({"arch": archs, "latency_ms": [5.0, 6.0, None, 8.0, 9.0], "accuracy": [0.7] * 5}), path)
    with pytest.raises(TableError, match=r"row 3, column 'latency_ms': None is not a number"):
        load_table(path)


def test_parquet_without_pyarrow_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_pyarrow(name: str, *args: object, **kwargs: object) -> object:
        if name.startswith("pyarrow"):
            raise ImportError("no pyarrow here")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    (tmp_path / "t.parquet").write_bytes(b"PAR1")
    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    with pytest.raises(MissingDependencyError, match="pip install pyarrow"):
        load_table(tmp_path / "t.parquet")


def test_pnag_json_seconds_to_ms_and_device(tmp_path: Path, archs: list[str]) -> None:
    entries = [
        {
            "arch": PNAG_80_MOBILE,
            "w1.2": {"top1_acc": 0.784, "mobile_latency": 0.0799, "cpu_latency": 0.021, "gpu_latency": 0.004},
        },
        {"arch": archs[0], "w1.2": {"top1_acc": 0.75, "mobile_latency": 0.1, "cpu_latency": 0.03, "gpu_latency": 0.005}},
    ]
    path = tmp_path / "pnag.json"
    path.write_text(json.dumps(entries))
    mobile = load_table(path)
    assert (
        mobile.latency_ms == pytest.approx((79.9, 100.0))
        and mobile.accuracy == (0.784, 0.75)
        and mobile.archs[0] == PNAG_80_MOBILE
    )
    assert load_table(path, device="gpu").latency_ms == pytest.approx((4.0, 5.0))
    with pytest.raises(TableError, match="device 'tpu'"):
        load_table(path, device="tpu")
    entries[1] = {"arch": archs[0], "w1.2": {"top1_acc": 0.75, "cpu_latency": 0.03}}
    path.write_text(json.dumps(entries))
    with pytest.raises(TableError, match=r"entry 2, column 'w1.2.mobile_latency': None is not a number"):
        load_table(path)
    entries[1] = {"arch": archs[0], "w1.0": {}, "w1.2": {}}
    path.write_text(json.dumps(entries))
    with pytest.raises(TableError, match=r"entry 2: expected one width key besides 'arch'.*\['w1.0', 'w1.2'\]"):
        load_table(path)


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (
            [("ARCH", "10", "0.7"), ("1,2:3", "10", "0.7")],
            r"line 3, column 'arch': architecture must be 'depths:kernels:expands'",
        ),
        ([("ARCH", "ten", "0.7")], r"line 2, column 'latency_ms': 'ten' is not a number"),
        ([("ARCH", "-4", "0.7")], r"line 2, column 'latency_ms': '-4' is not a positive finite number"),
        ([("ARCH", "4", "")], r"line 2, column 'accuracy': '' is not a number"),
        ([("ARCH", "4", "0.7"), ("ARCH", "5", "170")], r"line 3, column 'accuracy': accuracy 170.0 is neither a fraction"),
    ],
)
def test_bad_rows_name_the_row_and_column(
    tmp_path: Path, archs: list[str], rows: list[tuple[str, str, str]], expected: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(
        "arch,latency_ms,accuracy\n"
        + "\n".join(",".join(f'"{archs[0]}"' if c == "ARCH" else f'"{c}"' for c in r) for r in rows)
        + "\n"
    )
    with pytest.raises(TableError, match=expected):
        load_table(path)


def test_bad_files(tmp_path: Path, archs: list[str]) -> None:
    with pytest.raises(TableError, match="does not exist"):
        load_table(tmp_path / "missing.csv")
    (tmp_path / "t.xlsx").write_text("x")
    with pytest.raises(TableError, match=r"use \.csv, \.parquet"):
        load_table(tmp_path / "t.xlsx")
    path = write_csv(tmp_path / "t.csv", archs, [1.0] * 5, [0.5] * 5)
    with pytest.raises(TableError, match=r"no column 'lat'; the file has \['arch', 'latency_ms', 'accuracy'\]"):
        load_table(path, latency_column="lat")
    with pytest.raises(TableError, match="no accuracy column 'acc'"):
        load_table(path, accuracy_column="acc")
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(TableError, match="empty"):
        load_table(tmp_path / "e.csv")
    (tmp_path / "j.json").write_text("{not json")
    with pytest.raises(TableError, match="not valid JSON"):
        load_table(tmp_path / "j.json")
