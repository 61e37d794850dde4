"""The LUT predictor: a network's latency as the sum of its blocks' table values, plus calibration.

``LutPredictor(store, table)`` prices any architecture of the table's space at the table's width and
resolution: the sum, over ``space.blocks(arch, ...)``, of each block's median (or mean) in the table,
then ``a + b * sum`` when the table has a calibration (within the range of sums it was fitted on; beyond it,
a negative offset is not extrapolated below it, so that no prediction falls to zero or below). It satisfies :class:`nag.latency.LatencyPredictor`.

Calibration. A block table misses what only a whole network has (the runtime's per-inference overhead,
fusion across block boundaries, caches warmed by the previous block), so table sums are biased, mostly by
a constant and a factor. :func:`calibrate` fits ``measured ~= a + b * table_sum`` to the table's whole-network
entries (item kind ``"network"``) by a Huber M-estimate on *relative* residuals
``(measured - a - b * sum) / measured``, solved by iteratively reweighted least squares:

- relative, because latency noise grows with latency (a 100 ms network wanders ten times as far as a
  10 ms one), and because the figures the LUT is judged by (share within +-5 / +-10 %, MAPE) are relative;
  plain least squares would let the slowest networks decide the fit;
- robust, because a few network measurements of a validation run are disturbed (a thermal throttle, a
  background job): those residuals get weight ``k / |r / s|`` beyond ``k = 1.345`` robust standard deviations
  (95 % efficiency at normal noise) instead of pulling the line by their square.

Per-stage terms are not fitted: they need many more networks than a validation run measures (tens), and
the two-term fit already removes the systematic part on the tables this was tried on.

Uncertainty. :meth:`LutPredictor.predict_with_std` carries the standard error of each block's estimate,
``std / sqrt(count)`` (times sqrt(pi / 2) for the median, its asymptotic efficiency relative to the
mean), assuming the blocks' estimates are independent (they were measured separately). A block used twice
by one network contributes twice the same error, so its standard errors add linearly, then the blocks'
in quadrature. A calibrated prediction adds the calibration's robust residual spread (relative, scaled by
the prediction); the fitted parameters' own uncertainty is ignored (it shrinks as 1/sqrt(n) and is small
beside the residual spread at the tens of networks a validation measures).
"""

from __future__ import annotations

import copy
import math
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, Literal

from farm.errors import CalibrationError, InvalidEntryError, MissingBlockError, TableAmbiguousError, TableNotFoundError
from farm.ofa_lut import OFA_RUNTIME
from farm.store import Row, Store, TableKey
from nag import stored
from nag.errors import SettingError, show_value
from nag.latency import LatencyPredictor, PiecewiseLinear, check_quantile
from nag.space import get_space

__all__ = ["Calibration", "LutPredictor", "Statistic", "calibrate", "fit_calibration", "network_latencies", "select_table"]

Statistic = Literal["median", "mean"]
STATISTICS = ("median", "mean")
HUBER_K = 1.345  # 95% efficiency relative to least squares under normal noise
MAD_TO_STD = 1.4826  # a normal distribution's std / its median absolute deviation
MIN_NETWORKS = 3  # two parameters, plus one residual to estimate the spread
MEDIAN_SE_FACTOR = math.sqrt(math.pi / 2)  # standard error of the median / of the mean, normal samples


