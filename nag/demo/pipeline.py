"""The embedded-default pipeline behind ``nag demo``: every stage for real, on this machine.

1. **Latency.** A local farm (Ray on this machine, one device actor per local CPU agent of the chosen
   kind) measures every distinct block of ``ofa-mbv3`` into a SQLite store, then a few random whole
   networks, from which the table's calibration is fitted and its cross-fitted error reported.
2. **Supernet.** An OFA supernet is trained by progressive shrinking on scikit-learn's digits, upsampled
   to the demo's resolution: the accuracy signal is this small proxy, not ImageNet.
3. **Subnets.** Uniformly sampled subnets are extracted, batch-norm recalibrated and evaluated (top-1 on
   the held-out digits): the labelled architectures of the search.
4. **Search.** PNAG trains its evaluator and budget-conditioned generator on them, with the farm's table
   (:class:`farm.lut.LutPredictor`) as the latency model.
5. **Generate.** One inference per budget; each generated network is then measured on the farm and its
   top-1 taken from the supernet, so the report sets predictions beside measurements.

A second run reuses what the first produced: the store skips measured entries, and the other stages
compare fingerprints of their settings and inputs (``demo-state.json``) and reuse matching outputs.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from nag.demo.config import DemoConfig, fingerprint
from nag.errors import SettingError

__all__ = ["DemoResult", "Stage", "run_demo"]

SPACE = "ofa-mbv3"
STATE_FILE = "demo-state.json"


@dataclass
class Stage:
    name: str
    seconds: float
    reused: bool  # the output of an earlier run was used as it was
    detail: str  # one line: what the stage did or found


@dataclass
class DemoResult:
    """Everything the report shows; ``report`` writes it out (see :mod:`nag.demo.report`)."""

    out: Path
    config: DemoConfig
    stages: list[Stage] = field(default_factory=list)
    table: dict[str, Any] = field(default_factory=dict)  # the latency table's identity and validation figures
    sampled: list[dict[str, Any]] = field(default_factory=list)  # arch, latency_ms (LUT), accuracy (top-1)
    generated: list[dict[str, Any]] = field(default_factory=list)  # one per budget: generate()'s dict + measurements
    proposals: list[dict[str, Any]] = field(default_factory=list)  # budget_ms, latencies_ms of raw policy draws
    uniform_ms: list[float] = field(default_factory=list)  # table latencies of as many uniformly sampled archs
    search: dict[str, Any] = field(default_factory=dict)  # the search run's headline metrics
    summary: dict[str, Any] = field(default_factory=dict)  # the report's numbers (summary.json), once written


class _State:
    """``demo-state.json``: the fingerprint each stage's output was made with."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.values: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}

    def matches(self, stage: str, value: str) -> bool:
        return self.values.get(stage) == value

    def set(self, stage: str, value: str) -> None:
        self.values[stage] = value
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.values, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, self.path)


@contextmanager
def _stage(result: DemoResult, name: str, say: Callable[[str], None]) -> Iterator[dict[str, Any]]:
    """Time a stage and record it; the body fills ``info['reused']`` and ``info['detail']``."""
    say(f"== {name}")
    info: dict[str, Any] = {"reused": False, "detail": ""}
    started = time.perf_counter()
    yield info
    stage = Stage(name, round(time.perf_counter() - started, 1), bool(info["reused"]), str(info["detail"]))
    result.stages.append(stage)
    say(f"   {stage.detail} ({'reused, ' if stage.reused else ''}{stage.seconds:.1f} s)")


