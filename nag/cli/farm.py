"""``nag farm`` (cluster status) and ``nag submit`` (run a nag command as a Ray job from a laptop)."""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from nag.cli._common import add_farm_options, measurement_spec, open_farm, print_json, print_table
from nag.cli._shipping import choose_files, stage

__all__ = ["register"]


def register(subparsers: Any) -> None:
    farm = subparsers.add_parser("farm", help="the measurement farm on Ray")
    commands = farm.add_subparsers(dest="farm_command", metavar="COMMAND", required=True)
    status = commands.add_parser("status", help="devices (kind, id, health, last seen) and jobs")
    add_farm_options(status, measurement=False)
    status.add_argument("--json", action="store_true")
    status.add_argument(
        "--db", default=None, help="also report the drift of this latency store's tables (their reference networks)"
    )
    status.set_defaults(handler=_status)

    check = commands.add_parser(
        "check", help="do a kind's devices agree? each measures the reference networks; outliers of their group are flagged"
    )
    check.add_argument("--kind", required=True, help="the agent kind whose devices are compared, e.g. adb-litert")
    check.add_argument("--space", default="ofa-mbv3")
    check.add_argument("--width", type=float, default=1.2)
    check.add_argument("--resolution", type=int, default=224)
    check.add_argument(
        "--tolerance", type=float, default=0.05, help="flag a device off its group's median by more than this (default: 0.05)"
    )
    check.add_argument("--quarantine", action="store_true", help="also quarantine the flagged devices")
    check.add_argument("--json", action="store_true")
    add_farm_options(check)
    check.set_defaults(handler=_check)

    submit = subparsers.add_parser("submit", help="run a nag command on the cluster as a Ray job (streams its logs)")
    submit.add_argument(
        "--address", required=True, help="the job API, e.g. http://127.0.0.1:8265 (through 'ray dashboard' / SSH)"
    )
    submit.add_argument(
        "--working-dir", default=".", help="the project folder whose files ship with the job (default: the current one)"
    )
    submit.add_argument(
        "--include",
        nargs="+",
        default=(),
        metavar="PATTERN",
        help="ship exactly the files matching these patterns (relative to the working dir) instead of git's "
        "project files less secrets and databases",
    )
    submit.add_argument("--dry-run", action="store_true", help="list the files that would ship, submit nothing")
    submit.add_argument("--no-wait", action="store_true", help="print the job id and return without streaming logs")
    submit.add_argument("command", nargs=argparse.REMAINDER, help="-- then the nag subcommand and its arguments")
    submit.set_defaults(handler=_submit)


def _ago(timestamp: float) -> str:
    if not timestamp:
        return "never"
    seconds = max(0, int(time.time() - timestamp))
    return f"{seconds} s ago" if seconds < 120 else f"{seconds // 60} min ago"


