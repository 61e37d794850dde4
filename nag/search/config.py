"""Settings of a PNAG search: frozen dataclasses, JSON round-trippable (stored in the run directory).

Defaults follow the paper where it says (K = 10 budgets, 64-d budget embeddings, LSTM hidden 64, entropy
weight 1e-3, Adam lr 3e-4, hinge loss, 80/20 split). Sizes and iteration counts are not in the paper;
they are chosen so that ``nag search`` with defaults on 16,000 rows takes well under a minute on a
2-core CPU (see ``benchmarks/search_speed.py`` and BENCHMARKS.md): the evaluator (hidden 128) sees 3,000
minibatches of 96 architectures, all their 4,560 pairs x K budgets (137 M labelled comparisons; held-out
pairwise accuracy 0.961 on the 16,000-row synthetic problem, against 0.963 for 128 architectures at 1.5x
the time, 0.956 for 64, and 0.953 for 3,000 minibatches of 256 random pairs, the earlier default; hidden
256 gave no gain at 3.5x the time), the generator 800 iterations of K x 16 architectures (128,000
rollouts, 13x the published code's 10,000 single-sample iterations).

Choices where the paper is silent or the published code differs, all configurable: hinge or logistic
loss; masking of unused slots; the reward baseline (moving average, batch mean, none); per-budget reward
normalisation; the budget fed to the generator once or at every step; the outside-range policy.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from nag import stored
from nag.errors import SettingError

__all__ = ["SELECTIONS", "EvaluatorConfig", "GeneratorConfig", "InferenceConfig", "SearchConfig", "SurrogateConfig"]

RankingLoss = Literal["hinge", "logistic"]
Pairing = Literal["all", "random"]
Baseline = Literal["ema", "batch", "none"]
Selection = Literal["surrogate", "evaluator", "source"]
SELECTIONS: tuple[str, ...] = ("surrogate", "evaluator", "source")
BudgetInput = Literal["first", "every"]
MAX_BUDGETS = 100  # K above this only multiplies the training time


def _positive(owner: str, **values: float) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise SettingError(f"{owner}.{name} must be a positive number, got {value!r}")


def _one_of(owner: str, name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise SettingError(f"{owner}.{name} must be one of {', '.join(allowed)}, got {value!r}")


@dataclass(frozen=True)
class EvaluatorConfig:
    """The evaluator R(arch | B) (Sec. 3.3) and its training."""

    hidden: int = 128  # width of the two hidden layers of the 3-FC-layer MLP (published code: 512)
    embedding_dim: int = 64  # size of the evaluator's learned budget embeddings
    loss: RankingLoss = "hinge"  # phi of Eqn. 5: "hinge" max(0, 1 - z) (paper) or "logistic" softplus(-z) (published code)
    steps: int = 3000  # optimiser steps
    # minibatches: "all" compares every pair of archs_per_step random rows (the published code's minibatch of
    # architectures, all pairs), "random" draws pairs_per_step independent pairs; both under all K budgets
    pairing: Pairing = "all"
    archs_per_step: int = 96  # rows per minibatch with pairing="all" (4,560 pairs; see the module docstring)
    pairs_per_step: int = 256  # pairs per minibatch with pairing="random"
    lr: float = 1e-3  # Adam learning rate (the paper does not give the evaluator's optimiser)
    weight_decay: float = 3e-5  # L2 weight decay (as the published code)
    accuracy_condition: bool = True  # Eqn. 6 as published; False: lower cost always wins (the paper's Table 2 ablation)

    def __post_init__(self) -> None:
        _positive("evaluator", hidden=self.hidden, embedding_dim=self.embedding_dim, steps=self.steps)
        _positive("evaluator", pairs_per_step=self.pairs_per_step, archs_per_step=self.archs_per_step, lr=self.lr)
        _one_of("evaluator", "loss", self.loss, ("hinge", "logistic"))
        _one_of("evaluator", "pairing", self.pairing, ("all", "random"))
        if self.archs_per_step < 2:
            raise SettingError(f"evaluator.archs_per_step must be at least 2 (a pair), got {self.archs_per_step}")


@dataclass(frozen=True)
class GeneratorConfig:
    """The generator f(B) (Sec. 3.1) and its REINFORCE training (Eqn. 3-4)."""

    hidden: int = 64  # LSTM hidden size (paper: 64)
    embedding_dim: int = 64  # budget and token embedding size (paper: 64)
    iterations: int = 800  # policy-gradient iterations; each samples K budgets x N architectures
    archs_per_budget: int = 16  # N of Eqn. 4
    entropy_weight: float = 1e-3  # lambda of Eqn. 3
    lr: float = 3e-4  # Adam learning rate (paper)
    baseline: Baseline = "ema"  # per-budget reward baseline: moving average (ENAS), batch mean, or none (paper)
    baseline_decay: float = 0.95  # decay of the moving-average baseline
    normalize_rewards: bool = True  # divide each budget's advantages by the std of its N rewards (not in the paper)
    mask_unused: bool = True  # leave slots past a stage's depth out of log-prob and entropy (published code: False)
    budget_input: BudgetInput = "every"  # budget embedding as the first input only ("first", published code) or at every step
    grad_clip: float = 5.0  # gradient-norm clip of each update

    def __post_init__(self) -> None:
        _positive("generator", hidden=self.hidden, embedding_dim=self.embedding_dim, iterations=self.iterations)
        _positive("generator", archs_per_budget=self.archs_per_budget, lr=self.lr, grad_clip=self.grad_clip)
        _one_of("generator", "baseline", self.baseline, ("ema", "batch", "none"))
        _one_of("generator", "budget_input", self.budget_input, ("first", "every"))
        if not self.entropy_weight >= 0.0 or not 0.0 <= self.baseline_decay < 1.0:
            raise SettingError(
                f"generator: entropy_weight must be >= 0 and baseline_decay in [0, 1), got {self.entropy_weight}, {self.baseline_decay}"
            )


@dataclass(frozen=True)
class SurrogateConfig:
    """A regression MLP fitted to the training accuracies: the ``accuracy`` estimate ``generate`` reports."""

    hidden: int = 128  # hidden width
    steps: int = 1500  # Adam steps over minibatches
    batch_size: int = 256  # rows per minibatch
    lr: float = 1e-3  # Adam learning rate

    def __post_init__(self) -> None:
        _positive("surrogate", hidden=self.hidden, steps=self.steps, batch_size=self.batch_size, lr=self.lr)


@dataclass(frozen=True)
class InferenceConfig:
    """Architecture inference for a budget (Sec. 3.5)."""

    candidates: int = 100  # architectures sampled per round
    max_rounds: int = 10  # rounds of resampling before giving up on a budget
    # rank feasible candidates by the surrogate's estimate, by R(arch | B), or by the accuracy source itself
    # (the paper: "the feasible architecture with the highest validation accuracy"; needs the source at inference)
    select_by: Selection = "surrogate"
    # with select_by="source": moves of the local search under the source after the pick (0: the paper's inference,
    # the best draw), trades (pairs of moves) tried per move, and climbs from the best distinct draws; see
    # nag.search.refine (3 climbs against 1: worst budget -0.01..-0.03 points from evolution instead of -0.02..-0.05)
    refine_steps: int = 8
    refine_pairs: int = 30
    refine_climbs: int = 3

    def __post_init__(self) -> None:
        _positive("inference", candidates=self.candidates, max_rounds=self.max_rounds)
        _one_of("inference", "select_by", self.select_by, SELECTIONS)
        _positive("inference", refine_climbs=self.refine_climbs)
        for name in ("refine_steps", "refine_pairs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise SettingError(f"inference.{name} must be an integer >= 0, got {value!r} (0 turns refinement off)")


@dataclass(frozen=True)
class SearchConfig:
    """Everything that decides a search's result, given its data."""

    space: str = "ofa-mbv3"  # search space registry name
    num_budgets: int = 10  # K (paper: 10)
    budget_quantiles: tuple[float, float] = (0.0, 1.0)  # latency quantiles between which the K budgets are spaced
    budgets_ms: tuple[float, ...] | None = None  # the K training budgets themselves (ms, increasing), instead of spacing them
    outside: str = "clamp"  # policy for budgets outside the trained range: clamp, extrapolate, error
    seed: int = 0  # seeds the split, every network's initialisation, and all sampling
    holdout_fraction: float = 0.2  # rows held out to report (and select on) pairwise accuracy
    rollout_workers: int = 0  # Ray actors sampling rollouts in parallel (0: in-process, batched)
    evaluator: EvaluatorConfig = field(default_factory=EvaluatorConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    surrogate: SurrogateConfig = field(default_factory=SurrogateConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)

    def __post_init__(self) -> None:
        _positive("search", num_budgets=self.num_budgets)
        if self.num_budgets > MAX_BUDGETS:
            raise SettingError(
                f"num_budgets (K) is {self.num_budgets}; at most {MAX_BUDGETS}: every training step samples K x N architectures, "
                "and the paper finds K = 10 best (K = 30 is no better)"
            )
        if self.budgets_ms is not None and len(self.budgets_ms) != self.num_budgets:
            raise SettingError(
                f"budgets_ms lists {len(self.budgets_ms)} budgets but num_budgets is {self.num_budgets}; give both the same K"
            )
        _one_of("search", "outside", self.outside, ("clamp", "extrapolate", "error"))
        if not 0.0 < self.holdout_fraction < 1.0:
            raise SettingError(f"holdout_fraction must be in (0, 1), got {self.holdout_fraction}; the paper uses 0.2")
        if self.rollout_workers < 0:
            raise SettingError(f"rollout_workers must be >= 0, got {self.rollout_workers}")

    def replace(self, **changes: Any) -> SearchConfig:
        """A copy with top-level fields changed, or nested ones as ``generator__entropy_weight=...``."""
        nested: dict[str, dict[str, Any]] = {}
        top: dict[str, Any] = {}
        for key, value in changes.items():
            part, _, name = key.partition("__")
            if name:
                nested.setdefault(part, {})[name] = value
            else:
                top[key] = value
        for part, values in nested.items():
            top[part] = dataclasses.replace(getattr(self, part), **values)
        return dataclasses.replace(self, **top)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, value: Any) -> SearchConfig:
        """The settings :meth:`to_dict` wrote; an unknown, missing or mistyped entry raises :class:`SettingError`
        naming it (``config.evaluator.hidden``), as does a value out of range."""
        try:
            data = dict(stored.mapping(value, "config"))
            parts = {
                name: part(**stored.dataclass_values(part, data.pop(name), f"config.{name}"))
                for name, part in _PARTS.items()
                if name in data
            }
            top = stored.dataclass_values(cls, data, "config")
        except stored.StoredValueError as exc:
            raise SettingError(f"search settings: {exc}") from None
        for name in ("budget_quantiles", "budgets_ms"):
            if top.get(name) is not None:
                top[name] = tuple(top[name])
        return cls(**top, **parts)


_PARTS: dict[str, type] = {  # SearchConfig's nested settings, by field name
    "evaluator": EvaluatorConfig,
    "generator": GeneratorConfig,
    "surrogate": SurrogateConfig,
    "inference": InferenceConfig,
}
