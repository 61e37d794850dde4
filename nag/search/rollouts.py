"""Rollouts sampled in parallel by Ray actors (used when a cluster is present and workers are asked for).

:class:`RolloutWorker` is a plain class (testable without Ray): it holds a copy of the evaluator and of
the generator, and for its slice of the K budgets samples N architectures each and scores them. The Ray
actor only wraps it. :class:`RayRolloutPool` splits the budgets into contiguous slices, one per actor,
sends the learner's current generator weights each iteration, and returns the rollouts budget-major,
as :func:`nag.search.training.train_generator` expects. Each actor seeds its sampling from
(seed, iteration, first budget of its slice), so results do not depend on scheduling.

The generator is small: on one machine, in-process batched sampling is faster than shipping weights to
actors. The pool pays off when the cluster has idle cores on other nodes, or for larger N.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from nag.errors import SettingError
from nag.search.config import SearchConfig
from nag.search.layout import StagedLayout
from nag.search.model import new_evaluator, new_generator
from nag.space import get_space

__all__ = ["RayRolloutPool", "RolloutWorker"]


class RolloutWorker:
    """Samples and scores rollouts for a contiguous slice of the trained budgets."""

    def __init__(
        self,
        *,
        layout: StagedLayout,
        config: SearchConfig,
        evaluator_state: dict[str, torch.Tensor],
        budget_indices: list[int],
        seed: int,
    ) -> None:
        torch.set_num_threads(1)
        self.space = get_space(layout.space_name)
        self.generator = new_generator(layout, config, seed=0)
        self.evaluator = new_evaluator(layout, config, seed=0)
        self.evaluator.load_state_dict(evaluator_state)
        self.evaluator.eval()
        self.index = torch.tensor(budget_indices).repeat_interleave(config.generator.archs_per_budget)
        self.seed = seed
        self.first_budget = budget_indices[0]

    @torch.no_grad()
    def sample(self, generator_state: dict[str, torch.Tensor], iteration: int) -> tuple[np.ndarray, np.ndarray]:
        """Raw actions ``(len(slice) * N, T)`` and rewards, budget-major, for the given generator weights."""
        self.generator.load_state_dict(generator_state)
        sampler = torch.Generator().manual_seed((self.seed * 1_000_003 + iteration * 7919 + self.first_budget) % (2**62))
        raw = self.generator.sample_raw(self.generator.budget_embedding.trained(self.index), generator=sampler)
        actions = torch.where(self.generator.active(raw), raw, 0).numpy()
        encodings = self.generator.layout.encode_any(self.space, actions)
        rewards = self.evaluator.score(encodings, self.evaluator.budget_embedding.trained(self.index))
        return raw.numpy(), rewards.numpy()


class RayRolloutPool:
    """:class:`RolloutWorker` actors on a running Ray cluster; a :class:`nag.search.training.RolloutSource`."""

    def __init__(
        self, workers: int, *, layout: StagedLayout, config: SearchConfig, evaluator_state: dict[str, torch.Tensor], seed: int
    ) -> None:
        import ray

        if not ray.is_initialized():
            raise SettingError("rollout workers need a running Ray: give --ray-address, or call ray.init() first")
        slices = [list(map(int, s)) for s in np.array_split(np.arange(config.num_budgets), min(workers, config.num_budgets))]
        actor = ray.remote(num_cpus=1)(RolloutWorker)
        state = ray.put(evaluator_state)
        self._ray = ray
        self.actors: list[Any] = [
            actor.remote(layout=layout, config=config, evaluator_state=state, budget_indices=s, seed=seed) for s in slices
        ]

    def sample(self, generator_state: dict[str, torch.Tensor], iteration: int) -> tuple[np.ndarray, np.ndarray]:
        state = self._ray.put(generator_state)
        results = self._ray.get([a.sample.remote(state, iteration) for a in self.actors])
        return np.concatenate([r[0] for r in results]), np.concatenate([r[1] for r in results])

    def close(self) -> None:
        for actor in self.actors:
            self._ray.kill(actor)
        self.actors = []