@dataclass(frozen=True)
class Calibration:
    """``latency = offset_ms + scale * table_sum_ms``, fitted to whole-network measurements."""

    offset_ms: float  # a: per-network overhead the blocks do not see, ms
    scale: float  # b: factor on the table sum
    residual_rel_std: float  # robust std (1.4826 MAD) of the relative residuals measured / fitted - 1
    n: int  # whole-network measurements fitted
    outliers: int  # of those, the ones down-weighted (relative residual beyond HUBER_K robust stds)
    method: str  # "huber-relative" or "least-squares-relative"
    statistic: str  # block statistic of the table sums ("median" or "mean"); a predictor must use the same
    sum_min_ms: float  # range of the table sums it was fitted on (a negative offset is not extrapolated below it)
    sum_max_ms: float

    def __post_init__(self) -> None:
        for name in ("offset_ms", "scale", "residual_rel_std"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise CalibrationError(f"calibration {name} must be a finite number, got {value!r}")
        if self.scale <= 0 or self.residual_rel_std < 0:
            raise CalibrationError(
                f"calibration scale must be > 0 and residual_rel_std >= 0, got {self.scale!r} and {self.residual_rel_std!r}"
            )
        if self.statistic not in STATISTICS:
            raise CalibrationError(f"calibration statistic must be one of {', '.join(STATISTICS)}, got {self.statistic!r}")
        if (
            not (0 < self.sum_min_ms <= self.sum_max_ms)
            or min(self.offset_ms + self.scale * end for end in (self.sum_min_ms, self.sum_max_ms)) <= 0
        ):
            raise CalibrationError(
                f"calibration {self.offset_ms:.4g} ms + {self.scale:.4g} x sum is not positive over its fitted range "
                f"[{self.sum_min_ms:.4g}, {self.sum_max_ms:.4g}] ms; the network measurements disagree with the table: "
                "re-measure them with 'nag table validate'"
            )

    def apply(self, table_sum_ms: float) -> float:
        """The calibrated latency of a network whose table sum is ``table_sum_ms``.

        ``a + b * sum``, except below the fitted range of sums when the offset is negative (the table
        over-counts a per-block overhead): extrapolating that line toward small networks would reach zero,
        so the ratio at the low end of the range is applied instead, ``sum * (a + b * low) / low``, which
        stays positive. (With ``b > 0`` and a line positive over the range, nothing else can go negative.)
        """
        if self.offset_ms < 0 and table_sum_ms < self.sum_min_ms:
            return table_sum_ms * (self.offset_ms + self.scale * self.sum_min_ms) / self.sum_min_ms
        return self.offset_ms + self.scale * table_sum_ms

    def as_map(self) -> PiecewiseLinear:
        """:meth:`apply` as a piecewise-linear map over all sums (what inference prices candidates with): the line,
        or, with a negative offset, the ratio through the origin up to ``sum_min_ms`` and the line beyond it."""
        line = (self.offset_ms, self.offset_ms + self.scale)
        if self.offset_ms >= 0:
            return PiecewiseLinear((0.0, 1.0), line)
        low = self.sum_min_ms
        return PiecewiseLinear((0.0, low, 2 * low), (0.0, self.apply(low), self.apply(2 * low)))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> Calibration:
        """The calibration :meth:`to_dict` wrote; raises :class:`CalibrationError` for a missing, unknown or
        mistyped field, or values no fit gives."""
        names = {f.name for f in fields(cls)}
        try:
            if set(stored.mapping(data, "stored calibration")) != names:
                raise CalibrationError(
                    f"stored calibration has fields {sorted(data)}, expected {sorted(names)}; refit it with 'nag table validate'"
                )
            return cls(**stored.dataclass_values(cls, data, "stored calibration"))
        except stored.StoredValueError as exc:
            raise CalibrationError(f"{exc}; refit it with 'nag table validate'") from None


def _weighted_line(x: Sequence[float], y: Sequence[float], w: Sequence[float]) -> tuple[float, float]:
    """Weighted least squares of y = a + b x."""
    total = math.fsum(w)
    mean_x = math.fsum(wi * xi for wi, xi in zip(w, x, strict=True)) / total
    mean_y = math.fsum(wi * yi for wi, yi in zip(w, y, strict=True)) / total
    sxx = math.fsum(wi * (xi - mean_x) ** 2 for wi, xi in zip(w, x, strict=True))
    sxy = math.fsum(wi * (xi - mean_x) * (yi - mean_y) for wi, xi, yi in zip(w, x, y, strict=True))
    if sxx <= 1e-12 * max(1.0, mean_x**2) * total:
        raise CalibrationError(
            "the calibration networks' table sums are (nearly) all equal, so a scale cannot be fitted; "
            "measure networks of different sizes (nag table validate samples them at random)"
        )
    scale = sxy / sxx
    return mean_y - scale * mean_x, scale


def fit_calibration(
    table_sums_ms: Sequence[float],
    measured_ms: Sequence[float],
    *,
    statistic: Statistic = "median",
    method: Literal["huber", "least-squares"] = "huber",
    max_iter: int = 100,
) -> Calibration:
    """Fit ``measured ~= a + b * table_sum`` on relative residuals (see the module docstring for why).

    ``method="huber"`` (default) is the robust fit by iteratively reweighted least squares, the residual
    scale re-estimated each step as 1.4826 x the median absolute relative residual; ``"least-squares"`` is
    the same without down-weighting (for comparison). Raises :class:`CalibrationError` for fewer than 3
    networks, mismatched lengths, values not finite and > 0, equal table sums, or a slope <= 0.
    """
    if method not in ("huber", "least-squares"):
        raise CalibrationError(f"calibration method must be 'huber' or 'least-squares', got {method!r}")
    x, y = list(table_sums_ms), list(measured_ms)
    if len(x) != len(y):
        raise CalibrationError(f"{len(x)} table sums but {len(y)} measured latencies; pass one of each per network")
    if len(x) < MIN_NETWORKS:
        raise CalibrationError(
            f"a calibration needs at least {MIN_NETWORKS} whole-network measurements, got {len(x)}; "
            "measure more with 'nag table validate --n 30'"
        )
    for name, values in (("table sum", x), ("measured latency", y)):
        bad = [v for v in values if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0)]
        if bad:
            raise CalibrationError(f"every {name} must be a finite number of ms > 0, got {bad[0]!r}")
    base = [1.0 / (yi * yi) for yi in y]  # relative residuals: weight 1 / measured^2
    weights = base
    offset, scale = _weighted_line(x, y, weights)
    spread = 0.0
    for _ in range(max_iter if method == "huber" else 0):
        residuals = [(yi - offset - scale * xi) / yi for xi, yi in zip(x, y, strict=True)]
        spread = MAD_TO_STD * statistics.median(abs(r) for r in residuals)
        if spread <= 0:
            break
        weights = [bi * min(1.0, HUBER_K * spread / abs(r)) if r else bi for bi, r in zip(base, residuals, strict=True)]
        new_offset, new_scale = _weighted_line(x, y, weights)
        converged = abs(new_scale - scale) <= 1e-12 * abs(scale) and abs(new_offset - offset) <= 1e-12 * max(1.0, abs(offset))
        offset, scale = new_offset, new_scale
        if converged:
            break
    if scale <= 0:
        raise CalibrationError(
            f"the fitted scale is {scale:.4g} <= 0: measured latencies do not grow with the table sums; check that the "
            "networks were measured on the table's device, runtime and settings"
        )
    residuals = [(yi - offset - scale * xi) / yi for xi, yi in zip(x, y, strict=True)]
    spread = MAD_TO_STD * statistics.median(abs(r) for r in residuals)
    outliers = sum(1 for r in residuals if abs(r) > HUBER_K * spread) if method == "huber" else 0
    return Calibration(
        offset_ms=offset, scale=scale, residual_rel_std=spread, n=len(x), outliers=outliers,
        method=f"{method}-relative", statistic=statistic, sum_min_ms=min(x), sum_max_ms=max(x),
    )  # fmt: skip


