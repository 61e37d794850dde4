"""Shared fixtures: the synthetic problem, its table, and one small trained search (built once per session)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from nag.data import ArchTable
from nag.search.config import EvaluatorConfig, GeneratorConfig, SearchConfig, SurrogateConfig
from nag.search.synthetic import SyntheticProblem

# Small sizes so that the suite runs in minutes on 2 cores; the defaults are for real use.
SMALL = SearchConfig(
    evaluator=EvaluatorConfig(steps=1000),
    generator=GeneratorConfig(iterations=300),
    surrogate=SurrogateConfig(steps=800),
)
TRAINED_SEED = 0


@pytest.fixture(scope="session")
def problem() -> SyntheticProblem:
    return SyntheticProblem(seed=0)


@pytest.fixture(scope="session")
def table(problem: SyntheticProblem) -> ArchTable:
    return problem.table(1000, seed=1)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory, table: ArchTable) -> Path:
    from nag.search.api import run_search

    return run_search(out=tmp_path_factory.mktemp("search") / "run", table=table, config=SMALL.replace(seed=TRAINED_SEED))


@pytest.fixture(scope="session")
def source_run(tmp_path_factory: pytest.TempPathFactory, table: ArchTable) -> Path:
    """A small run searched by the CLI with ``--accuracy dynast``: it stores the source's spec and fit
    (``accuracy.json``, ``accuracy.npz``), so ``nag generate`` selects by the source and refines."""
    import subprocess
    import sys

    from nag.data import write_csv

    folder = tmp_path_factory.mktemp("source-run")
    csv = write_csv(folder / "latency.csv", table.archs[:300], table.latency_ms[:300])
    run = folder / "run"
    flags = ["--num-archs", "300", "--budgets", "3", "--evaluator-steps", "150", "--generator-iterations", "40", "--quiet"]
    searched = subprocess.run(
        [sys.executable, "-m", "nag", "search", "--table", str(csv), "--accuracy", "dynast", *flags, "--out", str(run)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert searched.returncode == 0, searched.stderr[-3000:]
    return run


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """The networks are small: one intra-op thread avoids OpenMP contention on a busy 2-core machine."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
