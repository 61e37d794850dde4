"""A latency predictor fitted from whole-network measurements alone: an additive per-block model.

A latency lookup table prices a network as the sum of its blocks' latencies. Without per-block
measurements, the same model can be fitted from whole networks by least squares::

    latency(arch) = constant + sum over used layers of  term[stage, first-or-later, kernel, expand]

``constant`` stands for the fixed blocks (stem, first block, head); each searchable layer adds the term of
its block (a stage's first layer has the stage's stride and input channels, the later ones do not, which
is exactly how OFA's tables key their blocks). Terms are fitted non-negative (Lawson-Hanson NNLS with a
tiny ridge, so the split of the constant between collinear terms is unique), as a table's entries
would be. The fit error is reported on held-out rows and in-sample (:class:`FitReport`).

Works for any staged space (``depth_choices``, ``kernel_choices``, ``expand_choices``, ``num_stages``,
``slots_per_stage``; architectures with ``depths``, ``kernels``, ``expands``), ``ofa-mbv3`` among them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from nag import stored
from nag.errors import NagError, SettingError
from nag.space import SearchSpace, get_space, staged

__all__ = ["AdditiveLatencyPredictor", "FitReport", "LatencyFitError", "nnls"]


class LatencyFitError(NagError, ValueError):
    """The rows cannot fit the additive model (too few, bad values, or a block no row uses)."""


@dataclass(frozen=True)
class FitReport:
    """How well the additive model reproduces the measured latencies."""

    rows: int  # rows of the final fit (all rows)
    heldout_rows: int  # rows held out to measure the error of a fit on the others
    rmse_ms: float  # root-mean-square error of the final model on all rows
    mape: float  # mean absolute error relative to the measurement (fraction), all rows
    max_abs_error_ms: float  # largest absolute error, all rows
    heldout_rmse_ms: float  # RMSE on the held-out rows of the model fitted without them
    heldout_mape: float  # relative error on those held-out rows (fraction)


def nnls(gram: np.ndarray, target: np.ndarray, *, max_iter: int = 1000) -> np.ndarray:
    """Lawson-Hanson non-negative least squares on normal equations: argmin_{x >= 0} x'Gx/2 - t'x.

    ``gram`` = A'A (positive definite: add a ridge), ``target`` = A'b.
    """
    n = gram.shape[0]
    passive = np.zeros(n, dtype=bool)
    x = np.zeros(n)
    tol = 1e-10 * max(1.0, float(np.abs(target).max()))
    for _ in range(max_iter):
        gradient = target - gram @ x
        free = ~passive & (gradient > tol)
        if not free.any():
            return x
        passive[np.argmax(np.where(free, gradient, -np.inf))] = True
        while True:
            trial = np.zeros(n)
            trial[passive] = np.linalg.solve(gram[np.ix_(passive, passive)], target[passive])
            if (trial[passive] > 0).all():
                x = trial
                break
            blocking = passive & (trial <= 0)
            alpha = np.min(x[blocking] / (x[blocking] - trial[blocking]))
            x = x + alpha * (trial - x)
            passive &= x > tol
            x[~passive] = 0.0
    raise LatencyFitError(f"non-negative least squares did not converge in {max_iter} iterations")


def _terms(space: SearchSpace[Any]) -> list[tuple[int, bool, int, int]]:
    stages = staged(space, "the additive latency model")
    return [
        (stage, first, k, e)
        for stage in range(stages.num_stages)
        for first in (True, False)
        for k in stages.kernel_choices
        for e in stages.expand_choices
    ]


def _term_name(term: tuple[int, bool, int, int]) -> str:
    stage, first, k, e = term
    return f"stage{stage + 1}/{'first' if first else 'later'}/k{k}/e{e}"


class AdditiveLatencyPredictor:
    """``constant_ms`` + one non-negative term per used block; satisfies :class:`nag.latency.LatencyPredictor`.

    Read-only after construction and thread-safe. :meth:`predict_ms` raises :class:`nag.errors.NagError`
    subclasses for architectures that do not parse.
    """

    kind: ClassVar[str] = "additive"

    def __init__(self, *, space: str, constant_ms: float, terms_ms: dict[str, float], report: FitReport | None = None) -> None:
        self._space = get_space(space)
        self._terms = _terms(self._space)
        names = [_term_name(t) for t in self._terms]
        if set(terms_ms) != set(names):
            missing, extra = sorted(set(names) - set(terms_ms)), sorted(set(terms_ms) - set(names))
            raise SettingError(f"additive latency model for {space!r}: terms missing {missing[:5]}, unknown {extra[:5]}")
        self.constant_ms = float(constant_ms)
        self.terms_ms = {name: float(terms_ms[name]) for name in names}
        self.report = report
        self._index = {t: i for i, t in enumerate(self._terms)}
        self._coefficients = np.asarray([self.terms_ms[n] for n in names])

    @property
    def space(self) -> str:
        return self._space.name

    def _features(self, archs: Sequence[Any]) -> np.ndarray:
        features = np.zeros((len(archs), len(self._terms)))
        slots = self._space.slots_per_stage  # type: ignore[attr-defined]
        for row, value in enumerate(archs):
            arch = self._space.parse(value)
            for stage, depth in enumerate(arch.depths):
                for layer in range(depth):
                    slot = stage * slots + layer
                    features[row, self._index[(stage, layer == 0, arch.kernels[slot], arch.expands[slot])]] += 1.0
        return features

    def predict_ms(self, archs: Sequence[Any]) -> list[float]:
        """Predicted latency (ms) of each architecture (canonical strings or parsed), in order."""
        return [float(v) for v in self.constant_ms + self._features(archs) @ self._coefficients]

    @classmethod
    def fit(
        cls,
        archs: Sequence[Any],
        latency_ms: Sequence[float],
        *,
        space: str = "ofa-mbv3",
        holdout_fraction: float = 0.2,
        seed: int = 0,
    ) -> AdditiveLatencyPredictor:
        """Fit on all rows; the report's held-out error comes from a fit without a random ``holdout_fraction``."""
        resolved = get_space(space)
        draft = cls(space=space, constant_ms=0.0, terms_ms={_term_name(t): 0.0 for t in _terms(resolved)})
        features, target = draft._features(archs), np.asarray(latency_ms, dtype=np.float64)
        if len(target) != len(features) or len(target) < 2 or not np.isfinite(target).all() or (target <= 0).any():
            raise LatencyFitError(
                f"need >= 2 rows of positive finite latencies, one per architecture; got {len(target)} for {len(features)} archs"
            )
        unused = [_term_name(t) for t, count in zip(draft._terms, features.sum(0), strict=True) if count == 0]
        if unused:
            raise LatencyFitError(
                f"no row uses the block(s) {', '.join(unused[:4])}{' ...' if len(unused) > 4 else ''} "
                f"({len(unused)} of {len(unused) + int((features.sum(0) > 0).sum())}); the additive model cannot price them: add rows that do"
            )
        order = np.random.default_rng(seed).permutation(len(target))
        n_held = round(len(target) * holdout_fraction) if len(target) >= 10 else 0
        held, train = order[:n_held], order[n_held:]
        held_rmse = held_mape = math.nan
        if n_held:
            partial = _solve(features[train], target[train])
            error = partial[0] + features[held] @ partial[1:] - target[held]
            held_rmse, held_mape = float(np.sqrt(np.mean(error**2))), float(np.mean(np.abs(error) / target[held]))
        solution = _solve(features, target)
        error = solution[0] + features @ solution[1:] - target
        report = FitReport(
            rows=len(target),
            heldout_rows=n_held,
            rmse_ms=float(np.sqrt(np.mean(error**2))),
            mape=float(np.mean(np.abs(error) / target)),
            max_abs_error_ms=float(np.abs(error).max()),
            heldout_rmse_ms=held_rmse,
            heldout_mape=held_mape,
        )
        names = [_term_name(t) for t in draft._terms]
        return cls(space=space, constant_ms=solution[0], terms_ms=dict(zip(names, solution[1:], strict=True)), report=report)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters; :meth:`from_dict` restores an equal predictor."""
        return {
            "kind": self.kind,
            "space": self.space,
            "constant_ms": self.constant_ms,
            "terms_ms": self.terms_ms,
            "report": None if self.report is None else dataclasses.asdict(self.report),
        }

    @classmethod
    def from_dict(cls, value: Any) -> AdditiveLatencyPredictor:
        """The model :meth:`to_dict` wrote; raises ValueError naming a missing or mistyped entry
        (:class:`nag.stored.StoredValueError`) or an impossible value (:class:`SettingError`)."""
        model = "the additive latency model"
        if stored.mapping(value, model).get("kind") != cls.kind:
            raise SettingError(f"not an additive latency model: kind {value.get('kind')!r}")
        report = value.get("report")
        constant = stored.number(stored.entry(value, "constant_ms", model), "constant_ms")
        terms = stored.numbers(stored.entry(value, "terms_ms", model), "terms_ms")
        bad = [(k, v) for k, v in [("constant_ms", constant), *terms.items()] if not (math.isfinite(v) and v >= 0.0)]
        if bad:
            raise SettingError(
                f"additive latency model: {bad[0][0]} is {bad[0][1]!r}; every term must be a finite number of ms >= 0"
            )
        return cls(
            space=stored.text(stored.entry(value, "space", model), "space"),
            constant_ms=constant,
            terms_ms=terms,
            report=None if report is None else FitReport(**stored.dataclass_values(FitReport, report, "report")),
        )


def _solve(features: np.ndarray, target: np.ndarray) -> np.ndarray:
    """[constant, terms...] >= 0 minimising the squared error, with a ridge of 1e-8 of the Gram diagonal's mean."""
    design = np.hstack([np.ones((len(features), 1)), features])
    gram = design.T @ design
    gram += np.eye(len(gram)) * 1e-8 * float(np.mean(np.diag(gram)))
    return nnls(gram, design.T @ target)
