"""OFA's evolutionary search, per budget, at OFA's own settings (Cai et al., 2020, ``EvolutionFinder``).

For a budget B: a population of 100 architectures sampled uniformly and resampled until each meets B;
then 500 generations of: keep the 25 most accurate (parent ratio 0.25) and add 50 mutants (mutation
ratio 0.5; each depth, kernel and expand ratio resampled with probability 0.1) of random parents and 50
uniform crossovers of two random parents. A child that does not meet B is drawn again from the same
parent(s) until one does, as OFA does. Accuracy is asked of the accuracy source itself, a whole
generation per call, as OFA asks its accuracy predictor. The answer is the most accurate architecture
evaluated (OFA reports the best parent of the last generation; keeping the best ever seen is never worse).

Two safety valves OFA does not have, both reported in the run's notes rather than hidden: a child still
infeasible after :data:`MAX_REDRAWS` draws is replaced by its (feasible) first parent, and a budget that
no uniform sample meets after :data:`MAX_INITIAL_DRAWS` architectures is answered with the fastest one seen.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from nag.errors import SettingError
from nag.search.methods._base import Answer, MethodRun, SearchTask

__all__ = ["MAX_INITIAL_DRAWS", "MAX_REDRAWS", "Evolution", "EvolutionSettings"]

MAX_REDRAWS = 200  # draws of one child before it falls back to its parent
MAX_INITIAL_DRAWS = 200_000  # uniform samples before a budget is declared unreachable


class EvolutionSettings:
    """OFA's ``EvolutionFinder`` defaults."""

    def __init__(
        self,
        *,
        population: int = 100,
        generations: int = 500,
        parent_ratio: float = 0.25,
        mutation_ratio: float = 0.5,
        mutation_prob: float = 0.1,
    ) -> None:
        if population < 2 or generations < 0 or not 0 < parent_ratio <= 1 or not 0 <= mutation_ratio <= 1:
            raise SettingError(
                f"evolution needs population >= 2, generations >= 0, parent ratio in (0, 1], mutation ratio in [0, 1]; got "
                f"{population}, {generations}, {parent_ratio}, {mutation_ratio}"
            )
        if not 0 <= mutation_prob <= 1:
            raise SettingError(f"mutation probability must be in [0, 1], got {mutation_prob}")
        self.population = population
        self.generations = generations
        self.parents = max(1, round(parent_ratio * population))
        self.mutants = round(mutation_ratio * population)
        self.crossovers = population - self.mutants
        self.mutation_prob = mutation_prob

    def to_dict(self) -> dict[str, Any]:
        return {
            "population": self.population,
            "generations": self.generations,
            "parents": self.parents,
            "mutants": self.mutants,
            "crossovers": self.crossovers,
            "mutation_prob": self.mutation_prob,
        }


def _feasible_children(
    parents: Sequence[tuple[Any, ...]],
    draw: Callable[[tuple[Any, ...]], Any],
    price: Callable[[list[Any]], np.ndarray],
    budget: float,
) -> tuple[list[Any], int]:
    """One child per entry of ``parents``, each drawn by ``draw(its parents)`` until it meets ``budget`` (batched over
    the children); returns the children and how many fell back to their first parent after :data:`MAX_REDRAWS` draws."""
    children: list[Any] = [group[0] for group in parents]  # the fallback, replaced by the first feasible draw
    pending = list(range(len(parents)))
    for _ in range(MAX_REDRAWS):
        if not pending:
            break
        drawn = [draw(parents[i]) for i in pending]
        fits = price(drawn) <= budget
        for i, child, ok in zip(pending, drawn, fits, strict=True):
            if ok:
                children[i] = child
        pending = [i for i, ok in zip(pending, fits, strict=True) if not ok]
    return children, len(pending)


class Evolution:
    """OFA's regularised evolution per budget, scoring with the accuracy source."""

    amortised = False
    name = "evolution"

    def __init__(self, settings: EvolutionSettings | None = None) -> None:
        self.settings = settings or EvolutionSettings()

    def run(self, task: SearchTask, budgets_ms: Sequence[float], *, progress: bool = False) -> MethodRun:
        if not task.fast_accuracy:
            raise SettingError(
                "evolution asks the accuracy source for every child (50,000 per budget at OFA's settings); this source is "
                "slow (a supernet evaluation): use a predictor (ofa-predictor:PATH, fitted:FILE, dynast) or leave evolution out"
            )
        answers, notes = [], []
        for n, budget in enumerate(budgets_ms):
            started = time.perf_counter()
            arch, note = self._search(task, float(budget), seed=task.seed * 1000 + n)
            answers.append(Answer(float(budget), arch, time.perf_counter() - started))
            notes.append({"budget_ms": float(budget), **note})
        return MethodRun(self.name, tuple(answers), 0.0, notes={"settings": self.settings.to_dict(), "budgets": notes})

    def _search(self, task: SearchTask, budget: float, *, seed: int) -> tuple[str, dict[str, Any]]:
        s, space = self.settings, task.space
        rng = random.Random(seed)

        def price(archs: list[Any]) -> np.ndarray:
            return np.asarray(task.latency.predict_ms(archs))

        population, fastest = self._initial(task, budget, rng, price)
        if not population:
            return space.format(fastest), {"reachable": False, "fallbacks": 0, "evaluated": 0}
        scores = list(task.accuracy.accuracy(population))
        best = max(range(len(population)), key=scores.__getitem__)
        best_arch, best_score = population[best], scores[best]
        evaluated, fallbacks = len(population), 0
        for _ in range(s.generations):
            order = sorted(range(len(population)), key=lambda i: -scores[i])[: s.parents]
            parents, parent_scores = [population[i] for i in order], [scores[i] for i in order]
            mutants, fell = _feasible_children(
                [(rng.choice(parents),) for _ in range(s.mutants)],
                lambda group: space.mutate(group[0], rng, prob=s.mutation_prob),
                price,
                budget,
            )
            crossed, fell2 = _feasible_children(
                [(rng.choice(parents), rng.choice(parents)) for _ in range(s.crossovers)],
                lambda group: space.crossover(group[0], group[1], rng),
                price,
                budget,
            )
            children = mutants + crossed
            child_scores = list(task.accuracy.accuracy(children))
            evaluated, fallbacks = evaluated + len(children), fallbacks + fell + fell2
            population, scores = parents + children, parent_scores + child_scores
            top = max(range(len(children)), key=child_scores.__getitem__)
            if child_scores[top] > best_score:
                best_arch, best_score = children[top], child_scores[top]
        return space.format(best_arch), {"reachable": True, "fallbacks": fallbacks, "evaluated": evaluated}

    def _initial(
        self, task: SearchTask, budget: float, rng: random.Random, price: Callable[[list[Any]], np.ndarray]
    ) -> tuple[list[Any], Any]:
        """``population`` uniform samples that meet the budget (OFA's ``random_valid_sample``), and the fastest seen."""
        found: list[Any] = []
        fastest, fastest_ms = None, float("inf")
        drawn = 0
        while len(found) < self.settings.population and drawn < MAX_INITIAL_DRAWS:
            batch = [task.space.sample(rng) for _ in range(1000)]
            latency = price(batch)
            drawn += len(batch)
            found += [a for a, ms in zip(batch, latency, strict=True) if ms <= budget]
            if latency.min() < fastest_ms:
                fastest, fastest_ms = batch[int(latency.argmin())], float(latency.min())
        return found[: self.settings.population], fastest
