"""A new device's block table from a few whole-network measurements and another device's table.

A full table measures every distinct block (96 per resolution for ``ofa-mbv3``). A new phone model rarely
needs that to start with: its block latencies are, to a good approximation, another device's scaled by a
factor that depends on what the block is (a 7x7 depthwise convolution gains or loses against a 3x3 one; a
strided block, a wide one, squeeze-excitation or h-swish each by their own amount). So the model is

    latency(arch) = offset + sum over arch's blocks b of source_ms(b) * exp(log_scale + coefficients . features(b))

with :data:`FEATURES` of each block (kernel size, squeeze-excitation, h-swish, stride, the logs of its input
size and expanded width; zero for the blocks every network has, which take ``exp(log_scale)``), fitted by
relative least squares (Gauss-Newton with a Levenberg-Marquardt step) with a ridge on the coefficients whose
strength is chosen by leave-one-out. :func:`choose_networks` picks the ``n`` networks to measure so that they
spread over the directions this model learns from (farthest-point in them), not at random. The new table's
blocks are the source's times their factors, and the offset becomes the table's calibration, so
:class:`farm.lut.LutPredictor` reads a bootstrapped table like any other.

Chosen by measurement (BENCHMARKS.md, ``ort-cpu`` -> ``litert-cpu`` at 160 px): on 30 networks the fit
never saw, 80-83% within +-10% and MAPE 5.7-5.8% in two fresh runs (87-90% refitting two earlier runs'
measurements), against 67-73% and MAPE 8.4-8.8% for one factor per kind of operator (kernel x activation x
SE); ``ort-cpu`` at 1 -> 2 threads: 93%, MAPE 4.5%.

The error reported is cross-fitted: each network is predicted by a fit that never saw it, the ridge chosen
again inside each fold (leave-one-out within leave-one-out), so the figure is what a new network will see.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from agents import MeasurementSpec
from farm.errors import CalibrationError, MissingBlockError, TableConflictError
from farm.lut import MAD_TO_STD, Calibration, LutPredictor, network_latencies
from farm.scheduler import JobReport
from farm.store import Store, Summary, TableKey
from farm.tables import measure_tasks, network_tasks
from farm.validation import ValidationReport, validate
from nag.errors import SettingError
from nag.space import get_space
from nag.space.blocks import Block, MBConvBlock

__all__ = [
    "FEATURES",
    "MAX_NETWORKS",
    "MIN_NETWORKS",
    "BootstrapOutcome",
    "Design",
    "ScalingFit",
    "block_features",
    "bootstrap_table",
    "check_network_count",
    "choose_networks",
    "drop_estimates",
    "fit_scaling",
]

MIN_NETWORKS = 6  # fewer whole networks cannot both fit and cross-check the model
MAX_NETWORKS = 60  # the nested leave-one-out grows as n^2 fits; beyond this a full table costs less than the check
_POOL = 2000  # seeded candidates the informative networks are chosen from
_RIDGES = (0.0003, 0.001, 0.003, 0.01, 0.03, 0.1)  # ridge strengths tried (on relative errors)
FEATURES = (
    "searchable", "kernel 5", "kernel 7", "squeeze-excitation", "h-swish", "stride 2", "log input size",
    "log expanded width",
)  # fmt: skip


def block_features(block: Block) -> np.ndarray:
    """The :data:`FEATURES` of a block (zeros for the blocks every network has: stem, the first MBConv, head)."""
    if not isinstance(block, MBConvBlock) or block.expand_ratio == 1:
        return np.zeros(len(FEATURES))
    return np.array(
        [
            1.0, block.kernel == 5, block.kernel == 7, block.se, block.act == "h_swish", block.stride == 2,
            math.log(block.in_size / 20), math.log(block.in_channels * block.expand_ratio / 200),
        ],
        dtype=np.float64,
    )  # fmt: skip


class Design:
    """The source table's blocks at one setting: their values, their features, and which networks use them."""

    def __init__(self, values: Mapping[str, float], *, space: str, width: float, resolution: int) -> None:
        self.space = get_space(space)
        self._width, self._resolution = width, resolution
        blocks = [b for b in self.space.all_blocks(width=width, resolution=resolution) if b.key in values]
        self.keys = [b.key for b in blocks]
        self._index = {key: i for i, key in enumerate(self.keys)}
        self.values = np.array([values[key] for key in self.keys], dtype=np.float64)  # (blocks,) source ms
        self.features = np.stack([block_features(b) for b in blocks])  # (blocks, features)

    def usage(self, archs: Sequence[str]) -> np.ndarray:
        """``(n, blocks)``: how many times each network uses each block."""
        counts = np.zeros((len(archs), len(self.keys)))
        for row, arch in enumerate(archs):
            for block in self.space.blocks(self.space.parse(arch), width=self._width, resolution=self._resolution):
                if block.key not in self._index:
                    raise MissingBlockError(
                        f"the source table lacks block {block.key!r} (of {arch}); a bootstrap scales a complete table: "
                        "finish it with 'nag table build' first"
                    )
                counts[row, self._index[block.key]] += 1
        return counts

    def directions(self, usage: np.ndarray) -> np.ndarray:
        """``(n, 1 + features)``: each network's source time in total and along each feature (what a fit learns from)."""
        weighted = usage * self.values
        return np.column_stack([weighted.sum(axis=1), weighted @ self.features])


