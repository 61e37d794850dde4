"""Trials as Ray Tune trials: one trial per (seed, entropy weight), each fitting an evaluator and a generator.

All trials share the prepared data (split, budgets, latency predictor, accuracy surrogate), put once in
Ray's object store. Each trial reports its ``selection_score`` (mean accuracy estimate of its inferred
architectures at the trained budgets) and its evaluator's held-out pairwise accuracy, and leaves its
weights and metrics in a Tune checkpoint; the driver reads every trial back and the caller picks the best.

Ray is optional: nothing here is imported unless trials are asked for. Connect to a cluster with
``ray_address``; without one a local Ray is started on loopback (``node_ip``) and shut down afterwards.
A Ray already initialised by the caller is used as it is and left running.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nag.errors import MissingDependencyError, NagError
from nag.search.config import SearchConfig
from nag.search.metrics import TrialMetrics
from nag.search.rundir import write_json
from nag.search.training import PreparedData, TrialOutcome, run_trial

__all__ = ["TrialError", "TuneOptions", "run_tune_trials"]


class TrialError(NagError, RuntimeError):
    """A Tune trial failed; the message carries the trial's error."""


@dataclass(frozen=True)
class TuneOptions:
    """Which trials to run, and where."""

    seeds: tuple[int, ...] = (0, 1)  # one trial per seed x entropy weight
    entropy_weights: tuple[float, ...] = (1e-3,)  # lambda values to try
    ray_address: str | None = None  # a running cluster ("auto", "ray://host:10001", "host:6379"); None: start a local Ray
    cpus_per_trial: float = 1.0  # Ray CPUs each trial holds (its torch uses one thread per CPU)
    node_ip: str | None = None  # the local Ray's node address; None: nag.ray_session.local_node_ip() (loopback)
    num_cpus: int | None = None  # CPUs of a local Ray (None: all)


def _trainable(params: dict[str, Any], *, prepared: PreparedData, config: dict[str, Any]) -> None:
    from ray import tune

    threads = max(1, int(params.get("threads", 1)))
    torch.set_num_threads(threads)
    trial_config = SearchConfig.from_dict(config).replace(
        seed=int(params["seed"]), generator__entropy_weight=float(params["entropy_weight"]), rollout_workers=0
    )
    outcome = run_trial(prepared, trial_config)
    with tempfile.TemporaryDirectory() as folder:
        torch.save({"evaluator": outcome.evaluator_state, "generator": outcome.generator_state}, Path(folder) / "weights.pt")
        write_json(Path(folder) / "metrics.json", outcome.metrics.to_dict())
        tune.report(
            {
                "selection_score": outcome.metrics.selection_score,
                "heldout_pairwise_accuracy": outcome.metrics.evaluator.heldout_pairwise_accuracy_mean,
            },
            checkpoint=tune.Checkpoint.from_directory(folder),
        )


def _read_outcome(result: Any) -> TrialOutcome:
    import json

    if result.error is not None:
        raise TrialError(f"a Tune trial failed: {result.error}")
    if result.checkpoint is None:
        raise TrialError("a Tune trial finished without a checkpoint; see the Tune logs in the run directory's tune/ folder")
    with result.checkpoint.as_directory() as folder:
        weights = torch.load(Path(folder) / "weights.pt", map_location="cpu", weights_only=True)
        metrics = TrialMetrics.from_dict(json.loads((Path(folder) / "metrics.json").read_text()))
    return TrialOutcome(metrics.seed, metrics.entropy_weight, weights["evaluator"], weights["generator"], metrics)


def run_tune_trials(prepared: PreparedData, config: SearchConfig, options: TuneOptions, *, storage: Path) -> list[TrialOutcome]:
    """Run one Tune trial per (seed, entropy weight); returns every trial's outcome (raises :class:`TrialError`)."""
    try:
        import ray
        from ray import tune
    except ImportError:
        raise MissingDependencyError('Ray Tune trials need ray: pip install "ray[tune]" (or run without --tune)') from None
    started_here = not ray.is_initialized()
    if started_here:
        from nag.ray_session import init_ray

        if options.ray_address:
            init_ray(options.ray_address)
        else:
            init_ray("local", num_cpus=options.num_cpus, include_dashboard=False, **_node_ip(options.node_ip))
    try:
        trainable = tune.with_resources(
            tune.with_parameters(_trainable, prepared=prepared, config=config.to_dict()), {"cpu": options.cpus_per_trial}
        )
        tuner = tune.Tuner(
            trainable,
            param_space={
                "seed": tune.grid_search(list(options.seeds)),
                "entropy_weight": tune.grid_search(list(options.entropy_weights)),
                "threads": max(1, int(options.cpus_per_trial)),
            },
            tune_config=tune.TuneConfig(metric="selection_score", mode="max"),
            run_config=tune.RunConfig(storage_path=str(storage.resolve()), name="trials", verbose=0),
        )
        with contextlib.redirect_stdout(sys.stderr):  # Tune prints its experiment box; stdout is for results
            grid = tuner.fit()
        return [_read_outcome(grid[index]) for index in range(len(grid))]
    finally:
        if started_here:
            ray.shutdown()


def default_storage(out: Path) -> Path:
    """Where Tune keeps trial logs and checkpoints: ``<run dir>/tune``."""
    folder = out / "tune"
    os.makedirs(folder, exist_ok=True)
    return folder


def _node_ip(node_ip: str | None) -> dict[str, str]:
    return {"_node_ip_address": node_ip} if node_ip else {}
