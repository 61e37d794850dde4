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


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """The networks are small: one intra-op thread avoids OpenMP contention on a busy 2-core machine."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