def _status(args: argparse.Namespace) -> int:
    from farm.drift import drift_report, series_tables
    from farm.store import Store

    drift = None
    if args.db is not None:  # read first: a wrong path fails before a farm starts
        with Store(args.db, read_only=True) as store:
            drift = [drift_report(store, table) for table in series_tables(store)]
    with open_farm(args) as farm:
        status = farm.status()
    status["drift"] = None if drift is None else [d.to_dict() for d in drift if d is not None]
    if args.json:
        print_json(status)
        return 0
    print_table(
        ["kind", "device_id", "health", "last seen", "runtime"],
        [
            [
                d["kind"],
                d["device_id"],
                d["health"]
                + (f" ({d['detail']})" if d["detail"] else "")
                + (f" [fleet check: {d['flag']}]" if d["flag"] else ""),
                _ago(d["last_seen"]),
                f"{d['runtime']} {d['runtime_version']}",
            ]
            for d in status["devices"]
        ],
    )
    print(f"\njobs: {status['running']} running, {status['queued']} measurements queued, {status['done']} done")
    for job in status["jobs"]:
        print(
            f"  {job['job_id']} {job['state']}: {job['description']} ({job['done']} done, {job['skipped']} skipped, {job['failed']} failed, {job['queued']} queued)"
        )
    if drift is not None:
        print(f"\ntables with reference networks in {args.db}: {len(drift)}")
        for report in drift:
            if report is not None:
                print(f"  {'drift: ' if report.drifted else ''}{report.summary()}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from farm.check import check_fleet
    from farm.progress import job_progress
    from farm.reference import REFERENCE_COUNT
    from nag.space import get_space

    get_space(args.space).resolve_setting(width=args.width, resolution=args.resolution, num_classes=None)
    spec = measurement_spec(args)
    with open_farm(args, kinds=[args.kind]) as farm:
        devices = len([d for d in farm.devices(args.kind) if d.health != "quarantined"])
        with job_progress(devices * REFERENCE_COUNT, f"{args.kind} reference networks") as update:
            found = check_fleet(
                farm, kind=args.kind, space=args.space, width=args.width, resolution=args.resolution, spec=spec,
                tolerance=args.tolerance, quarantine=args.quarantine, on_progress=update,
            )  # fmt: skip
    if args.json:
        print_json(found.to_dict())
        return 0
    print_table(
        ["device_id", "group", "ratio to group median", "95% interval", "refs", "flagged"],
        [
            [
                d.device_id,
                d.group.fingerprint[:8],
                f"{d.ratio:.3f}",
                f"{d.low:.3f}-{d.high:.3f}",
                d.networks,
                d.note if d.flagged else ("-" if not d.note else d.note),
            ]
            for d in found.devices
        ],
    )
    for failure in found.failed:
        print(f"failed: {failure}", file=sys.stderr)
    flagged = found.flagged
    print(
        f"\n{len(flagged)} of {len(found.devices)} devices flagged" + (" and quarantined" if flagged and args.quarantine else "")
    )
    return 0


def _submit_job(client: Any, entrypoint: str, runtime_env: dict[str, Any], *, wait_s: float = 60.0) -> str:
    """Submit, waiting out a head whose job agent is still starting ("No available agent", Ray's HTTP 500)."""
    from nag.errors import NagError

    deadline = time.monotonic() + wait_s
    while True:
        try:
            return str(client.submit_job(entrypoint=entrypoint, runtime_env=runtime_env))
        except RuntimeError as exc:
            if "No available agent" in str(exc) and time.monotonic() < deadline:
                time.sleep(2.0)
                continue
            raise NagError(f"the Ray job API refused the job: {' '.join(str(exc).split())[:400]}") from exc


def _submit(args: argparse.Namespace) -> int:
    from nag.errors import NagError

    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise NagError(
            "nag submit needs the command to run after '--', e.g. nag submit --address http://127.0.0.1:8265 -- farm status"
        )
    shipment = choose_files(args.working_dir, args.include)
    print(shipment.summary(), file=sys.stderr)
    if args.dry_run:
        print("\n".join(shipment.files))
        return 0
    from ray.job_submission import JobStatus, JobSubmissionClient

    try:
        client = JobSubmissionClient(args.address)
    except Exception as exc:  # ray raises ConnectionError or RuntimeError variants
        raise NagError(f"cannot reach the Ray job API at {args.address}: {exc}") from exc
    entrypoint = shlex.join(["nag", *command])
    with tempfile.TemporaryDirectory(prefix="nag-submit-") as staging:  # Ray packs and uploads it during submit_job
        runtime_env = {"working_dir": str(stage(shipment, Path(staging) / "project"))}
        job_id = _submit_job(client, entrypoint, runtime_env)
    print(f"submitted {job_id}: {entrypoint}", file=sys.stderr)
    if args.no_wait:
        print(job_id)
        return 0
    import asyncio

    async def stream() -> None:
        async for lines in client.tail_job_logs(job_id):
            sys.stdout.write(lines)
            sys.stdout.flush()

    asyncio.run(stream())
    status = client.get_job_status(job_id)
    print(f"job {job_id} {status.value}", file=sys.stderr)
    return 0 if status == JobStatus.SUCCEEDED else 1
