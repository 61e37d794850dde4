"""``nag demo``: the whole pipeline on the embedded default, on this machine."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from nag.cli._common import print_table

__all__ = ["register"]


def register(subparsers: Any) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="run the pipeline end to end on the embedded default: local farm, supernet on digits, PNAG, report",
        description="Measure a latency table on this machine's CPU, train a small supernet on scikit-learn's digits, "
        "run the PNAG search, generate architectures for a few budgets and write a report (HTML, PNG, CSV, JSON). "
        "A second run reuses what the first measured and trained.",
    )
    demo.add_argument("--out", default="nag-demo", help="output folder, reused by later runs (default: %(default)s)")
    demo.add_argument("--kind", default="ort-cpu", choices=("ort-cpu", "litert-cpu"), help="local agent that measures")
    demo.add_argument("--quick", action="store_true", help="a much shorter run of the same stages (a smoke test)")
    real = demo.add_argument_group("real data instead of the proxy (slow on a CPU; see the README)")
    real.add_argument("--data", default="digits", help="'digits' (default) or an ImageNet-layout folder DIR/{train,val}/<class>/")
    real.add_argument(
        "--checkpoint", default=None, help="a trained supernet (OFA's published file); default: train one on --data"
    )
    real.add_argument("--width", type=float, default=1.2, choices=(1.0, 1.2), help="the supernet's width (default: %(default)s)")
    real.add_argument("--subnets", type=int, default=None, help="subnets to evaluate (default: 150; --quick: 24)")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    from nag.demo import QUICK, DemoConfig, run_demo

    base = QUICK if args.quick else DemoConfig()
    config = base.replace(
        kind=args.kind, data=args.data, checkpoint=args.checkpoint, width=args.width, subnets=args.subnets or base.subnets
    )
    result = run_demo(args.out, config, progress=not args.quiet, log=lambda line: print(line, file=sys.stderr))
    stages = ", ".join(f"{s.name.split(' (')[0]} {s.seconds:.0f} s{' (reused)' if s.reused else ''}" for s in result.stages)
    trend = result.summary["sampled"]["accuracy_vs_latency"]
    rho = "undefined" if trend["rho"] is None else f"{trend['rho']:.2f} (p = {trend['p_value']:.2g})"
    print(f"\nstages: {stages}")
    print(f"accuracy against latency over {result.summary['sampled']['n']} sampled subnets: Spearman rho {rho}")
    print(f"generated architectures (latency measured on this machine, top-1 on {config.data_label}):")
    print_table(
        ["budget (ms)", "measured (ms)", "top-1", "arch"],
        [[f"{g['budget_ms']:g}", f"{g['measured_ms']:.3f}", f"{100 * g['top1']:.1f}%", g["arch"]] for g in result.generated],
        align_right=[True, True, True, False],
    )
    print(f"report: {result.out / 'report.html'}")
    return 0
