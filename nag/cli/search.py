"""``nag search`` (train PNAG, write a run directory) and ``nag generate`` (architectures for budgets).

Nothing heavy is imported here: torch and ray load inside the handlers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from nag.cli._common import print_json, print_table, retain_freed_memory

__all__ = ["accuracy_options", "add_data_options", "farm_latency", "load_arch_table", "register"]

ACCURACY_FORMS = "dynast, fitted:FILE, table:FILE, ofa-predictor:PATH or supernet:CKPT (with --data DIR|digits)"


def register(subparsers: Any) -> None:
    """Add the ``search`` and ``generate`` commands to the ``nag`` parser's subparsers."""
    search = subparsers.add_parser("search", help="train PNAG on a table (or an accuracy source) and write a run directory")
    add_data_options(search)
    method = search.add_argument_group("method (defaults follow the paper; see nag/search/config.py)")
    method.add_argument(
        "--budgets", type=int, default=10, metavar="K", help="number of training budgets K (default: %(default)s)"
    )
    method.add_argument(
        "--seed", type=int, default=0, help="seed of the split, the networks and all sampling (default: %(default)s)"
    )
    method.add_argument("--loss", choices=("hinge", "logistic"), default="hinge", help="ranking loss phi (default: %(default)s)")
    method.add_argument(
        "--baseline", choices=("ema", "batch", "none"), default="ema", help="REINFORCE baseline (default: %(default)s)"
    )
    method.add_argument(
        "--budget-input", choices=("every", "first"), default="every", help="feed the budget at every step or first only"
    )
    method.add_argument("--no-mask", action="store_true", help="count unused slots in log-prob and entropy (published code)")
    method.add_argument("--no-reward-norm", action="store_true", help="do not divide each budget's advantages by its reward std")
    method.add_argument(
        "--outside", choices=("clamp", "extrapolate", "error"), default="clamp", help="budgets outside the trained range"
    )
    method.add_argument("--evaluator-steps", type=int, default=None, help="evaluator minibatches (default: 3000)")
    method.add_argument("--generator-iterations", type=int, default=None, help="REINFORCE iterations (default: 800)")
    method.add_argument(
        "--archs-per-budget", type=int, default=None, help="N architectures per budget per iteration (default: 16)"
    )
    run = search.add_argument_group("running")
    run.add_argument("--out", required=True, help="run directory to write")
    run.add_argument("--tune", action="store_true", help="run trials (seeds x entropy weights) as Ray Tune trials; keep the best")
    run.add_argument("--trials", type=int, default=2, help="with --tune: seeds SEED..SEED+N-1 (default: %(default)s)")
    run.add_argument("--entropy-weights", type=float, nargs="+", default=None, help="with --tune: lambda values (default: 1e-3)")
    run.add_argument(
        "--ray-address", default=None, help="a Ray cluster to use (implies Tune trials unless --rollout-workers is given)"
    )
    run.add_argument(
        "--rollout-workers", type=int, default=0, help="Ray actors sampling rollouts (needs --ray-address; default: 0)"
    )
    run.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s; the networks are small)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    search.set_defaults(handler=_search)

    generate = subparsers.add_parser("generate", help="infer the best architecture for each latency budget from a run directory")
    generate.add_argument("--run", required=True, help="run directory written by 'nag search'")
    generate.add_argument(
        "--budget", type=float, action="append", required=True, metavar="MS", help="latency budget in ms (repeat)"
    )
    generate.add_argument("--json", action="store_true", help="print a JSON list, one object per budget in order")
    generate.add_argument("--seed", type=int, default=0, help="sampling seed (default: %(default)s)")
    generate.add_argument(
        "--candidates", type=int, default=None, help="architectures sampled per round (default: the run's, 100)"
    )
    generate.add_argument(
        "--select-by",
        choices=("surrogate", "evaluator", "source"),
        default=None,
        help="rank feasible candidates by the run's surrogate estimate, the evaluator, or the accuracy source itself "
        "(default: the source when the run stores a fast one, as the paper does; else the surrogate)",
    )
    generate.add_argument(
        "--accuracy", default=None, metavar="SPEC", help=f"the accuracy source for --select-by source: {ACCURACY_FORMS}"
    )
    generate.add_argument(
        "--refine-steps",
        type=int,
        default=None,
        metavar="N",
        help="with --select-by source: moves of the local search under the source after the pick "
        "(default: the run's, 8; 0: the paper's inference, the best draw)",
    )
    generate.add_argument(
        "--budget-quantile",
        type=float,
        default=None,
        metavar="Q",
        help="feasible means the Q-quantile of the latency is under the budget, e.g. 0.9 (a run searched with --db; "
        "default: the run's setting)",
    )
    upgrade = subparsers.add_parser(
        "upgrade-run",
        help="add inference.npz to a run directory from an older nag (or write an older one again), so 'nag generate' "
        "loads it without torch and at full speed",
    )
    upgrade.add_argument("run", help="run directory written by 'nag search'")
    upgrade.set_defaults(handler=_upgrade_run)

    generate.set_defaults(
        handler=_generate,
        space="ofa-mbv3",
        resolution=224,
        arch_column="arch",
        latency_column="latency_ms",
        accuracy_column="accuracy",
        platform=None,
        legacy_platform=None,
        width_key=None,
        data=None,
        data_resolution=None,
    )


