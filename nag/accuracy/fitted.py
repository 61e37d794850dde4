"""An accuracy source fitted on (architecture, top-1) pairs: RBF kernel ridge regression on ``space.encode``.

Model (chosen by 5-fold cross-fitted error on the DyNAS-T rows against ridge on the one-hot encoding,
ridge with pairwise within-stage features and an MLP ensemble; figures in
``nag/accuracy/data/dynast-ofa-mbv3-w1.0/FIT.md``)::

    accuracy(a) = clip(offset + sum_i dual_i * exp(-gamma * |x(a) - x(s_i)|^2), 0, 1)

where ``x`` is the space's encoding, ``s_i`` the distinct training architectures (the *support*; repeats of
one architecture are averaged first), ``offset`` the mean training accuracy and ``dual = (K + alpha I)^-1 (y -
offset)``. Far from every training architecture the prediction returns to ``offset``, so it cannot run
away; the clip to [0, 1] only keeps an impossible value out, and is not the training range, which would
flatten the ranking of the best networks, where a search must be right.

Accuracies are fractions in [0, 1]; percent is refused with a message saying to divide by 100. Prediction
is plain numpy (no torch): about 0.3 ms per 100 parsed architectures with the 2,162 DyNAS-T rows.
Instances are read-only after construction and safe to share between threads.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from nag.accuracy.kernel_moves import KernelMoves, Neighbourhood
from nag.errors import ArchitectureError, NagError, SettingError, UnknownNameError
from nag.space import SearchSpace, StagedSpace, get_space

__all__ = ["CrossFitReport", "FittedAccuracyPredictor", "FittedModelError", "FittingDataError", "NearAccuracy", "cross_fit_folds"]

KIND = "fitted"
MODEL = "rbf-kernel-ridge"
MIN_ROWS = 20
DEFAULT_GAMMA = 0.01  # per unit of squared one-hot distance (2 per differing slot choice pair); measured best 0.01-0.02
DEFAULT_ALPHA = 0.01  # ridge on the kernel; measured best (0.1 costs 0.02 points of RMSE)
_ENCODING_CHECK_SAMPLES = 16
# the entries of to_arrays
_ARRAYS = {"kind", "model", "space", "gamma", "alpha", "offset", "provenance", "train_range", "support", "active", "dual"}
_ROUNDING = 1e-12  # how far a mean may fall outside the range of equal values it averages (float rounding)


class FittingDataError(NagError, ValueError):
    """The rows given to fit a predictor are unusable: too few, unequal lengths, or accuracy not a fraction."""


class FittedModelError(NagError, ValueError):
    """A stored fitted predictor (``to_dict`` output) is malformed."""


@dataclass(frozen=True)
class CrossFitReport:
    """Cross-fitted error of the predictor: each architecture predicted by a fit that did not see it."""

    rmse_points: float  # root mean squared error, percent points of top-1
    mae_points: float  # mean absolute error, percent points of top-1
    kendall_tau: float  # rank agreement (tau-b) of predicted and true accuracy
    spearman: float  # Spearman rank correlation of predicted and true accuracy
    top_decile_rmse_points: float  # RMSE (points) over the architectures in the top 10% by true accuracy
    n: int  # distinct architectures (repeats averaged)
    folds: int  # number of folds

    @classmethod
    def of(cls, predicted: np.ndarray, truth: np.ndarray, *, folds: int) -> CrossFitReport:
        """The figures of cross-fitted ``predicted`` against ``truth`` (both top-1 fractions)."""
        from scipy.stats import kendalltau, spearmanr

        error = (predicted - truth) * 100.0
        top = truth >= np.quantile(truth, 0.9)
        return cls(
            rmse_points=float(np.sqrt(np.mean(error**2))),
            mae_points=float(np.mean(np.abs(error))),
            kendall_tau=float(kendalltau(predicted, truth)[0]),
            spearman=float(spearmanr(predicted, truth)[0]),
            top_decile_rmse_points=float(np.sqrt(np.mean(error[top] ** 2))),
            n=len(truth),
            folds=folds,
        )


def cross_fit_folds(n: int, *, folds: int, seed: int) -> np.ndarray:
    """Fold index (0..folds-1) of each of ``n`` rows: a seeded shuffle dealt round-robin, so folds differ by <= 1 row."""
    return np.random.default_rng(seed).permutation(n) % folds


class _Encoder:
    """The active (value 1) columns of ``space.encode`` of many architectures, as one ``(n, width)`` index array.

    Rows are padded with the spare column ``space.encoding_size``. The fitted kernel needs a 0/1 encoding
    (one-hot), so that a squared distance is a count of differing columns; another encoding raises
    :class:`SettingError`. For staged spaces (``ofa-mbv3``) the columns come from a lookup table on the
    kernels and expand ratios, used only when it reproduces ``space.encode`` on sampled architectures;
    otherwise each row calls ``space.encode``.
    """

    def __init__(self, space: SearchSpace[Any]) -> None:
        self._space = space
        self.size = space.encoding_size
        self._columns: np.ndarray | None = None
        if not isinstance(space, StagedSpace):
            return
        kernels, expands, slots = space.kernel_choices, space.expand_choices, space.num_stages * space.slots_per_stage
        if slots * (len(kernels) + len(expands)) != self.size:
            return
        columns = np.full((2 * slots, max(*kernels, *expands) + 1), self.size, dtype=np.intp)  # unused slot (0): spare
        for slot in range(slots):
            for index, value in enumerate(kernels):
                columns[slot, value] = slot * len(kernels) + index
            for index, value in enumerate(expands):
                columns[slots + slot, value] = slots * len(kernels) + slot * len(expands) + index
        samples = [space.sample(random.Random(seed)) for seed in range(_ENCODING_CHECK_SAMPLES)]
        reference = self._generic(samples)
        self._columns = columns
        try:
            fast = self(samples)
        except (AttributeError, IndexError, TypeError):
            fast = None
        if fast is None or not np.array_equal(self.dense(fast), self.dense(reference)):
            self._columns = None

    def dense(self, active: np.ndarray) -> np.ndarray:
        """The 0/1 encoding ``(n, encoding_size)`` of active-column rows."""
        out = np.zeros((active.shape[0], self.size + 1), dtype=np.uint8)
        out[np.arange(active.shape[0])[:, None], active] = 1
        return out[:, : self.size]

    def _generic(self, parsed: Sequence[Any]) -> np.ndarray:
        out = np.full((len(parsed), self.size), self.size, dtype=np.intp)
        for row, arch in enumerate(parsed):
            vector = self._space.encode(arch)
            bad = next((v for v in vector if v not in (0.0, 1.0)), None)
            if bad is not None:
                raise SettingError(
                    f"space {self._space.name!r} encodes a value {bad!r}; the fitted accuracy predictor needs a 0/1 (one-hot) encoding"
                )
            active = [column for column, v in enumerate(vector) if v]
            out[row, : len(active)] = active
        return out

    def __call__(self, parsed: Sequence[Any]) -> np.ndarray:
        if self._columns is None:
            return self._generic(parsed)
        codes = np.asarray([a.kernels + a.expands for a in parsed], dtype=np.intp).reshape(len(parsed), -1)
        return self._columns[np.arange(codes.shape[1]), codes]


@dataclass(frozen=True)
class _Support:
    """Training architectures as the kernel reads them: which support row has which column active."""

    table: np.ndarray  # (encoding_size + 1, n) uint8: 1 where support row j has column c; the spare row is 0
    counts: np.ndarray  # (n,) active columns per support row

    @classmethod
    def of(cls, active: np.ndarray, size: int) -> _Support:
        table = np.zeros((size + 1, active.shape[0]), dtype=np.uint8)
        table[active, np.arange(active.shape[0])[:, None]] = 1
        table[size] = 0
        return cls(table=table, counts=(active < size).sum(1))

    def matches(self, active: np.ndarray) -> np.ndarray:
        """``a.b`` of each row of ``active`` with each support row: shared active columns, ``(len(active), n)``.

        Summed column by column from the table, not by a matrix product: a threaded BLAS product ran 20 times
        slower on a busy 2-core machine.
        """
        size = self.table.shape[0] - 1
        found = np.zeros((active.shape[0], self.table.shape[1]), dtype=np.uint16 if size > 255 else np.uint8)
        for column in np.ascontiguousarray(active.T):
            found += self.table[column]
        return found

    def kernel(self, active: np.ndarray, gamma: float) -> np.ndarray:
        """RBF kernel between the rows of ``active`` and the support, ``(len(active), n)``.

        For 0/1 vectors ``|a - b|^2 = |a| + |b| - 2 a.b``, so ``exp(-gamma |a - b|^2)`` factors into
        ``exp(-gamma |a|) exp(-gamma |b|) exp(2 gamma a.b)``.
        """
        scale = np.exp(-gamma * (active < self.table.shape[0] - 1).sum(1))
        return scale[:, None] * np.exp((2.0 * gamma) * self.matches(active)) * np.exp(-gamma * self.counts)[None, :]

    def weighted_sum(self, active: np.ndarray, gamma: float, weights: np.ndarray) -> np.ndarray:
        """``kernel(active, gamma) @ weights`` without forming the kernel's outer scale factors."""
        scale = np.exp(-gamma * (active < self.table.shape[0] - 1).sum(1))
        return scale * (np.exp((2.0 * gamma) * self.matches(active)) @ (np.exp(-gamma * self.counts) * weights))


