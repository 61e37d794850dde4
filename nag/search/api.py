"""The high-level API the CLI calls: :func:`run_search` writes a run directory, :func:`generate` reads it.

Where the labelled architectures come from:

- a table alone (``table`` with accuracy): its rows are the M architectures, its latencies the costs, and
  the latency predictor for inference is fitted from its rows (:class:`AdditiveLatencyPredictor`) unless
  one is given;
- an accuracy source (``accuracy``): the search labels its own M architectures. A source that knows a
  finite set of architectures (it has an ``archs`` attribute, as :class:`nag.accuracy.table.TableAccuracySource`)
  gives those; any other (a predictor, later a supernet) labels ``num_archs`` uniformly sampled ones. Their
  latencies come from the latency predictor: the one given (e.g. a farm table's), or one fitted from
  ``table``'s rows (a latency-only table suffices).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nag.accuracy import AccuracySource, EnumerableAccuracySource
from nag.data import ArchTable
from nag.errors import SettingError
from nag.latency import LatencyPredictor
from nag.search.config import SearchConfig
from nag.search.inference import Generated, infer, priced_policy_draws, warm_up, with_budget_quantile
from nag.search.metrics import RunMetrics
from nag.search.rundir import check_storable, load_inference, save_run
from nag.space import get_space

if TYPE_CHECKING:
    from nag.search.model import SearchModel
    from nag.search.training import PreparedData, TrialOutcome
    from nag.search.tuning import TuneOptions

__all__ = ["generate", "propose", "run_search"]


@contextlib.contextmanager
def compute_threads(threads: int | None) -> Iterator[None]:
    """Run with ``threads`` threads for numpy's BLAS and, when it is loaded, torch's intra-op pool (None: leave
    them as they are), restoring the previous counts after. Inference multiplies small matrices: a BLAS pool of
    2 threads on a busy 2-core machine made one budget's sampling 35 times slower (378 ms against 10.7 ms) than 1
    thread. Torch is not imported here: generation runs without it.
    """
    from threadpoolctl import threadpool_limits

    torch = sys.modules.get("torch")
    previous = torch.get_num_threads() if torch is not None else None
    if threads is not None and torch is not None:
        torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads, user_api="blas"):
            yield
    finally:
        if torch is not None and previous is not None:
            torch.set_num_threads(previous)


@contextlib.contextmanager
def _spare_core(*, enabled: bool) -> Iterator[ThreadPoolExecutor | None]:
    """A one-thread pool for work off the critical path (the accuracy surrogate's fit, the evaluator's held-out
    accuracy) when this machine has a core to spare: more than one usable CPU, and a 1-minute load average
    below the CPU count minus a half (this process itself counts up to one). Otherwise None: the work runs
    in line. The results are the same either way; on a busy 2-core machine the extra thread was measured to
    cost about 7%, on a quiet one it hides a few seconds.
    """
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if not enabled or cpus < 2 or os.getloadavg()[0] > cpus - 0.5:
        yield None
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="nag-search") as pool:
        yield pool


def _labelled(
    space_name: str,
    table: ArchTable | None,
    accuracy: AccuracySource | None,
    latency: LatencyPredictor | None,
    num_archs: int,
    seed: int,
) -> tuple[list[Any], list[float], list[float], LatencyPredictor, dict[str, Any]]:
    """The labelled architectures (parsed, or canonical strings), their latencies and accuracies, the latency
    predictor, and notes on where they came from."""
    from nag.latency.additive import AdditiveLatencyPredictor

    space = get_space(space_name)
    if table is not None and table.space != space.name:
        raise SettingError(
            f"the table holds {table.space!r} architectures but the search is over {space.name!r}; pass --space {table.space}"
        )
    notes: dict[str, Any] = {"table": None if table is None else table.describe()}
    table_archs: list[Any] = [] if table is None else [space.parse(a) for a in table.archs]  # parsed once, for every use
    if latency is None:
        if table is None:
            raise SettingError("a search needs latencies: give a table (--table) or a latency predictor")
        latency = AdditiveLatencyPredictor.fit(table_archs, table.latency_ms, space=space.name, seed=seed)
    notes["latency_predictor"] = check_storable(latency)
    notes["latency_predictor"].pop("terms_ms", None)  # the parameters live in latency.json
    if accuracy is None:
        if table is None or table.accuracy is None:
            raise SettingError(
                "a search needs accuracies: give a table with an accuracy column, or an accuracy source (--accuracy)"
            )
        return table_archs, list(table.latency_ms), list(table.accuracy), latency, {**notes, "labels": "table"}
    if isinstance(accuracy, EnumerableAccuracySource):
        archs = list(accuracy.archs)
        notes["labels"] = f"accuracy source's {len(archs)} architectures"
    else:
        archs = [space.format(a) for a in space.sample_many(num_archs, seed=seed)]
        notes["labels"] = f"{num_archs} uniformly sampled architectures (seed {seed}) labelled by the accuracy source"
    return archs, latency.predict_ms(archs), accuracy.accuracy(archs), latency, notes


def _best(outcomes: Sequence[TrialOutcome]) -> int:
    """Index of the trial with the highest selection score (ties: higher held-out pairwise accuracy)."""
    keys = [(o.metrics.selection_score, o.metrics.evaluator.heldout_pairwise_accuracy_mean) for o in outcomes]
    return max(range(len(outcomes)), key=lambda i: keys[i])


def trained_model(prepared: PreparedData, config: SearchConfig, outcome: TrialOutcome) -> SearchModel:
    """The :class:`SearchModel` of one trial's outcome (networks in eval mode, the shared predictors)."""
    from nag.search.model import SearchModel, new_evaluator, new_generator

    prepared = prepared.ready()
    trial_config = config.replace(seed=outcome.seed, generator__entropy_weight=outcome.entropy_weight)
    evaluator, generator = (
        new_evaluator(prepared.layout, trial_config, seed=0),
        new_generator(prepared.layout, trial_config, seed=0),
    )
    evaluator.load_state_dict(outcome.evaluator_state)
    generator.load_state_dict(outcome.generator_state)
    evaluator.eval()
    generator.eval()
    return SearchModel(
        prepared.space,
        prepared.layout,
        prepared.budgets,
        evaluator,
        generator,
        prepared.surrogate,
        prepared.latency,
        trial_config,
    )


