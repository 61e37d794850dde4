"""A new device's block table from a few whole-network measurements and another device's table.

A full table measures every distinct block (96 per resolution for ``ofa-mbv3``). A new phone model rarely
needs that to start with: its latencies are, to a good approximation, another device's scaled per kind of
operator (a depthwise 7x7 convolution gains or loses against a 3x3 one by the same factor wherever it sits).
So :func:`choose_networks` picks ``n`` whole networks that spread over those operator kinds, the farm
measures them on the new device, and :func:`fit_scaling` fits

    latency(arch) = offset + sum over groups g of scale_g * (the source table's sum of arch's blocks in g)

by relative least squares, each ``scale_g`` shrunk toward one common scale by a ridge whose strength is chosen
by leave-one-out. Blocks every network has (stem, head, classifier) form no group: with the offset they would
not be identifiable, so they take the common scale. The new table's blocks are the source's scaled by their
group's factor, and the offset becomes the table's calibration, so :class:`farm.lut.LutPredictor` reads a
bootstrapped table like any other.

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
from farm.errors import CalibrationError, TableConflictError
from farm.lut import MAD_TO_STD, Calibration, LutPredictor, network_latencies
from farm.scheduler import JobReport, Task
from farm.store import Store, Summary, TableKey
from farm.tables import measure_tasks
from farm.validation import ValidationReport, validate
from nag.errors import SettingError
from nag.latency.additive import nnls
from nag.space import get_space
from nag.space.blocks import Block, MBConvBlock

__all__ = [
    "MAX_NETWORKS",
    "MIN_NETWORKS",
    "BootstrapOutcome",
    "ScalingFit",
    "block_group",
    "bootstrap_table",
    "check_network_count",
    "choose_networks",
    "drop_estimates",
    "fit_scaling",
    "group_sums",
]

MIN_NETWORKS = 6  # fewer whole networks cannot both fit and cross-check a scaling
MAX_NETWORKS = 200  # the nested leave-one-out costs ~8 n^2 small solves: seconds at 200; a full table is cheaper beyond
_POOL = 2000  # seeded candidates the informative networks are chosen from
_RIDGES = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 100.0)  # ridge strengths tried, relative to the data's scale
_FLOOR = 0.1  # no scale below this fraction of the networks' median measured / source ratio


def block_group(block: Block) -> str | None:
    """The operator kind a block's latency scales with on another device: a searchable block's kernel size, its
    activation and squeeze-excitation (``"k5-hs-se"``); None for the blocks every network has.

    Chosen by measurement (BENCHMARKS.md, ``ort-cpu`` -> ``litert-cpu`` at 160 px, 20 networks fitted, 30 others
    predicted, two runs): 70% and 73% of the others within +-10%; by kernel alone 33% and 47%. Splitting the
    kinds further by stride gave 87% in one run and 63% in the other: with 20 networks, not a gain shown."""
    if not isinstance(block, MBConvBlock) or block.expand_ratio == 1:
        return None  # stem, the first (fixed) MBConv, final expand, pool, feature mix, classifier
    return f"k{block.kernel}-{'hs' if block.act == 'h_swish' else 're'}{'-se' if block.se else ''}"


def group_sums(
    values: Mapping[str, float], archs: Sequence[str], *, space: str, width: float, resolution: int
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(group names, ``(n, groups)`` per-group sums of the source's block values, ``(n,)`` fixed blocks' sums)."""
    search_space = get_space(space)
    groups = sorted({g for b in search_space.all_blocks(width=width, resolution=resolution) if (g := block_group(b))})
    column = {g: i for i, g in enumerate(groups)}
    sums, fixed = np.zeros((len(archs), len(groups))), np.zeros(len(archs))
    for row, arch in enumerate(archs):
        for block in search_space.blocks(search_space.parse(arch), width=width, resolution=resolution):
            group = block_group(block)
            if group is None:
                fixed[row] += values[block.key]
            else:
                sums[row, column[group]] += values[block.key]
    return groups, sums, fixed


def check_network_count(n: object) -> None:
    """Raise :class:`SettingError` unless ``n`` networks can both fit a scaling and cross-check it."""
    if isinstance(n, bool) or not isinstance(n, int) or not MIN_NETWORKS <= n <= MAX_NETWORKS:
        raise SettingError(
            f"--n must be an integer from {MIN_NETWORKS} to {MAX_NETWORKS} networks to fit and cross-check, got {n!r}; "
            "e.g. 20 (for more, build the full table: 'nag table build')"
        )


