"""``nag table``: build, validate, import, export and query latency tables (SQLite, see :mod:`farm.store`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from nag.cli._common import add_farm_options, measurement_spec, open_farm, print_json, print_table, read_arch_args

__all__ = ["register"]


def register(subparsers: Any) -> None:
    table = subparsers.add_parser("table", help="latency tables: build on the farm, validate, import/export OFA LUTs, predict")
    commands = table.add_subparsers(dest="table_command", metavar="COMMAND", required=True)

    build = commands.add_parser("build", help="measure every distinct block on a kind of device (resumable)")
    _common(build, resolution_many=True)
    build.add_argument("--kind", required=True, help="agent kind whose devices measure, e.g. ort-cpu, adb-litert")
    build.add_argument(
        "--reference-every", type=int, default=None, metavar="N",
        help="measure the reference networks after every N block measurements, besides at the start and end "
        "(0: start and end only; default: 48, one point in the middle of a 96-block table)",
    )  # fmt: skip
    build.add_argument(
        "--remeasure-drifted", action="store_true",
        help="first measure again the block entries taken while the references had drifted beyond their noise band",
    )  # fmt: skip
    add_farm_options(build)
    build.set_defaults(handler=_build)

    validate = commands.add_parser(
        "validate", help="measure random whole networks; fit the calibration; report the table's error"
    )
    _common(validate)
    validate.add_argument("--kind", required=True)
    validate.add_argument("--n", type=int, required=True, help="number of random networks")
    validate.add_argument("--seed", type=int, default=0)
    validate.add_argument("--plot", default=None, help="write a predicted-vs-measured PNG here")
    validate.add_argument("--json", action="store_true")
    add_farm_options(validate)
    validate.set_defaults(handler=_validate)

    boot = commands.add_parser(
        "bootstrap",
        help="a new device's table from N whole networks measured on it and another device's table (per-operator scaling)",
    )
    _common(boot)
    boot.add_argument(
        "--from", dest="source_device", required=True, metavar="DEVICE", help="the existing table's device (e.g. ort-cpu)"
    )
    boot.add_argument("--to", dest="kind", required=True, metavar="KIND", help="the new device's agent kind (e.g. adb-litert)")
    boot.add_argument("--n", type=int, default=20, help="whole networks to measure on the new device (default: %(default)s)")
    boot.add_argument("--from-db", default=None, metavar="DB", help="the store holding the existing table (default: --db)")
    boot.add_argument("--from-fingerprint", default=None, help="choose among the existing device's tables by fingerprint")
    boot.add_argument("--seed", type=int, default=0, help="seed of the candidate networks (default: %(default)s)")
    boot.add_argument("--json", action="store_true")
    add_farm_options(boot)
    boot.set_defaults(handler=_bootstrap)

    imp = commands.add_parser("import-ofa", help="import OFA's <res>_lookup_table.yaml files under a device name")
    imp.add_argument("files", nargs="+", metavar="FILE.yaml")
    imp.add_argument("--device", required=True, help="the name to file the tables under")
    imp.add_argument("--db", required=True)
    imp.add_argument("--replace", action="store_true", help="overwrite entries whose numbers differ")
    imp.set_defaults(handler=_import_ofa)

    exp = commands.add_parser("export-ofa", help="write a device's tables as OFA <res>_lookup_table.yaml files")
    exp.add_argument("--db", required=True)
    exp.add_argument(
        "--device", "--kind", dest="device", required=True, help="the tables' device name (the agent kind for measured tables)"
    )
    exp.add_argument("--out", required=True, help="output folder")
    exp.set_defaults(handler=_export_ofa)

    check = commands.add_parser(
        "check", help="check a store's integrity (SQLite integrity_check); --salvage copies what is intact into a new store"
    )
    check.add_argument("--db", required=True)
    check.add_argument("--salvage", default=None, metavar="OUT", help="write every readable table and entry into a new store OUT")
    check.set_defaults(handler=_check)

    predict = commands.add_parser("predict", help="table latency of architectures (sum of their blocks, plus calibration)")
    predict.add_argument("archs", nargs="+", metavar="ARCH", help="canonical strings, or '-' for stdin")
    predict.add_argument("--db", required=True)
    predict.add_argument(
        "--device", "--kind", dest="device", required=True, help="the table's device name (the agent kind for measured tables)"
    )
    predict.add_argument("--resolution", type=int, required=True)
    predict.add_argument("--width", type=float, default=None)
    predict.add_argument("--space", default="ofa-mbv3")
    predict.add_argument("--fingerprint", default=None, help="choose among tables of several device fingerprints")
    predict.add_argument("--json", action="store_true")
    predict.add_argument(
        "--rescale", action="store_true",
        help="measure the reference networks now on a device of the table's kind and scale the predictions by now/at-build",
    )  # fmt: skip
    add_farm_options(predict)
    predict.set_defaults(handler=_predict)


def _common(parser: argparse.ArgumentParser, *, resolution_many: bool = False) -> None:
    parser.add_argument("--space", default="ofa-mbv3")
    parser.add_argument("--width", type=float, default=1.2)
    if resolution_many:
        parser.add_argument("--resolution", type=int, action="append", required=True, help="repeat for several")
    else:
        parser.add_argument("--resolution", type=int, required=True)
    parser.add_argument("--db", required=True, help="the SQLite latency store (created when missing)")


def _report_failures(report: Any) -> int:
    for task, why in report.failed:
        print(f"failed: {task.item_kind} {task.item} at {task.resolution}px: {why}", file=sys.stderr)
    for device in report.quarantined:
        print(f"quarantined: {device}", file=sys.stderr)
    return 1 if report.failed else 0


def _build(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from farm.bootstrap import drop_estimates
    from farm.drift import DEFAULT_REFERENCE_EVERY, build_with_references, check_reference_every
    from farm.progress import job_progress
    from farm.store import Store
    from farm.tables import block_tasks

    spec = measurement_spec(args)
    every = DEFAULT_REFERENCE_EVERY if args.reference_every is None else args.reference_every
    check_reference_every(every)
    total = len(block_tasks(args.space, width=args.width, resolutions=args.resolution))  # validates the setting first
    with (
        Store(args.db) as store,
        open_farm(args, kinds=[args.kind]) as farm,
        job_progress(total, f"{args.kind} blocks") as update,
    ):
        setting = {"space": args.space, "width": args.width, "resolutions": args.resolution, "spec": spec}
        for table in drop_estimates(store, kind=args.kind, **setting):
            print(f"{table.label()} held a bootstrap's estimated blocks: measuring them now", file=sys.stderr)
        outcome = build_with_references(
            farm, store, space=args.space, width=args.width, resolutions=args.resolution, kind=args.kind, spec=spec,
            reference_every=every, remeasure_drifted=args.remeasure_drifted, on_progress=update,
            on_point=lambda line: tqdm.write(line, file=sys.stderr),
        )  # fmt: skip
    report = outcome.report
    replaced = f", {outcome.replaced} of them measured again after drift" if args.remeasure_drifted else ""
    print(
        f"{report.done} measured, {report.skipped} already in {args.db}, {len(report.failed)} failed; per device: {report.per_device}"
        f"; {outcome.points} reference point(s){replaced}"
    )
    for note in outcome.notes:
        print(f"not measured again: {note}", file=sys.stderr)
    for drift in outcome.drift:
        print(("drift: " if drift.drifted else "") + drift.summary(), file=sys.stderr)
    for task, why in outcome.reference_failed:
        print(f"failed: reference network {task.item} at {task.resolution}px: {why}", file=sys.stderr)
    return max(_report_failures(report), 1 if outcome.reference_failed else 0)


def _bootstrap(args: argparse.Namespace) -> int:
    import contextlib

    from farm.bootstrap import bootstrap_table, check_network_count
    from farm.lut import select_table
    from farm.progress import job_progress
    from farm.store import Store

    spec = measurement_spec(args)
    check_network_count(args.n)  # before any farm starts
    with contextlib.ExitStack() as stack:
        source_store = stack.enter_context(Store(args.from_db, create=False)) if args.from_db else None
        store = stack.enter_context(Store(args.db))
        source = select_table(
            source_store or store, device=args.source_device, space=args.space, resolution=args.resolution,
            width=args.width, fingerprint=args.from_fingerprint,
        )  # fmt: skip
        farm = stack.enter_context(open_farm(args, kinds=[args.kind]))
        update = stack.enter_context(job_progress(args.n, f"{args.kind} networks"))
        outcome = bootstrap_table(
            farm, store, source=source, source_store=source_store, kind=args.kind, spec=spec, n=args.n, seed=args.seed,
            on_progress=update,
        )  # fmt: skip
    if args.json:
        print_json({**outcome.to_dict(), "measured": outcome.report.done, "failed": len(outcome.report.failed)})
    else:
        print(f"from {source.label()}: {len(outcome.archs)} networks measured on {args.kind} ({outcome.report.done} new)")
        for table, fit in outcome.fits.items():
            f = fit.figures
            factors = fit.to_dict()
            print(
                f"wrote {table.label()}: blocks x{factors['common_scale']:.2f} of the source's, times a factor by their "
                f"features; offset {fit.offset_ms:+.3f} ms"
            )
            print(
                f"  cross-fitted on the {fit.n} networks (each predicted by a fit without it): within 10% {f.within_10pct:.0%}, "
                f"MAPE {f.mape:.1%}, Kendall tau {f.kendall_tau:.3f}; an estimate until 'nag table validate' checks it"
            )
    if not outcome.fits:
        print(
            f"nag: error: no table written: fewer than the needed networks were measured on {args.kind} (see the failures)",
            file=sys.stderr,
        )
        return max(_report_failures(outcome.report), 1)
    return _report_failures(outcome.report)


def _validate(args: argparse.Namespace) -> int:
    from farm.crossval import cross_validated
    from farm.drift import drift_report, measure_point, series_tables
    from farm.progress import job_progress
    from farm.store import Store
    from farm.tables import validate_tables

    spec = measurement_spec(args)
    with Store(args.db) as store:
        with open_farm(args, kinds=[args.kind]) as farm, job_progress(args.n, f"{args.kind} networks") as update:
            outcome = validate_tables(
                farm, store, space=args.space, width=args.width, resolution=args.resolution, kind=args.kind, n=args.n,
                spec=spec, seed=args.seed, on_progress=update,
            )  # fmt: skip
            setting = {"kind": args.kind, "space": args.space, "width": args.width, "resolution": args.resolution}
            if series_tables(store, **setting, spec=spec):  # the references now, beside the networks measured now
                measure_point(farm, store, **setting, spec=spec, phase="recheck")
        results = cross_validated(
            store,
            kind=args.kind,
            space=args.space,
            width=args.width,
            resolution=args.resolution,
            spec=spec,
            archs=outcome.archs,
            plot=args.plot,
        )
        drift = {r.table: drift_report(store, r.table) for r in results}
    found = [{**r.to_dict(), "drift": None if drift[r.table] is None else drift[r.table].to_dict()} for r in results]  # type: ignore[union-attr]
    if args.json:
        print_json(found[0] if len(found) == 1 else found)
    else:
        for result in results:
            figures, raw = result.figures, result.uncalibrated
            how = (
                f"calibrated, {min(5, figures.n)}-fold cross-fitted"
                if result.calibrated
                else f"uncalibrated: {result.calibration_error}"
            )
            print(f"table {result.table.to_dict()}")
            print(
                f"  n={figures.n}: within 5% {figures.within_5pct:.0%}, within 10% {figures.within_10pct:.0%}, "
                f"MAPE {figures.mape:.1%}, Kendall tau {figures.kendall_tau:.3f} ({how})"
            )
            print(
                f"  uncalibrated sum: within 10% {raw.within_10pct:.0%}, MAPE {raw.mape:.1%}, Kendall tau {raw.kendall_tau:.3f}"
            )
            print(f"  {_drift_line(drift[result.table])}")
    return _report_failures(outcome.report)


def _tau(value: float | None) -> str:
    return "undefined (constant latencies)" if value is None else f"{value:.3f}"


def _import_ofa(args: argparse.Namespace) -> int:
    from farm.ofa_lut import import_ofa_yaml
    from farm.store import Store

    with Store(args.db) as store:
        imported = import_ofa_yaml(store, args.files, device=args.device, replace=args.replace)
    for item in imported:
        print(f"imported {item}")
    return 0


def _export_ofa(args: argparse.Namespace) -> int:
    from farm.ofa_lut import export_ofa_yaml
    from farm.store import Store

    with Store(args.db, read_only=True) as store:
        for path in export_ofa_yaml(store, args.out, device=args.device):
            print(f"wrote {path}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from farm.errors import CorruptStoreError
    from farm.store import Store
    from farm.store_check import check_store, salvage_store

    problems = check_store(args.db)
    if not problems:
        with Store(args.db, read_only=True) as store:
            tables = store.tables()
            entries = sum(store.count(table) for table in tables)
        print(f"{args.db}: intact (SQLite integrity_check ok); {len(tables)} table(s), {entries} entries")
        if args.salvage:
            print(f"nothing to salvage: copy the store instead (cp {args.db} {args.salvage})")
        return 0
    print(f"{args.db}: damaged; SQLite's integrity_check found:")
    for problem in problems:
        print(f"  {problem}")
    if args.salvage is None:
        raise CorruptStoreError(
            f"the latency store {args.db} is corrupted ({len(problems)} problem(s) listed above); copy what is intact into "
            f"a new store with 'nag table check --db {args.db} --salvage NEW.db', then rebuild what is missing with "
            "'nag table build' (it measures only what the store lacks) or 'nag table import-ofa'"
        )
    report = salvage_store(args.db, args.salvage)
    lost = "an unknown number (the index is damaged too)" if report.lost is None else str(report.lost)
    print(
        f"salvaged into {report.out}: {report.entries} entries of {report.tables} table(s), {report.calibrations} "
        f"calibration(s); {report.rejected} unreadable row(s) dropped; entries lost: {lost}"
    )
    print("rebuild what is missing with 'nag table build' on the new store (it measures only what the store lacks)")
    return 0


def _drift_line(report: Any) -> str:
    if report is None:
        return "references: none measured with this table (built before reference networks, or imported)"
    return ("drift: " if report.drifted else "") + report.summary()


def _predict(args: argparse.Namespace) -> int:
    from farm.drift import drift_report
    from farm.lut import LutPredictor, select_table
    from farm.store import Store

    with Store(args.db, create=False, read_only=not args.rescale) as store:  # --rescale stores the point it measures
        table = select_table(
            store,
            device=args.device,
            space=args.space,
            resolution=args.resolution,
            width=args.width,
            fingerprint=args.fingerprint,
        )
        predictor = LutPredictor(store, table)
        archs = read_arch_args(args.archs)
        estimates = predictor.predict_with_std(archs)
        intervals = predictor.predict_interval(archs, level=0.95)
        calibrated = predictor.calibration is not None
        scaled = _rescale(args, store, table) if args.rescale else None
        drift = drift_report(store, table)
    rows = [
        {
            "arch": arch, "latency_ms": _sig(ms), "std_ms": _sig(std), "low_ms": _sig(low), "high_ms": _sig(high),
            "calibrated": calibrated, "drifted": None if drift is None else drift.drifted,
            "estimated": predictor.estimated,
        }
        for arch, (ms, std), (_, low, high) in zip(archs, estimates, intervals, strict=True)
    ]  # fmt: skip
    if scaled is not None:  # the factor's band widens the interval; the unscaled figure stays beside it
        for row, (ms, std), (_, low, high) in zip(rows, estimates, intervals, strict=True):
            row.update(
                latency_ms=_sig(ms * scaled.factor), std_ms=_sig(std * scaled.factor), low_ms=_sig(low * scaled.low),
                high_ms=_sig(high * scaled.high), unscaled_latency_ms=_sig(ms), rescale_factor=_sig(scaled.factor),
                rescale_low=_sig(scaled.low), rescale_high=_sig(scaled.high),
            )  # fmt: skip
        print(
            f"rescaled to now: x{scaled.factor:.4f} (band {scaled.low:.4f}-{scaled.high:.4f}), the median over "
            f"{len(scaled.references)} reference networks of now/at-build (point {scaled.point})",
            file=sys.stderr,
        )
    if drift is not None:
        print(_drift_line(drift), file=sys.stderr)
    if predictor.estimated:
        print(
            f"note: {table.label()}'s blocks are estimates from 'nag table bootstrap' (scaled from another device's table); "
            "'nag table build' measures them",
            file=sys.stderr,
        )
    if args.json:
        print_json(rows)
    else:
        print_table(
            ["arch", "latency (ms)", "+-std", "95% interval (ms)"],
            [[r["arch"], f"{r['latency_ms']:.3f}", f"{r['std_ms']:.3f}", f"{r['low_ms']:.3f}-{r['high_ms']:.3f}"] for r in rows],
            align_right=[False, True, True, True],
        )
    return 0


def _rescale(args: argparse.Namespace, store: Any, table: Any) -> Any:
    """The references measured now on the farm against the table's build (``--rescale``)."""
    from farm.drift import check_rescalable, rescale
    from farm.progress import job_progress
    from farm.reference import REFERENCE_COUNT

    spec = measurement_spec(args)
    check_rescalable(store, table, spec=spec)  # before a farm starts
    with (
        open_farm(args, kinds=[table.device]) as farm,
        job_progress(REFERENCE_COUNT, f"{table.device} reference networks") as update,
    ):
        return rescale(farm, store, table, spec=spec, on_progress=update)


def _sig(value: float) -> float:
    """Six significant digits: short to read, and a positive latency never prints as 0."""
    return float(f"{value:.6g}")