def add_data_options(parser: Any) -> None:
    """The data flags shared by ``nag search`` and ``nag bench``: a table, or a farm table and an accuracy source."""
    data = parser.add_argument_group("data")
    data.add_argument("--space", default="ofa-mbv3", help="search space name (default: %(default)s)")
    data.add_argument("--table", help="CSV, Parquet or PNAG JSON table of architectures with latency (ms) and accuracy")
    data.add_argument("--arch-column", default="arch", help="architecture column (default: %(default)s)")
    data.add_argument("--latency-column", default="latency_ms", help="latency column, milliseconds (default: %(default)s)")
    data.add_argument(
        "--accuracy-column", default="accuracy", help="accuracy column, fractions or percent (default: %(default)s)"
    )
    data.add_argument(
        "--platform", default=None, choices=PLATFORMS, help="PNAG JSON: whose latency, mobile, cpu or gpu (default: mobile)"
    )
    data.add_argument("--device", dest="legacy_platform", default=None, choices=PLATFORMS, help=argparse.SUPPRESS)
    data.add_argument("--width-key", default=None, help="PNAG JSON: the width entry, e.g. w1.2 (default: the only one)")
    data.add_argument("--accuracy", default=None, metavar="SPEC", help=f"label architectures with {ACCURACY_FORMS}")
    data.add_argument("--resolution", type=int, default=224, help="input resolution for ofa-predictor (default: %(default)s)")
    data.add_argument(
        "--num-archs", type=int, default=16000, help="with an accuracy predictor: architectures to sample (default: %(default)s)"
    )
    data.add_argument("--db", default=None, help="farm latency store: latency from its block table for --kind")
    data.add_argument("--kind", default=None, help="with --db: the table's device name (the agent kind, e.g. adb-litert)")
    data.add_argument("--width", type=float, default=1.2, help="with --db: the table's width multiplier (default: %(default)s)")
    data.add_argument("--fingerprint", default=None, help="with --db: choose among tables of several device fingerprints")
    data.add_argument(
        "--budget-quantile",
        type=float,
        default=None,
        metavar="Q",
        help="with --db: feasible means the Q-quantile of the latency (from the table's uncertainty) is under the budget, "
        "e.g. 0.9 (default: the estimate)",
    )
    data.add_argument("--data", default=None, help="with --accuracy supernet:CKPT: an image folder (ImageNet layout) or 'digits'")
    data.add_argument(
        "--data-resolution", type=int, default=None, help="supernet data resolution (default: 32 for digits, else --resolution)"
    )


def accuracy_options(args: argparse.Namespace, *, cache: str | None = None) -> Any:
    """The :class:`nag.accuracy.registry.SourceOptions` of a command's flags."""
    from nag.accuracy.registry import SourceOptions

    return SourceOptions(
        space=args.space,
        resolution=args.resolution,
        data=args.data,
        data_resolution=args.data_resolution,
        cache=cache,
        load_table=lambda path: load_arch_table(args, path, require_accuracy=True),
    )


def _accuracy_source(args: argparse.Namespace) -> tuple[Any, str | None]:
    """The --accuracy source, and the fingerprint of what a fitted one is fitted from (None for other kinds), taken
    before it is opened: a table that changes while it is fitted or searched fails the fingerprint later and is
    fitted again, never the reverse."""
    from nag.accuracy.registry import fit_fingerprint, open_source

    fingerprint = fit_fingerprint(_absolute_spec(args.accuracy), _reopen_settings(args))
    return open_source(args.accuracy, accuracy_options(args, cache=f"{args.out}.accuracy.csv")).source, fingerprint


