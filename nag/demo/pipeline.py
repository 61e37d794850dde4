"""The embedded-default pipeline behind ``nag demo``: every stage for real, on this machine.

1. **Latency.** A local farm (Ray on this machine, one device actor per local CPU agent of the chosen
   kind) measures every distinct block of ``ofa-mbv3`` into a SQLite store, then a few random whole
   networks, from which the table's calibration is fitted and its cross-fitted error reported.
2. **Accuracy** (:mod:`nag.demo.accuracy`). By default the DyNAS-T rows (real ImageNet top-1 of w1.0
   subnets) label the search; or (``accuracy="supernet"``) a supernet is trained by progressive shrinking
   on scikit-learn's digits (or a folder) and sampled subnets, batch-norm recalibrated, are scored on the
   search-validation split.
3. **Search.** PNAG trains its evaluator and budget-conditioned generator on those rows, with the farm's
   table (:class:`farm.lut.LutPredictor`) as the latency model.
4. **Generate.** One inference per budget; each generated network is then measured on the farm and its
   top-1 taken from the DyNAS-T predictor (an estimate) or the supernet on the test split, so the report
   sets predictions beside measurements.

A second run reuses what the first produced: the store skips measured entries, and the other stages
compare fingerprints of their settings and inputs (``demo-state.json``) and reuse matching outputs. Every
run ends by writing ``demo.json`` (:mod:`nag.demo.result`) and the report.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nag.data import atomic_write_bytes
from nag.demo.accuracy import Labels, check_supernet_inputs, dynast_labels, supernet_labels
from nag.demo.config import DemoConfig, fingerprint
from nag.demo.result import DemoFileError, DemoResult, Stage, load_result, save_result

__all__ = ["DemoResult", "Stage", "run_demo"]

SPACE = "ofa-mbv3"
STATE_FILE = "demo-state.json"


class _State:
    """``demo-state.json``: the fingerprint each stage's output was made with (unreadable: start afresh)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.values: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
        except (OSError, ValueError):
            self.values = {}  # only decides what to reuse: recomputing is always safe

    def matches(self, stage: str, value: str) -> bool:
        return self.values.get(stage) == value

    def set(self, stage: str, value: str) -> None:
        self.values[stage] = value
        atomic_write_bytes(self.path, (json.dumps(self.values, indent=2, sort_keys=True) + "\n").encode())


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
    from nag.space.export import default_cache_dir

    config = config or DemoConfig()
    config.check_paths()
    # Before anything starts: a wrong checkpoint or folder fails in a second, not minutes later.
    data = check_supernet_inputs(config) if config.accuracy == "supernet" else None
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = DemoResult(out=out_dir, config=config)
    spec = MeasurementSpec(warmup_runs=config.warmup, runs=config.runs, threads=1)
    cache = str(default_cache_dir())  # the local farm's actors and the prefetch share it
    # lazy: Ray starts with the first measurement a stage needs, so a rerun that reuses everything starts none
    with Store(out_dir / "latency.db") as store, Farm.local(kinds=[config.kind], cache_dir=cache, lazy=True) as farm:
        run = DemoRun(result, _State(out_dir / STATE_FILE), farm, store, spec, cache, log or (lambda _line: None), progress)
        predictor = run.latency()
        labels = dynast_labels(run, predictor) if data is None else supernet_labels(run, predictor, data)
        run_dir = run.search(labels, predictor)
        generated = run.generate(run_dir, labels, predictor)
    save_result(result)
    if generated is not None:  # only once demo.json holds the stage's output may a rerun reuse it
        run.state.set("generate", generated)
    result.summary = write_report(result)
    return result


