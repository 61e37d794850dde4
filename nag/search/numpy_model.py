"""A trained search in plain numpy: what inference runs on, loadable without torch.

A run directory's ``inference.npz`` (:mod:`nag.search.rundir`) holds the three networks' weights as float32
arrays under their torch state-dict names (``generator.*``, ``evaluator.*``, ``surrogate.*``) and, when the
latency predictor has one, its additive form (``latency_form.*``, float64; :class:`nag.search.scoring.AdditiveForm`)::

    format                         () int: INFERENCE_FORMAT
    generator.<name>               the generator's weights (nag.search.policy.GENERATOR_WEIGHTS)
    evaluator.<name>               the evaluator's (EVALUATOR_WEIGHTS); absent for a model trained without one
    surrogate.<name>               the accuracy surrogate's (SURROGATE_WEIGHTS)
    latency_form.constant          () ms
    latency_form.costs             (slots, kernels, expands) ms
    latency_form.knots             (m, 2) the map that finishes the sum (a calibration; absent: the sum itself)

:meth:`InferenceModel.from_arrays` checks every name, shape and value against the run's settings, builds
the numpy networks and checks what they compute on sampled architectures (the surrogate's estimates near
[0, 1], the evaluator's scores finite: damaged weights fail this, trained ones pass it by far); a
:class:`~nag.search.model.SearchModel` in memory goes through the same function
(:attr:`SearchModel.inference`), so a run answers the same whether it was loaded from ``inference.npz`` or
from its torch files. The surrogate and the evaluator are small MLPs evaluated here in float32 as torch
evaluates them; their values agree with the torch modules' to float32 rounding (checked in the tests), not
bit for bit (the two libraries sum a product's terms in different orders).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nag.latency import LatencyPredictor, PiecewiseLinear
from nag.search.budgets import BudgetPlacement, BudgetSet, mix_embeddings
from nag.search.config import SearchConfig
from nag.search.layout import StagedLayout
from nag.search.policy import GENERATOR_WEIGHTS, NumpyPolicy
from nag.search.scoring import AdditiveForm
from nag.space import SearchSpace

__all__ = [
    "EVALUATOR_WEIGHTS",
    "INFERENCE_FORMAT",
    "SURROGATE_WEIGHTS",
    "InferenceModel",
    "NumpyEvaluator",
    "NumpyMLP",
    "expected_shapes",
    "form_arrays",
    "form_from_arrays",
]

INFERENCE_FORMAT = 2  # version of inference.npz's content (2: latency_form.knots may be present)
READABLE_FORMATS = (1, 2)  # a format-1 file is a format-2 file without knots
SURROGATE_WEIGHTS = ("net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias", "net.4.weight", "net.4.bias", "mean", "scale")
EVALUATOR_WEIGHTS = (
    "budget_embedding.table.weight",
    "fc1.weight",
    "fc1.bias",
    "fc2.weight",
    "fc2.bias",
    "fc3.weight",
    "fc3.bias",
)
_FORM = ("latency_form.constant", "latency_form.costs")
_KNOTS = "latency_form.knots"  # optional beside _FORM
_OUTPUT_CHECKS = 16  # sampled architectures on which loaded networks are checked
_ESTIMATE_SLACK = 1.0  # how far outside [0, 1] a surrogate estimate of a sampled architecture may fall before it is damage


def expected_shapes(layout: StagedLayout, config: SearchConfig, *, evaluator: bool = True) -> dict[str, tuple[int, ...]]:
    """The shape of every weight array a model of ``config`` over ``layout`` has, by ``inference.npz`` name."""
    k, steps, encoding = config.num_budgets, layout.num_steps, layout.encoding_size
    g, e, s = config.generator, config.evaluator, config.surrogate
    inputs = g.embedding_dim * (2 if g.budget_input == "every" else 1)
    shapes: dict[str, tuple[int, ...]] = {
        "generator.budget_embedding.table.weight": (k, g.embedding_dim),
        "generator.tokens.weight": (layout.skip_token + 1, g.embedding_dim),
        "generator.lstm.weight_ih_l0": (4 * g.hidden, inputs),
        "generator.lstm.weight_hh_l0": (4 * g.hidden, g.hidden),
        "generator.lstm.bias_ih_l0": (4 * g.hidden,),
        "generator.lstm.bias_hh_l0": (4 * g.hidden,),
        "generator.head_weight": (steps, int(layout.choice_counts.max()), g.hidden),
        "generator.head_bias": (steps, int(layout.choice_counts.max())),
        "surrogate.net.0.weight": (s.hidden, encoding),
        "surrogate.net.0.bias": (s.hidden,),
        "surrogate.net.2.weight": (s.hidden, s.hidden),
        "surrogate.net.2.bias": (s.hidden,),
        "surrogate.net.4.weight": (1, s.hidden),
        "surrogate.net.4.bias": (1,),
        "surrogate.mean": (),
        "surrogate.scale": (),
    }
    if evaluator:
        shapes.update(
            {
                "evaluator.budget_embedding.table.weight": (k, e.embedding_dim),
                "evaluator.fc1.weight": (e.hidden, encoding + e.embedding_dim),
                "evaluator.fc1.bias": (e.hidden,),
                "evaluator.fc2.weight": (e.hidden, e.hidden),
                "evaluator.fc2.bias": (e.hidden,),
                "evaluator.fc3.weight": (1, e.hidden),
                "evaluator.fc3.bias": (1,),
            }
        )
    return shapes


@dataclass(frozen=True, eq=False)
class NumpyMLP:
    """Linear layers with ReLU between them, as torch's ``nn.Linear`` computes them (``x W^T + b``), float32."""

    layers: tuple[tuple[np.ndarray, np.ndarray], ...]  # (weight (out, in), bias (out,)) per layer

    def __call__(self, inputs: np.ndarray) -> np.ndarray:
        """``(n, in)`` -> ``(n, out)`` of the last layer."""
        x = np.asarray(inputs, dtype=np.float32)
        for index, (weight, bias) in enumerate(self.layers):
            x = x @ weight.T
            x += bias
            if index < len(self.layers) - 1:
                np.maximum(x, 0.0, out=x)
        return x