def _check_hyper(gamma: float, alpha: float) -> None:
    for name, value in (("gamma", gamma), ("alpha", alpha)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise SettingError(f"kernel ridge {name} must be a finite number > 0, got {value!r}; e.g. {DEFAULT_GAMMA}")


def _check_rows(space: SearchSpace[Any], archs: Sequence[Any], accuracy: Sequence[float]) -> tuple[list[str], np.ndarray]:
    """Distinct canonical architectures and their mean accuracy; raises :class:`FittingDataError`."""
    if isinstance(archs, (str, Mapping)) or len(archs) != len(accuracy):
        raise FittingDataError(
            f"give one accuracy per architecture: got {len(archs)} architectures and {len(accuracy)} accuracies"
        )
    for row, value in enumerate(accuracy):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) or not math.isfinite(value):
            raise FittingDataError(
                f"accuracy of row {row + 1} is {value!r}; every accuracy must be a finite top-1 fraction in [0, 1]"
            )
        if not 0.0 <= value <= 1.0:
            hint = "; it looks like percent: divide the accuracies by 100" if 1.0 < value <= 100.0 else ""
            raise FittingDataError(f"accuracy of row {row + 1} is {value!r}, outside [0, 1] (a top-1 fraction){hint}")
    sums: dict[str, list[float]] = {}
    for arch, value in zip(archs, accuracy, strict=True):
        sums.setdefault(space.format(space.parse(arch)), []).append(float(value))
    if len(sums) < MIN_ROWS:
        raise FittingDataError(
            f"fitting an accuracy predictor needs at least {MIN_ROWS} distinct architectures, got {len(sums)}; label more"
        )
    return list(sums), np.asarray([sum(v) / len(v) for v in sums.values()])