def farm_latency(args: argparse.Namespace) -> Any:
    """The farm's block-table predictor for --kind at --resolution/--width in --db (one table, or a clear error)."""
    from farm.lut import LutPredictor, select_table
    from farm.store import Store

    with Store(args.db, read_only=True) as store:
        table = select_table(
            store, device=args.kind, space=args.space, resolution=args.resolution, width=args.width, fingerprint=args.fingerprint
        )
        predictor = LutPredictor(store, table, quantile=args.budget_quantile)
    calibrated = " (calibrated)" if predictor.calibration else " (uncalibrated)"
    calibrated += ", its blocks estimated by 'nag table bootstrap'" if predictor.estimated else ""
    quantile = "" if predictor.quantile is None else f", its {predictor.quantile:g}-quantile"
    print(f"latency from table {table.label()}{calibrated}{quantile}", file=sys.stderr)
    return predictor


PLATFORMS = ("mobile", "cpu", "gpu")


def _platform(args: argparse.Namespace) -> str:
    """--platform; the old spelling --device (before 2026-12, when --kind became the one word for agent kinds)
    still works, with a note."""
    from nag.errors import SettingError

    if args.legacy_platform is not None:
        if args.platform is not None and args.platform != args.legacy_platform:
            raise SettingError(f"--platform {args.platform} and --device {args.legacy_platform} disagree; give --platform only")
        print(f"nag: note: '--device {args.legacy_platform}' is now spelled '--platform {args.legacy_platform}'", file=sys.stderr)
    return str(args.platform or args.legacy_platform or "mobile")


def load_arch_table(args: argparse.Namespace, path: str, *, require_accuracy: bool) -> Any:
    from nag.data import load_table

    table = load_table(
        path,
        space=args.space,
        arch_column=args.arch_column,
        latency_column=args.latency_column,
        accuracy_column=args.accuracy_column,
        device=_platform(args),
        width_key=args.width_key,
        require_accuracy=require_accuracy,
    )
    print(f"read {table.describe()}", file=sys.stderr)
    return table


def _config(args: argparse.Namespace) -> Any:
    from nag.search.config import SearchConfig

    changes: dict[str, Any] = {
        "space": args.space,
        "num_budgets": args.budgets,
        "seed": args.seed,
        "outside": args.outside,
        "rollout_workers": args.rollout_workers,
        "evaluator__loss": args.loss,
        "generator__baseline": args.baseline,
        "generator__budget_input": args.budget_input,
        "generator__mask_unused": not args.no_mask,
        "generator__normalize_rewards": not args.no_reward_norm,
    }
    for option, key in (
        ("evaluator_steps", "evaluator__steps"),
        ("generator_iterations", "generator__iterations"),
        ("archs_per_budget", "generator__archs_per_budget"),
    ):
        if getattr(args, option) is not None:
            changes[key] = getattr(args, option)
    return SearchConfig().replace(**changes)


def _search(args: argparse.Namespace) -> int:
    from nag.errors import SettingError

    if (args.db is None) != (args.kind is None):
        raise SettingError("--db and --kind go together: the farm store and the table's device name")
    if args.budget_quantile is not None and args.db is None:
        raise SettingError(
            "--budget-quantile needs a latency with an uncertainty: a farm table (--db DB --kind KIND); a --table's "
            "latency column has none"
        )
    if args.threads is not None and args.threads < 1:
        raise SettingError(f"--threads must be an integer >= 1, got {args.threads}")
    if args.out and Path(args.out).exists() and not Path(args.out).is_dir():  # before the training, not after it
        raise SettingError(f"--out {args.out!r} is a file; give a directory for the run")
    if args.db is not None:
        return _search_on_farm_latency(args)
    if args.table is None and args.accuracy is None:
        raise SettingError("'nag search' needs --table FILE (and/or --accuracy SPEC with a latency table)")
    if args.rollout_workers and not args.ray_address:
        raise SettingError("--rollout-workers needs a Ray cluster: give --ray-address (e.g. auto)")
    config = _config(args)
    table = None if args.table is None else load_arch_table(args, args.table, require_accuracy=args.accuracy is None)
    accuracy, fingerprint = (None, None) if args.accuracy is None else _accuracy_source(args)
    tune_options = _tune_options(args)
    return _run(args, config, table, accuracy, tune_options, fingerprint=fingerprint)


