"""Training a PNAG search: data split, evaluator (Eqn. 5), generator by REINFORCE (Eqn. 3-4), one trial.

Algorithm 1 of the paper, per trial:

1. the evaluator is fitted on the training split (80%) with the pairwise ranking loss over the K budgets,
   and its pairwise accuracy is measured per budget on the held-out split (20%);
2. the generator is trained by REINFORCE: every iteration embeds the K trained budgets, samples N
   architectures for each (one batch of K x N rollouts), scores them with the evaluator under their
   budget (the reward R(arch | B_k)), and ascends ``mean((R - baseline_k) * log pi) + lambda * mean(H)``,
   with a per-budget moving-average baseline by default (``baseline="none"`` is the paper's plain
   estimator, ``"batch"`` the mean reward of the budget's N samples). By default each budget's
   advantages are also divided by the standard deviation of its N rewards: the evaluator's scores have
   budget-dependent spreads (a budget near the bottom of the range scores most samples far below zero),
   and without this the budgets with the widest spread dominate the shared policy's gradient (on the
   synthetic problem the high budgets then collapse onto a mid-size architecture);
3. inference (Sec. 3.5) runs for every trained budget, and the mean accuracy estimate of its picks (0 for
   a budget with no feasible pick) is the trial's ``selection_score``.

The split, the latency predictor and the accuracy surrogate are shared by all trials (prepared once), so
trials that differ in seed or entropy weight are judged by the same yardstick. Everything is seeded.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from tqdm import tqdm

from nag.errors import SettingError
from nag.latency import LatencyPredictor
from nag.search.budgets import BudgetSet
from nag.search.config import SearchConfig
from nag.search.evaluator import Evaluator, RankingData, pairwise_accuracy, train_evaluator
from nag.search.generator import Generator
from nag.search.layout import StagedLayout
from nag.search.metrics import EvaluatorMetrics, GeneratorMetrics, TrialMetrics
from nag.search.model import SearchModel, new_evaluator, new_generator
from nag.search.optim import adam
from nag.search.surrogate import AccuracySurrogate
from nag.space import SearchSpace

__all__ = ["PreparedData", "RewardFn", "RolloutSource", "TrialOutcome", "evaluator_reward", "run_trial", "train_generator"]


# A reward for REINFORCE: raw actions ``(n, T)`` and their active mask -> rewards ``(n,)``, budget-major.
RewardFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class RolloutSource(Protocol):
    """Samples rollouts elsewhere (e.g. Ray workers): raw actions ``(K*N, T)`` and rewards ``(K*N,)``, budget-major."""

    def sample(self, generator_state: dict[str, torch.Tensor], iteration: int) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass(frozen=True, eq=False)
class PreparedData:
    """What every trial shares: the space, the split, the budgets, and the fitted predictors."""

    space: SearchSpace[Any]  # the search space
    layout: StagedLayout  # its decision sequence
    budgets: BudgetSet  # the K trained budgets
    train: RankingData  # training split (evaluator and surrogate fit)
    heldout: RankingData  # held-out split (pairwise accuracy, surrogate error)
    latency: LatencyPredictor  # feasibility at inference
    surrogate: AccuracySurrogate  # the accuracy estimate (fitted on the training split)
    notes: dict[str, Any] = field(default_factory=dict)  # data and fit reports for metrics.json
    surrogate_fit: Future[None] | None = None  # the surrogate's fit while it runs in the background (see ready)

    def ready(self) -> PreparedData:
        """This data with the surrogate fitted: waits for a fit running in the background (re-raising its
        error), and returns a copy without the pending fit (which a copy shipped to Ray could not carry)."""
        if self.surrogate_fit is None:
            return self
        self.surrogate_fit.result()
        return dataclasses.replace(self, surrogate_fit=None)


@dataclass(frozen=True, eq=False)
class TrialOutcome:
    """One trial's trained networks and its metrics."""

    seed: int  # the trial's seed (networks and sampling)
    entropy_weight: float  # the trial's lambda
    evaluator_state: dict[str, torch.Tensor]  # evaluator weights
    generator_state: dict[str, torch.Tensor]  # generator weights
    metrics: TrialMetrics  # evaluator, generator and selection metrics