@dataclass(frozen=True, eq=False)
class NumpySurrogate:
    """The accuracy surrogate (:class:`nag.search.surrogate.AccuracySurrogate`): ``mean + scale * MLP(encoding)``."""

    net: NumpyMLP  # encoding -> hidden -> hidden -> 1
    mean: np.ndarray  # () float32: mean training accuracy
    scale: np.ndarray  # () float32: standard deviation of the training accuracies

    def __call__(self, encodings: np.ndarray) -> np.ndarray:
        """Accuracy estimates ``(n,)`` float32 of encodings ``(n, E)``."""
        return self.mean + self.scale * self.net(encodings)[:, 0]


@dataclass(frozen=True, eq=False)
class NumpyEvaluator:
    """The evaluator R(arch | B) (:class:`nag.search.evaluator.Evaluator`) over the concatenation [encoding, budget]."""

    budget_table: np.ndarray  # (K, D) the evaluator's own trained budget embeddings
    net: NumpyMLP  # [encoding, embedding] -> hidden -> hidden -> 1

    def score(self, encodings: np.ndarray, placement: BudgetPlacement) -> np.ndarray:
        """R ``(n,)`` float32 of each encoding ``(n, E)`` under one placed budget."""
        embedding = mix_embeddings(self.budget_table, [placement])
        inputs = np.concatenate([np.asarray(encodings, dtype=np.float32), np.repeat(embedding, len(encodings), axis=0)], axis=1)
        return self.net(inputs)[:, 0]


def _mlp(arrays: Mapping[str, np.ndarray], prefix: str, names: Sequence[str]) -> NumpyMLP:
    return NumpyMLP(tuple((arrays[f"{prefix}{w}"], arrays[f"{prefix}{b}"]) for w, b in zip(names[::2], names[1::2], strict=True)))


def _check(arrays: Mapping[str, np.ndarray], shapes: Mapping[str, tuple[int, ...]], optional: Sequence[str]) -> None:
    """Raise ValueError naming the first entry that is missing, unexpected, misshapen or not finite."""
    extra = sorted(set(arrays) - set(shapes) - {"format", *optional})
    missing = sorted(set(shapes) - set(arrays))
    if missing or extra:
        raise ValueError(f"entries missing: {missing or 'none'}; unexpected: {extra or 'none'}")
    for name, shape in shapes.items():
        value = arrays[name]
        if value.shape != shape or value.dtype != np.float32:
            raise ValueError(f"{name} is {value.dtype}{list(value.shape)}, expected float32{list(shape)}")
        if not np.isfinite(value).all():
            raise ValueError(f"{name} holds values that are not finite")