def _solve(active: np.ndarray, y: np.ndarray, *, size: int, gamma: float, alpha: float) -> tuple[float, np.ndarray]:
    offset = float(y.mean())
    gram = _Support.of(active, size).kernel(active, gamma)
    gram[np.diag_indices_from(gram)] += alpha
    factor = np.linalg.cholesky(gram)  # the Gram matrix of an RBF kernel plus alpha I is positive definite
    dual = np.linalg.solve(factor.T, np.linalg.solve(factor, y - offset))
    return offset, dual


def _stored_text(arrays: Mapping[str, np.ndarray], name: str) -> str:
    value = arrays[name]
    if value.shape != () or value.dtype.kind != "U":
        raise FittedModelError(f"fitted predictor arrays: {name} is {value.dtype}{list(value.shape)}, not a string")
    return str(value)


def _stored_number(arrays: Mapping[str, np.ndarray], name: str, shape: tuple[int, ...]) -> Any:
    """``arrays[name]``, finite float64 of ``shape``: a float for shape (), else the array."""
    value = arrays[name]
    if value.shape != shape or value.dtype != np.float64 or not np.isfinite(value).all():
        raise FittedModelError(
            f"fitted predictor arrays: {name} is {value.dtype}{list(value.shape)}"
            f"{'' if value.dtype.kind != 'f' or np.isfinite(value).all() else ' with values that are not finite'}, "
            f"expected finite float64{list(shape)}"
        )
    return float(value) if shape == () else value