def check_network_count(n: object) -> None:
    """Raise :class:`SettingError` unless ``n`` networks can both fit the model and cross-check it."""
    if isinstance(n, bool) or not isinstance(n, int) or not MIN_NETWORKS <= n <= MAX_NETWORKS:
        raise SettingError(
            f"--n must be an integer from {MIN_NETWORKS} to {MAX_NETWORKS} networks to fit and cross-check, got {n!r}; "
            "e.g. 20 (for more, build the full table: 'nag table build')"
        )


def choose_networks(design: Design, n: int, *, seed: int = 0) -> list[str]:
    """``n`` networks that spread over what the model learns from: the cheapest and the dearest of a seeded pool
    by the source table, then, one at a time, the pool's network farthest from those chosen along
    :meth:`Design.directions` (each scaled by its spread over the pool). Deterministic for a seed."""
    check_network_count(n)
    space = design.space
    pool = list(dict.fromkeys(space.format(a) for a in space.sample_many(_POOL, seed=seed)))
    directions = design.directions(design.usage(pool))
    spread = directions.std(axis=0)
    points = directions / np.where(spread > 0, spread, 1.0)
    totals = directions[:, 0]
    chosen = [int(np.argmin(totals)), int(np.argmax(totals))]
    nearest = np.minimum(*(np.linalg.norm(points - points[i], axis=1) for i in chosen))
    while len(chosen) < n:
        pick = int(np.argmax(nearest))
        chosen.append(pick)
        nearest = np.minimum(nearest, np.linalg.norm(points - points[pick], axis=1))
    return [pool[i] for i in chosen]


@dataclass(frozen=True)
class ScalingFit:
    """The new device's blocks as the source's times a per-block factor, and how well that predicts networks left out."""

    log_scale: float  # the factor of the blocks every network has is exp(log_scale)
    coefficients: tuple[float, ...]  # one per FEATURES name
    offset_ms: float  # per-network time the blocks do not account for (may be negative)
    ridge: float  # the ridge on the coefficients, chosen by leave-one-out
    measured_ms: tuple[float, ...]  # the networks fitted, as measured on the new device
    cross_fitted_ms: tuple[float, ...]  # each of them predicted by a fit that did not see it

    @property
    def n(self) -> int:
        return len(self.measured_ms)

    @property
    def figures(self) -> ValidationReport:
        """The cross-fitted error, in the figures ``nag table validate`` reports (within 10%, MAPE, Kendall tau)."""
        return validate(self.cross_fitted_ms, self.measured_ms)

    def factors(self, features: np.ndarray) -> np.ndarray:
        """Each block's factor (new / source) from its features ``(blocks, features)``."""
        return np.exp(self.log_scale + features @ np.asarray(self.coefficients))

    def predict(self, design: Design, usage: np.ndarray) -> np.ndarray:
        """Latency (ms) on the new device of networks given by their ``usage`` of the design's blocks."""
        return self.offset_ms + usage @ (design.values * self.factors(design.features))

    @property
    def residual_rel_std(self) -> float:
        """Robust spread (1.4826 MAD) of the cross-fitted relative errors: the predictor's interval uses it."""
        errors = np.asarray(self.cross_fitted_ms) / np.asarray(self.measured_ms) - 1
        return float(MAD_TO_STD * np.median(np.abs(errors - np.median(errors))))

    def to_dict(self) -> dict[str, Any]:
        """JSON: the common factor, a coefficient per feature (a factor's log), the offset, the ridge, ``n`` and
        ``cross_fitted`` (``nag table validate``'s figures of the networks predicted by fits without them)."""
        return {
            "common_scale": math.exp(self.log_scale),
            "coefficients": dict(zip(FEATURES, self.coefficients, strict=True)),
            "offset_ms": self.offset_ms,
            "ridge": self.ridge,
            "n": self.n,
            "cross_fitted": self.figures.to_dict(),
            "measured_ms": list(self.measured_ms),
            "cross_fitted_ms": list(self.cross_fitted_ms),
        }


