"""A synthetic search problem whose optimum under any latency budget is known exactly.

For tests and benchmarks. Latency is additive over blocks, as a lookup table would price it::

    latency = constant + sum over used layers of lat[stage, first-or-later, kernel, expand]

Accuracy is additive over stages with diminishing returns within a stage::

    accuracy = base + sum over stages s of  w_s * (1 - exp(-q_s / tau_s)),   q_s = sum over used layers of v[s, kernel, expand]

so a bigger kernel, a larger expand ratio or another layer always helps, less and less, and costs
latency. Both tables are drawn from a seed around realistic magnitudes (ofa-mbv3: about 20-50 ms,
accuracy about 0.70-0.79). The exact Pareto front (best accuracy for every latency) comes from
enumerating each stage's configurations, keeping each stage's Pareto front, and merging the stages'
fronts one by one (a knapsack by dynamic programming over stages); :meth:`SyntheticProblem.best_under`
reads the optimum for a budget from it.

A :class:`SyntheticProblem` is both a latency predictor and an accuracy source (exact ones).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from typing import Any

import numpy as np

from nag.data import ArchTable
from nag.space import SearchSpace, get_space

__all__ = ["SyntheticProblem"]


def _pareto(latency: np.ndarray, accuracy: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats (lower-or-equal latency and higher accuracy), by latency."""
    order = np.lexsort((-accuracy, latency))
    best = np.maximum.accumulate(accuracy[order])
    keep = np.ones(len(order), dtype=bool)
    keep[1:] = accuracy[order][1:] > best[:-1]
    return order[keep]