def _stored_support(value: np.ndarray) -> list[str]:
    """The support's architecture strings: ASCII bytes, distinct (the fit averaged repeats)."""
    if value.ndim != 1 or value.dtype.kind != "S":
        raise FittedModelError(f"fitted predictor arrays: support is {value.dtype}{list(value.shape)}, expected bytes[n]")
    try:
        support = [item.decode("ascii") for item in value.tolist()]
    except UnicodeDecodeError as exc:
        raise FittedModelError(f"fitted predictor arrays: support holds bytes that are not ASCII ({exc})") from None
    if len(set(support)) != len(support):
        raise FittedModelError("fitted predictor arrays: support repeats an architecture (a fit holds each once)")
    return support


def _stored_active(value: np.ndarray, rows: int, size: int) -> np.ndarray:
    """The support's active encoding columns: integers in 0..size (size: a padding slot), one row per support
    architecture, no column twice in a row (a 0/1 encoding)."""
    if value.ndim != 2 or value.dtype.kind not in "iu" or len(value) != rows:
        raise FittedModelError(
            f"fitted predictor arrays: active is {value.dtype}{list(value.shape)}, expected integers[{rows}, columns]"
        )
    if value.size and (value.min() < 0 or value.max() > size):
        raise FittedModelError(f"fitted predictor arrays: active columns must lie in 0..{size}")
    active = value.astype(np.intp)
    ordered = np.sort(active, axis=1)
    if ((ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] < size)).any():
        raise FittedModelError("fitted predictor arrays: an active row names a column twice")
    return active


class NearAccuracy:
    """:meth:`FittedAccuracyPredictor.around`'s answer: the predictor's accuracy of encoded rows near one base."""

    def __init__(self, near: Neighbourhood, check: Callable[[np.ndarray], np.ndarray]) -> None:
        self._near, self._check = near, check

    def accuracy_encoded(self, encodings: np.ndarray) -> np.ndarray:
        """Top-1 of rows of ``space.encode`` (0/1), as the predictor's ``accuracy_encoded`` up to float rounding."""
        dense = self._check(np.asarray(encodings))
        return np.clip(self._near.values(dense), 0.0, 1.0) if len(dense) else np.zeros(0)