def _row_value(row: Row, statistic: str) -> float:
    return row.median_ms if statistic == "median" and row.median_ms is not None else row.mean_ms


def network_latencies(store: Store, table: TableKey, *, statistic: Statistic = "median") -> dict[str, float]:
    """Architecture -> measured latency (median, or mean where only the mean is stored) of the table's networks."""
    return {row.item: _row_value(row, statistic) for row in store.rows(table, "network")}


def _refuse_bad_values(table: TableKey, path: Path, rows: Sequence[Row], values: Mapping[str, float]) -> None:
    """A block worth 0 ms, a negative one or a NaN would make every sum silently wrong: refuse the table."""
    for row in rows:
        value = values[row.item]
        if math.isfinite(value) and value > 0 and math.isfinite(row.std_ms) and row.std_ms >= 0 and row.count >= 1:
            continue
        raise InvalidEntryError(
            f"table {table.label()} in {path} holds block {row.item!r} with latency {value!r} ms, std {row.std_ms!r} ms, "
            f"count {row.count!r}: a block's latency must be a positive, finite number of ms measured at least once; "
            f"'nag table check --db {path}' checks the store, and deleting the table and rebuilding it (or importing a "
            "corrected OFA file) replaces the values"
        )


class LutPredictor:
    """Latency of architectures from a block table (see the module docstring).

    Reads the table and its calibration once, at construction; read-only afterwards, so thread-safe.
    Raises :class:`TableNotFoundError` for a table without blocks, :class:`MissingBlockError` when an
    architecture uses a block the table lacks, :class:`CalibrationError` when the stored calibration was
    fitted with another statistic than the one used.
    """

    def __init__(
        self,
        store: Store,
        table: TableKey,
        *,
        statistic: Statistic = "median",
        use_calibration: bool = True,
        quantile: float | None = None,
    ) -> None:
        self._quantile: float | None = None
        if statistic not in STATISTICS:
            raise SettingError(f"statistic must be one of {', '.join(STATISTICS)}, got {statistic!r}")
        rows = store.rows(table, "block")
        if not rows:
            raise TableNotFoundError(
                f"no block entries for table {table.label()} in {store.path}; tables there: "
                f"{'; '.join(t.label() for t in store.tables()) or 'none'}"
            )
        self._table = table
        self._space = get_space(table.space)
        self._store_path = store.path
        self._requested = statistic
        self._statistic: Statistic = "median" if statistic == "median" and all(r.median_ms is not None for r in rows) else "mean"
        factor = MEDIAN_SE_FACTOR if self._statistic == "median" else 1.0
        self._values = {r.item: _row_value(r, self._statistic) for r in rows}
        _refuse_bad_values(table, store.path, rows, self._values)
        self._std_errors = {r.item: factor * r.std_ms / math.sqrt(r.count) for r in rows}
        calibration = store.get_calibration(table) if use_calibration else None
        self._calibration = Calibration.from_dict(calibration) if calibration is not None else None
        if self._calibration is not None and self._calibration.statistic != self._statistic:
            raise CalibrationError(
                f"the calibration of {table.label()} was fitted on {self._calibration.statistic} sums, but this predictor "
                f"sums {self._statistic}s; use statistic={self._calibration.statistic!r}, or refit the calibration"
            )
        # a measured table's entry without a measurement is an estimate ('nag table bootstrap' writes them)
        self._estimated = table.is_measured and any(not row.measured for row in rows)
        self._quantile = self._checked_quantile(quantile)

    # -- a portable copy (for run directories) ----------------------------------------------------------
    KIND: ClassVar[str] = "lut"  # the registry name (nag.search.rundir.LATENCY_KINDS)
    LEGACY_KINDS: ClassVar[tuple[str, ...]] = ("farm.lut:LutPredictor",)  # what run directories before 2026-12 hold

    def to_dict(self) -> dict[str, Any]:
        """Everything the predictor uses, JSON-ready: it predicts the same without the store (run directories)."""
        return {
            "kind": self.KIND,
            "table": self._table.to_dict(),
            "requested_statistic": self._requested,
            "statistic": self._statistic,
            "values_ms": dict(self._values),
            "std_errors_ms": dict(self._std_errors),
            "calibration": None if self._calibration is None else self._calibration.to_dict(),
            "store": str(self._store_path),
            "quantile": self._quantile,
            "estimated": self._estimated,
        }

    @classmethod
    def from_dict(cls, value: Any) -> LutPredictor:
        """The predictor :meth:`to_dict` wrote, without its store; raises ValueError naming a missing or mistyped
        entry (:class:`nag.stored.StoredValueError`) or a value it cannot use (:class:`CalibrationError`,
        :class:`SettingError`, :class:`InvalidEntryError` for the table key)."""
        where = "the LUT predictor"
        if stored.mapping(value, where).get("kind") not in (cls.KIND, *cls.LEGACY_KINDS):
            raise CalibrationError(f"not a LUT predictor: kind {value.get('kind')!r}, expected {cls.KIND!r}")
        predictor = cls.__new__(cls)
        predictor._table = TableKey(**stored.dataclass_values(TableKey, stored.entry(value, "table", where), "table"))
        predictor._space = get_space(predictor._table.space)
        predictor._store_path = Path(stored.text(stored.entry(value, "store", where), "store"))
        predictor._requested = stored.text(stored.entry(value, "requested_statistic", where), "requested_statistic")  # type: ignore[assignment]
        predictor._statistic = stored.text(stored.entry(value, "statistic", where), "statistic")  # type: ignore[assignment]
        predictor._values = stored.numbers(stored.entry(value, "values_ms", where), "values_ms", finite=True)
        predictor._std_errors = stored.numbers(stored.entry(value, "std_errors_ms", where), "std_errors_ms", finite=True)
        if (
            predictor._std_errors.keys() != predictor._values.keys()
            or min(predictor._values.values(), default=1.0) <= 0
            or min(predictor._std_errors.values(), default=0.0) < 0
        ):
            raise stored.StoredValueError(
                "values_ms and std_errors_ms must hold the same blocks, each a latency > 0 ms with a standard error >= 0 ms"
            )
        calibration = stored.entry(value, "calibration", where)
        predictor._calibration = None if calibration is None else Calibration.from_dict(calibration)
        estimated = value.get("estimated", False)  # absent before 'nag table bootstrap' existed
        stored.check_type(estimated, bool, "estimated")
        predictor._estimated = estimated
        predictor._quantile = predictor._checked_quantile(value.get("quantile"))  # absent before --budget-quantile
        return predictor

    def _checked_quantile(self, q: object) -> float | None:
        quantile = check_quantile(q)
        if quantile is not None and self._calibration is None:
            raise SettingError(
                f"a budget quantile needs a calibrated table: {self._table.label()} has no calibration, and the spread of "
                "an uncalibrated block sum leaves out how far sums stray from whole networks; run 'nag table validate' "
                "on it first (it fits the calibration and its residual spread)"
            )
        return quantile

    @property
    def estimated(self) -> bool:
        """True when the table's blocks are (partly) estimates, not measurements: a bootstrapped table."""
        return self._estimated

    @property
    def quantile(self) -> float | None:
        """The quantile :meth:`predict_ms` answers (``--budget-quantile``), or None for the point estimate."""
        return self._quantile

    def with_quantile(self, q: float | None) -> LutPredictor:
        """A copy whose :meth:`predict_ms` answers the ``q``-quantile of each latency (None: the point estimate)."""
        predictor = copy.copy(self)
        predictor._quantile = self._checked_quantile(q)
        return predictor

    def summed(self) -> tuple[LatencyPredictor, PiecewiseLinear] | None:
        """(the uncalibrated table sum, the calibration as a map) when the prediction is the calibrated sum; None
        for an uncalibrated table (its sum is the prediction) or a quantile (not a map of the sum alone)."""
        if self._calibration is None or self._quantile is not None:
            return None
        inner = copy.copy(self)
        inner._calibration = None
        return inner, self._calibration.as_map()

    @property
    def space(self) -> str:
        return self._table.space

    @property
    def table(self) -> TableKey:
        return self._table

    @property
    def statistic(self) -> Statistic:
        """The block statistic actually summed (``"mean"`` where the table holds no medians)."""
        return self._statistic

    @property
    def statistic_note(self) -> str | None:
        """Why the statistic differs from the one asked for, or None when it does not."""
        if self._statistic == self._requested:
            return None
        return (
            f"table {self._table.label()} holds only count/mean/std for some blocks (an imported OFA table has no "
            "medians), so block means are summed instead of medians"
        )

    @property
    def calibration(self) -> Calibration | None:
        return self._calibration

    def block_values(self) -> dict[str, float]:
        """Block key -> the statistic this predictor sums (ms), uncalibrated: a copy."""
        return dict(self._values)

    def block_std_errors(self) -> dict[str, float]:
        """Block key -> the standard error of :meth:`block_values`' entry (ms): a copy."""
        return dict(self._std_errors)

    def missing_blocks(self) -> list[str]:
        """Keys of the space's blocks at the table's setting that the table does not hold."""
        blocks = self._space.all_blocks(width=self._table.width, resolution=self._table.resolution)
        return [block.key for block in blocks if block.key not in self._values]

    # -- prediction -------------------------------------------------------------------------------
    def _sum(self, arch: Any) -> tuple[float, float]:
        """(table sum in ms, its standard error in ms) of one architecture."""
        parsed = self._space.parse(arch) if isinstance(arch, (str, Mapping)) else arch
        blocks = self._space.blocks(parsed, width=self._table.width, resolution=self._table.resolution)
        uses = Counter(block.key for block in blocks)
        total, errors = 0.0, []
        for key, times in uses.items():
            if key not in self._values:
                raise MissingBlockError(self._missing_message(key, parsed))
            total += times * self._values[key]
            errors.append(times * self._std_errors[key])
        return total, math.hypot(*errors)  # in quadrature, without squaring: a huge stored std gives inf, not an OverflowError

    def _missing_message(self, key: str, arch: Any) -> str:
        t = self._table
        if t.runtime == OFA_RUNTIME:
            fix = f"import a complete table with 'nag table import-ofa {t.resolution}_lookup_table.yaml --device {t.device} --db {self._store_path}'"
        else:
            fix = (
                f"measure it with 'nag table build --space {t.space} --width {t.width} --resolution {t.resolution} "
                f"--kind {t.device} --db {self._store_path}'"
            )
        return f"block {key!r} of {self._space.format(arch)} is not in table {t.label()}; {fix}"

    def table_sum_ms(self, arch: Any) -> float:
        """The uncalibrated sum of the architecture's block values, ms."""
        return self._sum(arch)[0]

    def predict_with_std(self, archs: Sequence[Any]) -> list[tuple[float, float]]:
        """(latency ms, standard deviation ms) of each architecture, in order (see the module docstring)."""
        results = []
        for arch in archs:
            total, error = self._sum(arch)
            if self._calibration is None:
                results.append((total, error))
                continue
            predicted = self._calibration.apply(total)
            spread = self._calibration.residual_rel_std * predicted
            results.append((predicted, math.hypot(self._calibration.scale * error, spread)))
        return results

    def predict_interval(self, archs: Sequence[Any], *, level: float = 0.95) -> list[tuple[float, float, float]]:
        """(latency, low, high) ms of each architecture: an interval holding the latency with probability
        ``level``, from the standard deviation of :meth:`predict_with_std`, taken on the log scale (a latency is
        positive and its errors multiplicative), so ``0 < low <= latency <= high`` always."""
        if not 0 < level < 1:
            raise SettingError(f"an interval's level must be between 0 and 1, got {show_value(level)}; e.g. 0.95")
        z = statistics.NormalDist().inv_cdf(0.5 + level / 2)
        return [(latency, _at(latency, std, -z), _at(latency, std, z)) for latency, std in self.predict_with_std(archs)]

    def predict_ms(self, archs: Sequence[Any]) -> list[float]:
        """Latency in ms of each architecture, in order: the table sum, calibrated when the table has a calibration;
        with a :attr:`quantile`, that quantile of the latency instead (the interval's log-scale normal)."""
        if self._quantile is None:
            return [latency for latency, _ in self.predict_with_std(archs)]
        z = statistics.NormalDist().inv_cdf(self._quantile)
        return [_at(latency, std, z) for latency, std in self.predict_with_std(archs)]