def _search_on_farm_latency(args: argparse.Namespace) -> int:
    """Latency from the farm's table; accuracy from --accuracy, or from --table's accuracy column (its latency
    column is not used)."""
    from nag.accuracy.table import TableAccuracySource
    from nag.errors import SettingError

    if args.accuracy is None and args.table is None:
        raise SettingError("with --db/--kind, give the accuracy: --accuracy SPEC, or --table FILE with an accuracy column")
    latency = farm_latency(args)  # first: a wrong --db fails before any table is read
    accuracy, fingerprint = (
        _accuracy_source(args)
        if args.accuracy is not None
        else (TableAccuracySource(load_arch_table(args, args.table, require_accuracy=True)), None)
    )
    return _run(args, _config(args), None, accuracy, _tune_options(args), latency=latency, fingerprint=fingerprint)


def _tune_options(args: argparse.Namespace) -> Any:
    from nag.errors import SettingError

    use_tune = args.tune or (args.ray_address is not None and not args.rollout_workers)
    if not use_tune:
        return None
    if args.trials < 1:
        raise SettingError(f"--trials must be >= 1, got {args.trials}")
    from nag.search.tuning import TuneOptions

    return TuneOptions(
        seeds=tuple(range(args.seed, args.seed + args.trials)),
        entropy_weights=tuple(args.entropy_weights or (1e-3,)),
        ray_address=args.ray_address,
    )


def _run(
    args: argparse.Namespace,
    config: Any,
    table: Any,
    accuracy: Any,
    tune_options: Any,
    *,
    latency: Any = None,
    fingerprint: str | None = None,
) -> int:
    from nag.search.api import run_search
    from nag.search.rundir import read_metrics

    retain_freed_memory()
    if args.ray_address and args.rollout_workers:
        from nag.ray_session import init_ray

        init_ray(args.ray_address)
    out = run_search(
        out=args.out,
        table=table,
        config=config,
        accuracy=accuracy,
        latency=latency,
        num_archs=args.num_archs,
        tune=tune_options,
        progress=not args.quiet,
        threads=args.threads,
        log=lambda message: print(message, file=sys.stderr),
    )
    if args.accuracy is not None:
        _store_accuracy(args, out, accuracy, fingerprint)
    metrics = read_metrics(out)
    best = metrics.best
    print(f"run directory {out} ({metrics.total_s:.0f} s, {len(metrics.trials)} trial(s), best seed {best.seed})")
    pairwise = best.evaluator.heldout_pairwise_accuracy
    print_table(
        ["budget (ms)", "held-out pairwise acc", "arch", "latency (ms)", "accuracy"],
        [
            [
                f"{float(b):.3f}",
                f"{a:.3f}",
                p.arch,
                f"{p.latency_ms:.3f}",
                f"{p.accuracy:.4f}" + ("" if p.feasible else " (over budget)"),
            ]
            for (b, a), p in zip(pairwise.items(), best.picks_at_trained_budgets, strict=True)
        ],
        align_right=[True, True, False, True, True],
    )
    return 0


_REOPEN = (
    "space",
    "resolution",
    "arch_column",
    "latency_column",
    "accuracy_column",
    "width_key",
    "data",
    "data_resolution",
)


def _reopen_settings(args: argparse.Namespace) -> dict[str, Any]:
    """What reopening the run's accuracy source needs: the ``_REOPEN`` flags and the PNAG JSON platform (stored
    under its file name, "device")."""
    settings = {name: getattr(args, name) for name in _REOPEN}
    settings["device"] = args.platform or args.legacy_platform or "mobile"
    return settings


def _absolute_spec(spec: str) -> str:
    """``spec`` with a file target made absolute (``fitted:t.csv`` -> ``fitted:/abs/t.csv``)."""
    from nag.accuracy.registry import parse_spec

    kind, target = parse_spec(spec)
    return f"{kind}:{Path(target).resolve()}" if target else kind


def _store_accuracy(args: argparse.Namespace, out: Any, source: Any, fingerprint: str | None) -> None:
    """Keep the --accuracy spec (with file targets made absolute) so 'nag generate --select-by source' can reopen it,
    and a fitted source's fit with ``fingerprint`` (of what it was fitted from) so that reopening it does not fit
    it again."""
    from nag.search.rundir import write_accuracy_fit, write_accuracy_spec

    write_accuracy_spec(out, _absolute_spec(args.accuracy), _reopen_settings(args))
    write_accuracy_fit(out, source, fingerprint)


