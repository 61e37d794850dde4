"""Ray: trials as Ray Tune trials (best kept), and rollouts sampled by Ray actors; all on loopback."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from nag.data import ArchTable
from nag.latency.additive import AdditiveLatencyPredictor
from nag.search.api import generate, run_search
from nag.search.config import EvaluatorConfig, GeneratorConfig, SearchConfig, SurrogateConfig
from nag.search.layout import StagedLayout
from nag.search.model import new_evaluator, new_generator
from nag.search.prepare import prepare
from nag.search.rollouts import RayRolloutPool, RolloutWorker
from nag.search.training import run_trial
from nag.search.tuning import TuneOptions
from nag.space.ofa_mbv3 import OFAMobileNetV3Space

pytest.importorskip("ray.tune")

TINY = SearchConfig(
    num_budgets=4,
    evaluator=EvaluatorConfig(steps=60),
    generator=GeneratorConfig(iterations=15, archs_per_budget=4),
    surrogate=SurrogateConfig(steps=40),
)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Any]:
    previous = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"  # Ray 2.60 turns token auth on by default
    import ray

    ray.init(_node_ip_address="127.0.0.2", include_dashboard=False, num_cpus=2, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()
        if previous is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = previous


@pytest.fixture(scope="module")
def small_table(table: ArchTable) -> ArchTable:
    return ArchTable(table.space, table.archs[:300], table.latency_ms[:300], table.accuracy[:300], "fraction", "first 300")  # type: ignore[index]


def test_tune_trials_keep_the_best(ray_cluster: Any, tmp_path: Path, small_table: ArchTable, space: OFAMobileNetV3Space) -> None:
    run = run_search(
        out=tmp_path / "tuned", table=small_table, config=TINY, tune=TuneOptions(seeds=(1,), entropy_weights=(1e-3, 1e-2))
    )
    metrics = json.loads((run / "metrics.json").read_text())
    trials = metrics["trials"]
    assert sorted((t["seed"], t["entropy_weight"]) for t in trials) == [(1, 1e-3), (1, 1e-2)]  # seed 1 on the split of seed 0
    scores = [t["selection_score"] for t in trials]
    best = trials[metrics["best_trial"]]
    assert best["selection_score"] == max(scores)
    assert (run / "tune" / "trials").is_dir()
    # The kept networks are that trial's: the same trial run in-process on the same prepared data gives the same weights.
    prepared = prepare(
        space,
        small_table.archs,
        small_table.latency_ms,
        small_table.accuracy,  # type: ignore[arg-type]
        TINY,
        latency=AdditiveLatencyPredictor.fit(small_table.archs, small_table.latency_ms, seed=TINY.seed),
    )
    direct = run_trial(prepared, TINY.replace(seed=best["seed"], generator__entropy_weight=best["entropy_weight"]))
    kept = torch.load(run / "generator.pt", weights_only=True)
    assert all(torch.equal(kept[k], direct.generator_state[k]) for k in kept)
    assert generate(run, [35.0])[0].arch


def test_rollout_workers_sample_what_plain_workers_sample(
    ray_cluster: Any, space: OFAMobileNetV3Space, small_table: ArchTable, tmp_path: Path
) -> None:
    layout = StagedLayout.for_space(space)
    evaluator_state = new_evaluator(layout, TINY, seed=3).state_dict()
    generator_state = new_generator(layout, TINY, seed=4).state_dict()
    pool = RayRolloutPool(2, layout=layout, config=TINY, evaluator_state=evaluator_state, seed=11)
    try:
        actions, rewards = pool.sample(generator_state, iteration=5)
    finally:
        pool.close()
    plain = [
        RolloutWorker(layout=layout, config=TINY, evaluator_state=evaluator_state, budget_indices=indices, seed=11).sample(
            generator_state, 5
        )
        for indices in ([0, 1], [2, 3])
    ]
    assert actions.shape == (4 * 4, 45) and rewards.shape == (16,)
    assert (actions == torch.cat([torch.as_tensor(p[0]) for p in plain]).numpy()).all()
    assert torch.allclose(torch.as_tensor(rewards), torch.cat([torch.as_tensor(p[1]) for p in plain]))
    # And a whole search with its rollouts on Ray actors runs and writes a usable run directory.
    run = run_search(out=tmp_path / "actors", table=small_table, config=TINY.replace(rollout_workers=2))
    assert generate(run, [40.0])[0].arch
