"""``nag farm`` (cluster status) and ``nag submit`` (run a nag command as a Ray job from a laptop)."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from typing import Any

from nag.cli._common import print_json, print_table

__all__ = ["register"]


def register(subparsers: Any) -> None:
    farm = subparsers.add_parser("farm", help="the measurement farm on Ray")
    commands = farm.add_subparsers(dest="farm_command", metavar="COMMAND", required=True)
    status = commands.add_parser("status", help="devices (kind, id, health, last seen) and jobs")
    status.add_argument("--address", default=None, help="Ray cluster address HEAD:PORT (default: a local farm of this machine)")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=_status)

    submit = subparsers.add_parser("submit", help="run a nag command on the cluster as a Ray job (streams its logs)")
    submit.add_argument(
        "--address", required=True, help="the job API, e.g. http://127.0.0.1:8265 (through 'ray dashboard' / SSH)"
    )
    submit.add_argument("--working-dir", default=".", help="folder uploaded with the job (default: the current one)")
    submit.add_argument("--no-wait", action="store_true", help="print the job id and return without streaming logs")
    submit.add_argument("command", nargs=argparse.REMAINDER, help="-- then the nag subcommand and its arguments")
    submit.set_defaults(handler=_submit)


def _farm(address: str | None) -> Any:
    from farm.client import Farm

    return Farm.connect(address) if address else Farm.local()


def _ago(timestamp: float) -> str:
    if not timestamp:
        return "never"
    seconds = max(0, int(time.time() - timestamp))
    return f"{seconds} s ago" if seconds < 120 else f"{seconds // 60} min ago"


def _status(args: argparse.Namespace) -> int:
    with _farm(args.address) as farm:
        status = farm.status()
    if args.json:
        print_json(status)
        return 0
    print_table(
        ["kind", "device_id", "health", "last seen", "runtime"],
        [
            [
                d["kind"],
                d["device_id"],
                d["health"] + (f" ({d['detail']})" if d["detail"] else ""),
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
    return 0


def _submit(args: argparse.Namespace) -> int:
    from nag.errors import NagError

    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise NagError(
            "nag submit needs the command to run after '--', e.g. nag submit --address http://127.0.0.1:8265 -- farm status"
        )
    from ray.job_submission import JobStatus, JobSubmissionClient

    try:
        client = JobSubmissionClient(args.address)
    except Exception as exc:  # ray raises ConnectionError or RuntimeError variants
        raise NagError(f"cannot reach the Ray job API at {args.address}: {exc}") from exc
    entrypoint = shlex.join(["nag", *command])
    runtime_env = {
        "working_dir": args.working_dir,
        "excludes": [".git", "*.onnx", "*.tflite", "*.pt2", "nag-demo", "__pycache__"],
    }
    job_id = client.submit_job(entrypoint=entrypoint, runtime_env=runtime_env)
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
