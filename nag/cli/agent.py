"""``nag agent``: the devices this machine reaches, and one-off measurements on them."""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from nag.cli._common import add_setting_options, print_json, print_table

__all__ = ["register"]


def register(subparsers: Any) -> None:
    agent = subparsers.add_parser("agent", help="probe devices and measure on them")
    commands = agent.add_subparsers(dest="agent_command", metavar="COMMAND", required=True)

    probe = commands.add_parser("probe", help="every device this machine can reach")
    probe.add_argument(
        "--config", default=None, help="agents config YAML (default: $NAG_AGENTS_CONFIG or ~/.config/nag/agents.yaml)"
    )
    probe.add_argument("--json", action="store_true")
    probe.set_defaults(handler=_probe)

    measure = commands.add_parser("measure", help="measure one whole network on one device")
    measure.add_argument("arch", metavar="ARCH")
    measure.add_argument("--kind", required=True, help="agent kind: ort-cpu, litert-cpu, adb-litert, cuda, ssh")
    measure.add_argument("--device-id", default=None, help="device id from 'nag agent probe' (default: the kind's first)")
    add_setting_options(measure)
    measure.add_argument("--runs", type=int, default=30, help="timed samples (default: %(default)s)")
    measure.add_argument("--warmup", type=int, default=10, help="warm-up inferences (default: %(default)s)")
    measure.add_argument("--threads", type=int, default=1, help="runtime threads (default: %(default)s)")
    measure.add_argument("--affinity", default=None, help="CPU ids to pin to, e.g. 0 or 4,5,6,7")
    measure.add_argument(
        "--target-ci", type=float, default=None, help="adaptive: stop when the median's 95%% CI is within +-this fraction"
    )
    measure.add_argument("--max-temperature", type=float, default=None, help="wait until the device is below this (C)")
    measure.add_argument("--config", default=None, help="agents config YAML")
    measure.add_argument("--json", action="store_true")
    measure.set_defaults(handler=_measure)

    start = commands.add_parser("start", help="join a Ray cluster with this machine's devices and register them")
    start.add_argument("--address", required=True, help="the cluster's head, HEAD:PORT (e.g. 10.0.0.2:6379)")
    start.add_argument("--kinds", default=None, help="comma-separated kinds to offer (default: every kind probed here)")
    start.add_argument("--config", default=None, help="agents config YAML")
    start.add_argument("--node-ip-address", default=None, help="this node's address as the cluster should see it")
    start.add_argument(
        "--no-ray-start", action="store_true", help="this machine is already a node (e.g. the head): only register"
    )
    start.set_defaults(handler=_start)


def _probe(args: argparse.Namespace) -> int:
    from agents import load_config, probe_all

    report = probe_all(load_config(args.config))
    if args.json:
        print_json([d.to_dict() for d in report.devices])
    else:
        print_table(
            ["kind", "device_id", "fingerprint"],
            [[d.kind, d.device_id, ", ".join(f"{k}={v}" for k, v in d.fingerprint.items() if v)] for d in report.devices],
        )
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    return 0


def _parse_affinity(text: str | None) -> tuple[int, ...] | None:
    from agents.errors import SpecError

    if text is None:
        return None
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise SpecError(f"--affinity must be comma-separated CPU ids like 0 or 4,5,6,7, got {text!r}") from None


def _measure(args: argparse.Namespace) -> int:
    from nag.space import get_space

    space = get_space(args.space)
    blocks = space.blocks(space.parse(args.arch), width=args.width, resolution=args.resolution)

    from agents import MeasurementSpec, load_config, open_agent
    from nag.space.export import cached_export

    spec = MeasurementSpec(
        warmup_runs=args.warmup, runs=args.runs, threads=args.threads, affinity=_parse_affinity(args.affinity),
        target_rel_ci=args.target_ci, max_runs=max(args.runs, 300), max_temperature_c=args.max_temperature,
    )  # fmt: skip
    with open_agent(args.kind, args.device_id, load_config(args.config)) as agent:
        model = cached_export(blocks, fmt=agent.export_format)
        result = agent.measure(agent.prepare(model), spec)
    data = result.to_dict()
    data["arch"] = space.format(space.parse(args.arch))
    if args.json:
        print_json(data)
        return 0
    ci = (
        "undefined (fewer than 6 samples)"
        if not math.isfinite(result.ci95_low_ms)
        else f"{result.ci95_low_ms:.3f}..{result.ci95_high_ms:.3f}"
    )
    print(f"{result.device_id} ({result.runtime} {result.runtime_version}, {spec.threads} thread(s))")
    print(f"median {result.median_ms:.3f} ms  (95% CI {ci}; p10 {result.p10_ms:.3f}, p90 {result.p90_ms:.3f}; n={result.count})")
    if result.flags:
        print(f"flags: {', '.join(result.flags)}")
    return 0


def _start(args: argparse.Namespace) -> int:
    import json
    import subprocess

    from agents import load_config, probe_all
    from farm.actors import device_resource, kind_resource

    config = load_config(args.config)
    report = probe_all(config, kinds=args.kinds.split(",") if args.kinds else None)
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    resources: dict[str, float] = {}
    for device in report.devices:
        resources[device_resource(device.device_id)] = 1
        resources[kind_resource(device.kind)] = resources.get(kind_resource(device.kind), 0) + 1
    if not args.no_ray_start:
        argv = [
            sys.executable,
            "-m",
            "ray.scripts.scripts",
            "start",
            "--address",
            args.address,
            "--resources",
            json.dumps(resources),
        ]
        if args.node_ip_address:
            argv += ["--node-ip-address", args.node_ip_address]
        started = subprocess.run(argv, capture_output=True, text=True, check=False)
        if started.returncode != 0:
            from farm.errors import FarmError

            raise FarmError(f"'ray start --address {args.address}' failed: {' '.join(started.stderr.split())[-400:]}")
    import ray

    from farm.client import start_device_actors
    from nag.ray_session import init_ray

    init_ray(args.address, namespace="nag-farm", **({"_node_ip_address": args.node_ip_address} if args.node_ip_address else {}))
    try:
        records = start_device_actors(report.devices, config)
    finally:
        ray.shutdown()
    print_table(["kind", "device_id", "runtime"], [[r.kind, r.device_id, f"{r.runtime} {r.runtime_version}"] for r in records])
    return 0