def run_search(
    *,
    out: str | os.PathLike[str],
    table: ArchTable | None = None,
    config: SearchConfig | None = None,
    accuracy: AccuracySource | None = None,
    latency: LatencyPredictor | None = None,
    num_archs: int = 16000,
    tune: TuneOptions | None = None,
    progress: bool = False,
    threads: int | None = 1,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Train a PNAG search and write its run directory to ``out``; returns the directory.

    Without ``tune`` one trial runs in-process (``config.seed``); with it, one Ray Tune trial per
    (seed, entropy weight), and the best by ``selection_score`` is kept (all trials' metrics are stored).
    ``threads`` sets torch's intra-op threads for the duration (1 by default: the networks are small, and
    one thread per process avoids OpenMP contention). Raises :class:`nag.errors.NagError` subclasses.
    """
    import torch  # noqa: F401 - loaded before compute_threads, so that it sets torch's threads too

    from nag.search.prepare import prepare
    from nag.search.training import run_trial

    config = config or SearchConfig()
    say = log or (lambda _message: None)
    started = time.perf_counter()
    with compute_threads(threads), _spare_core(enabled=tune is None) as background:
        archs, lat, acc, predictor, notes = _labelled(config.space, table, accuracy, latency, num_archs, config.seed)
        say(f"{len(archs)} labelled architectures ({notes['labels']}); latency predictor: {notes['latency_predictor']}")
        prepared = prepare(
            get_space(config.space),
            archs,
            lat,
            acc,
            config,
            latency=predictor,
            progress=progress,
            notes=notes,
            background=background,
        )
        say(f"K={prepared.budgets.k} budgets {prepared.budgets.budgets_ms[0]:.3f}..{prepared.budgets.budgets_ms[-1]:.3f} ms")
        prepared_s = time.perf_counter() - started
        if tune is None:
            outcomes = [run_trial(prepared, config, progress=progress, background=background)]
        else:
            from nag.search.tuning import default_storage, run_tune_trials

            outcomes = run_tune_trials(prepared.ready(), config, tune, storage=default_storage(Path(out)))
        best = _best(outcomes)
        model = trained_model(prepared, config, outcomes[best])
    metrics = RunMetrics(
        space=config.space,
        data=prepared.notes,
        budgets_ms=list(prepared.budgets.budgets_ms),
        best_trial=best,
        selection="selection_score = mean accuracy estimate of the inferred architectures at the K trained budgets (0 if infeasible)",
        evaluator_heldout_pairwise_accuracy=outcomes[best].metrics.evaluator.heldout_pairwise_accuracy,
        trials=[o.metrics for o in outcomes],
        timings_s={"prepare": round(prepared_s, 2), "total": round(time.perf_counter() - started, 2)},
        overlapped=background is not None,  # the surrogate fit and held-out accuracy ran on a spare core
    )
    return save_run(out, model, metrics)


def generate(
    run_dir: str | os.PathLike[str],
    budgets_ms: Sequence[float],
    *,
    seed: int = 0,
    candidates: int | None = None,
    max_rounds: int | None = None,
    threads: int | None = 1,
    select_by: str | None = None,
    accuracy: AccuracySource | None = None,
    refine_steps: int | None = None,
    budget_quantile: float | None = None,
    log: Callable[[str], None] | None = None,
) -> list[Generated]:
    """One :class:`~nag.search.inference.Generated` per budget, in order: ``arch``, ``latency_ms`` (predicted),
    ``accuracy`` (an estimate unless selected by the source: ``accuracy_is_estimate``), ``time_ms`` (this budget's
    inference, loading excluded; its share of a sampling pass made with other budgets, plus its own work),
    ``feasible``, ``interpolated``, ``outside_trained_range``, ``note``, and the candidate counts
    (``to_dict()`` gives the JSON form ``nag generate --json`` prints). One untimed warm-up pass
    runs first, so ``time_ms`` is the steady per-budget cost. ``select_by`` (default: the run's setting) ranks
    the feasible candidates; ``"source"`` asks ``accuracy`` and reports its values, and refines the pick by
    local search under it (``refine_steps`` moves at most; None: the run's setting, 0: none). ``budget_quantile``
    q makes feasible mean "the q-quantile of the latency is under the budget" (a run searched on a farm table;
    None: the run's own setting), and each answer's ``latency_ms`` is that quantile.

    Reads the run's ``inference.npz`` and imports neither torch nor Ray (a directory written before that
    file existed loads through torch, which ``log`` is told first).
    """
    with compute_threads(threads):
        model = with_budget_quantile(load_inference(run_dir, log=log), budget_quantile)
        warm_up(model)
        found = infer(
            model,
            budgets_ms,
            seed=seed,
            candidates=candidates,
            max_rounds=max_rounds,
            select_by=select_by,
            accuracy=accuracy,
            refine_steps=refine_steps,
        )
        return list(found)


def propose(
    run_dir: str | os.PathLike[str], budgets_ms: Sequence[float], *, n: int, seed: int = 0, threads: int | None = 1
) -> list[list[dict[str, Any]]]:
    """For each budget, ``n`` raw draws of the generator's policy (duplicates kept, none filtered), each a
    dict of ``arch`` and ``latency_ms`` (the run's latency predictor): how well the generator alone meets
    the budget, as the paper's Fig. 3 (b), (c) shows.
    """
    with compute_threads(threads):
        model = load_inference(run_dir)
        return [
            [{"arch": a, "latency_ms": ms} for a, ms in priced_policy_draws(model, budget, n, seed=seed)] for budget in budgets_ms
        ]