def run_demo(
    out: str | os.PathLike[str],
    config: DemoConfig | None = None,
    *,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> DemoResult:
    """Run the pipeline into ``out`` (created; reused by a later run) and write its report there."""
    from agents import MeasurementSpec
    from farm.client import Farm
    from farm.store import Store
    from nag.demo.report import write_report

    config = config or DemoConfig()
    say = log or (lambda _line: None)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = _State(out_dir / STATE_FILE)
    result = DemoResult(out=out_dir, config=config)
    spec = MeasurementSpec(warmup_runs=config.warmup, runs=config.runs, threads=1)
    from nag.space.export import default_cache_dir

    cache = str(default_cache_dir())
    with Store(out_dir / "latency.db") as store, Farm.local(kinds=[config.kind], cache_dir=cache) as farm:
        predictor = _latency(result, farm, store, spec, cache, say, progress)
        checkpoint, supernet_fp = _supernet(result, state, say, progress)
        accuracy = _subnets(result, state, checkpoint, supernet_fp, predictor, say, progress)
        run_dir = _search(result, state, accuracy, predictor, supernet_fp, say, progress)
        _generate(result, farm, store, spec, cache, run_dir, accuracy, predictor, say, progress)
    result.summary = write_report(result)
    return result


# -- 1. latency ------------------------------------------------------------------------------------------------
def _latency(
    result: DemoResult, farm: Any, store: Any, spec: Any, cache: str, say: Callable[[str], None], progress: bool
) -> Any:  # fmt: skip
    from farm.crossval import cross_validated
    from farm.lut import LutPredictor
    from farm.progress import job_progress
    from farm.scheduler import Task
    from farm.tables import block_tasks, build_tables, validate_tables, validation_archs

    c = result.config
    with _stage(result, f"latency table ({c.kind}, {c.resolution} px)", say) as info:
        blocks_todo = block_tasks(SPACE, width=c.width, resolutions=[c.resolution])
        networks = validation_archs(SPACE, c.validate_networks, seed=c.seed)
        _prefetch(blocks_todo + [Task(SPACE, c.width, c.resolution, "network", a) for a in networks], c.kind, cache, progress)
        total = len(blocks_todo)
        with job_progress(total, f"{c.kind} blocks", enabled=progress) as update:
            blocks = build_tables(
                farm, store, space=SPACE, width=c.width, resolutions=[c.resolution], kind=c.kind, spec=spec, on_progress=update
            )
        with job_progress(c.validate_networks, f"{c.kind} networks", enabled=progress) as update:
            outcome = validate_tables(
                farm, store, space=SPACE, width=c.width, resolution=c.resolution, kind=c.kind, n=c.validate_networks,
                spec=spec, seed=c.seed, on_progress=update,
            )  # fmt: skip
        _raise_failures(blocks, outcome.report)
        results = cross_validated(
            store, kind=c.kind, space=SPACE, width=c.width, resolution=c.resolution, spec=spec, archs=outcome.archs,
            plot=str(result.out / "validation.png"),
        )  # fmt: skip
        group = farm.devices(c.kind)[0].group
        validation = next(
            r for r in results if (r["table"]["fingerprint"], r["table"]["runtime"], r["table"]["runtime_version"]) == group
        )
        table = next(t for t in store.tables(device=c.kind, space=SPACE, resolution=c.resolution, width=c.width)
                     if t.spec_key == spec.key() and (t.fingerprint, t.runtime, t.runtime_version) == group)  # fmt: skip
        predictor = LutPredictor(store, table)
        result.table = {"key": validation["table"], "validation": {k: v for k, v in validation.items() if k != "table"}}
        measured = blocks.done + outcome.report.done
        info["reused"] = measured == 0
        how = "calibrated, cross-fitted" if validation["calibrated"] else "uncalibrated"
        info["detail"] = (
            f"{total} blocks and {len(outcome.archs)} networks ({measured} measured now); table error on the networks "
            f"({how}): MAPE {validation['mape']:.1%}, Kendall tau {_fmt(validation['kendall_tau'])}"
        )
    return predictor


def _prefetch(tasks: list[Any], kind: str, cache: str, progress: bool) -> None:
    """Export the models the farm is about to measure, on every core, before any measurement starts."""
    from tqdm import tqdm

    from farm.tables import prefetch_exports

    with tqdm(total=len(tasks), desc="exporting models", unit="model", disable=not progress) as bar:
        missing = prefetch_exports(tasks, kind=kind, cache_dir=cache, on_done=lambda n: bar.update(1))
        bar.update(len(tasks) - bar.n)
        bar.set_postfix(exported=missing, cached=len(tasks) - missing)


def _raise_failures(*reports: Any) -> None:
    from farm.errors import FarmError

    failed = [(task, why) for report in reports for task, why in report.failed]
    if failed:
        task, why = failed[0]
        raise FarmError(
            f"{len(failed)} measurement(s) failed, e.g. {task.item_kind} {task.item}: {why}; "
            "what was measured is kept, so rerun 'nag demo' once the cause is fixed"
        )


def _fmt(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.3f}"


# -- 2. supernet -----------------------------------------------------------------------------------------------
def _supernet(result: DemoResult, state: _State, say: Callable[[str], None], progress: bool) -> tuple[Path, str]:
    """The checkpoint the subnets come from, and its content hash (what later stages depend on)."""
    from nag.accuracy.supernet.data import DataSpec, load_data
    from nag.accuracy.supernet.network import load_supernet, save_supernet
    from nag.accuracy.supernet.train import DEFAULT_PHASES, TrainConfig

    c = result.config
    with _stage(result, "supernet (progressive shrinking)", say) as info:
        if c.checkpoint is not None:
            checkpoint = Path(c.checkpoint)
            width = load_supernet(checkpoint).width  # also checks the file's layout before anything runs on it
            if width != c.width:
                raise SettingError(f"the checkpoint {str(checkpoint)!r} is a width-{width:g} supernet; run with width {width:g}")
            info.update(reused=True, detail=f"given: {checkpoint}")
            return checkpoint, _file_hash(checkpoint)
        phases = tuple(replace(p, epochs=e) for p, e in zip(DEFAULT_PHASES, c.phase_epochs, strict=True))
        train = TrainConfig(
            phases=phases, width=c.width, batch_size=c.batch_size, lr=c.lr, max_steps_per_epoch=c.max_steps_per_epoch,
            seed=c.seed,
        )  # fmt: skip
        spec = DataSpec(source=c.data, resolution=c.accuracy_resolution, seed=c.seed)
        value = fingerprint("supernet", repr(train), repr(spec))
        checkpoint = result.out / "supernet.pt"
        if state.matches("supernet", value) and checkpoint.exists():
            info.update(reused=True, detail=f"{checkpoint.name} from an earlier run")
            return checkpoint, _file_hash(checkpoint)
        from nag.accuracy.supernet.train import train_supernet

        data = load_data(spec)
        lines: list[str] = []
        supernet = train_supernet(data, train, progress=progress, log=lines.append)
        save_supernet(supernet.cpu(), checkpoint, extra={"data": spec.source, "resolution": spec.resolution})
        state.set("supernet", value)
        info["detail"] = f"{len(data.train)} training images at {spec.resolution} px; " + "; ".join(lines)  # type: ignore[arg-type]
    return checkpoint, _file_hash(checkpoint)


def _file_hash(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


# -- 3. subnets ------------------------------------------------------------------------------------------------
def _subnets(
    result: DemoResult, state: _State, checkpoint: Path, supernet_fp: str, predictor: Any, say: Callable[[str], None],
    progress: bool,
) -> Any:  # fmt: skip
    from nag.accuracy.supernet.data import DataSpec
    from nag.accuracy.supernet.evaluation import EvalSettings
    from nag.accuracy.supernet.source import SupernetAccuracy
    from nag.space import get_space

    c = result.config
    table = result.out / "subnets.csv"
    settings = EvalSettings(calib_images=c.calib_images, batch_size=500, seed=c.seed)
    spec = DataSpec(source=c.data, resolution=c.accuracy_resolution, seed=c.seed)
    value = fingerprint("subnets", supernet_fp, repr(settings), repr(spec))
    if not state.matches("subnets", value):
        table.unlink(missing_ok=True)  # made by another supernet or settings: stale
        state.set("subnets", value)  # from here on, a killed run resumes the table
    space = get_space(SPACE)
    archs = [space.format(a) for a in space.sample_many(c.subnets, seed=c.search.seed)]  # the search's own sample
    with _stage(result, f"subnet accuracies ({c.subnets} sampled subnets)", say) as info:
        source = SupernetAccuracy(checkpoint, spec, settings=settings, cache=table, progress=progress)
        already = source.known(archs)
        accuracies = source.accuracy(archs)
        latencies = predictor.predict_ms(archs)
        result.sampled = [
            {"arch": a, "latency_ms": ms, "accuracy": acc} for a, ms, acc in zip(archs, latencies, accuracies, strict=True)
        ]
        info["reused"] = already == len(archs)
        info["detail"] = (
            f"top-1 {min(accuracies):.1%}..{max(accuracies):.1%} (mean {sum(accuracies) / len(accuracies):.1%}), "
            f"{len(archs) - already} evaluated now, into {table.name}"
        )
    return source


# -- 4. search -------------------------------------------------------------------------------------------------
def _search(
    result: DemoResult, state: _State, accuracy: Any, predictor: Any, supernet_fp: str, say: Callable[[str], None],
    progress: bool,
) -> Path:  # fmt: skip
    from nag.search.api import run_search
    from nag.search.rundir import load_run

    c = result.config
    run_dir = result.out / "search"
    value = fingerprint("search", c.search.to_dict(), c.subnets, state.values.get("subnets"), predictor.to_dict())
    with _stage(result, "PNAG search (evaluator + generator)", say) as info:
        if state.matches("search", value) and (run_dir / "manifest.json").exists():
            info["reused"] = True
        else:
            run_search(out=run_dir, config=c.search, accuracy=accuracy, latency=predictor, num_archs=c.subnets, progress=progress)
            state.set("search", value)
        _, metrics = load_run(run_dir)
        best = metrics["trials"][metrics["best_trial"]]
        result.search = {
            "budgets_ms": metrics["budgets_ms"],
            "evaluator_heldout_pairwise_accuracy": best["evaluator"]["heldout_pairwise_accuracy_mean"],
            "evaluator_heldout_pairwise_accuracy_per_budget": metrics["evaluator_heldout_pairwise_accuracy"],
            "timings_s": metrics["timings_s"],
        }
        info["detail"] = (
            f"K={len(metrics['budgets_ms'])} budgets, evaluator held-out pairwise accuracy "
            f"{result.search['evaluator_heldout_pairwise_accuracy']:.3f}, in {run_dir.name}/"
        )
    return run_dir


# -- 5. generate -----------------------------------------------------------------------------------------------
def demo_budgets(latencies_ms: list[float], count: int) -> list[float]:
    """``count`` budgets evenly spread between the 10th and 90th percentiles of the sampled latencies."""
    ordered = sorted(latencies_ms)

    def quantile(q: float) -> float:
        position = q * (len(ordered) - 1)
        low = int(position)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] + (ordered[high] - ordered[low]) * (position - low)

    if count == 1:
        return [float(f"{quantile(0.5):.3g}")]
    return [float(f"{quantile(0.1 + 0.8 * i / (count - 1)):.3g}") for i in range(count)]


def _generate(
    result: DemoResult, farm: Any, store: Any, spec: Any, cache: str, run_dir: Path, accuracy: Any, predictor: Any,
    say: Callable[[str], None], progress: bool,
) -> None:  # fmt: skip
    from farm.lut import network_latencies
    from farm.progress import job_progress
    from farm.scheduler import Task
    from farm.tables import measure_tasks
    from nag.search.api import generate, propose
    from nag.space import get_space

    c = result.config
    budgets = demo_budgets([row["latency_ms"] for row in result.sampled], c.budgets)
    with _stage(result, f"generate for {len(budgets)} budgets, then measure", say) as info:
        generated = generate(run_dir, budgets, seed=c.seed)
        archs = list(dict.fromkeys(g["arch"] for g in generated))
        tasks = [Task(SPACE, c.width, c.resolution, "network", a) for a in archs]
        _prefetch(tasks, c.kind, cache, progress)
        with job_progress(len(tasks), f"{c.kind} generated networks", enabled=progress) as update:
            report = measure_tasks(
                farm, store, tasks, kind=c.kind, spec=spec, description="demo: generated networks", on_progress=update
            )
        _raise_failures(report)
        measured = network_latencies(store, predictor.table, statistic=predictor.statistic)
        top1 = dict(zip(archs, accuracy.accuracy(archs), strict=True))
        for row in generated:
            row["measured_ms"] = measured[row["arch"]]
            row["top1"] = top1[row["arch"]]
        result.generated = generated
        sampled = propose(run_dir, budgets, n=c.histogram_samples, seed=c.seed)
        result.proposals = [
            {"budget_ms": b, "latencies_ms": [p["latency_ms"] for p in draws]} for b, draws in zip(budgets, sampled, strict=True)
        ]
        space = get_space(SPACE)
        result.uniform_ms = predictor.predict_ms(space.sample_many(c.histogram_samples, seed=c.seed + 1))
        within = sum(g["measured_ms"] <= g["budget_ms"] for g in generated)
        info["detail"] = (
            f"{len(generated)} architectures, median {sorted(g['time_ms'] for g in generated)[len(generated) // 2]:.1f} ms "
            f"per budget; {within}/{len(generated)} within budget as measured"
        )