def _stored_fit(run: str, spec: str, settings: dict[str, Any]) -> Any:
    """The run's stored fit of ``spec`` (accuracy.npz) when it is the fit that opening ``spec`` would make, else None."""
    from nag.accuracy.registry import fit_fingerprint
    from nag.search.rundir import read_accuracy_fit

    fingerprint = fit_fingerprint(spec, settings)
    stored = None if fingerprint is None else read_accuracy_fit(run)
    if stored is None or stored.fingerprint != fingerprint:
        return None  # not a fitted source, or fitted from another table (or the table changed since): fit it again
    return stored.predictor()


MAX_CANDIDATES = 5_000  # architectures sampled per round by 'nag generate' (the paper's: 100 to 1,000)
MAX_REFINE_STEPS = 1_000  # moves of the refinement under the source (the default: 8)


def _generation_source(args: argparse.Namespace) -> tuple[Any, str]:
    """The accuracy source for selection (given, or stored in the run) and the selection rule in force."""
    from nag.accuracy.registry import open_source
    from nag.errors import SettingError
    from nag.search.rundir import read_accuracy_spec

    spec, options = args.accuracy, argparse.Namespace(**vars(args))
    stored = read_accuracy_spec(args.run) if spec is None else None  # RunDirError names a damaged file
    if stored is not None:
        spec, settings = stored
        for name in _REOPEN:
            setattr(options, name, settings.get(name))
        options.platform, options.legacy_platform = settings.get("device"), None
    if args.select_by in ("surrogate", "evaluator"):
        return None, args.select_by
    if spec is None:
        if args.select_by == "source":
            raise SettingError("--select-by source needs the accuracy source: pass --accuracy SPEC (the run stores none)")
        return None, "surrogate"
    fitted = _stored_fit(args.run, _absolute_spec(spec), _reopen_settings(options))
    if fitted is not None:
        return fitted, "source"  # the run's own fit of a fitted source (a fast one)
    opened = open_source(spec, accuracy_options(options))
    if args.select_by is None and not opened.fast:
        return None, "surrogate"  # a slow source (supernet) is asked only when requested
    return opened.source, "source"


def _upgrade_run(args: argparse.Namespace) -> int:
    from nag.search.rundir import upgrade_run

    if upgrade_run(args.run):
        print(f"{args.run}: wrote inference.npz; 'nag generate' now loads it without torch")
    else:
        print(f"{args.run}: already has an inference.npz of this version; nothing to do")
    return 0


def _generate(args: argparse.Namespace) -> int:
    from nag.errors import SettingError
    from nag.search.api import generate

    # Checked before the run is read. The upper bounds keep one answer within seconds: a million candidates a
    # round ran for over 5 minutes on a budget no draw met (each round is drawn again, up to max_rounds).
    for flag, value, least, most, why in (
        ("--refine-steps", args.refine_steps, 0, MAX_REFINE_STEPS, "; 0 turns refinement off"),
        ("--candidates", args.candidates, 1, MAX_CANDIDATES, ""),
        ("--seed", args.seed, 0, None, ""),
    ):
        if value is not None and (value < least or (most is not None and value > most)):
            bounds = f"from {least} to {most:,}" if most is not None else f">= {least}"
            raise SettingError(f"{flag} must be an integer {bounds}, got {value}{why}")
    source, select_by = _generation_source(args)
    results = generate(
        args.run,
        args.budget,
        seed=args.seed,
        candidates=args.candidates,
        select_by=select_by,
        accuracy=source,
        refine_steps=args.refine_steps,
        budget_quantile=args.budget_quantile,
        log=lambda message: print(f"nag: note: {message}", file=sys.stderr),
    )
    for result in results:
        if result.note:
            print(f"nag: note: {result.note}", file=sys.stderr)
    if args.json:
        print_json([r.to_dict() for r in results])
        return 0
    quantile = results[0].budget_quantile if results else None
    print_table(
        [
            "budget (ms)",
            "arch",
            "latency (ms)" if quantile is None else f"latency, {quantile:g}-quantile (ms)",
            "accuracy (source)" if select_by == "source" else "accuracy (estimate)",
            "interpolated",
            "time (ms)",
        ],
        [
            [
                f"{r.budget_ms:g}",
                r.arch,
                f"{r.latency_ms:.3f}" + ("" if r.feasible else " (over budget)"),
                f"{r.accuracy:.4f}",
                "yes" if r.interpolated else "no",
                f"{r.time_ms:.1f}",
            ]
            for r in results
        ],
        align_right=[True, False, True, True, False, True],
    )
    return 0
