"""Pricing and labelling candidate action rows quickly, without changing a single value.

Inference and its refinement (:mod:`nag.search.refine`) ask the latency predictor and the accuracy source
about thousands of candidates per budget. Going through architecture objects costs a parse per candidate
(about 40 us for ofa-mbv3), so :class:`CandidateScorer` takes two exact shortcuts when they apply:

- **Latency as an additive form of the decisions.** A block table's sum and the additive predictor are, for a
  staged space, ``c + sum over used slots of w[slot, kernel, expand]``. The scorer *measures* ``c`` and ``w``
  by asking the predictor about probe architectures (each slot's choices changed one at a time on the
  deepest network; each stage's depth lowered), then checks the form against the predictor on random
  architectures. A calibrated table (:class:`nag.latency.SummedLatencyPredictor`) is measured through its
  uncalibrated sum and finished by its calibration's piecewise-linear map, then checked the same way. Only
  when every check agrees to 1e-9 relative is the form used: a predictor that is not additive (a learned
  model, say) is always asked itself.
- **Accuracy through encodings.** A source that implements :class:`nag.accuracy.EncodedAccuracySource` is
  given the space's encoding of the rows directly (when the layout reproduces ``space.encode`` exactly).

Either way the values are the predictor's and the source's own; the tests compare them row by row. One
further shortcut is not exact, and is only for ranking: :meth:`CandidateScorer.around` labels a row's
neighbours through a :class:`nag.accuracy.LocalAccuracySource`'s neighbourhood (equal up to float rounding).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from nag.accuracy import AccuracySource, EncodedAccuracySource, LocalAccuracySource
from nag.errors import NagError
from nag.latency import LatencyPredictor, PiecewiseLinear, SummedLatencyPredictor
from nag.search.layout import StagedLayout
from nag.space import SearchSpace

__all__ = ["AdditiveForm", "CandidateScorer"]

_CHECK_SAMPLES = 64
_RELATIVE_TOLERANCE = 1e-9


@dataclass(frozen=True, eq=False)
class AdditiveForm:
    """``latency(actions) = output(constant + sum over used slots of costs[slot, kernel index, expand index])``."""

    layout: StagedLayout
    constant: float  # ms: the fixed blocks and the slots every depth uses, at their first choices
    costs: np.ndarray  # (slots, kernels, expands) ms, relative to the constant's reference choices
    output: PiecewiseLinear | None = None  # the map that finishes the sum (a table's calibration); None: the sum itself

    @classmethod
    def probe(cls, layout: StagedLayout, space: SearchSpace[Any], latency: LatencyPredictor) -> AdditiveForm | None:
        """The additive form of ``latency`` over ``layout``'s decisions, or None when it has none (checked)."""
        summed = latency.summed() if isinstance(latency, SummedLatencyPredictor) else None
        inner, output = summed if summed is not None else (latency, None)
        try:
            form = replace(cls._measure(layout, space, inner), output=output)
            samples = layout.archs_to_actions([space.sample(random.Random(seed)) for seed in range(_CHECK_SAMPLES)])
            expected = np.asarray(latency.predict_ms(layout.actions_to_archs(space, samples)), dtype=np.float64)
        except NagError:
            return None  # e.g. a block missing from a table: the predictor itself will say so for a real candidate
        found = form(samples)
        if not np.all(np.abs(found - expected) <= _RELATIVE_TOLERANCE * np.maximum(1.0, np.abs(expected))):
            return None
        return form

    @classmethod
    def _measure(cls, layout: StagedLayout, space: SearchSpace[Any], latency: LatencyPredictor) -> AdditiveForm:
        n_k, n_e = len(layout.kernel_choices), len(layout.expand_choices)
        deepest = np.zeros(layout.num_steps, dtype=np.int64)
        deepest[[layout.depth_step(s) for s in range(layout.num_stages)]] = len(layout.depth_choices) - 1
        probes = [deepest]
        for stage in range(layout.num_stages):
            for layer in range(layout.slots_per_stage):
                for k in range(n_k):
                    for e in range(n_e):
                        row = deepest.copy()
                        row[layout.slot_step(stage, layer, "kernel")] = k
                        row[layout.slot_step(stage, layer, "expand")] = e
                        probes.append(row)
        for stage in range(layout.num_stages):
            for depth_index in range(len(layout.depth_choices) - 1):
                row = deepest.copy()
                row[layout.depth_step(stage)] = depth_index
                probes.append(row)
        actions = layout.canonical_actions(np.stack(probes))
        values = np.asarray(latency.predict_ms(layout.actions_to_archs(space, actions)), dtype=np.float64)
        base, slot_values = values[0], values[1 : 1 + layout.num_slots * n_k * n_e]
        costs = slot_values.reshape(layout.num_slots, n_k, n_e) - base  # relative to the slot's first choices
        depth_values = values[1 + layout.num_slots * n_k * n_e :].reshape(layout.num_stages, -1)
        constant = base
        for stage in range(layout.num_stages):
            # the first choices' cost of the slots a shallower depth drops: differences of successive depths
            levels = [*depth_values[stage], base]
            for index in range(len(layout.depth_choices) - 1):
                dropped = range(layout.depth_choices[index], layout.depth_choices[index + 1])
                share = (levels[index + 1] - levels[index]) / len(dropped)
                for layer in dropped:
                    costs[stage * layout.slots_per_stage + layer] += share
                    constant -= share
        return cls(layout=layout, constant=float(constant), costs=costs)

    def __call__(self, actions: np.ndarray) -> np.ndarray:
        """Latency in ms of each canonical action row ``(n, T)``."""
        layout = self.layout
        values = self.costs[np.arange(layout.num_slots), actions[:, layout.kernel_steps], actions[:, layout.expand_steps]]
        sums = self.constant + (values * layout.slot_used(actions)).sum(axis=1)
        return sums if self.output is None else self.output(sums)


