"""``nag bench`` and ``nag generate --select-by`` through the command line: the JSON contracts and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nag.data import write_csv
from nag.search.known_answer import KnownAnswerProblem


def nag(*args: str) -> subprocess.CompletedProcess[str]:
    code = "import sys; from nag.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=600, check=False)


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    problem = KnownAnswerProblem(seed=2)
    rows = problem.table(300, seed=0)
    return write_csv(tmp_path_factory.mktemp("bench-cli") / "rows.csv", rows.archs, rows.latency_ms, rows.accuracy)


def test_bench_json_has_the_contract_fields_and_the_fitted_sources_accuracy(table: Path, tmp_path: Path) -> None:
    result = nag(
        "bench", "--table", str(table), "--budgets-ms", "33,40", "--methods", "random,evolution",
        "--evolution-generations", "5", "--draws", "50", "--out", str(tmp_path / "b"), "--json", "--quiet",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert [(r["method"], r["budget_ms"]) for r in document["results"]] == [
        ("random", 33.0), ("random", 40.0), ("evolution", 33.0), ("evolution", 40.0),
    ]  # fmt: skip
    for row in document["results"]:
        assert set(row) == {"method", "budget_ms", "arch", "accuracy", "latency_ms", "feasible", "time_s"}
        assert 0.5 < row["accuracy"] < 1.0 and row["feasible"] == (row["latency_ms"] <= row["budget_ms"])
    assert set(document["summary"]["methods"]) == {"random", "evolution"}
    assert (tmp_path / "b" / "report.html").is_file()
    rendered = nag("report", str(tmp_path / "b"))
    assert rendered.returncode == 0 and rendered.stdout.strip().endswith("report.html")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--budgets-ms", "33", "--methods", "evolutoin"], "unknown method 'evolutoin'"),
        (["--budgets-ms", "", "--methods", "random"], "is not a number"),
        (["--budgets-ms", "-5", "--methods", "random"], "positive finite"),
        (["--budgets-ms", "nan", "--methods", "random"], "positive finite"),
        (["--budgets-ms", "33", "--methods", "random", "--accuracy", "oracle:x"], "unknown kind 'oracle'"),
    ],
)
def test_bad_bench_input_exits_2_with_one_line(table: Path, tmp_path: Path, flags: list[str], message: str) -> None:
    result = nag("bench", "--table", str(table), "--out", str(tmp_path / "b"), *flags)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_generate_selects_by_the_stored_source_and_says_so(table: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    searched = nag(
        "search", "--table", str(table), "--accuracy", f"fitted:{table}", "--out", str(run), "--budgets", "3",
        "--evaluator-steps", "100", "--generator-iterations", "20", "--quiet",
    )  # fmt: skip
    assert searched.returncode == 0, searched.stderr
    assert json.loads((run / "accuracy.json").read_text())["spec"] == f"fitted:{table.resolve()}"
    by_source = json.loads(nag("generate", "--run", str(run), "--budget", "38", "--json").stdout)[0]
    by_estimate = json.loads(nag("generate", "--run", str(run), "--budget", "38", "--json", "--select-by", "surrogate").stdout)[0]
    assert by_source["selected_by"] == "source" and by_estimate["selected_by"] == "surrogate"
    from nag.accuracy.fitted import FittedAccuracyPredictor
    from nag.data import load_table

    rows = load_table(str(table), space="ofa-mbv3")
    fitted = FittedAccuracyPredictor.fit(rows.archs, rows.accuracy, space="ofa-mbv3")
    assert by_source["accuracy"] == pytest.approx(fitted.accuracy([by_source["arch"]])[0])
    text = nag("generate", "--run", str(run), "--budget", "38", "--select-by", "surrogate").stdout
    assert "accuracy (estimate)" in text
