"""A trained search: every part ``generate`` needs, and builders for fresh, seeded networks."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from nag.latency import LatencyPredictor
from nag.search.budgets import BudgetSet
from nag.search.config import SearchConfig
from nag.search.evaluator import Evaluator
from nag.search.generator import Generator
from nag.search.layout import StagedLayout
from nag.search.scoring import AdditiveForm
from nag.search.surrogate import AccuracySurrogate
from nag.space import SearchSpace

if TYPE_CHECKING:
    from nag.search.numpy_model import InferenceModel

__all__ = ["SearchModel", "new_evaluator", "new_generator", "new_surrogate"]


def new_evaluator(layout: StagedLayout, config: SearchConfig, *, seed: int) -> Evaluator:
    """An untrained evaluator, initialised from ``seed`` (the global torch RNG is left as it was)."""
    ec = config.evaluator
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Evaluator(layout.encoding_size, config.num_budgets, embedding_dim=ec.embedding_dim, hidden=ec.hidden)


def new_generator(layout: StagedLayout, config: SearchConfig, *, seed: int) -> Generator:
    """An untrained generator, initialised from ``seed`` (the global torch RNG is left as it was)."""
    gc = config.generator
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Generator(
            layout,
            config.num_budgets,
            hidden=gc.hidden,
            embedding_dim=gc.embedding_dim,
            mask_unused=gc.mask_unused,
            budget_input=gc.budget_input,
        )


def new_surrogate(layout: StagedLayout, config: SearchConfig, *, seed: int) -> AccuracySurrogate:
    """An untrained accuracy surrogate, initialised from ``seed`` (the global torch RNG is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return AccuracySurrogate(layout.encoding_size, hidden=config.surrogate.hidden)


@dataclass(frozen=True, eq=False)
class SearchModel:
    """The result of a search: networks in eval mode, the budgets they were trained for, and the predictors."""

    space: SearchSpace[Any]  # the search space
    layout: StagedLayout  # its decision sequence
    budgets: BudgetSet  # the K trained budgets and the outside-range policy
    evaluator: Evaluator | None  # R(arch | B); None for a generator trained on another reward (the bench's baselines)
    generator: Generator  # f(B)
    surrogate: AccuracySurrogate  # the accuracy estimate reported by generate
    latency: LatencyPredictor  # decides feasibility at inference
    config: SearchConfig  # the settings it was trained with

    @cached_property
    def latency_form(self) -> AdditiveForm | None:
        """The latency predictor's exact additive form over the decisions, or None (probed once)."""
        return AdditiveForm.probe(self.layout, self.space, self.latency)

    def inference_arrays(self) -> dict[str, np.ndarray]:
        """What inference needs of this model as named numpy arrays: ``inference.npz``'s content
        (:mod:`nag.search.numpy_model`)."""
        from nag.search.numpy_model import INFERENCE_FORMAT, form_arrays

        arrays: dict[str, np.ndarray] = {"format": np.asarray(INFERENCE_FORMAT, dtype=np.int64)}
        parts: tuple[tuple[str, torch.nn.Module | None], ...] = (
            ("generator", self.generator),
            ("evaluator", self.evaluator),
            ("surrogate", self.surrogate),
        )
        with torch.no_grad():
            for prefix, module in parts:
                if module is not None:
                    arrays.update(
                        {f"{prefix}.{name}": value.detach().float().numpy().copy() for name, value in module.state_dict().items()}
                    )
        return {**arrays, **form_arrays(self.latency_form)}

    @cached_property
    def inference(self) -> InferenceModel:
        """The model as inference runs it, in numpy (built once, through :meth:`inference_arrays`, exactly as a run
        directory's ``inference.npz`` is read)."""
        from nag.search.numpy_model import InferenceModel

        return InferenceModel.from_arrays(
            self.inference_arrays(),
            space=self.space,
            layout=self.layout,
            budgets=self.budgets,
            config=self.config,
            latency=self.latency,
        )
