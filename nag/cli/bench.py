"""``nag bench`` (every search method on the same task, scored by the sources) and ``nag report DIR``.

Nothing heavy is imported here: torch, ray and the methods load inside the handlers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from nag.cli._common import print_json, print_table
from nag.cli.search import accuracy_options, add_data_options, farm_latency, load_arch_table

__all__ = ["register"]

METHOD_NAMES = "pnag,independent,mnasnet,tunas,pnag-no-acc,evolution,random,local"
DEFAULT_WIDTH, DEFAULT_KIND = 1.0, "ort-cpu"  # the embedded default: DyNAS-T's w1.0 top-1 on a table measured here


def register(subparsers: Any) -> None:
    bench = subparsers.add_parser(
        "bench",
        help="run every search method on the same budgets and score each answer by the accuracy and latency sources",
        description="Without --table or --db: the DyNAS-T accuracy (real ImageNet top-1, w1.0) on a table of this "
        "machine's ort-cpu latency at w1.0, 224 px, measured into OUT/latency.db on first use.",
    )
    add_data_options(bench)
    run = bench.add_argument_group("bench")
    run.add_argument("--budgets-ms", required=True, metavar="LIST", help="budgets in ms, comma-separated, e.g. 80,110,140")
    run.add_argument("--methods", default=METHOD_NAMES, metavar="LIST", help="methods, comma-separated (default: all)")
    run.add_argument("--k-sweep", default="", metavar="LIST", help="extra PNAG runs with these K, e.g. 2,5,10,30")
    run.add_argument("--budgets", type=int, default=10, metavar="K", help="PNAG's K training budgets (default: %(default)s)")
    run.add_argument("--seed", type=int, default=0, help="seed of every method and of the sampled architectures")
    run.add_argument("--evaluator-steps", type=int, default=None, help="PNAG-family evaluator minibatches (default: 3000)")
    run.add_argument("--generator-iterations", type=int, default=None, help="REINFORCE iterations (default: 800)")
    run.add_argument("--evolution-generations", type=int, default=500, help="evolution generations (OFA: %(default)s)")
    run.add_argument("--random-samples", type=int, default=1000, help="random search samples per budget (default: %(default)s)")
    run.add_argument("--draws", type=int, default=1000, help="raw policy draws per budget for Fig. 3 (default: %(default)s)")
    run.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s)")
    run.add_argument(
        "--measure",
        action="store_true",
        help="measure every answer as a whole network on the farm (the table's kind and setting) and score the answers' "
        "latency by the measurement, not the table (needs --db/--kind or the embedded default)",
    )
    run.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDR",
        help="a Ray cluster (HEAD:PORT or auto): the methods run there as parallel tasks, and --measure uses its farm",
    )
    run.add_argument("--out", required=True, help="bench directory to write")
    run.add_argument("--json", action="store_true", help='print {"results": [...], "summary": {...}}')
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    bench.set_defaults(handler=_bench)

    report = subparsers.add_parser("report", help="render a bench or demo directory as one self-contained HTML page")
    report.add_argument("dir", help="a directory written by 'nag bench' or 'nag demo'")
    report.set_defaults(handler=_report)


def _spec(args: argparse.Namespace) -> Any:
    from nag.bench.runner import BenchSpec, budget_list, int_list, name_list

    return BenchSpec(
        budgets_ms=budget_list(args.budgets_ms),
        methods=name_list(args.methods),
        k_sweep=int_list(args.k_sweep, option="--k-sweep"),
        draws=args.draws,
        evolution_generations=args.evolution_generations,
        random_samples=args.random_samples,
    )


def _config(args: argparse.Namespace) -> Any:
    from nag.search.config import SearchConfig

    changes: dict[str, Any] = {"space": args.space, "num_budgets": args.budgets, "seed": args.seed}
    if args.evaluator_steps is not None:
        changes["evaluator__steps"] = args.evaluator_steps
    if args.generator_iterations is not None:
        changes["generator__iterations"] = args.generator_iterations
    return SearchConfig().replace(**changes)


def _bench_spec() -> Any:
    """The measurement spec of the embedded default's table and of --measure (the same, so they share a table)."""
    from agents import MeasurementSpec

    return MeasurementSpec(warmup_runs=5, runs=20, threads=1)


def _measure(args: argparse.Namespace, predictor: Any, archs: list[str]) -> Any:
    """The answers measured on the farm (the connected cluster's, else a local one of --kind)."""
    from farm.client import Farm
    from farm.progress import job_progress
    from farm.store import Store
    from nag.bench.measure import measure_answers

    farm = Farm(started_ray=False) if args.ray_address else Farm.local(kinds=[predictor.table.device])
    with Store(args.db) as store, farm, job_progress(len(archs), "measuring answers", enabled=not args.quiet) as update:
        return measure_answers(farm, store, predictor, archs, spec=_bench_spec(), on_progress=update)


def _default_latency(args: argparse.Namespace) -> Any:
    """The embedded default's latency: this machine's table at w1.0, 224 px, measured into OUT/latency.db if missing."""
    from farm.client import Farm
    from farm.lut import LutPredictor, select_table
    from farm.progress import job_progress
    from farm.store import Store
    from farm.tables import block_tasks, build_tables

    args.db, args.kind, args.width = str(Path(args.out) / "latency.db"), DEFAULT_KIND, DEFAULT_WIDTH
    Path(args.out).mkdir(parents=True, exist_ok=True)
    with Store(args.db) as store:
        if not store.tables(device=args.kind, space=args.space, resolution=args.resolution, width=args.width):
            spec = _bench_spec()
            total = len(block_tasks(args.space, width=args.width, resolutions=[args.resolution]))
            print(
                f"measuring this machine's {args.kind} table (w{args.width:g}, {args.resolution} px) into {args.db}",
                file=sys.stderr,
            )
            with (
                Farm.local(kinds=[args.kind]) as farm,
                job_progress(total, f"{args.kind} blocks", enabled=not args.quiet) as update,
            ):
                build_tables(
                    farm, store, space=args.space, width=args.width, resolutions=[args.resolution], kind=args.kind, spec=spec,
                    on_progress=update,
                )  # fmt: skip
        table = select_table(store, device=args.kind, space=args.space, resolution=args.resolution, width=args.width)
        return LutPredictor(store, table)


