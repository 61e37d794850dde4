"""A fair known-answer search problem: non-additive latency, interacting accuracy, exact optimum by DP.

:mod:`nag.search.synthetic` is additive over blocks, which is exactly what the search's own additive latency
model and one-hot encodings assume. This problem is not. For stage ``s`` of depth ``d`` with layers
``i = 0..d-1`` (kernel ``k_i``, expand ratio ``x_i``)::

    c_i   = lat[s, first-or-later, k_i, x_i] * (1 - fusion_s  if i > 0 and k_i == k_{i-1} else 1)
    L_s   = (1 + depth_slope_s * (d - 2)^2) * sum_i c_i  +  overhead_s * (W_s / 12)^2,   W_s = sum_i x_i
    r_s   = sum_i value[s, k_i, x_i]  +  sum_{i>0} pair_s[k_{i-1}, k_i]
    q_s   = weight_s * (1 - exp(-r_s / tau_s))

    latency  = constant + sum_s L_s + cache * max(0, W - 60)^2,                 W = sum_s W_s (expanded width)
    Q        = sum_s q_s - balance * sum_{s>0} |d_s - d_{s-1}|
    accuracy = base + gain * (1 - exp(-Q / scale))

So consecutive layers with the same kernel fuse (cheaper), a stage's overhead grows with the square of its
expanded width, deeper stages cost more than their layers, and a network whose total expanded width passes
60 pays a cache penalty; a large kernel after a small one helps more than two large ones (``pair``), the
gains saturate within a stage and across stages, and unbalanced depths between neighbouring stages cost
accuracy. Magnitudes (seeded) are phone-like: about 20-60 ms and 0.70-0.80 top-1. The exact Pareto front
comes from enumerating each stage's configurations (at most 9^4 + 9^3 + 9^2 = 7,371), keeping per
(depth, expanded width) its Pareto front in (L_s, q_s), and a dynamic programme over stages whose state is the
summary the cross-stage terms read, (expanded width so far, previous depth), keeping per state the partial
solutions no other beats in (latency so far, Q so far). Both totals are summed in the same order as
:meth:`KnownAnswerProblem.evaluate`, so the front's values equal the architectures' exactly.

Restricting the choices (``kernels=``, ``expands=``, ``depths=``) gives a smaller problem with the same
seeded tables, small enough to brute-force; its front, sampling and table cover only the allowed choices.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from nag import stored
from nag.data import ArchTable
from nag.errors import ArchitectureError, SettingError
from nag.search.synthetic import _pareto
from nag.space import SearchSpace, get_space, staged

__all__ = ["KnownAnswerProblem"]

WIDTH_REF = 12.0  # expanded width at which a stage's overhead equals overhead_s
CACHE_WIDTH = 60  # total expanded width above which the cache penalty starts
# pair_s = pair_scale_s * PAIR[previous kernel, kernel], kernels by rank (small, medium, large)
PAIR = np.array([[0.0, 0.5, 0.9], [-0.1, -0.2, 0.5], [-0.3, -0.4, -0.7]])

Front = tuple[np.ndarray, np.ndarray, list[tuple[int, ...]]]  # latencies, accuracies, option index per stage
States = dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]]  # the DP's, see KnownAnswerProblem._solve


def _subset(name: str, chosen: Sequence[int] | None, allowed: tuple[int, ...]) -> tuple[int, ...]:
    if chosen is None:
        return allowed
    picked = tuple(sorted(set(chosen)))
    if not picked or not set(picked) <= set(allowed):
        raise SettingError(f"{name} must be a non-empty subset of {allowed}, got {tuple(chosen)}; e.g. {allowed[:2]}")
    return picked


class KnownAnswerProblem:
    """Seeded non-additive problem on a staged space with an exact front; latency predictor and accuracy source.

    Read-only after construction apart from the cached front; :meth:`predict_ms` and :meth:`accuracy` raise
    :class:`nag.errors.ArchitectureError` for values that do not parse.
    """

    kind: ClassVar[str] = "known-answer"

    def __init__(
        self,
        *,
        space: str = "ofa-mbv3",
        seed: int = 0,
        kernels: Sequence[int] | None = None,
        expands: Sequence[int] | None = None,
        depths: Sequence[int] | None = None,
    ) -> None:
        self._space: SearchSpace[Any] = get_space(space)
        sp = staged(self._space, "the known-answer problem")
        self.seed = seed
        self.stages: int = sp.num_stages
        self.slots: int = sp.slots_per_stage
        self.all_kernels: tuple[int, ...] = tuple(sp.kernel_choices)  # the tables cover every choice ...
        self.all_expands: tuple[int, ...] = tuple(sp.expand_choices)
        self.all_depths: tuple[int, ...] = tuple(sp.depth_choices)
        self.kernels = _subset("kernels", kernels, self.all_kernels)  # ... the front only these
        self.expands = _subset("expands", expands, self.all_expands)
        self.depths = _subset("depths", depths, self.all_depths)
        self._draw(np.random.default_rng(seed))
        self._front: Front | None = None
        self._stage_options: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def _draw(self, rng: np.random.Generator) -> None:
        s, nk, ne = self.stages, len(self.all_kernels), len(self.all_expands)
        expand_values = np.asarray(self.all_expands, dtype=float)
        kernel_cost = 1.0 + 0.25 * np.arange(nk)
        stage_cost = 0.4 + 0.2 * np.arange(s) + rng.uniform(0.0, 0.2, s)
        first_factor = np.array([1.3, 1.0]).reshape(1, 2, 1, 1)  # index 0: a stage's first layer, 1: later ones
        jitter = rng.uniform(0.85, 1.15, (s, 2, nk, ne))
        self.constant_ms = 6.0
        self.lat = (
            stage_cost.reshape(-1, 1, 1, 1)
            * first_factor
            * kernel_cost.reshape(1, 1, -1, 1)
            * (expand_values / expand_values[0]).reshape(1, 1, 1, -1)
            * jitter
        )
        self.fusion = rng.uniform(0.15, 0.3, s)
        self.depth_slope = rng.uniform(0.03, 0.08, s)
        self.overhead_ms = rng.uniform(0.3, 0.8, s)
        self.cache_ms = rng.uniform(0.0015, 0.003)
        kernel_gain, expand_gain = 1.0 + 0.3 * np.arange(nk), 1.0 + 0.4 * np.arange(ne)
        self.value = (kernel_gain.reshape(1, -1, 1) + expand_gain.reshape(1, 1, -1)) * rng.uniform(0.8, 1.2, (s, nk, ne))
        rank = np.round(np.linspace(0, 2, nk)).astype(int)  # kernels mapped onto PAIR's small/medium/large
        self.pair = rng.uniform(0.8, 1.2, s).reshape(-1, 1, 1) * PAIR[np.ix_(rank, rank)]
        self.weight = rng.uniform(0.02, 0.04, s)
        self.tau = rng.uniform(4.0, 7.0, s)
        self.balance = rng.uniform(0.0015, 0.0025)
        self.base, self.gain, self.scale = 0.51, 0.4, 0.12
        self._expand_values = np.asarray(self.all_expands)
        self._depth_values = np.asarray(self.all_depths)

    # -- the protocols ---------------------------------------------------------------------------------
    @property
    def space(self) -> str:
        return self._space.name

    def predict_ms(self, archs: Sequence[Any]) -> list[float]:
        return [float(v) for v in self.evaluate(archs)[0]]

    def accuracy(self, archs: Sequence[Any]) -> list[float]:
        return [float(v) for v in self.evaluate(archs)[1]]

    def evaluate(self, archs: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        """(latency_ms, accuracy) arrays of architectures given as canonical strings or parsed objects."""
        parsed = [self._space.parse(a) if isinstance(a, (str, dict)) else a for a in archs]
        depths = np.array([a.depths for a in parsed], dtype=int).reshape(-1, self.stages)
        kernels = np.array([a.kernels for a in parsed], dtype=int).reshape(-1, self.stages * self.slots)
        expands = np.array([a.expands for a in parsed], dtype=int).reshape(-1, self.stages * self.slots)
        return self.evaluate_arrays(depths, kernels, expands)

    def evaluate_arrays(self, depths: np.ndarray, kernels: np.ndarray, expands: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(latency_ms, accuracy) from value arrays: depths ``(n, stages)``, kernels and expands ``(n, slots)``.

        Vectorised, for many architectures at once (a brute force); values in unused slots are ignored.
        Raises :class:`ArchitectureError` if a depth, or a used slot's kernel or expand ratio, is not a choice.
        """
        n = len(depths)
        depths, kernels, expands = np.asarray(depths), np.asarray(kernels), np.asarray(expands)
        if depths.shape != (n, self.stages) or not kernels.shape == expands.shape == (n, self.stages * self.slots):
            raise ArchitectureError(
                f"need depths (n, {self.stages}) and kernels, expands (n, {self.stages * self.slots}); "
                f"got {depths.shape}, {kernels.shape}, {expands.shape}"
            )
        if n == 0:
            return np.zeros(0), np.zeros(0)
        used = (np.arange(self.slots)[None, None, :] < depths[:, :, None]).reshape(n, -1)
        checks = [("depth", depths, self.all_depths), ("kernel", kernels[used], self.all_kernels)]
        for what, values, choices in [*checks, ("expand ratio", expands[used], self.all_expands)]:
            bad = values[~np.isin(values, choices)]
            if len(bad):
                raise ArchitectureError(f"{what} {bad[0]} is not a choice of {self.space}; choose from {choices}")
        d = np.searchsorted(self._depth_values, depths)
        k = np.where(used, np.searchsorted(self.all_kernels, kernels), 0).reshape(n, self.stages, self.slots)
        e = np.where(used, np.searchsorted(self.all_expands, expands), 0).reshape(n, self.stages, self.slots)
        latency, q_total, width = np.full(n, self.constant_ms), np.zeros(n), np.zeros(n, dtype=int)
        for stage in range(self.stages):
            lat, q, w = self._stage_terms(stage, d[:, stage], k[:, stage], e[:, stage])
            latency, q_total, width = latency + lat, q_total + q, width + w
            if stage:
                q_total = q_total + self._balance_term(d[:, stage - 1], d[:, stage])
        return latency + self._cache_term(width), self._accuracy_of(q_total)

    # -- the formulas (module docstring) ---------------------------------------------------------------
    def _stage_terms(self, stage: int, d: np.ndarray, k: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(L_s, q_s, W_s) of one stage: ``d`` depth indices ``(n,)``, ``k``/``e`` choice indices ``(n, slots)``."""
        n = len(d)
        depth = self._depth_values[d]
        lat_ms = np.zeros(n)
        r = np.zeros(n)
        width = np.zeros(n, dtype=int)
        for layer in range(self.slots):
            used = layer < depth
            cost = self.lat[stage, 0 if layer == 0 else 1, k[:, layer], e[:, layer]]
            r_layer = self.value[stage, k[:, layer], e[:, layer]]
            if layer:
                cost = cost * np.where(k[:, layer] == k[:, layer - 1], 1.0 - self.fusion[stage], 1.0)
                r_layer = r_layer + self.pair[stage, k[:, layer - 1], k[:, layer]]
            lat_ms = lat_ms + np.where(used, cost, 0.0)
            r = r + np.where(used, r_layer, 0.0)
            width = width + np.where(used, self._expand_values[e[:, layer]], 0)
        factor = 1.0 + self.depth_slope[stage] * (depth - self.all_depths[0]) ** 2
        lat_ms = factor * lat_ms + self.overhead_ms[stage] * (width / WIDTH_REF) ** 2
        return lat_ms, self.weight[stage] * (1.0 - np.exp(-r / self.tau[stage])), width

    def _balance_term(self, previous: np.ndarray | int, current: np.ndarray | int) -> np.ndarray:
        return -self.balance * np.abs(self._depth_values[previous] - self._depth_values[current])

    def _cache_term(self, width: np.ndarray) -> np.ndarray:
        return self.cache_ms * np.maximum(0, width - CACHE_WIDTH) ** 2

    def _accuracy_of(self, q_total: np.ndarray) -> np.ndarray:
        return self.base + self.gain * (1.0 - np.exp(-q_total / self.scale))

    # -- data ----------------------------------------------------------------------------------------
    def sample_uniform(self, n: int, *, seed: int) -> list[Any]:
        """``n`` architectures, uniform as OFA samples (each depth, then each used slot), over the allowed choices."""
        rng = random.Random(seed)
        archs = []
        for _ in range(n):
            depths = [rng.choice(self.depths) for _ in range(self.stages)]
            kernels, expands = [0] * (self.stages * self.slots), [0] * (self.stages * self.slots)
            for stage, depth in enumerate(depths):
                for layer in range(depth):
                    kernels[stage * self.slots + layer] = rng.choice(self.kernels)
                    expands[stage * self.slots + layer] = rng.choice(self.expands)
            archs.append(self._space.parse({"d": depths, "ks": kernels, "e": expands}))
        return archs

    def table(self, n: int, *, seed: int = 0) -> ArchTable:
        """``n`` uniformly sampled architectures with their exact latency and accuracy."""
        archs = self.sample_uniform(n, seed=seed)
        latency, accuracy = self.evaluate(archs)
        return ArchTable(
            self.space,
            tuple(self._space.format(a) for a in archs),
            tuple(float(v) for v in latency),
            tuple(float(v) for v in accuracy),
            "fraction",
            f"known-answer(seed={self.seed}, n={n}, sample seed={seed})",
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters (the tables are drawn from the seed); :meth:`from_dict` restores an equal problem."""
        return {
            "kind": self.kind,
            "space": self.space,
            "seed": self.seed,
            "kernels": list(self.kernels),
            "expands": list(self.expands),
            "depths": list(self.depths),
        }

    @classmethod
    def from_dict(cls, value: Any) -> KnownAnswerProblem:
        """The problem :meth:`to_dict` wrote; raises ValueError naming a missing or mistyped entry
        (:class:`nag.stored.StoredValueError`) or choices the space does not have (:class:`SettingError`)."""
        where = "the known-answer problem"
        if stored.mapping(value, where).get("kind") != cls.kind:
            raise SettingError(f"not a known-answer problem: kind {value.get('kind')!r}, expected {cls.kind!r}")
        choices: dict[str, list[int] | None] = {}
        for name in ("kernels", "expands", "depths"):
            chosen = value.get(name)
            choices[name] = (
                None if chosen is None else [stored.integer(v, f"{name}[{i}]") for i, v in enumerate(stored.items(chosen, name))]
            )
        return cls(
            space=stored.text(stored.entry(value, "space", where), "space"),
            seed=stored.integer(stored.entry(value, "seed", where), "seed"),
            **choices,
        )

    # -- the exact optimum ---------------------------------------------------------------------------
    def _options(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every allowed stage configuration: depth indices ``(m,)``, kernel and expand indices ``(m, slots)``."""
        if self._stage_options is not None:
            return self._stage_options
        k_allowed = [self.all_kernels.index(v) for v in self.kernels]
        e_allowed = [self.all_expands.index(v) for v in self.expands]
        d_rows, k_rows, e_rows = [], [], []
        for depth in self.depths:
            for layers in itertools.product(itertools.product(k_allowed, e_allowed), repeat=depth):
                pad = [(0, 0)] * (self.slots - depth)
                d_rows.append(self.all_depths.index(depth))
                k_rows.append([kk for kk, _ in (*layers, *pad)])
                e_rows.append([ee for _, ee in (*layers, *pad)])
        self._stage_options = (np.asarray(d_rows), np.asarray(k_rows), np.asarray(e_rows))
        return self._stage_options

    def pareto_front(self) -> Front:
        """The exact front: latencies (ascending), accuracies (ascending), each point's option index per stage.

        Computed once (a few seconds) and cached. :meth:`best_under` turns a point into an architecture.
        """
        if self._front is None:
            self._front = self._solve()
        return self._front

    def _solve(self) -> Front:
        # A state is the summary the cross-stage terms read: (expanded width so far, previous depth index); it
        # maps to its partial solutions no other beats: (latency so far, Q so far, index into the last trace).
        states: States = {(0, -1): (np.array([self.constant_ms]), np.array([0.0]), np.array([-1]))}
        traces: list[tuple[np.ndarray, np.ndarray]] = []  # per stage: (parent index, option) of each kept point
        for stage in range(self.stages):
            states, trace = self._advance(stage, states)
            traces.append(trace)
        keys = list(states)
        latency = np.concatenate([states[key][0] + self._cache_term(np.array(key[0])) for key in keys])
        accuracy = self._accuracy_of(np.concatenate([states[key][1] for key in keys]))
        keep = _pareto(latency, accuracy)
        choices = []
        for index in np.concatenate([states[key][2] for key in keys])[keep]:
            per_stage = []
            for parent, option in reversed(traces):
                per_stage.append(int(option[index]))
                index = parent[index]
            choices.append(tuple(reversed(per_stage)))
        return latency[keep], accuracy[keep], choices

    def _advance(self, stage: int, states: States) -> tuple[States, tuple[np.ndarray, np.ndarray]]:
        """The states after ``stage``, and the stage's trace: each kept point's parent index and option."""
        d_opt, k_opt, e_opt = self._options()
        lat, q, width = self._stage_terms(stage, d_opt, k_opt, e_opt)
        groups = {}  # (stage width, depth index) -> the options no other of the group beats in (L_s, q_s)
        for key in sorted(set(zip(width.tolist(), d_opt.tolist(), strict=True))):
            members = np.nonzero((width == key[0]) & (d_opt == key[1]))[0]
            groups[key] = members[_pareto(lat[members], q[members])]
        candidates: dict[tuple[int, int], list[tuple[np.ndarray, ...]]] = {}
        for (w_so_far, d_prev), (s_lat, s_q, s_index) in states.items():
            for (w, d), members in groups.items():
                c_q = s_q[:, None] + q[members][None, :]  # summed in the order of evaluate_arrays
                if stage:
                    c_q = c_q + self._balance_term(d_prev, d)
                candidates.setdefault((w_so_far + w, d), []).append(
                    (
                        (s_lat[:, None] + lat[members][None, :]).ravel(),
                        c_q.ravel(),
                        np.repeat(s_index, len(members)),
                        np.tile(members, len(s_index)),
                    )
                )
        new: States = {}
        parents, options, offset = [], [], 0
        for key, parts in candidates.items():
            c_lat, c_q, parent, option = (np.concatenate(p) for p in zip(*parts, strict=True))
            keep = _pareto(c_lat, c_q)
            new[key] = (c_lat[keep], c_q[keep], offset + np.arange(len(keep)))
            parents.append(parent[keep])
            options.append(option[keep])
            offset += len(keep)
        return new, (np.concatenate(parents), np.concatenate(options))

    def _arch_of(self, per_stage: tuple[int, ...]) -> Any:
        d_opt, k_opt, e_opt = self._options()
        depths = [self.all_depths[d_opt[option]] for option in per_stage]
        kernels, expands = [], []
        for option, depth in zip(per_stage, depths, strict=True):
            kernels += [self.all_kernels[k] for k in k_opt[option, :depth]] + [0] * (self.slots - depth)
            expands += [self.all_expands[e] for e in e_opt[option, :depth]] + [0] * (self.slots - depth)
        return self._space.parse({"d": depths, "ks": kernels, "e": expands})

    def best_under(self, budget_ms: float) -> tuple[float, float, str] | None:
        """(accuracy, latency_ms, arch) of the most accurate allowed architecture with latency <= budget, or None."""
        latency, accuracy, choices = self.pareto_front()
        best = int(np.searchsorted(latency, budget_ms, side="right")) - 1  # the front's last point within budget
        if best < 0:
            return None
        return float(accuracy[best]), float(latency[best]), self._space.format(self._arch_of(choices[best]))
