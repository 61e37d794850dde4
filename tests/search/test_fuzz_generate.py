"""The fuzz suite (issue 14), part two: ``nag generate``'s options and damaged run directories.

Uses the search tests' trained run (``trained_run``); the contract is :func:`tests.fuzz.run_case`'s.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import event, given
from hypothesis import strategies as st

from tests.fuzz import fuzz, run_case

_NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(0.01, 1000.0).map(repr),
    st.integers(-(10**6), 10**6).map(str),
    st.sampled_from(["nan", "inf", "-inf", "1e308", "1e-300", "0", "-0", "x", "", "9" * 5000, "0x10", "1_000"]),
)


@fuzz(200)
@given(data=st.data())
def test_fuzz_generate_options(data: st.DataObject, trained_run: Path) -> None:
    budgets = data.draw(st.lists(_NUMBERS, min_size=1, max_size=3))
    argv = ["generate", "--run", str(trained_run), "--json", *[w for b in budgets for w in ("--budget", b)]]
    for option, values in (
        ("--candidates", st.sampled_from(["1", "50", "0", "-5", "1e9", "x", "1000000", "5000"])),
        ("--seed", st.sampled_from(["0", "7", "-1", "2**70", "1" * 40])),
        ("--refine-steps", st.sampled_from(["0", "2", "-1", "100000", "1000", "x"])),
        ("--select-by", st.sampled_from(["surrogate", "evaluator", "source", "best"])),
        ("--budget-quantile", st.sampled_from(["0.9", "0", "1", "nan", "x", "-0.5", "1e-300"])),
    ):
        if data.draw(st.integers(0, 3)) == 0:
            argv += [option, data.draw(values)]
    result = run_case("generate", argv, seconds=60)
    event(f"exit {result.code}")
    if result.code == 0:
        answers = json.loads(result.out)
        assert len(answers) == len(budgets) and all(a["latency_ms"] > 0 for a in answers)


def _damage_json(value: object, data: st.DataObject) -> object:
    """One change somewhere in a JSON value: a field removed, retyped or set to a hostile value."""
    if isinstance(value, dict) and value and data.draw(st.integers(0, 2)):
        key = data.draw(st.sampled_from(sorted(value)))
        copy = dict(value)
        if data.draw(st.integers(0, 4)) == 0:
            del copy[key]
        else:
            copy[key] = _damage_json(copy[key], data)
        return copy
    if isinstance(value, list) and value and data.draw(st.integers(0, 2)):
        at = data.draw(st.integers(0, len(value) - 1))
        return [*value[:at], _damage_json(value[at], data), *value[at + 1 :]]
    return data.draw(
        st.sampled_from(
            [None, "", "this:s", "os:system", "lut", "additive", -100, 0, 1e308, float("nan"), float("inf"), [], {}, "x" * 3000]
        )
    )


@fuzz(120)
@given(data=st.data())
def test_fuzz_damaged_run_directories(data: st.DataObject, trained_run: Path, source_run: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="nag-fuzz-run-") as folder:
        run = Path(folder) / "run"
        shutil.copytree(data.draw(st.sampled_from([trained_run, trained_run, source_run])), run)  # source_run: accuracy.*
        files = sorted(p for p in run.rglob("*") if p.is_file())
        target = data.draw(st.sampled_from(files))
        event(target.name)
        how = data.draw(st.sampled_from(["json", "json", "bytes", "truncate", "remove"]))
        if how == "json" and target.suffix == ".json":
            target.write_text(json.dumps(_damage_json(json.loads(target.read_text()), data), allow_nan=True))
        elif how == "bytes" or (how == "json" and target.suffix != ".json"):
            content = bytearray(target.read_bytes())
            for _ in range(data.draw(st.integers(1, 4))):
                if content:
                    content[data.draw(st.integers(0, len(content) - 1))] = data.draw(
                        st.sampled_from([0x00, 0xFF, 0x80, 0x22, 0x7B])
                    )
            target.write_bytes(bytes(content))
        elif how == "truncate":
            target.write_bytes(target.read_bytes()[: data.draw(st.integers(0, max(0, target.stat().st_size - 1)))])
        else:
            target.unlink()
        budget = data.draw(st.sampled_from(["5", "20", "1e308"]))
        run_case("run directory", ["generate", "--run", str(run), "--budget", budget, "--json"], seconds=60)


def _damage_array(value: np.ndarray, data: st.DataObject) -> np.ndarray | None:
    """One array of an ``.npz`` file damaged (None: the entry removed)."""
    how = data.draw(st.sampled_from(["remove", "shape", "dtype", "nan", "inf", "huge", "zero", "negative", "element", "text"]))
    if how == "remove":
        return None
    if how == "shape":
        return np.zeros((*value.shape, 2) if value.ndim < 3 else value.shape[:-1], dtype=value.dtype)
    if how == "dtype":
        return (
            value.astype(np.float16 if value.dtype.kind == "f" else np.float64) if value.dtype.kind in "fiu" else np.asarray(0.5)
        )
    if how == "text":
        return np.asarray(data.draw(st.sampled_from(["", "x" * 300, "fitted", "os:system"])))
    if value.dtype.kind not in "fiu" or not value.size:
        return np.asarray(data.draw(st.sampled_from([0, -1, 99, 2**40])))
    integer = value.dtype.kind in "iu"
    changed = value.astype(np.int64) if integer else value.copy()  # integers (column numbers) widened to hold the damage
    fill = {"nan": np.nan, "inf": np.inf, "huge": 1e30, "zero": 0, "negative": -1, "element": 1e6}[how]
    if integer and how in ("nan", "inf", "huge", "element"):
        fill = 2**40
    if how == "element":
        changed.flat[data.draw(st.integers(0, value.size - 1))] = fill
    else:
        changed[...] = fill
    return changed


@fuzz(80)
@given(data=st.data())
def test_fuzz_damaged_arrays_in_run_directories(data: st.DataObject, trained_run: Path, source_run: Path) -> None:
    """inference.npz (every run) and accuracy.npz (a run with a fitted source), damaged array by array: a
    valid archive whose content is wrong, which no checksum catches."""
    with tempfile.TemporaryDirectory(prefix="nag-fuzz-arrays-") as folder:
        run = Path(shutil.copytree(data.draw(st.sampled_from([trained_run, source_run])), Path(folder) / "run"))
        target = run / data.draw(st.sampled_from(sorted(p.name for p in run.glob("*.npz"))))
        with np.load(target, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
        for _ in range(data.draw(st.integers(1, 2))):
            name = data.draw(st.sampled_from(sorted(arrays)))
            event(f"{target.name}: {name.split('.')[0]}")
            damaged = _damage_array(arrays.pop(name), data)
            if damaged is not None:
                arrays[name] = damaged
        if data.draw(st.integers(0, 5)) == 0:
            arrays["unexpected"] = np.zeros(2)
        np.savez(target, **arrays)
        budget = data.draw(st.sampled_from(["25", "40", "1e308"]))
        run_case("run directory arrays", ["generate", "--run", str(run), "--budget", budget, "--json"], seconds=90)