def _solve(design: Design, usage: np.ndarray, measured: np.ndarray, ridge: float) -> tuple[float, float, np.ndarray]:
    """(offset, log_scale, coefficients) minimising the squared relative error plus ``ridge`` times the squared
    coefficients: Levenberg-Marquardt from one common factor."""
    weighted = usage * design.values  # (n, blocks): each network's source time per block
    log_scale = math.log(max(float(np.median(measured / weighted.sum(axis=1))), 1e-12))
    params = np.concatenate([[0.0, log_scale], np.zeros(len(FEATURES))])  # offset, log_scale, coefficients
    penalty = np.diag([0.0, 0.0] + [ridge] * len(FEATURES))

    def residuals(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        factors = np.exp(p[1] + design.features @ p[2:])
        per_block = weighted * factors  # (n, blocks)
        return (p[0] + per_block.sum(axis=1)) / measured - 1.0, per_block

    def cost(p: np.ndarray) -> float:
        return float(np.sum(residuals(p)[0] ** 2) + ridge * np.sum(p[2:] ** 2))

    damping, current = 1e-3, cost(params)
    for _ in range(100):
        r, per_block = residuals(params)
        jacobian = (
            np.column_stack([np.ones(len(measured)), per_block.sum(axis=1), per_block @ design.features]) / measured[:, None]
        )
        normal = jacobian.T @ jacobian + penalty
        gradient = jacobian.T @ r + penalty @ params
        while True:
            step = np.linalg.solve(normal + damping * np.diag(np.diag(normal) + 1e-12), gradient)
            trial = params - step
            if cost(trial) < current or damping > 1e8:
                break
            damping *= 10
        if cost(trial) >= current:
            break
        params, current, damping = trial, cost(trial), max(damping / 10, 1e-9)
        if np.max(np.abs(step)) < 1e-10:
            break
    return float(params[0]), float(params[1]), params[2:]


def _left_out(design: Design, usage: np.ndarray, measured: np.ndarray, ridge: float | None) -> np.ndarray:
    """Each network predicted by a fit without it (``ridge`` None: chosen again by leave-one-out inside)."""
    predictions = np.empty(len(measured))
    for i in range(len(measured)):
        keep = np.arange(len(measured)) != i
        strength = _best_ridge(design, usage[keep], measured[keep]) if ridge is None else ridge
        offset, log_scale, coefficients = _solve(design, usage[keep], measured[keep], strength)
        factors = np.exp(log_scale + design.features @ coefficients)
        # a fold whose negative offset takes a network to 0 ms or below is as wrong as -100%: counted as that
        predictions[i] = max(offset + float(usage[i] @ (design.values * factors)), 1e-6 * measured[i])
    return predictions


def _best_ridge(design: Design, usage: np.ndarray, measured: np.ndarray) -> float:
    scores = [float(np.mean(np.abs(_left_out(design, usage, measured, r) / measured - 1))) for r in _RIDGES]
    return _RIDGES[int(np.argmin(scores))]


def fit_scaling(design: Design, archs: Sequence[str], measured: Sequence[float]) -> ScalingFit:
    """Fit the model to ``measured`` whole-network latencies (ms) of ``archs``; see the module docstring."""
    y = np.asarray(measured, dtype=np.float64)
    if len(y) < MIN_NETWORKS or len(y) != len(archs):
        raise SettingError(f"a bootstrap needs at least {MIN_NETWORKS} measured networks, one per architecture; got {len(y)}")
    if not np.all(np.isfinite(y)) or np.any(y <= 0):
        raise CalibrationError(f"measured network latencies must be finite and positive, got {y.tolist()[:5]}...")
    usage = design.usage(archs)
    ridge = _best_ridge(design, usage, y)
    offset, log_scale, coefficients = _solve(design, usage, y, ridge)
    return ScalingFit(
        log_scale=log_scale, coefficients=tuple(float(c) for c in coefficients), offset_ms=offset, ridge=ridge,
        measured_ms=tuple(float(v) for v in y), cross_fitted_ms=tuple(float(v) for v in _left_out(design, usage, y, None)),
    )  # fmt: skip


@dataclass(frozen=True)
class BootstrapOutcome:
    """What a bootstrap measured and wrote: per new table, its fit."""

    source: TableKey  # the existing table the new ones scale
    archs: tuple[str, ...]  # the networks measured on the new device
    report: JobReport  # the measurement job
    fits: dict[TableKey, ScalingFit]  # one per new table (a kind with devices of several fingerprints has several)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source.to_dict(),
            "networks": list(self.archs),
            "tables": [{"table": key.to_dict(), "label": key.label(), **fit.to_dict()} for key, fit in self.fits.items()],
        }