def _at(latency: float, std: float, z: float) -> float:
    """The latency ``z`` standard deviations from ``latency`` on the log scale (a latency is positive and its errors
    multiplicative): ``latency * exp(z * std / latency)``."""
    return latency * math.exp(z * std / latency)


def select_table(
    store: Store, *, device: str, space: str, resolution: int, width: float | None = None, fingerprint: str | None = None
) -> TableKey:
    """The one table of ``device`` at the setting (and ``fingerprint``, when given); typed errors list the others."""
    get_space(space).resolve_setting(width=width, resolution=resolution, num_classes=None)  # a typed error, not SQLite's
    tables = [
        t for t in store.tables(device=device, space=space, resolution=resolution, width=width)
        if fingerprint is None or t.fingerprint == fingerprint
    ]  # fmt: skip
    if not tables:
        known = "; ".join(t.label() for t in store.tables()) or "none"
        raise TableNotFoundError(
            f"no {space} table for device {device!r} at {resolution}px in {store.path} (build one with 'nag table build'); "
            f"tables there: {known}"
        )
    if len(tables) > 1:
        raise TableAmbiguousError(
            f"{len(tables)} tables match device {device!r} at {resolution}px: {'; '.join(t.label() for t in tables)}; "
            "choose one with --fingerprint (or --width)"
        )
    return tables[0]


def calibrate(
    store: Store,
    table: TableKey,
    *,
    statistic: Statistic = "median",
    networks: Mapping[str, float] | None = None,
    method: Literal["huber", "least-squares"] = "huber",
) -> Calibration:
    """Fit the table's calibration and store it (replacing any); returns it.

    ``networks`` maps architecture strings to measured latencies in ms; by default, the table's own
    network entries (:func:`network_latencies`). The table sums use the uncalibrated predictor with
    ``statistic`` (falling back to means as :class:`LutPredictor` does), and the calibration records the
    statistic actually used.
    """
    predictor = LutPredictor(store, table, statistic=statistic, use_calibration=False)
    measured = dict(network_latencies(store, table, statistic=predictor.statistic) if networks is None else networks)
    archs = list(measured)
    sums = [predictor.table_sum_ms(arch) for arch in archs]
    calibration = fit_calibration(sums, [measured[a] for a in archs], statistic=predictor.statistic, method=method)
    store.put_calibration(table, calibration)
    return calibration