def _advantages(
    rewards: torch.Tensor, baseline: torch.Tensor | None, config: SearchConfig
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Rewards ``(K, N)`` minus the per-budget baseline (divided by the budget's reward std when
    ``normalize_rewards``); returns the updated moving average."""
    gc = config.generator
    means = rewards.mean(1)
    scale = rewards.std(1, keepdim=True) + 1e-6 if gc.normalize_rewards and rewards.shape[1] > 1 else 1.0
    if gc.baseline == "none":
        return rewards / scale, None
    if gc.baseline == "batch":
        return (rewards - means.unsqueeze(1)) / scale, None
    current = means if baseline is None else baseline
    return (rewards - current.unsqueeze(1)) / scale, gc.baseline_decay * current + (1.0 - gc.baseline_decay) * means


def evaluator_reward(evaluator: Evaluator, space: SearchSpace[Any], layout: StagedLayout, budget_index: torch.Tensor) -> RewardFn:
    """PNAG's reward: R(arch | B_k) of the trained evaluator, for rollouts laid out budget-major by ``budget_index``."""
    with torch.no_grad():
        embeddings = evaluator.budget_embedding.trained(budget_index)

    @torch.no_grad()
    def reward(raw: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        return evaluator.score(layout.encode_any(space, torch.where(active, raw, 0).numpy()), embeddings)

    return reward


def train_generator(
    generator: Generator,
    evaluator: Evaluator | None,
    space: SearchSpace[Any],
    config: SearchConfig,
    *,
    seed: int,
    progress: bool = False,
    rollouts: RolloutSource | None = None,
    reward: RewardFn | None = None,
) -> list[dict[str, Any]]:
    """REINFORCE with entropy bonus (Eqn. 3-4); returns a history of mean reward per budget and entropy.

    Rollouts are sampled without gradients in one batch, in-process or by ``rollouts`` (e.g. Ray workers);
    the learner then scores the sampled actions teacher-forced to get the gradient. The reward is the
    evaluator's R(arch | B_k) unless ``reward`` is given (the baselines' rewards, e.g. MnasNet's, use it;
    ``evaluator`` may then be None). Deterministic for a given ``seed`` and initial networks.
    """
    gc, k = config.generator, config.num_budgets
    sampler = torch.Generator().manual_seed(seed)
    optimiser = adam(generator.parameters(), lr=gc.lr)
    budget_index = torch.arange(k).repeat_interleave(gc.archs_per_budget)
    if reward is None:
        if evaluator is None:
            raise SettingError("train_generator needs an evaluator or a reward function")
        reward = evaluator_reward(evaluator, space, generator.layout, budget_index)
    baseline: torch.Tensor | None = None
    history: list[dict[str, Any]] = []
    every = max(1, gc.iterations // 50)
    generator.train()
    for iteration in tqdm(range(gc.iterations), desc="generator", disable=not progress, leave=False):
        embeddings = generator.budget_embedding.trained(budget_index)
        if rollouts is None:
            raw, rollout = generator.sample_rollout(embeddings, generator=sampler)
            rewards = reward(raw, generator.active(raw))
        else:
            raw_array, reward_array = rollouts.sample({n: p.detach() for n, p in generator.state_dict().items()}, iteration)
            raw, rewards = torch.as_tensor(raw_array), torch.as_tensor(reward_array, dtype=torch.float32)
            rollout = generator(embeddings, raw)
        advantage, baseline = _advantages(rewards.view(k, -1), baseline, config)
        loss = -(advantage.reshape(-1) * rollout.log_prob).mean() - gc.entropy_weight * rollout.entropy.mean()
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(generator.parameters(), gc.grad_clip)
        optimiser.step()
        if iteration % every == 0 or iteration == gc.iterations - 1:
            history.append(
                {
                    "iteration": iteration,
                    "mean_reward": [round(float(v), 4) for v in rewards.view(k, -1).mean(1)],
                    "entropy": round(float(rollout.entropy.detach().mean()), 4),
                }
            )
    generator.eval()
    return history


def run_trial(
    prepared: PreparedData, config: SearchConfig, *, progress: bool = False, background: Executor | None = None
) -> TrialOutcome:
    """Fit an evaluator and a generator with ``config.seed`` and ``config.generator.entropy_weight``.

    With ``config.rollout_workers > 0`` the generator's rollouts are sampled by that many Ray actors
    (:class:`nag.search.rollouts.RayRolloutPool`; Ray must be initialised). With ``background`` (a thread
    pool), the evaluator's held-out pairwise accuracy is measured there while the generator trains; the
    result is the same either way.
    """
    from nag.search.inference import infer

    started = time.perf_counter()
    budgets_ms = torch.tensor(prepared.budgets.budgets_ms, dtype=torch.float64)
    evaluator = new_evaluator(prepared.layout, config, seed=config.seed)
    losses = train_evaluator(evaluator, prepared.train, budgets_ms, config.evaluator, seed=config.seed, progress=progress)
    measure = functools.partial(
        pairwise_accuracy, evaluator, prepared.heldout, budgets_ms, accuracy_condition=config.evaluator.accuracy_condition
    )
    heldout = None if background is None else background.submit(measure)  # read-only use of the trained evaluator
    heldout_accuracy = measure() if heldout is None else []
    evaluator_seconds = time.perf_counter() - started
    generator = new_generator(prepared.layout, config, seed=config.seed + 1)
    pool = None
    if config.rollout_workers > 0:
        from nag.search.rollouts import RayRolloutPool

        pool = RayRolloutPool(
            config.rollout_workers,
            layout=prepared.layout,
            config=config,
            evaluator_state=evaluator.state_dict(),
            seed=config.seed + 2,
        )
    try:
        history = train_generator(
            generator, evaluator, prepared.space, config, seed=config.seed + 2, progress=progress, rollouts=pool
        )
    finally:
        if pool is not None:
            pool.close()
    if heldout is not None:
        heldout_accuracy = heldout.result()
    prepared = prepared.ready()
    model = SearchModel(
        space=prepared.space,
        layout=prepared.layout,
        budgets=prepared.budgets,
        evaluator=evaluator,
        generator=generator,
        surrogate=prepared.surrogate,
        latency=prepared.latency,
        config=config,
    )
    picks = infer(model, list(prepared.budgets.budgets_ms), seed=config.seed)
    score = float(np.mean([p.accuracy if p.feasible else 0.0 for p in picks]))
    metrics = TrialMetrics(
        seed=config.seed,
        entropy_weight=config.generator.entropy_weight,
        evaluator=EvaluatorMetrics(
            heldout_pairwise_accuracy=dict(
                zip([f"{b:.4f}" for b in prepared.budgets.budgets_ms], map(float, heldout_accuracy), strict=True)
            ),
            heldout_pairwise_accuracy_mean=float(np.nanmean(heldout_accuracy)),
            loss_every_100_steps=[float(v) for v in losses],
            seconds=round(evaluator_seconds, 2),
        ),
        generator=GeneratorMetrics(history=history, seconds=round(time.perf_counter() - started - evaluator_seconds, 2)),
        picks_at_trained_budgets=list(picks),
        selection_score=score,
    )
    return TrialOutcome(config.seed, config.generator.entropy_weight, evaluator.state_dict(), generator.state_dict(), metrics)
