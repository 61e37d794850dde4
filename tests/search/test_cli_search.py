"""``nag search`` and ``nag generate`` end to end on small tables, and their error contract."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nag.data import write_csv
from nag.search.synthetic import SyntheticProblem
from tests.accuracy.ofa_checkpoint import save_ofa_checkpoint
from tests.cli import one_line_error

SMALL_FLAGS = ["--evaluator-steps", "150", "--generator-iterations", "40", "--quiet"]


def nag(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nag", *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def percent_csv(tmp_path_factory: pytest.TempPathFactory, problem: SyntheticProblem) -> Path:
    small = problem.table(400, seed=5)
    assert small.accuracy is not None
    return write_csv(
        tmp_path_factory.mktemp("cli") / "t.csv",
        small.archs,
        small.latency_ms,
        [100 * a for a in small.accuracy],
        columns=("net", "lat", "top1"),
    )


def test_search_then_generate(tmp_path: Path, percent_csv: Path, problem: SyntheticProblem) -> None:
    run = tmp_path / "run"
    columns = ["--arch-column", "net", "--latency-column", "lat", "--accuracy-column", "top1"]
    searched = nag(
        "search", "--table", str(percent_csv), *columns, "--budgets", "4", "--seed", "1", "--out", str(run), *SMALL_FLAGS
    )
    assert searched.returncode == 0, searched.stderr
    assert "read as percent" in searched.stderr and f"run directory {run}" in searched.stdout
    assert searched.stdout.count("\n") >= 4 + 3  # a row per trained budget
    budgets = ["30", "37.5", "42"]
    generated = nag("generate", "--run", str(run), *[a for b in budgets for a in ("--budget", b)], "--json")
    assert generated.returncode == 0, generated.stderr
    rows = json.loads(generated.stdout)
    assert [r["budget_ms"] for r in rows] == [30.0, 37.5, 42.0]
    for row in rows:
        assert {"budget_ms", "arch", "latency_ms", "accuracy", "interpolated", "time_ms"} <= set(row)
        assert row["latency_ms"] == pytest.approx(problem.predict_ms([row["arch"]])[0], abs=1e-3)
        assert row["feasible"] == (row["latency_ms"] <= row["budget_ms"]) and 0.6 < row["accuracy"] < 0.8
    table = nag("generate", "--run", str(run), "--budget", "40")
    assert table.returncode == 0 and "budget (ms)" in table.stdout and "40" in table.stdout


def test_search_labels_its_own_archs_with_the_ofa_predictor(tmp_path: Path, problem: SyntheticProblem) -> None:
    latency_only = problem.table(300, seed=6)
    csv = write_csv(tmp_path / "lat.csv", latency_only.archs, latency_only.latency_ms)
    save_ofa_checkpoint(tmp_path / "acc_predictor.pth")
    run = tmp_path / "run"
    result = nag(
        "search",
        "--table",
        str(csv),
        "--accuracy",
        f"ofa-predictor:{tmp_path / 'acc_predictor.pth'}",
        "--num-archs",
        "300",
        "--budgets",
        "3",
        "--out",
        str(run),
        *SMALL_FLAGS,
    )
    assert result.returncode == 0, result.stderr
    assert "300 uniformly sampled architectures" in result.stderr and "no accuracy column" in result.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["data"]["rows"] == 300 and metrics["data"]["latency_predictor"]["kind"] == "additive"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["search", "--accuracy", "table:t.csv", "--db", "farm.db", "--out", "r"], "--db and --kind go together"),
        (["search", "--db", "farm.db", "--kind", "ort-cpu", "--out", "r"], "with --db/--kind, give the accuracy"),
        (["search", "--out", "r"], "needs --table FILE"),
        (["search", "--table", "missing.csv", "--out", "r"], "does not exist"),
        (["search", "--table", "PERCENT", "--out", "r"], "no column 'arch'"),
        (
            [
                "search",
                "--table",
                "PERCENT",
                "--arch-column",
                "net",
                "--latency-column",
                "lat",
                "--accuracy-column",
                "top1",
                "--accuracy",
                "magic:x",
                "--out",
                "r",
            ],
            "--accuracy 'magic:x': unknown kind 'magic'",
        ),
        (["search", "--table", "PERCENT", "--rollout-workers", "2", "--out", "r"], "needs a Ray cluster"),
        (["generate", "--run", "nowhere", "--budget", "30"], "'nowhere' does not exist"),
        (["generate", "--run", "RUN", "--budget", "-5"], "positive number of milliseconds"),
        (["generate", "--run", "RUN", "--budget", "abc"], "invalid float value"),
        (["generate", "--run", "RUN", "--budget", "30", "--refine-steps", "-1"], "--refine-steps must be an integer from 0"),
        (["generate", "--run", "RUN", "--budget", "30", "--refine-steps", "5000"], "from 0 to 1,000, got 5000"),
        (
            ["generate", "--run", "RUN", "--budget", "30", "--candidates", "0"],
            "--candidates must be an integer from 1 to 5,000, got 0",
        ),
        (["generate", "--run", "RUN", "--budget", "30", "--candidates", "-5"], "--candidates must be an integer from 1"),
        (["generate", "--run", "RUN", "--budget", "30", "--candidates", "1000000"], "from 1 to 5,000, got 1000000"),
        (["generate", "--run", "RUN", "--budget", "30", "--seed", "-1"], "--seed must be an integer >= 0"),
        (["search", "--table", "PERCENT", "--threads", "0", "--out", "r"], "--threads must be an integer >= 1"),
        (["search", "--table", "PERCENT", "--budgets", "1000", "--out", "r"], "num_budgets (K) is 1000; at most 100"),
        (["search", "--table", "PERCENT", "--out", "PERCENT"], "is a file; give a directory"),
    ],
)
def test_bad_input_exits_2_with_one_line(args: list[str], expected: str, percent_csv: Path, trained_run: Path) -> None:
    args = [str(percent_csv) if a == "PERCENT" else str(trained_run) if a == "RUN" else a for a in args]
    result = nag(*args)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if not line.startswith("read ")]
    assert len(lines) == 1 and "Traceback" not in result.stderr and expected in lines[0], result.stderr


def test_cli_module_stays_light() -> None:
    probe = "import sys, nag.cli.search; print(sorted(m for m in ('torch', 'ray', 'numpy') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr


def test_search_on_a_farm_table(tmp_path: Path, problem: SyntheticProblem) -> None:
    """--db/--kind: latency from the farm's block table (a LutPredictor stored in the run directory)."""
    import csv

    from farm.lut import LutPredictor
    from farm.store import Store
    from nag.space import get_space
    from tests.tables import put_block_table

    space = get_space("ofa-mbv3")
    db = tmp_path / "tables.db"
    with Store(db) as store:
        table, _ = put_block_table(store, lambda i, _key: 0.05 + 0.01 * (i % 7))
    archs = [space.format(a) for a in space.sample_many(300, seed=3)]
    with open(tmp_path / "acc.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["arch", "latency_ms", "accuracy"])  # the latency column is ignored with --db
        for arch in archs:
            writer.writerow([arch, 999.0, 0.6 + 0.01 * sum(space.parse(arch).depths)])
    run = tmp_path / "run"
    searched = nag(
        "search", "--db", str(db), "--kind", "ort-cpu", "--resolution", "64", "--table", str(tmp_path / "acc.csv"),
        "--out", str(run), *SMALL_FLAGS,
    )  # fmt: skip
    assert searched.returncode == 0, searched.stderr[-3000:]
    with Store(db) as store:
        predictor = LutPredictor(store, table)
    generated = nag("generate", "--run", str(run), "--budget", "1.5", "--json")
    assert generated.returncode == 0, generated.stderr[-2000:]
    (answer,) = json.loads(generated.stdout)
    assert answer["latency_ms"] == pytest.approx(predictor.predict_ms([answer["arch"]])[0])
    db.unlink()  # the run directory carries the table: generate works without the store
    assert nag("generate", "--run", str(run), "--budget", "1.5", "--json").returncode == 0
    missing = nag(
        "search",
        "--db",
        str(tmp_path / "x.db"),
        "--kind",
        "ort-cpu",
        "--table",
        str(tmp_path / "acc.csv"),
        "--out",
        str(tmp_path / "r2"),
    )
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1


def test_a_budget_quantile_leaves_the_tables_uncertainty_as_margin(tmp_path: Path, trained_run: Path) -> None:
    """--budget-quantile Q: feasible means the Q-quantile of the latency is under the budget, from the block
    entries' spread; 'nag search' stores Q with the table, 'nag generate' can ask another."""
    from farm.lut import LutPredictor, calibrate
    from farm.store import Store
    from tests.tables import put_block_table

    db = tmp_path / "tables.db"
    with Store(db) as store:  # noisy entries: 4 samples each, std 60% of the mean; calibrated on 10 networks
        table, _ = put_block_table(store, lambda i, _key: 0.05 + 0.01 * (i % 7), std_fraction=0.6, count=4)
        sums = {a: LutPredictor(store, table).table_sum_ms(a) for a in _archs(10)}
        calibrate(store, table, networks={a: 0.1 + s * (1.0 + 0.01 * (i % 5)) for i, (a, s) in enumerate(sums.items())})
        point, q90, q99 = (LutPredictor(store, table, quantile=q) for q in (None, 0.9, 0.99))
    archs = _archs(200)
    write_csv(tmp_path / "acc.csv", archs, [1.0] * len(archs), [0.6 + 0.001 * i for i in range(len(archs))])
    run = tmp_path / "run"
    searched = nag(
        "search", "--db", str(db), "--kind", "ort-cpu", "--resolution", "64", "--table", str(tmp_path / "acc.csv"),
        "--budget-quantile", "0.9", "--out", str(run), *SMALL_FLAGS,
    )  # fmt: skip
    assert searched.returncode == 0, searched.stderr[-3000:]
    assert "0.9-quantile" in searched.stderr and json.loads((run / "latency.json").read_text())["quantile"] == 0.9
    budget = "2.0"
    for flags, predictor, quantile in (([], q90, 0.9), (["--budget-quantile", "0.99"], q99, 0.99)):
        generated = nag("generate", "--run", str(run), "--budget", budget, "--json", *flags)
        assert generated.returncode == 0, generated.stderr[-2000:]
        (answer,) = json.loads(generated.stdout)
        assert answer["budget_quantile"] == quantile and answer["feasible"]
        assert answer["latency_ms"] == pytest.approx(predictor.predict_ms([answer["arch"]])[0])
        assert answer["latency_ms"] <= float(budget)
        assert point.predict_ms([answer["arch"]])[0] < answer["latency_ms"]  # the margin: the estimate is lower
    refused = [
        ("generate", "--run", str(trained_run), "--budget", "40", "--budget-quantile", "0.9"),  # additive: no uncertainty
        ("generate", "--run", str(run), "--budget", "1.4", "--budget-quantile", "1.5"),
        ("search", "--table", str(tmp_path / "acc.csv"), "--budget-quantile", "0.9", "--out", str(tmp_path / "r")),
    ]
    expectations = ("knows its uncertainty", "between 0 and 1", "needs a latency with an uncertainty")
    for args, expected in zip(refused, expectations, strict=True):
        result = nag(*args)
        assert result.returncode == 2 and result.stderr.count("\n") == 1 and expected in result.stderr, result.stderr


def _archs(n: int) -> list[str]:
    from nag.space import get_space

    space = get_space("ofa-mbv3")
    return [space.format(a) for a in space.sample_many(n, seed=3)]


def test_a_huge_budget_is_answered_from_the_largest_trained_budget(trained_run: Path) -> None:
    result = nag("generate", "--run", str(trained_run), "--budget", "1e308", "--json")
    assert result.returncode == 0, result.stderr
    (found,) = json.loads(result.stdout)
    assert found["feasible"] and found["outside_trained_range"] == "above" and found["latency_ms"] < 1e308


@pytest.mark.parametrize(
    ("flags", "expected_ms", "note"),
    [
        ([], 79.9, False),
        (["--platform", "gpu"], 4.0, False),
        (["--device", "gpu"], 4.0, True),
        (["--platform", "cpu"], 21.0, False),
    ],
)
def test_pnag_json_platform_flag_and_its_old_spelling(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], expected_ms: float, note: bool
) -> None:
    """--platform picks whose latency a PNAG JSON file gives; --device, its spelling before --kind became the one
    word for agent kinds, still works and says so."""
    from nag.cli import build_parser
    from nag.cli.search import load_arch_table
    from tests.conftest import PNAG_80_MOBILE

    path = tmp_path / "pnag.json"
    path.write_text(
        json.dumps(
            [
                {
                    "arch": PNAG_80_MOBILE,
                    "w1.2": {"top1_acc": 0.78, "mobile_latency": 0.0799, "cpu_latency": 0.021, "gpu_latency": 0.004},
                }
            ]
        )
    )
    args = build_parser().parse_args(["search", "--table", str(path), "--out", str(tmp_path / "run"), *flags])
    table = load_arch_table(args, str(path), require_accuracy=True)
    assert table.latency_ms == pytest.approx((expected_ms,))
    assert ("is now spelled '--platform gpu'" in capsys.readouterr().err) is note