def choose_networks(
    values: Mapping[str, float], n: int, *, space: str, width: float, resolution: int, seed: int = 0
) -> list[str]:
    """``n`` networks that spread over the operator kinds: the cheapest and the dearest of a seeded pool by the
    source table, then, one at a time, the pool's network farthest from those chosen in per-group sums (each
    group scaled by its spread over the pool). Deterministic for a seed."""
    check_network_count(n)
    search_space = get_space(space)
    pool = list(dict.fromkeys(search_space.format(a) for a in search_space.sample_many(_POOL, seed=seed)))
    _, sums, _ = group_sums(values, pool, space=space, width=width, resolution=resolution)
    spread = sums.std(axis=0)
    features = sums / np.where(spread > 0, spread, 1.0)
    totals = sums.sum(axis=1)
    chosen = [int(np.argmin(totals)), int(np.argmax(totals))]
    nearest = np.minimum(*(np.linalg.norm(features - features[i], axis=1) for i in chosen))
    while len(chosen) < n:
        pick = int(np.argmax(nearest))
        chosen.append(pick)
        nearest = np.minimum(nearest, np.linalg.norm(features - features[pick], axis=1))
    return [pool[i] for i in chosen]


@dataclass(frozen=True)
class ScalingFit:
    """Per-group scales of a source table to a new device, and how well they predict networks left out."""

    groups: tuple[str, ...]
    scales: tuple[float, ...]  # per group, the new device's block latency / the source's
    common_scale: float  # the scale the groups are shrunk toward; the fixed blocks take it
    offset_ms: float  # per-network time the blocks do not account for (may be negative)
    ridge: float  # the shrinkage chosen by leave-one-out (relative to the data's scale; 0: none)
    measured_ms: tuple[float, ...]  # the networks fitted, as measured on the new device
    cross_fitted_ms: tuple[float, ...]  # each of them predicted by a fit that did not see it

    @property
    def n(self) -> int:
        return len(self.measured_ms)

    @property
    def figures(self) -> ValidationReport:
        """The cross-fitted error, in the figures ``nag table validate`` reports (within 10%, MAPE, Kendall tau)."""
        return validate(self.cross_fitted_ms, self.measured_ms)

    def scale_of(self, group: str | None) -> float:
        """The factor a block of ``group`` (None: a fixed block) is scaled by."""
        return self.common_scale if group is None else self.scales[self.groups.index(group)]

    def predict(self, sums: np.ndarray, fixed: np.ndarray) -> np.ndarray:
        return self.offset_ms + sums @ np.asarray(self.scales) + self.common_scale * fixed

    @property
    def residual_rel_std(self) -> float:
        """Robust spread (1.4826 MAD) of the cross-fitted relative errors: the predictor's interval uses it."""
        errors = np.asarray(self.cross_fitted_ms) / np.asarray(self.measured_ms) - 1
        return float(MAD_TO_STD * np.median(np.abs(errors - np.median(errors))))

    def to_dict(self) -> dict[str, Any]:
        """JSON: the scales by group, the offset, the ridge, ``n`` and ``cross_fitted`` (``nag table validate``'s
        figures of the networks predicted by fits without them), and the networks' latencies."""
        return {
            "scales": dict(zip(self.groups, self.scales, strict=True)),
            "common_scale": self.common_scale,
            "offset_ms": self.offset_ms,
            "ridge": self.ridge,
            "n": self.n,
            "cross_fitted": self.figures.to_dict(),
            "measured_ms": list(self.measured_ms),
            "cross_fitted_ms": list(self.cross_fitted_ms),
        }


def _solve(sums: np.ndarray, fixed: np.ndarray, measured: np.ndarray, ridge: float) -> tuple[float, np.ndarray, float]:
    """(offset, per-group scales, common scale) minimising the squared relative error plus ``ridge`` times the
    groups' squared distances to the common scale (each weighted by its mean share of the networks), with every
    scale at least a tenth of the median measured / source ratio (an operator never costs nothing: with few
    networks a free fit would zero a group it barely sees) and the offset of either sign."""
    n, g = sums.shape
    total = sums.sum(axis=1) + fixed
    floor = _FLOOR * float(np.median(measured / total))
    weight = 1.0 / measured  # relative errors
    ones = np.ones(n)
    design = np.column_stack([ones, -ones, sums, fixed]) * weight[:, None]  # offset = x0 - x1; scales = floor + x
    target = (measured - floor * total) * weight
    # ridge rows, sqrt(ridge * n) * share_g * (s_g - s_common) = 0, where share_g is the group's mean part of a
    # network's latency: a ridge of 1 weighs a group's departure from the common scale like the n networks' fit
    share = sums.mean(axis=0) / float(np.mean(measured))
    penalty = np.zeros((g, g + 3))
    for j in range(g):
        penalty[j, 2 + j], penalty[j, g + 2] = share[j], -share[j]
    rows = np.vstack([design, math.sqrt(ridge * n) * penalty])
    rhs = np.concatenate([target, np.zeros(g)])
    gram = rows.T @ rows
    gram += 1e-10 * max(float(np.trace(gram)), 1e-12) * np.eye(len(gram))  # the +-offset columns are collinear
    solution = nnls(gram, rows.T @ rhs)
    return float(solution[0] - solution[1]), floor + solution[2 : 2 + g], floor + float(solution[g + 2])


def _loo_errors(sums: np.ndarray, fixed: np.ndarray, measured: np.ndarray, ridge: float) -> np.ndarray:
    errors = np.empty(len(measured))
    for i in range(len(measured)):
        keep = np.arange(len(measured)) != i
        offset, scales, common = _solve(sums[keep], fixed[keep], measured[keep], ridge)
        errors[i] = (offset + sums[i] @ scales + common * fixed[i]) / measured[i] - 1.0
    return errors