@dataclass(frozen=True, eq=False)
class InferenceModel:
    """A trained search as inference needs it: numpy networks, the budgets, the latency predictor and its form."""

    space: SearchSpace[Any]  # the search space
    layout: StagedLayout  # its decision sequence
    budgets: BudgetSet  # the K trained budgets and the outside-range policy
    config: SearchConfig  # the settings it was trained with (inference defaults among them)
    policy: NumpyPolicy  # the generator's policy
    surrogate: NumpySurrogate  # the accuracy estimate reported by generate
    evaluator: NumpyEvaluator | None  # R(arch | B); None for a generator trained on another reward
    latency: LatencyPredictor  # decides feasibility
    latency_form: AdditiveForm | None  # the predictor's exact additive form over the decisions, or None (it has none)

    @classmethod
    def from_arrays(
        cls,
        arrays: Mapping[str, np.ndarray],
        *,
        space: SearchSpace[Any],
        layout: StagedLayout,
        budgets: BudgetSet,
        config: SearchConfig,
        latency: LatencyPredictor,
    ) -> InferenceModel:
        """Build from ``inference.npz``'s arrays (see the module docstring); raises ValueError naming a bad entry."""
        fmt = arrays.get("format")
        if fmt is None or fmt.shape != () or fmt.dtype.kind not in "iu" or int(fmt) not in READABLE_FORMATS:
            raise ValueError(
                f"format is {None if fmt is None else fmt.tolist()!r}; this version reads {', '.join(map(str, READABLE_FORMATS))}"
            )
        has_evaluator = any(name.startswith("evaluator.") for name in arrays)
        _check(arrays, expected_shapes(layout, config, evaluator=has_evaluator), (*_FORM, _KNOTS))
        g = config.generator
        policy = NumpyPolicy.from_weights(
            layout,
            {name: arrays[f"generator.{name}"] for name in GENERATOR_WEIGHTS},
            mask_unused=g.mask_unused,
            budget_every_step=g.budget_input == "every",
        )
        surrogate = NumpySurrogate(
            _mlp(arrays, "surrogate.", SURROGATE_WEIGHTS[:6]), arrays["surrogate.mean"], arrays["surrogate.scale"]
        )
        evaluator = (
            NumpyEvaluator(arrays["evaluator.budget_embedding.table.weight"], _mlp(arrays, "evaluator.", EVALUATOR_WEIGHTS[1:]))
            if has_evaluator
            else None
        )
        model = cls(space, layout, budgets, config, policy, surrogate, evaluator, latency, form_from_arrays(arrays, layout))
        model._check_outputs()
        return model

    def _check_outputs(self) -> None:
        """Raise ValueError when the networks cannot be a trained search's: the surrogate's standardisation is not
        that of accuracy fractions, or its estimates for sampled architectures are far outside [0, 1] or the
        evaluator's scores are not finite (what damaged weights give; trained ones are far inside these bounds)."""
        mean, scale = float(self.surrogate.mean), float(self.surrogate.scale)
        if not 0.0 <= mean <= 1.0 or not 0.0 < scale <= 1.0:
            raise ValueError(f"surrogate.mean {mean!r} and surrogate.scale {scale!r} must be accuracy fractions")
        layout, space = self.layout, self.space
        encodings = layout.encode_any_np(
            space, layout.archs_to_actions([space.sample(random.Random(seed)) for seed in range(_OUTPUT_CHECKS)])
        )
        estimates = self.surrogate(encodings)
        if not np.all((estimates >= -_ESTIMATE_SLACK) & (estimates <= 1.0 + _ESTIMATE_SLACK)):
            raise ValueError(
                f"the surrogate estimates {float(estimates.min())!r}..{float(estimates.max())!r} for sampled architectures"
            )
        if (
            self.evaluator is not None
            and not np.isfinite(self.evaluator.score(encodings, self.budgets.place(self.budgets.budgets_ms[0]))).all()
        ):
            raise ValueError("the evaluator scores sampled architectures as not finite")


def form_from_arrays(arrays: Mapping[str, np.ndarray], layout: StagedLayout) -> AdditiveForm | None:
    """The additive form stored in ``inference.npz``'s ``arrays`` (None when it holds none); raises ValueError
    naming a damaged entry."""
    present = [name in arrays for name in (*_FORM, _KNOTS)]
    if not any(present):
        return None
    constant, costs = (arrays.get(name) for name in _FORM)
    shape = (layout.num_slots, len(layout.kernel_choices), len(layout.expand_choices))
    if constant is None or costs is None or constant.shape != () or costs.shape != shape:
        raise ValueError(f"latency_form needs a constant () and costs {list(shape)}")
    if constant.dtype != np.float64 or costs.dtype != np.float64 or not np.isfinite(costs).all() or not np.isfinite(constant):
        raise ValueError("latency_form holds values that are not finite float64 milliseconds")
    knots = arrays.get(_KNOTS)
    output = None if knots is None else PiecewiseLinear.from_array(knots)  # ValueError names what is wrong
    return AdditiveForm(layout=layout, constant=float(constant), costs=costs, output=output)


def form_arrays(form: AdditiveForm | None) -> dict[str, np.ndarray]:
    """``inference.npz``'s entries of an additive form (none for None)."""
    if form is None:
        return {}
    arrays = {
        "latency_form.constant": np.asarray(form.constant, dtype=np.float64),
        "latency_form.costs": form.costs.astype(np.float64),
    }
    if form.output is not None:
        arrays[_KNOTS] = form.output.to_array()
    return arrays
