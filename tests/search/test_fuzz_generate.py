"""The fuzz suite (issue 14), part two: ``nag generate``'s options and damaged run directories.

Uses the search tests' trained run (``trained_run``); the contract is :func:`tests.fuzz.run_case`'s.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

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
def test_fuzz_damaged_run_directories(data: st.DataObject, trained_run: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="nag-fuzz-run-") as folder:
        run = Path(folder) / "run"
        shutil.copytree(trained_run, run)
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