@dataclass
class DemoRun:
    """One run's shared context; a method per stage, each recording a :class:`Stage` in ``result``."""

    result: DemoResult
    state: _State
    farm: Any  # farm.client.Farm
    store: Any  # farm.store.Store
    spec: Any  # agents.MeasurementSpec of every measurement
    cache: str  # model cache folder
    say: Callable[[str], None]
    progress: bool

    @property
    def c(self) -> DemoConfig:
        return self.result.config

    @contextmanager
    def stage(self, name: str) -> Iterator[dict[str, Any]]:
        """Time a stage and record it; the body fills ``info['reused']`` and ``info['detail']``."""
        self.say(f"== {name}")
        info: dict[str, Any] = {"reused": False, "detail": ""}
        started = time.perf_counter()
        yield info
        stage = Stage(name, round(time.perf_counter() - started, 1), bool(info["reused"]), str(info["detail"]))
        self.result.stages.append(stage)
        self.say(f"   {stage.detail} ({'reused, ' if stage.reused else ''}{stage.seconds:.1f} s)")

    # -- 1. latency --------------------------------------------------------------------------------------------
    def latency(self) -> Any:
        """Block table and validation networks on the farm; the table's calibrated predictor."""
        from farm.crossval import cross_validated
        from farm.drift import build_with_references
        from farm.lut import LutPredictor
        from farm.progress import job_progress
        from farm.tables import block_tasks, validate_tables, validation_archs

        c, width = self.c, self.c.network_width
        with self.stage(f"latency table ({c.kind}, w{width:.1f}, {c.resolution} px)") as info:
            blocks = block_tasks(SPACE, width=width, resolutions=[c.resolution])
            networks = validation_archs(SPACE, c.validate_networks, seed=c.seed)
            self._prefetch(blocks + self._network_tasks(networks))
            with job_progress(len(blocks), f"{c.kind} blocks", enabled=self.progress) as update:
                # the reference networks at its start, middle and end: the generate stage compares them with now
                built = build_with_references(
                    self.farm, self.store, space=SPACE, width=width, resolutions=[c.resolution], kind=c.kind, spec=self.spec,
                    on_progress=update,
                ).report  # fmt: skip
            with job_progress(len(networks), f"{c.kind} networks", enabled=self.progress) as update:
                outcome = validate_tables(
                    self.farm, self.store, space=SPACE, width=width, resolution=c.resolution, kind=c.kind,
                    n=c.validate_networks, spec=self.spec, seed=c.seed, on_progress=update,
                )  # fmt: skip
            _raise_failures(built, outcome.report)
            results = cross_validated(
                self.store, kind=c.kind, space=SPACE, width=width, resolution=c.resolution, spec=self.spec,
                archs=outcome.archs, plot=str(self.result.out / "validation.png"),
            )  # fmt: skip
            group = self.farm.devices(c.kind)[0].group  # this machine's (fingerprint, runtime, version)
            validation = next(r for r in results if r.group == group)
            table = validation.table
            self.result.table = {
                "key": table.to_dict(),
                "validation": {k: v for k, v in validation.to_dict().items() if k != "table"},
            }
            measured = built.done + outcome.report.done
            info["reused"] = measured == 0
            how = "calibrated, cross-fitted" if validation.calibrated else "uncalibrated"
            info["detail"] = (
                f"{len(blocks)} blocks and {len(outcome.archs)} networks ({measured} measured now); table error on the "
                f"networks ({how}): MAPE {validation.figures.mape:.1%}, Kendall tau {_fmt(validation.figures.kendall_tau)}"
            )
        return LutPredictor(self.store, table)

    def _network_tasks(self, archs: list[str]) -> list[Any]:
        from farm.tables import network_tasks

        return network_tasks(SPACE, archs, width=self.c.network_width, resolution=self.c.resolution)

    def _prefetch(self, tasks: list[Any]) -> None:
        """Export the models the farm is about to measure, on every core, before any measurement starts."""
        from tqdm import tqdm

        from farm.tables import prefetch_exports

        with tqdm(total=len(tasks), desc="exporting models", unit="model", disable=not self.progress) as bar:
            missing = prefetch_exports(tasks, kind=self.c.kind, cache_dir=self.cache, on_done=lambda _n: bar.update(1))
            bar.update(len(tasks) - bar.n)
            bar.set_postfix(exported=missing, cached=len(tasks) - missing)

    # -- 3. search ---------------------------------------------------------------------------------------------
    def search(self, labels: Labels, predictor: Any) -> Path:
        """Train PNAG on the labelled rows (or reuse the run directory trained on the same data and settings)."""
        from nag.search.api import run_search
        from nag.search.rundir import read_metrics

        c = self.c
        run_dir = self.result.out / "search"
        value = fingerprint("search", c.search.to_dict(), labels.value, predictor.to_dict())
        with self.stage(f"PNAG search (evaluator + generator, {len(labels.table)} labelled rows)") as info:
            if self.state.matches("search", value) and (run_dir / "manifest.json").exists():
                info["reused"] = True
            else:
                run_search(out=run_dir, config=c.search, table=labels.table, latency=predictor, progress=self.progress)
                self.state.set("search", value)
            metrics = read_metrics(run_dir)
            self.result.search = {
                "budgets_ms": metrics.budgets_ms,
                "evaluator_heldout_pairwise_accuracy": metrics.best.evaluator.heldout_pairwise_accuracy_mean,
                "evaluator_heldout_pairwise_accuracy_per_budget": metrics.evaluator_heldout_pairwise_accuracy,
                "timings_s": metrics.timings_s,
            }
            info["detail"] = (
                f"K={len(metrics.budgets_ms)} budgets, evaluator held-out pairwise accuracy "
                f"{self.result.search['evaluator_heldout_pairwise_accuracy']:.3f}, in {run_dir.name}/"
            )
        return run_dir

    # -- 4. generate -------------------------------------------------------------------------------------------
    def generate(self, run_dir: Path, labels: Labels, predictor: Any) -> str | None:
        """One inference per budget; each answer measured on the farm and scored; the generator's raw draws.
        Returns the stage's fingerprint to record once demo.json is written (None: the earlier output was reused)."""
        from farm.drift import rescale
        from farm.lut import network_latencies
        from farm.progress import job_progress
        from farm.tables import measure_tasks
        from nag.search.api import generate, propose
        from nag.space import get_space

        c = self.c
        budgets = demo_budgets([row["latency_ms"] for row in self.result.sampled], c.budgets)
        value = fingerprint("generate", self.state.values.get("search"), budgets, c.to_dict())
        with self.stage(f"generate for {len(budgets)} budgets, then measure") as info:
            # reused only when every stage before it was (a table measured again may price the answers differently)
            unchanged = self.state.matches("generate", value) and all(stage.reused for stage in self.result.stages)
            earlier = self._earlier_generate() if unchanged else None
            if earlier is not None:
                # the answers, their measurements and the references' check of the run that measured them (a fresh
                # check now would explain measurements it did not see)
                self.result.generated, self.result.proposals = earlier.generated, earlier.proposals
                self.result.uniform_ms, self.result.rescale = earlier.uniform_ms, earlier.rescale
                info["reused"] = True
                info["detail"] = f"{len(earlier.generated)} architectures, as generated and measured by the earlier run"
                return None
            # DyNAS-T: pick (and refine) by the fast source, as the paper selects; the supernet's test split must not
            # choose what it then scores, so that path picks by the run's surrogate
            by_source = c.accuracy == "dynast"
            answers = generate(
                run_dir,
                budgets,
                seed=c.seed,
                select_by="source" if by_source else None,
                accuracy=labels.scorer if by_source else None,
            )
            generated = [answer.to_dict() for answer in answers]  # demo.json's rows: with measured_ms and top1 added
            archs = list(dict.fromkeys(g["arch"] for g in generated))
            tasks = self._network_tasks(archs)
            self._prefetch(tasks)
            with job_progress(len(tasks), f"{c.kind} generated networks", enabled=self.progress) as update:
                report = measure_tasks(
                    self.farm, self.store, tasks, kind=c.kind, spec=self.spec, description="demo: generated networks",
                    on_progress=update,
                )  # fmt: skip
            _raise_failures(report)
            measured = network_latencies(self.store, predictor.table, statistic=predictor.statistic)
            top1 = dict(zip(archs, labels.scorer.accuracy(archs), strict=True))
            for row in generated:
                row["measured_ms"] = measured[row["arch"]]
                row["top1"] = top1[row["arch"]]
            self.result.generated = generated
            draws = propose(run_dir, budgets, n=c.histogram_samples, seed=c.seed)
            self.result.proposals = [
                {"budget_ms": b, "latencies_ms": [p["latency_ms"] for p in ds]} for b, ds in zip(budgets, draws, strict=True)
            ]
            uniform = get_space(SPACE).sample_many(c.histogram_samples, seed=c.seed + 1)
            self.result.uniform_ms = predictor.predict_ms(uniform)
            # The machine may run faster or slower now than while the table was built: the references say by how much.
            now = rescale(self.farm, self.store, predictor.table, spec=self.spec)
            self.result.rescale = now.to_dict()
            for row in generated:
                row["rescaled_ms"] = row["latency_ms"] * now.factor  # the table's prediction, at the machine's speed now
            within = sum(g["measured_ms"] <= g["budget_ms"] for g in generated)
            info["detail"] = (
                f"{len(generated)} architectures, median {sorted(g['time_ms'] for g in generated)[len(generated) // 2]:.1f} ms "
                f"per budget; {within}/{len(generated)} within budget as measured; the references run x{now.factor:.3f} "
                f"(band {now.low:.3f}-{now.high:.3f}) of their speed while the table was built"
            )
        return value

    def _earlier_generate(self) -> DemoResult | None:
        """The earlier run's result when it holds this stage's output (demo.json), else None (generate afresh)."""
        try:
            earlier = load_result(self.result.out)
        except DemoFileError:
            return None
        return earlier if earlier.generated and earlier.rescale else None


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
