"""RunMetrics: the one reading of metrics.json, typed, checked field by field, and written back unchanged."""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nag.search.api import generate
from nag.search.inference import Generated
from nag.search.metrics import MetricsError, RunMetrics
from nag.search.rundir import RunDirError, load_run, read_metrics


@pytest.fixture(scope="module")
def stored(trained_run: Path) -> dict[str, Any]:
    return json.loads((trained_run / "metrics.json").read_text())


def test_the_typed_metrics_are_the_file(trained_run: Path, stored: dict[str, Any]) -> None:
    metrics = read_metrics(trained_run)
    assert metrics.to_dict() == stored  # nothing lost or renamed on the way through the types
    assert metrics.best is metrics.trials[stored["best_trial"]]
    assert metrics.best.seed == stored["trials"][stored["best_trial"]]["seed"]
    assert metrics.budgets_ms == stored["budgets_ms"] and len(metrics.best.picks_at_trained_budgets) == len(stored["budgets_ms"])
    first = metrics.best.picks_at_trained_budgets[0]
    assert (
        isinstance(first, Generated) and first.to_dict() == stored["trials"][stored["best_trial"]]["picks_at_trained_budgets"][0]
    )
    assert metrics.total_s == stored["timings_s"]["total"] > 0


def test_generate_returns_typed_answers(trained_run: Path) -> None:
    (answer,) = generate(trained_run, [35.0])
    assert isinstance(answer, Generated) and answer.budget_ms == 35.0
    assert Generated.from_dict(answer.to_dict()) == answer
    assert answer.accuracy_is_estimate == (answer.selected_by != "source")


def test_older_and_newer_files_still_read(stored: dict[str, Any]) -> None:
    older = copy.deepcopy(stored)
    for key in ("overlapped", "selection"):  # fields added after the first run directories
        older.pop(key)
    for trial in older["trials"]:
        for pick in trial["picks_at_trained_budgets"]:
            for key in ("selected_by", "refine_steps", "accuracy_queries"):
                pick.pop(key)
    metrics = RunMetrics.from_dict(older)
    assert metrics.overlapped is False and metrics.best.picks_at_trained_budgets[0].selected_by == "surrogate"
    newer = {**stored, "written_by_a_later_nag": {"x": 1}}
    assert RunMetrics.from_dict(newer).to_dict() == newer  # unknown keys survive a round trip


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(metrics: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = metrics
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        if value is _DELETE:
            del node[int(last) if last.isdigit() else last]
        else:
            node[int(last) if last.isdigit() else last] = value

    return change


_DELETE = object()


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (_set("best_trial", 7), r"best_trial is 7, but there are 1 trial"),
        (_set("best_trial", True), r"best_trial is True, not an integer"),
        (_set("budgets_ms.0", "fast"), r"budgets_ms\[0\] is 'fast', not a number"),
        (_set("trials.0.seed", "x"), r"trials\[0\]\.seed is 'x', not an integer"),
        (_set("trials.0.evaluator", _DELETE), r"trials\[0\] has no 'evaluator'"),
        (_set("trials.0.picks_at_trained_budgets.0.arch", _DELETE), r"picks_at_trained_budgets\[0\] has no 'arch'"),
        (_set("trials.0.picks_at_trained_budgets.0.feasible", 1), r"picks_at_trained_budgets\[0\]\.feasible is 1, not bool"),
        (_set("trials.0.generator.history", "long"), r"generator\.history holds 'long', not a list"),
        (_set("overlapped", "no"), r"overlapped is 'no', not true or false"),
        (_set("space", 3), r"space is 3, not a space name"),
    ],
)
def test_a_damaged_field_is_named(
    change: Callable[[dict[str, Any]], None], named: str, trained_run: Path, stored: dict[str, Any], tmp_path: Path
) -> None:
    damaged = copy.deepcopy(stored)
    change(damaged)
    with pytest.raises(MetricsError, match=named):
        RunMetrics.from_dict(damaged)
    run = Path(shutil.copytree(trained_run, tmp_path / "run"))
    (run / "metrics.json").write_text(json.dumps(damaged))
    with pytest.raises(RunDirError, match=rf"metrics\.json is damaged: .*{named}.*run 'nag search' again"):
        load_run(run)  # the loader that gives the metrics ('nag generate' does not read them)