class FittedAccuracyPredictor:
    """Top-1 accuracy of any architecture of a space, from a fit on labelled ones; an :class:`nag.accuracy.AccuracySource`.

    Build it with :meth:`fit` or :meth:`from_dict`. ``accuracy`` raises the space's
    :class:`nag.errors.ArchitectureError` for an architecture that does not parse.
    """

    def __init__(
        self,
        *,
        space: str,
        support: Sequence[str],
        dual: Sequence[float] | np.ndarray,
        offset: float,
        gamma: float,
        alpha: float,
        train_range: tuple[float, float],
        provenance: str,
        active: np.ndarray | None = None,
    ) -> None:
        """``active``: the support's active encoding columns as :meth:`to_arrays` stored them, with ``support``
        already canonical (None: parse and encode ``support``)."""
        _check_hyper(gamma, alpha)
        self._space: SearchSpace[Any] = get_space(space)
        self._encode = _Encoder(self._space)
        self.support = tuple(support) if active is not None else tuple(self._space.format(self._space.parse(a)) for a in support)
        self.dual = np.asarray(dual, dtype=np.float64)
        if self.dual.shape != (len(self.support),) or not np.isfinite(self.dual).all() or not math.isfinite(offset):
            raise FittedModelError(
                "a fitted predictor needs one finite dual weight per support architecture and a finite offset; got "
                f"{self.dual.shape[0]} weights for {len(self.support)} architectures, offset {offset!r}"
            )
        self.offset, self.gamma, self.alpha = float(offset), float(gamma), float(alpha)
        self.train_range = (float(train_range[0]), float(train_range[1]))  # lowest and highest training accuracy
        self.provenance = provenance
        self._active = self._encode(self._space.parse_many(list(self.support))) if active is None else active
        self._support = _Support.of(self._active, self._encode.size)
        self._support_dense = self._support.table[:-1].astype(np.float32)  # (encoding_size, n) for accuracy_encoded
        size = self._encode.size
        self._exp_shared = np.exp((2.0 * self.gamma) * np.arange(size + 1, dtype=np.float64))  # by shared columns 0..size
        self._shared_index = np.intp  # gathers faster than a narrower index type
        self._weights = np.exp(-self.gamma * self._support.counts) * self.dual  # (n,) exp(-gamma |b|) dual

    @property
    def space(self) -> str:
        return self._space.name

    def accuracy(self, archs: Sequence[Any]) -> list[float]:
        if len(archs) == 0:
            return []
        return self._predict(self._encode([self._space.parse(a) for a in archs])).tolist()

    def _check_encoded(self, dense: np.ndarray) -> np.ndarray:
        if dense.ndim != 2 or dense.shape[1] != self._encode.size or not ((dense == 0) | (dense == 1)).all():
            raise SettingError(
                f"an encoded architecture is a row of {self.space}'s 0/1 encoding ({self._encode.size} columns); "
                f"got an array of shape {dense.shape}"
            )
        return dense

    def accuracy_encoded(self, encodings: np.ndarray) -> np.ndarray:
        """Top-1 of architectures given as rows of ``space.encode`` (0/1); the values ``accuracy`` gives."""
        dense = self._check_encoded(np.asarray(encodings))
        if len(dense) == 0:
            return np.zeros(0)
        # shared active columns with each support row as one product (exact: small integers in float32); callers
        # that ask often run with one BLAS thread (nag.search.api.compute_threads), where this beats the column loop
        # exp(2 gamma a.b) of those integers is read from a table of exp(2 gamma k): the same float64 values as
        # computing each, for a fraction of the time
        shared = (dense.astype(np.float32, copy=False) @ self._support_dense).astype(self._shared_index)
        scale = np.exp(-self.gamma * dense.sum(axis=1, dtype=np.float64))
        return np.clip(self.offset + scale * (self._exp_shared[shared] @ self._weights), 0.0, 1.0)

    def around(self, encoding: np.ndarray) -> NearAccuracy:
        """The predictor near one architecture given as a row of ``space.encode`` (0/1): its ``accuracy_encoded``
        of rows near it (one or a few choices changed) costs O(1) to O(changed columns) per row instead of a
        product over the whole support (:mod:`nag.accuracy.kernel_moves`). Values equal ``accuracy_encoded``'s up
        to float rounding."""
        base = self._check_encoded(np.asarray(encoding)[None, :] if np.ndim(encoding) == 1 else np.asarray(encoding))
        if base.shape[0] != 1:
            raise SettingError(f"around takes one encoded architecture (a row of {self._encode.size} columns), got {base.shape}")
        return NearAccuracy(self._moves.around(base[0]), self._check_encoded)

    @cached_property
    def _moves(self) -> KernelMoves:
        return KernelMoves(self._support.table, self._weights, self.gamma, self.offset)

    def _predict(self, active: np.ndarray) -> np.ndarray:
        predicted = self.offset + self._support.weighted_sum(active, self.gamma, self.dual)
        return np.clip(predicted, 0.0, 1.0)

    # -- fitting ----------------------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        archs: Sequence[Any],
        accuracy: Sequence[float],
        *,
        space: str = "ofa-mbv3",
        seed: int = 0,
        gamma: float = DEFAULT_GAMMA,
        alpha: float = DEFAULT_ALPHA,
        provenance: str = "",
    ) -> FittedAccuracyPredictor:
        """Fit on architectures (strings, OFA dicts or parsed) and their top-1 fractions; repeats are averaged.

        Raises :class:`FittingDataError` (fewer than 20 distinct architectures, percent, non-finite values),
        the space's :class:`nag.errors.ArchitectureError`, :class:`SettingError` for a bad gamma/alpha. The
        fit is exact and deterministic; ``seed`` is recorded in the provenance for callers that vary it.
        """
        _check_hyper(gamma, alpha)
        resolved = get_space(space)
        names, y = _check_rows(resolved, archs, accuracy)
        encoder = _Encoder(resolved)
        offset, dual = _solve(encoder(resolved.parse_many(names)), y, size=encoder.size, gamma=gamma, alpha=alpha)
        note = f"{MODEL} fitted on {len(names)} architectures (seed {seed})" + (f"; {provenance}" if provenance else "")
        return cls(
            space=resolved.name, support=names, dual=dual.tolist(), offset=offset, gamma=gamma, alpha=alpha,
            train_range=(float(y.min()), float(y.max())), provenance=note,
        )  # fmt: skip

    @staticmethod
    def cross_validate(
        archs: Sequence[Any],
        accuracy: Sequence[float],
        *,
        folds: int = 5,
        seed: int = 0,
        space: str = "ofa-mbv3",
        gamma: float = DEFAULT_GAMMA,
        alpha: float = DEFAULT_ALPHA,
    ) -> CrossFitReport:
        """K-fold cross-fitted error over the distinct architectures (repeats averaged before splitting)."""
        _check_hyper(gamma, alpha)
        resolved = get_space(space)
        names, y = _check_rows(resolved, archs, accuracy)
        if isinstance(folds, bool) or not isinstance(folds, int) or not 2 <= folds <= len(names):
            raise SettingError(f"folds must be an integer from 2 to the {len(names)} architectures, got {folds!r}; e.g. 5")
        encoder = _Encoder(resolved)
        active = encoder(resolved.parse_many(names))
        fold_of = cross_fit_folds(len(names), folds=folds, seed=seed)
        predicted = np.empty_like(y)
        for fold in range(folds):
            train, test = fold_of != fold, fold_of == fold
            offset, dual = _solve(active[train], y[train], size=encoder.size, gamma=gamma, alpha=alpha)
            support = _Support.of(active[train], encoder.size)
            predicted[test] = np.clip(offset + support.weighted_sum(active[test], gamma, dual), 0.0, 1.0)
        return CrossFitReport.of(predicted, y, folds=folds)

    # -- storage ----------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (plain strings and floats) that :meth:`from_dict` turns back into an equal predictor."""
        return {
            "kind": KIND,
            "model": MODEL,
            "space": self.space,
            "gamma": self.gamma,
            "alpha": self.alpha,
            "offset": self.offset,
            "train_range": list(self.train_range),
            "provenance": self.provenance,
            "support": list(self.support),
            "dual": self.dual.tolist(),
        }

    def to_arrays(self) -> dict[str, np.ndarray]:
        """:meth:`to_dict`'s content as numpy arrays (for ``np.savez``), with the support's encoding, so that
        :meth:`from_arrays` rebuilds an equal predictor without parsing an architecture."""
        value = self.to_dict()
        arrays = {name: np.asarray(value[name]) for name in ("kind", "model", "space", "gamma", "alpha", "offset", "provenance")}
        return {
            **arrays,
            "train_range": np.asarray(self.train_range, dtype=np.float64),
            "support": np.asarray([a.encode("ascii") for a in self.support], dtype=np.bytes_),  # a quarter of str_'s size
            "active": self._active.astype(np.min_scalar_type(self._encode.size)),  # column numbers up to the encoding size
            "dual": self.dual.copy(),
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> FittedAccuracyPredictor:
        """The predictor :meth:`to_arrays` wrote; raises :class:`FittedModelError` (a ValueError) naming the entry
        that is missing, of another shape or type, out of range, or inconsistent with the others (``active`` must
        be the support's encoding: checked on a sample of rows, which are parsed and encoded again)."""
        if set(arrays) != _ARRAYS:
            raise FittedModelError(
                f"fitted predictor arrays are {sorted(arrays)}; expected {sorted(_ARRAYS)} (write them with to_arrays)"
            )
        kind, model, space, provenance = (_stored_text(arrays, name) for name in ("kind", "model", "space", "provenance"))
        if kind != KIND or model != MODEL:
            raise FittedModelError(f"expected a fitted predictor of kind {KIND!r}, model {MODEL!r}; got {kind!r}, {model!r}")
        gamma, alpha, offset = (_stored_number(arrays, name, ()) for name in ("gamma", "alpha", "offset"))
        low, high = (float(v) for v in _stored_number(arrays, "train_range", (2,)))
        if not (0.0 <= low <= high <= 1.0 and low - _ROUNDING <= offset <= high + _ROUNDING):
            raise FittedModelError(
                f"fitted predictor arrays: train_range [{low!r}, {high!r}] and offset {offset!r} must be accuracy fractions "
                "with the offset (the mean training accuracy) inside the range"
            )
        support = _stored_support(arrays["support"])
        dual = _stored_number(arrays, "dual", (len(support),))
        try:
            size = get_space(space).encoding_size
        except UnknownNameError as exc:
            raise FittedModelError(f"fitted predictor arrays: space {space!r} is not known: {exc}") from None
        active = _stored_active(arrays["active"], len(support), size)
        predictor = cls(
            space=space, support=support, dual=dual, offset=offset, gamma=gamma, alpha=alpha, train_range=(low, high),
            provenance=provenance, active=active,
        )  # fmt: skip
        predictor._check_active()
        return predictor

    def _check_active(self) -> None:
        """Raise FittedModelError unless the stored ``active`` rows are this version's encoding of the support:
        the width everywhere, and the columns of a sample of rows (their architectures parsed and encoded)."""
        if self._active.shape[1] != self._encode([self._space.sample(random.Random(0))]).shape[1]:
            raise FittedModelError("fitted predictor arrays: the support's encoding does not match this version's encoder")
        if not self.support:
            return
        rows = np.unique(np.linspace(0, len(self.support) - 1, min(len(self.support), _ENCODING_CHECK_SAMPLES)).astype(np.intp))
        try:
            encoded = self._encode(self._space.parse_many([self.support[row] for row in rows]))
        except ArchitectureError as exc:
            raise FittedModelError(f"fitted predictor arrays: support holds an architecture that does not parse: {exc}") from None
        differs = np.nonzero((self._encode.dense(encoded) != self._encode.dense(self._active[rows])).any(axis=1))[0]
        if len(differs):
            row = int(rows[differs[0]])
            raise FittedModelError(
                f"fitted predictor arrays: active row {row} is not the encoding of support[{row}] {self.support[row]!r}"
            )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FittedAccuracyPredictor:
        """The predictor :meth:`to_dict` wrote; raises :class:`FittedModelError` for anything else."""
        if not isinstance(data, Mapping) or data.get("kind") != KIND or data.get("model") != MODEL:
            found = (data.get("kind"), data.get("model")) if isinstance(data, Mapping) else type(data).__name__
            raise FittedModelError(f"expected a fitted predictor dict with kind {KIND!r} and model {MODEL!r}, got {found!r}")
        expected = {"kind", "model", "space", "gamma", "alpha", "offset", "train_range", "provenance", "support", "dual"}
        if set(data) != expected:
            raise FittedModelError(
                f"fitted predictor dict has keys {sorted(data)}; expected {sorted(expected)} (write it with to_dict)"
            )
        try:
            low, high = (float(v) for v in data["train_range"])
            return cls(
                space=str(data["space"]), support=[str(a) for a in data["support"]], dual=[float(v) for v in data["dual"]],
                offset=float(data["offset"]), gamma=float(data["gamma"]), alpha=float(data["alpha"]),
                train_range=(low, high), provenance=str(data["provenance"]),
            )  # fmt: skip
        except (TypeError, ValueError) as exc:
            if isinstance(exc, NagError):
                raise
            raise FittedModelError(f"fitted predictor dict holds a bad value: {exc}; write it with to_dict") from None