def bootstrap_table(
    farm: Any,
    store: Store,
    *,
    source: TableKey,
    source_store: Store | None = None,
    kind: str,
    spec: MeasurementSpec,
    n: int,
    seed: int = 0,
    on_progress: Callable[[JobReport], None] | None = None,
) -> BootstrapOutcome:
    """Measure ``n`` informative whole networks on ``kind``'s devices, fit the model of ``source``
    (read from ``source_store``, default ``store``) and write each new table's blocks and calibration into
    ``store``. Refuses, before measuring and again before writing, a new table that holds measured blocks
    (:class:`TableConflictError`: that device has a table); a bootstrap's own estimates are rewritten, so a
    bootstrap stopped before its calibration was written is finished by running it again."""
    reference = LutPredictor(source_store or store, source, use_calibration=False)
    design = Design(reference.block_values(), space=source.space, width=source.width, resolution=source.resolution)
    archs = choose_networks(design, n, seed=seed)

    def targets() -> list[TableKey]:
        found = [
            t for t in store.tables(device=kind, space=source.space, resolution=source.resolution, width=source.width)
            if t.spec_key == spec.key() and not (t == source and source_store in (None, store))  # never the source itself
        ]  # fmt: skip
        for table in found:
            if any(row.measured for row in store.rows(table, "block")):
                raise TableConflictError(
                    f"table {table.label()} already holds measured blocks in {store.path}: a bootstrap writes a table a "
                    "device does not have yet; use 'nag table validate' to check that one, or bootstrap into another --db"
                )
        return found

    targets()  # before any measuring
    tasks = network_tasks(source.space, archs, width=source.width, resolution=source.resolution)
    description = f"table bootstrap {source.space} r{source.resolution}: {n} networks on {kind}"
    report = measure_tasks(farm, store, tasks, kind=kind, spec=spec, description=description, on_progress=on_progress)
    fits: dict[TableKey, tuple[ScalingFit, list[str]]] = {}
    for target in targets():  # every table checked before any is written
        measured = network_latencies(store, target, statistic=reference.statistic)
        found = [arch for arch in archs if arch in measured]
        if len(found) >= MIN_NETWORKS:  # else a device group that measured too few of them (failures: the report)
            fits[target] = (fit_scaling(design, found, [measured[a] for a in found]), found)
    for target, (fit, found) in fits.items():
        _write(store, target, reference, design, fit, fit.predict(design, design.usage(found)) - fit.offset_ms)
    return BootstrapOutcome(source=source, archs=tuple(archs), report=report, fits={t: f for t, (f, _) in fits.items()})


def _write(
    store: Store, target: TableKey, reference: LutPredictor, design: Design, fit: ScalingFit, table_sums: np.ndarray
) -> None:
    """The new table: each source block times its factor (its standard error too); the offset as the table's
    calibration, fitted over ``table_sums`` (the new table's sums of the measured networks)."""
    errors = reference.block_std_errors()
    estimates = {
        key: Summary(mean_ms=factor * value, std_ms=factor * errors[key], count=1)
        for key, value, factor in zip(design.keys, design.values, fit.factors(design.features), strict=True)
    }  # a block the source lacks: the new table lacks it too, and says so when a network needs it
    store.put_summaries(target, "block", estimates, replace=True)  # one transaction; the calibration follows
    low, high = float(table_sums.min()), float(table_sums.max())
    store.put_calibration(
        target,
        Calibration(
            offset_ms=fit.offset_ms, scale=1.0, residual_rel_std=fit.residual_rel_std, n=fit.n, outliers=0,
            method=f"bootstrap: block features scaling {reference.table.label()}", statistic="mean",
            sum_min_ms=low, sum_max_ms=high,
        ),
    )  # fmt: skip


def drop_estimates(
    store: Store, *, kind: str, space: str, width: float, resolutions: Sequence[int], spec: MeasurementSpec
) -> list[TableKey]:
    """Before a full build: remove the estimated blocks a bootstrap wrote into ``kind``'s tables at the setting (a
    measured table's entries without a measurement), and their calibration, so the build measures those blocks.
    The whole networks measured on the device stay. Returns the tables changed."""
    changed = []
    for table in store.tables(device=kind, space=space, width=width):
        if table.resolution not in resolutions or table.spec_key != spec.key() or not table.is_measured:
            continue
        estimates = [row.item for row in store.rows(table, "block") if not row.measured]
        if estimates:
            store.delete_entries(table, "block", estimates)
            store.delete_calibration(table)
            changed.append(table)
    return changed