def _task(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """The :class:`nag.search.methods.SearchTask` the flags describe, and notes on where it came from."""
    from nag.accuracy.registry import open_source
    from nag.errors import SettingError
    from nag.search.methods import SearchTask
    from nag.space import get_space

    if (args.db is None) != (args.kind is None):
        raise SettingError("--db and --kind go together: the farm store and the table's device name")
    if args.table is not None and args.db is not None:
        raise SettingError("give one latency source: --table FILE, or --db DB --kind K (or neither, for the embedded default)")
    space = get_space(args.space)
    notes: dict[str, Any] = {}
    table = None
    if args.table is not None:
        from nag.latency.additive import AdditiveLatencyPredictor

        table = load_arch_table(args, args.table, require_accuracy=args.accuracy is None)
        latency = AdditiveLatencyPredictor.fit(table.archs, table.latency_ms, space=space.name, seed=args.seed)
        notes["latency source"] = f"additive block model fitted on the {len(table)} rows of {args.table}"
        spec = args.accuracy or f"fitted:{args.table}"
    else:
        if args.db is None:
            args.width = DEFAULT_WIDTH
            latency = _default_latency(args)
        else:
            latency = farm_latency(args)
        notes["latency source"] = f"farm table {args.kind} w{args.width:g} {args.resolution} px in {args.db}"
        spec = args.accuracy or "dynast"
    opened = open_source(spec, accuracy_options(args, cache=str(Path(args.out) / "accuracy.csv")))
    notes["accuracy source"] = spec + ("" if opened.fast else " (slow: evolution and random search are refused)")
    if table is not None and args.accuracy is None:
        archs, lat, acc = table.archs, table.latency_ms, table.accuracy
        notes["labelled architectures"] = f"the table's {len(archs)} rows"
    else:
        known = getattr(opened.source, "archs", None)
        archs = (
            tuple(known)
            if known is not None
            else tuple(space.format(a) for a in space.sample_many(args.num_archs, seed=args.seed))
        )
        lat, acc = tuple(latency.predict_ms(archs)), tuple(opened.source.accuracy(archs))
        notes["labelled architectures"] = (
            f"{len(archs)} {'rows of the source' if known is not None else 'uniform samples'} labelled by the sources"
        )
    task = SearchTask(
        space, latency, opened.source, tuple(archs), tuple(lat), tuple(acc), _config(args), fast_accuracy=opened.fast
    )
    return task, notes


def _bench(args: argparse.Namespace) -> int:
    from nag.accuracy.registry import parse_spec
    from nag.bench.report import write_outputs
    from nag.bench.runner import run_bench
    from nag.errors import SettingError
    from nag.search.api import compute_threads

    spec = _spec(args)  # bad budgets, methods or accuracy specs fail before any data is read
    if args.accuracy is not None:
        parse_spec(args.accuracy)
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise SettingError(f"--out {args.out!r} is a file; give a directory for the bench's files")
    if args.measure and args.table is not None:
        raise SettingError(
            "--measure measures on the farm: give --db DB --kind K (or neither, for the embedded default), not --table"
        )
    task, notes = _task(args)
    say = (lambda _line: None) if args.json else (lambda line: print(line, file=sys.stderr))
    if args.ray_address:
        from farm.client import join_cluster

        join_cluster(args.ray_address)
    measure = (lambda archs: _measure(args, task.latency, archs)) if args.measure else None
    with compute_threads(args.threads):
        result = run_bench(
            task, spec, progress=not args.quiet, log=say, optimum=None, task_notes=notes, on_ray=bool(args.ray_address),
            measure=measure,
        )  # fmt: skip
    labelled = list(zip(task.latency_ms, task.accuracy_labels, strict=True))[:4000]
    page = write_outputs(result, args.out, labelled=labelled)
    if args.json:
        print_json({"results": result.results(), "summary": result.summary})
        return 0
    print_table(
        ["method", "mean top-1 (source)", "feasible", "training (s)", "per budget (s)", "hypervolume"],
        [
            [m, f"{100 * s['mean_accuracy']:.2f}%", f"{100 * s['feasible_rate']:.0f}%", f"{s['setup_s']:.1f}",
             f"{s['median_budget_time_s']:.3g}", f"{s['hypervolume']:.1f}"]
            for m, s in result.summary["methods"].items()
        ],
        align_right=[False, True, True, True, True, True],
    )  # fmt: skip
    print(f"report: {page}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from nag.errors import SettingError

    folder = Path(args.dir)
    if (folder / "bench.json").is_file():
        from nag.bench.report import render_directory

        print(render_directory(folder))
        return 0
    if any((folder / name).is_file() for name in ("demo.json", "demo-state.json")):
        from nag.demo.report import render_directory as render_demo

        print(render_demo(folder))  # from demo.json; a folder of an older demo: DemoFileError says to rerun it
        return 0
    raise SettingError(
        f"{str(folder)!r} holds neither a bench (bench.json) nor a demo (demo.json); run 'nag bench' or 'nag demo' first"
    )