def _best_ridge(sums: np.ndarray, fixed: np.ndarray, measured: np.ndarray) -> float:
    scores = [float(np.mean(np.abs(_loo_errors(sums, fixed, measured, r)))) for r in _RIDGES]
    return _RIDGES[int(np.argmin(scores))]


def fit_scaling(groups: Sequence[str], sums: np.ndarray, fixed: np.ndarray, measured: Sequence[float]) -> ScalingFit:
    """Fit the per-group scaling to ``measured`` whole-network latencies (ms); see the module docstring."""
    y = np.asarray(measured, dtype=np.float64)
    if len(y) < MIN_NETWORKS:
        raise SettingError(f"a bootstrap needs at least {MIN_NETWORKS} measured networks, got {len(y)}")
    if not np.all(np.isfinite(y)) or np.any(y <= 0):
        raise CalibrationError(f"measured network latencies must be finite and positive, got {y.tolist()[:5]}...")
    ridge = _best_ridge(sums, fixed, y)
    offset, scales, common = _solve(sums, fixed, y, ridge)
    left_out = np.empty(len(y))  # nested: the ridge is chosen again without the network predicted
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        inner = _best_ridge(sums[keep], fixed[keep], y[keep])
        o, s, c = _solve(sums[keep], fixed[keep], y[keep], inner)
        # a fold whose negative offset takes a network to 0 ms or below is as wrong as -100%: counted as that
        left_out[i] = max(o + sums[i] @ s + c * fixed[i], 1e-6 * y[i])
    return ScalingFit(
        groups=tuple(groups), scales=tuple(float(s) for s in scales), common_scale=common, offset_ms=offset,
        ridge=ridge, measured_ms=tuple(float(v) for v in y), cross_fitted_ms=tuple(float(v) for v in left_out),
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
    """Measure ``n`` informative whole networks on ``kind``'s devices, fit the per-operator scaling of ``source``
    (read from ``source_store``, default ``store``) and write each new table's blocks and calibration into
    ``store``. Refuses, before measuring and again before writing, a new table that holds measured blocks
    (:class:`TableConflictError`: that device has a table); a bootstrap's own estimates are rewritten, so a
    bootstrap stopped before its calibration was written is finished by running it again."""
    reference = LutPredictor(source_store or store, source, use_calibration=False)
    values = reference.block_values()
    archs = choose_networks(values, n, space=source.space, width=source.width, resolution=source.resolution, seed=seed)

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
    tasks = [Task(source.space, source.width, source.resolution, "network", arch) for arch in archs]
    description = f"table bootstrap {source.space} r{source.resolution}: {n} networks on {kind}"
    report = measure_tasks(farm, store, tasks, kind=kind, spec=spec, description=description, on_progress=on_progress)
    groups, sums, fixed = group_sums(values, archs, space=source.space, width=source.width, resolution=source.resolution)
    fits: dict[TableKey, ScalingFit] = {}
    for target in targets():  # every table checked before any is written
        measured = network_latencies(store, target, statistic=reference.statistic)
        rows = [i for i, arch in enumerate(archs) if arch in measured]
        if len(rows) >= MIN_NETWORKS:  # else a device group that measured too few of them (failures: the report)
            fits[target] = fit_scaling(groups, sums[rows], fixed[rows], [measured[archs[i]] for i in rows])
    for target, fit in fits.items():
        rows = [i for i, arch in enumerate(archs) if arch in network_latencies(store, target)]
        _write(store, target, reference, fit, fit.predict(sums[rows], fixed[rows]) - fit.offset_ms)
    return BootstrapOutcome(source=source, archs=tuple(archs), report=report, fits=fits)


def _write(store: Store, target: TableKey, reference: LutPredictor, fit: ScalingFit, table_sums: np.ndarray) -> None:
    """The new table: each source block scaled by its group's factor (its standard error too); the offset as the
    table's calibration, fitted over ``table_sums`` (the new table's sums of the measured networks)."""
    values, errors = reference.block_values(), reference.block_std_errors()
    estimates = {
        block.key: Summary(mean_ms=scale * values[block.key], std_ms=scale * errors[block.key], count=1)
        for block in get_space(target.space).all_blocks(width=target.width, resolution=target.resolution)
        if block.key in values  # a block the source lacks: the new table lacks it too, and says so when needed
        for scale in (fit.scale_of(block_group(block)),)
    }
    store.put_summaries(target, "block", estimates, replace=True)  # one transaction; the calibration follows
    low, high = float(table_sums.min()), float(table_sums.max())
    store.put_calibration(
        target,
        Calibration(
            offset_ms=fit.offset_ms, scale=1.0, residual_rel_std=fit.residual_rel_std, n=fit.n, outliers=0,
            method=f"bootstrap: per-operator scaling of {reference.table.label()}", statistic="mean",
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