class CandidateScorer:
    """Latency (ms) and accuracy (fraction) of canonical action rows: the predictor's and the source's values."""

    def __init__(
        self,
        space: SearchSpace[Any],
        layout: StagedLayout,
        latency: LatencyPredictor,
        accuracy: AccuracySource | None = None,
        *,
        form: AdditiveForm | bool | None = True,
    ) -> None:
        """``form``: the predictor's additive form if already probed (None: it has none), True: probe it now."""
        self.space, self.layout = space, layout
        self._latency, self._accuracy = latency, accuracy
        self._form = AdditiveForm.probe(layout, space, latency) if form is True else form or None
        self._encoded = (
            accuracy
            if isinstance(accuracy, EncodedAccuracySource) and layout.fast_encoding and accuracy.space == space.name
            else None
        )
        self._local = self._encoded if isinstance(self._encoded, LocalAccuracySource) else None
        self.latency_queries = 0  # rows priced so far
        self.accuracy_queries = 0  # rows labelled by the source so far

    @property
    def additive(self) -> bool:
        """True when latency comes from the predictor's measured additive form."""
        return self._form is not None

    @property
    def has_accuracy(self) -> bool:
        return self._accuracy is not None

    def latency(self, actions: np.ndarray) -> np.ndarray:
        self.latency_queries += len(actions)
        if self._form is not None:
            return self._form(actions)
        return np.asarray(self._latency.predict_ms(self.layout.actions_to_archs(self.space, actions)), dtype=np.float64)

    def accuracy(self, actions: np.ndarray) -> np.ndarray:
        if self._accuracy is None:
            raise NagError("this scorer has no accuracy source; pass accuracy= to ask it")
        self.accuracy_queries += len(actions)
        if self._encoded is not None:
            return np.asarray(self._encoded.accuracy_encoded(self.layout.encode_actions_np(actions)), dtype=np.float64)
        return np.asarray(self._accuracy.accuracy(self.layout.actions_to_archs(self.space, actions)), dtype=np.float64)

    @property
    def local(self) -> bool:
        """True when :meth:`around` labels through the source's neighbourhood (values not bit-exact)."""
        return self._local is not None

    def around(self, row: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        """Accuracy of canonical rows near the canonical row ``row`` (its neighbours): through the source's
        neighbourhood when it has one (:class:`nag.accuracy.LocalAccuracySource`; values equal :meth:`accuracy`'s
        up to float rounding, for ranking), else :meth:`accuracy` itself. Counted as queries like it."""
        if self._local is None:
            return self.accuracy
        near = self._local.around(self.layout.encode_actions_np(row[None, :])[0])

        def label(actions: np.ndarray) -> np.ndarray:
            self.accuracy_queries += len(actions)
            return np.asarray(near.accuracy_encoded(self.layout.encode_actions_np(actions)), dtype=np.float64)

        return label