def test_pnag_json_platform_and_old_spelling_must_agree(tmp_path: Path) -> None:
    result = nag(
        "search", "--table", str(tmp_path / "x.json"), "--platform", "cpu", "--device", "gpu", "--out", str(tmp_path / "r")
    )
    one_line_error(result, "--platform cpu and --device gpu disagree")


def test_a_stored_fit_is_used_only_while_its_table_is_unchanged(tmp_path: Path, problem: SyntheticProblem) -> None:
    """A search with --accuracy fitted:FILE keeps the fit (accuracy.npz) with the fingerprint of the file; once the
    file changes, 'nag generate' fits it again, as it would for a run that kept no fit."""
    rows = problem.table(300, seed=8)
    assert rows.accuracy is not None
    csv = write_csv(tmp_path / "t.csv", rows.archs, rows.latency_ms, rows.accuracy)
    run = tmp_path / "run"
    flags = ["--num-archs", "300", "--budgets", "3", *SMALL_FLAGS]
    searched = nag("search", "--table", str(csv), "--accuracy", f"fitted:{csv}", *flags, "--out", str(run))
    assert searched.returncode == 0 and (run / "accuracy.npz").is_file(), searched.stderr[-2000:]

    def answers(where: Path) -> list[tuple[str, float]]:
        generated = nag("generate", "--run", str(where), "--budget", "30", "--budget", "40", "--json")
        assert generated.returncode == 0, generated.stderr[-2000:]
        return [(a["arch"], a["accuracy"]) for a in json.loads(generated.stdout) if a["selected_by"] == "source"]

    before = answers(run)
    write_csv(csv, rows.archs, rows.latency_ms, [1.4 - a for a in rows.accuracy])  # the ranking reversed
    unkept = Path(shutil.copytree(run, tmp_path / "unkept"))
    (unkept / "accuracy.npz").unlink()
    after = answers(run)
    assert len(after) == 2 and after == answers(unkept) and after != before
