"""From labelled architectures to what every trial shares (:class:`PreparedData`).

Rows are split 80/20 (``holdout_fraction``) by a seeded permutation; the K budgets are spaced over the
latencies of all rows; the accuracy surrogate is fitted on the training split and its error measured on
the held-out split.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import Executor
from typing import Any

import numpy as np
import torch

from nag.errors import NagError
from nag.latency import LatencyPredictor
from nag.search.budgets import BudgetSet
from nag.search.config import SearchConfig
from nag.search.evaluator import RankingData
from nag.search.layout import StagedLayout
from nag.search.model import new_surrogate
from nag.search.surrogate import fit_surrogate
from nag.search.training import PreparedData
from nag.space import SearchSpace

__all__ = ["SearchDataError", "prepare"]

MIN_ROWS = 10


class SearchDataError(NagError, ValueError):
    """The labelled architectures cannot train a search (too few rows, mismatched lengths, bad values)."""


def _check(archs: Sequence[Any], latency_ms: np.ndarray, accuracy: np.ndarray, config: SearchConfig) -> None:
    if not (len(archs) == len(latency_ms) == len(accuracy)):
        raise SearchDataError(
            f"need one latency and one accuracy per architecture; got {len(archs)}, {len(latency_ms)}, {len(accuracy)}"
        )
    if len(archs) < MIN_ROWS:
        raise SearchDataError(f"a search needs at least {MIN_ROWS} labelled architectures, got {len(archs)}")
    if not (np.isfinite(latency_ms).all() and (latency_ms > 0).all()):
        raise SearchDataError("latencies must be positive finite milliseconds")
    if not (np.isfinite(accuracy).all() and (accuracy >= 0).all() and (accuracy <= 1).all()):
        raise SearchDataError("accuracies must be fractions in [0, 1]")
    if len(np.unique(latency_ms)) < 2 and config.num_budgets > 1 and config.budgets_ms is None:
        raise SearchDataError("all latencies are equal; K > 1 budgets need a latency range")


def prepare(
    space: SearchSpace[Any],
    archs: Sequence[Any],
    latency_ms: Sequence[float],
    accuracy: Sequence[float],
    config: SearchConfig,
    *,
    latency: LatencyPredictor,
    progress: bool = False,
    notes: dict[str, Any] | None = None,
    background: Executor | None = None,
) -> PreparedData:
    """Split, space the budgets, encode, and fit the accuracy surrogate. ``archs`` parsed or canonical strings.

    With ``background`` (a thread pool) the surrogate is fitted there, and the returned data holds the
    pending fit: :meth:`PreparedData.ready` waits for it (the evaluator and the generator do not need it).
    """
    lat, acc = np.asarray(latency_ms, dtype=np.float64), np.asarray(accuracy, dtype=np.float64)
    _check(archs, lat, acc, config)
    parsed = [space.parse(a) for a in archs]
    layout = StagedLayout.for_space(space)
    budgets = (
        BudgetSet(config.budgets_ms, outside=config.outside)  # type: ignore[arg-type]
        if config.budgets_ms is not None
        else BudgetSet.evenly(lat, config.num_budgets, quantiles=config.budget_quantiles, outside=config.outside)  # type: ignore[arg-type]
    )
    canonical = [space.format(a) for a in parsed]
    ids = {name: n for n, name in enumerate(dict.fromkeys(canonical))}
    data = RankingData(
        encodings=layout.encode_archs(space, parsed),
        latency_ms=torch.as_tensor(lat),
        accuracy=torch.as_tensor(acc),
        arch_ids=torch.tensor([ids[c] for c in canonical]),
    )
    order = torch.as_tensor(np.random.default_rng(config.seed).permutation(len(parsed)))
    n_held = max(2, round(len(parsed) * config.holdout_fraction))
    heldout, train = data.subset(order[:n_held]), data.subset(order[n_held:])
    surrogate = new_surrogate(layout, config, seed=config.seed + 3)
    summary: dict[str, Any] = {
        "rows": len(parsed),
        "distinct_architectures": len(ids),
        "train_rows": len(train),
        "heldout_rows": len(heldout),
        "latency_ms_range": [float(lat.min()), float(lat.max())],
        "accuracy_range": [float(acc.min()), float(acc.max())],
    }
    summary = {**(notes or {}), **summary}

    def fit() -> None:
        fit_started = time.perf_counter()
        report = fit_surrogate(
            surrogate,
            (train.encodings, train.accuracy),
            (heldout.encodings, heldout.accuracy),
            config.surrogate,
            seed=config.seed + 3,
            progress=progress and background is None,
        )
        summary["surrogate"] = {**report.__dict__, "seconds": round(time.perf_counter() - fit_started, 2)}

    pending = None if background is None else background.submit(fit)
    if pending is None:
        fit()
    return PreparedData(space, layout, budgets, train, heldout, latency, surrogate, summary, surrogate_fit=pending)