class SyntheticProblem:
    """Exact additive latency and diminishing-returns accuracy over a staged space, seeded."""

    def __init__(self, *, space: str = "ofa-mbv3", seed: int = 0) -> None:
        self._space: SearchSpace[Any] = get_space(space)
        rng = np.random.default_rng(seed)
        sp = self._space
        self.stages: int = sp.num_stages  # type: ignore[attr-defined]
        self.slots: int = sp.slots_per_stage  # type: ignore[attr-defined]
        self.kernels: tuple[int, ...] = tuple(sp.kernel_choices)  # type: ignore[attr-defined]
        self.expands: tuple[int, ...] = tuple(sp.expand_choices)  # type: ignore[attr-defined]
        self.depths: tuple[int, ...] = tuple(sp.depth_choices)  # type: ignore[attr-defined]
        nk, ne = len(self.kernels), len(self.expands)
        kernel_cost = 1.0 + 0.25 * np.arange(nk)
        expand_cost = np.asarray(self.expands, dtype=float) / self.expands[0]
        stage_cost = 0.5 + 0.25 * np.arange(self.stages) + rng.uniform(0.0, 0.2, self.stages)
        jitter = rng.uniform(0.85, 1.15, (self.stages, 2, nk, ne))
        first_factor = np.array([1.3, 1.0]).reshape(1, 2, 1, 1)  # index 0: first layer, 1: later layers
        self.constant_ms = 6.0
        self.lat = (
            stage_cost.reshape(-1, 1, 1, 1)
            * first_factor
            * kernel_cost.reshape(1, 1, -1, 1)
            * expand_cost.reshape(1, 1, 1, -1)
            * jitter
        )
        kernel_gain = 1.0 + 0.3 * np.arange(nk)
        expand_gain = 1.0 + 0.4 * np.arange(ne)
        self.value = (kernel_gain.reshape(1, -1, 1) + expand_gain.reshape(1, 1, -1)) * rng.uniform(
            0.8, 1.2, (self.stages, nk, ne)
        )
        self.weight = rng.uniform(0.02, 0.04, self.stages)
        self.tau = rng.uniform(4.0, 7.0, self.stages)
        self.base = 0.62
        self._front: tuple[np.ndarray, np.ndarray, list[tuple[Any, ...]]] | None = None

    # -- the protocols ---------------------------------------------------------------------------------
    @property
    def space(self) -> str:
        return self._space.name

    def _stage_layers(self, arch: Any, stage: int) -> list[tuple[int, int]]:
        start = stage * self.slots
        return [
            (self.kernels.index(arch.kernels[start + layer]), self.expands.index(arch.expands[start + layer]))
            for layer in range(arch.depths[stage])
        ]

    def _stage_cost(self, stage: int, layers: Sequence[tuple[int, int]]) -> tuple[float, float]:
        latency = sum(self.lat[stage, 0 if n == 0 else 1, k, e] for n, (k, e) in enumerate(layers))
        q = sum(self.value[stage, k, e] for k, e in layers)
        return float(latency), float(self.weight[stage] * (1.0 - np.exp(-q / self.tau[stage])))

    def _costs(self, value: Any) -> tuple[float, float]:
        arch = self._space.parse(value)
        latency, accuracy = self.constant_ms, self.base
        for stage in range(self.stages):
            lat, acc = self._stage_cost(stage, self._stage_layers(arch, stage))
            latency, accuracy = latency + lat, accuracy + acc
        return latency, accuracy

    def predict_ms(self, archs: Sequence[Any]) -> list[float]:
        return [self._costs(a)[0] for a in archs]

    def accuracy(self, archs: Sequence[Any]) -> list[float]:
        return [self._costs(a)[1] for a in archs]

    # -- data ----------------------------------------------------------------------------------------
    def table(self, n: int, *, seed: int = 0) -> ArchTable:
        """``n`` uniformly sampled architectures with their exact latency and accuracy."""
        archs = [self._space.format(a) for a in self._space.sample_many(n, seed=seed)]
        costs = [self._costs(a) for a in archs]
        return ArchTable(
            self.space,
            tuple(archs),
            tuple(c[0] for c in costs),
            tuple(c[1] for c in costs),
            "fraction",
            f"synthetic(n={n}, seed={seed})",
        )

    def sample_uniform(self, n: int, *, seed: int) -> list[Any]:
        rng = random.Random(seed)
        return [self._space.sample(rng) for _ in range(n)]

    # -- the exact optimum ---------------------------------------------------------------------------
    def _stage_front(self, stage: int) -> tuple[np.ndarray, np.ndarray, list[tuple[tuple[int, int], ...]]]:
        options = [
            layers
            for depth in self.depths
            for layers in itertools.product(itertools.product(range(len(self.kernels)), range(len(self.expands))), repeat=depth)
        ]
        costs = np.asarray([self._stage_cost(stage, layers) for layers in options])
        keep = _pareto(costs[:, 0], costs[:, 1])
        return costs[keep, 0], costs[keep, 1], [options[i] for i in keep]

    def pareto_front(self) -> tuple[np.ndarray, np.ndarray, list[tuple[Any, ...]]]:
        """The exact front: latencies (ascending), accuracies, and each point's per-stage layer choices."""
        if self._front is None:
            latency, accuracy = np.array([self.constant_ms]), np.array([self.base])
            choices: list[tuple[Any, ...]] = [()]
            for stage in range(self.stages):
                s_lat, s_acc, s_opts = self._stage_front(stage)
                lat = (latency[:, None] + s_lat[None, :]).ravel()
                acc = (accuracy[:, None] + s_acc[None, :]).ravel()
                keep = _pareto(lat, acc)
                choices = [(*choices[i // len(s_opts)], s_opts[i % len(s_opts)]) for i in keep]
                latency, accuracy = lat[keep], acc[keep]
            self._front = (latency, accuracy, choices)
        return self._front

    def _arch_of(self, per_stage: tuple[Any, ...]) -> Any:
        depths = [len(layers) for layers in per_stage]
        kernels, expands = [0] * (self.stages * self.slots), [0] * (self.stages * self.slots)
        for stage, layers in enumerate(per_stage):
            for layer, (k, e) in enumerate(layers):
                kernels[stage * self.slots + layer] = self.kernels[k]
                expands[stage * self.slots + layer] = self.expands[e]
        return self._space.parse({"d": depths, "ks": kernels, "e": expands})

    def best_under(self, budget_ms: float) -> tuple[float, float, str] | None:
        """(accuracy, latency_ms, arch) of the most accurate architecture with latency <= budget, or None."""
        latency, accuracy, choices = self.pareto_front()
        feasible = np.nonzero(latency <= budget_ms)[0]
        if not len(feasible):
            return None
        best = int(feasible[-1])  # the front is sorted by latency with accuracy increasing
        return float(accuracy[best]), float(latency[best]), self._space.format(self._arch_of(choices[best]))
