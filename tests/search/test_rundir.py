"""The run directory: a round trip gives the same answers; damaged or partial directories are refused."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from nag.accuracy.fitted import FittedAccuracyPredictor
from nag.accuracy.table import TableAccuracySource
from nag.data import ArchTable
from nag.search.api import generate, run_search
from nag.search.config import EvaluatorConfig, GeneratorConfig, SearchConfig, SurrogateConfig
from nag.search.rundir import (
    ACCURACY_FIT_FILE,
    INFERENCE_FILE,
    RunDirError,
    _reading,
    load_inference,
    load_run,
    read_accuracy_fit,
    read_accuracy_spec,
    save_run,
    write_accuracy_fit,
    write_accuracy_spec,
)

TINY = SearchConfig(
    num_budgets=3,
    evaluator=EvaluatorConfig(steps=40),
    generator=GeneratorConfig(iterations=10, archs_per_budget=4),
    surrogate=SurrogateConfig(steps=30),
)


def test_round_trip_gives_the_same_answers(trained_run: Path, tmp_path: Path) -> None:
    model, metrics = load_run(trained_run)
    copy = save_run(tmp_path / "copy", model, metrics)
    assert sorted(p.name for p in copy.iterdir()) == sorted(p.name for p in trained_run.iterdir() if p.is_file())
    first, second = generate(copy, [33.0, 44.0], seed=1), generate(trained_run, [33.0, 44.0], seed=1)
    assert [(r.arch, r.latency_ms, r.accuracy) for r in first] == [(r.arch, r.latency_ms, r.accuracy) for r in second]
    again, _ = load_run(copy)
    for name, tensor in model.generator.state_dict().items():
        assert torch.equal(tensor, again.generator.state_dict()[name])
    assert again.budgets == model.budgets and again.config == model.config and again.latency.to_dict() == model.latency.to_dict()  # type: ignore[attr-defined]
    stored = json.loads((copy / "metrics.json").read_text())
    assert stored == json.loads((trained_run / "metrics.json").read_text())  # RunMetrics writes back what it read
    assert set(stored) >= {"data", "budgets_ms", "trials", "best_trial", "evaluator_heldout_pairwise_accuracy", "timings_s"}
    assert (copy / "config.json").stat().st_mode & 0o044  # readable by others, as the umask allows


def test_partial_or_damaged_directories_are_refused(trained_run: Path, tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match="does not exist; create one with 'nag search"):
        load_run(tmp_path / "none")
    partial = Path(shutil.copytree(trained_run, tmp_path / "partial"))
    (partial / "manifest.json").unlink()
    with pytest.raises(RunDirError, match="not a complete run directory"):
        load_run(partial)
    damaged = Path(shutil.copytree(trained_run, tmp_path / "damaged"))
    (damaged / "generator.pt").write_bytes(b"\x00garbage")
    with pytest.raises(RunDirError, match=r"cannot load .*generator\.pt"):
        load_run(damaged)
    future = Path(shutil.copytree(trained_run, tmp_path / "future"))
    (future / "manifest.json").write_text(json.dumps({"format": "nag-search-run", "version": 99}))
    with pytest.raises(RunDirError, match="version 99"):
        load_run(future)


def _metrics_without_times(run: Path) -> dict[str, object]:
    metrics = json.loads((run / "metrics.json").read_text())
    for trial in metrics["trials"]:
        trial["evaluator"].pop("seconds"), trial["generator"].pop("seconds")
        for pick in trial["picks_at_trained_budgets"]:
            pick.pop("time_ms")
    metrics["data"]["surrogate"].pop("seconds")
    return {k: v for k, v in metrics.items() if k not in ("timings_s", "overlapped")}


def test_seeded_search_is_reproducible(tmp_path: Path, table: ArchTable, monkeypatch: pytest.MonkeyPatch) -> None:
    # The same seed gives the same run whether the work off the critical path ran on a spare core or in line.
    small = ArchTable(table.space, table.archs[:300], table.latency_ms[:300], table.accuracy[:300], "fraction", "first 300")  # type: ignore[index]
    monkeypatch.setattr("os.getloadavg", lambda: (99.0, 99.0, 99.0))  # a busy machine: everything in line
    first = run_search(out=tmp_path / "a", table=small, config=TINY.replace(seed=7))
    monkeypatch.setattr("os.getloadavg", lambda: (0.0, 0.0, 0.0))  # an idle one: a spare core where there are two
    second = run_search(out=tmp_path / "b", table=small, config=TINY.replace(seed=7))
    other = run_search(out=tmp_path / "c", table=small, config=TINY.replace(seed=8))
    overlapped = [json.loads((run / "metrics.json").read_text())["overlapped"] for run in (first, second)]
    assert overlapped == [False, len(os.sched_getaffinity(0)) > 1]
    weights = [torch.load(run / "generator.pt", weights_only=True) for run in (first, second, other)]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert not all(torch.equal(weights[0][k], weights[2][k]) for k in weights[0])
    assert _metrics_without_times(first) == _metrics_without_times(second)
    answers = [{k: v for k, v in generate(run, [35.0])[0].to_dict().items() if k != "time_ms"} for run in (first, second)]
    assert answers[0] == answers[1]


def _with_latency(trained_run: Path, where: Path, change: dict[str, object]) -> Path:
    run = Path(shutil.copytree(trained_run, where))
    value = json.loads((run / "latency.json").read_text())
    (run / "latency.json").write_text(json.dumps({**value, **change}))
    return run


def test_a_run_directory_names_a_kind_never_code_to_import(trained_run: Path, tmp_path: Path) -> None:
    # 'this' prints the Zen of Python when imported: a module that nothing here imports by itself
    run = _with_latency(trained_run, tmp_path / "hostile", {"kind": "this:s"})
    probe = (
        "import sys\nfrom nag.search.rundir import RunDirError, load_run\n"
        f"try:\n    load_run({str(run)!r})\nexcept RunDirError as exc:\n    print('refused:', exc)\n"
        "print('imported' if 'this' in sys.modules else 'not imported')\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert "refused: latency.json names latency predictor kind 'this:s'" in result.stdout, result.stderr
    assert result.stdout.rstrip().endswith("not imported")


@pytest.mark.parametrize("bad", [float("nan"), -100.0])
def test_a_stored_latency_model_with_impossible_values_is_refused(trained_run: Path, tmp_path: Path, bad: float) -> None:
    run = _with_latency(trained_run, tmp_path / "bad", {"constant_ms": bad})
    with pytest.raises(RunDirError, match=r"constant_ms is .*finite number of ms >= 0"):
        load_run(run)


def test_run_directories_that_stored_the_farm_predictor_by_module_path_still_load(tmp_path: Path) -> None:
    from farm.lut import LutPredictor
    from farm.store import Store
    from nag.search.rundir import load_latency
    from tests.tables import put_block_table

    with Store(tmp_path / "t.db") as store:
        table, _ = put_block_table(store, lambda i, key: 0.1 + i / 100)
        lut = LutPredictor(store, table)
    stored = lut.to_dict()
    assert stored["kind"] == "lut"
    legacy = load_latency({**stored, "kind": "farm.lut:LutPredictor"})
    arch = "2,2,2,2,2:3,3,0,0,3,3,0,0,3,3,0,0,3,3,0,0,3,3,0,0:3,3,0,0,3,3,0,0,3,3,0,0,3,3,0,0,3,3,0,0"
    assert legacy.predict_ms([arch]) == load_latency(stored).predict_ms([arch]) == lut.predict_ms([arch])


def _set_in(path: str, value: object) -> Callable[[Any], None]:
    """A change to a JSON value: the entry at the dotted ``path`` set to ``value`` (``_DROP``: removed)."""

    def change(data: Any) -> None:
        *parents, last = path.split(".")
        for part in parents:
            data = data[int(part)] if part.isdigit() else data[part]
        if value is _DROP:
            del data[last]
        else:
            data[int(last) if last.isdigit() else last] = value

    return change


_DROP = object()


@pytest.mark.parametrize(
    ("name", "change", "expected"),
    [
        ("config.json", _set_in("config.evaluator.hidden", "x"), r"config\.evaluator\.hidden is 'x', not int"),
        ("config.json", _set_in("config.generator.extra", 1), r"config\.generator has unknown entries \['extra'\]"),
        ("config.json", _set_in("space", _DROP), r"config\.json has no 'space'"),
        ("budgets.json", _set_in("budgets_ms.1", None), r"budgets\.budgets_ms\[1\] is None, not a number"),
        ("budgets.json", _set_in("budgets_ms", {}), r"budgets\.budgets_ms is \{\}, not list or tuple"),
        ("latency.json", _set_in("terms_ms", _DROP), r"additive predictor .*has no 'terms_ms'"),
        ("latency.json", _set_in("constant_ms", [1.0]), r"additive predictor .*constant_ms is \[1\.0\], not a number"),
    ],
)
def test_a_damaged_json_file_is_refused_by_name(
    trained_run: Path, tmp_path: Path, name: str, change: Callable[[Any], None], expected: str
) -> None:
    run = Path(shutil.copytree(trained_run, tmp_path / "run"))
    value = json.loads((run / name).read_text())
    change(value)
    (run / name).write_text(json.dumps(value))
    for load in (load_inference, load_run):  # the numpy loader and the torch one read the same files
        with pytest.raises(RunDirError, match=rf"{re.escape(name)}.*damaged.*{expected}.*run 'nag search' again"):
            load(run)


def _central_entry(data: bytes) -> int:
    """Offset of the first central-directory entry of a zip archive (its flags at +8, its method at +10)."""
    return data.index(b"PK\x01\x02")


@pytest.mark.parametrize(
    ("damage", "raised"),
    [
        (lambda data: data[: len(data) // 2], "BadZipFile"),  # truncated
        (lambda data: data.replace(b"PK\x03\x04", b"PK\x03\x05", 2).replace(b"PK\x03\x05", b"PK\x03\x04", 1), "BadZipFile"),
        (lambda data: b"\x93NUMPY" + data[6:], "ValueError"),  # read as one .npy array, whose header is garbage
        (lambda data: data[: _central_entry(data) + 10] + b"\x63\x00" + data[_central_entry(data) + 12 :], "NotImplementedError"),
        (lambda data: data[: _central_entry(data) + 8] + b"\x01\x00" + data[_central_entry(data) + 10 :], "RuntimeError"),
    ],
    ids=["truncated", "member-header", "not-a-zip", "compression-method", "encrypted-flag"],
)
def test_a_damaged_archive_is_refused_by_name(
    trained_run: Path, tmp_path: Path, damage: Callable[[bytes], bytes], raised: str
) -> None:
    """What numpy and zipfile raise for a garbled inference.npz is a RunDirError naming the file (and not taken
    for a mistake of nag's own)."""
    run = Path(shutil.copytree(trained_run, tmp_path / "run"))
    path = run / INFERENCE_FILE
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(RunDirError, match=rf"cannot read .*inference\.npz: {raised}: .*the run directory is damaged"):
        load_inference(run)


def test_a_mistake_in_a_reader_is_not_called_damage(tmp_path: Path) -> None:
    """Only the ValueError that readers raise for damaged content becomes a RunDirError naming the file; a
    TypeError or KeyError is a mistake in the reader and stays one."""
    with (
        pytest.raises(RunDirError, match=r"budgets\.json is damaged \(ValueError: 'bad entry'\)"),
        _reading(tmp_path / "budgets.json"),
    ):
        raise ValueError("bad entry")
    for mistake in (TypeError("unsupported operand"), KeyError("config"), AttributeError("items")):
        with pytest.raises(type(mistake)), _reading(tmp_path / "budgets.json"):
            raise mistake


def test_an_accuracy_fit_is_kept_with_its_fingerprint(tmp_path: Path, table: ArchTable) -> None:
    assert table.accuracy is not None
    fitted = FittedAccuracyPredictor.fit(table.archs[:200], table.accuracy[:200])
    assert write_accuracy_fit(tmp_path, fitted, "digest") and (tmp_path / ACCURACY_FIT_FILE).is_file()
    stored = read_accuracy_fit(tmp_path)
    assert stored is not None and stored.fingerprint == "digest" and stored.predictor().to_dict() == fitted.to_dict()
    # the format the run directories of earlier versions hold, which still load: the fingerprint and the fit's arrays
    np.savez(
        tmp_path / ACCURACY_FIT_FILE, fingerprint=np.asarray("old"), **{f"fit.{k}": v for k, v in fitted.to_arrays().items()}
    )
    stored = read_accuracy_fit(tmp_path)
    assert stored is not None and stored.fingerprint == "old" and stored.predictor().to_dict() == fitted.to_dict()
    # nothing to keep: no fingerprint (not a fitted source), or a source that cannot keep its fit; a stale file goes
    assert not write_accuracy_fit(tmp_path, fitted, None) and read_accuracy_fit(tmp_path) is None
    write_accuracy_fit(tmp_path, fitted, "digest")
    assert not write_accuracy_fit(tmp_path, TableAccuracySource(table), "digest") and read_accuracy_fit(tmp_path) is None
    # damage
    np.savez(tmp_path / ACCURACY_FIT_FILE, **{f"fit.{k}": v for k, v in fitted.to_arrays().items()})
    with pytest.raises(RunDirError, match=r"accuracy\.npz has no fingerprint; the run directory is damaged"):
        read_accuracy_fit(tmp_path)
    write_accuracy_fit(tmp_path, FittedAccuracyPredictor.fit(table.archs[:200], table.accuracy[:200], gamma=0.02), "digest")
    stored = read_accuracy_fit(tmp_path)
    assert stored is not None
    with pytest.raises(RunDirError, match=r"accuracy\.npz holds a fit with gamma 0\.02, alpha 0\.01, not the fit's 0\.01"):
        stored.predictor()
    arrays = {**fitted.to_arrays(), "dual": np.zeros(3)}
    np.savez(tmp_path / ACCURACY_FIT_FILE, fingerprint=np.asarray("digest"), **{f"fit.{k}": v for k, v in arrays.items()})
    stored = read_accuracy_fit(tmp_path)
    assert stored is not None
    with pytest.raises(RunDirError, match=r"accuracy\.npz is damaged \(.*dual is float64\[3\]"):
        stored.predictor()


def test_accuracy_spec_round_trip_and_damage_named(tmp_path: Path) -> None:
    assert read_accuracy_spec(tmp_path) is None  # a run searched without --accuracy
    settings = {"space": "ofa-mbv3", "resolution": 224, "arch_column": None, "device": "mobile"}
    write_accuracy_spec(tmp_path, "fitted:/data/t.csv", settings)
    assert read_accuracy_spec(tmp_path) == ("fitted:/data/t.csv", settings)
    for damaged, named in (
        ("[1, 2]", "not an object"),
        ('{"resolution": 224}', "no 'spec'"),
        ('{"spec": 7}', "spec"),
        ('{"spec": "dynast", "resolution": [224]}', "resolution"),
        ('{"spec": "dynast", "data": true}', "data"),
        ("{", "cannot read"),
    ):
        (tmp_path / "accuracy.json").write_text(damaged)
        with pytest.raises(RunDirError, match=r"accuracy\.json") as caught:
            read_accuracy_spec(tmp_path)
        assert named in str(caught.value), (damaged, str(caught.value))
