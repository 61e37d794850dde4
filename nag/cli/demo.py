"""``nag demo``: the whole pipeline on the embedded default, on this machine."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from nag.cli._common import print_table, retain_freed_memory

__all__ = ["register"]

SUPERNET_FLAGS = ("data", "checkpoint", "subnets")  # given any of these, --accuracy defaults to supernet


def register(subparsers: Any) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="run the pipeline end to end on the embedded default: local farm, real accuracy landscape, PNAG, report",
        description="Measure a latency table on this machine's CPU, label the search with a real accuracy landscape "
        "(DyNAS-T: ImageNet top-1 of 2,162 OFA-MobileNetV3 w1.0 subnets) or with a small supernet trained on digits "
        "(--accuracy supernet), run the PNAG search, generate architectures for a few budgets, measure them and write "
        "a report (HTML, PNG, CSV, JSON; 'nag report DIR' redraws it). A second run reuses what the first measured and "
        "trained.",
    )
    demo.add_argument("--out", default="nag-demo", help="output folder, reused by later runs (default: %(default)s)")
    demo.add_argument("--kind", default="ort-cpu", choices=("ort-cpu", "litert-cpu"), help="local agent that measures")
    demo.add_argument(
        "--accuracy", default=None, choices=("dynast", "supernet"),
        help="dynast (default): the shipped DyNAS-T rows label the search and a predictor fitted on them estimates the "
        "generated networks' top-1 (latency at w1.0); supernet: a supernet trained on --data, its subnets scored on a "
        "search-validation split, the generated networks on a test split (default when --data, --checkpoint or "
        "--subnets is given)",
    )  # fmt: skip
    demo.add_argument("--quick", action="store_true", help="a much shorter run of the same stages (a smoke test)")
    real = demo.add_argument_group("the supernet path (--accuracy supernet; slow on a CPU with real data, see the README)")
    real.add_argument(
        "--data", default=None, help="'digits' (default: train 60%%, search-validation 20%%, test 20%%) or an "
        "ImageNet-layout folder DIR/{train,val}/<class>/ (val halved into search-validation and test)",
    )  # fmt: skip
    real.add_argument(
        "--checkpoint", default=None, help="a trained supernet (OFA's published file); default: train one on --data"
    )
    real.add_argument(
        "--width", type=float, default=None, choices=(1.0, 1.2),
        help="width of the networks (default: 1.2 for supernet; dynast is 1.0 only)",
    )  # fmt: skip
    real.add_argument("--subnets", type=int, default=None, help="subnets to evaluate (default: 150; --quick: 24)")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(handler=_demo)


def _config(args: argparse.Namespace) -> Any:
    """The :class:`nag.demo.DemoConfig` of the flags."""
    from nag.demo import QUICK, DemoConfig
    from nag.errors import SettingError

    base = QUICK if args.quick else DemoConfig()
    given = [f"--{name}" for name in SUPERNET_FLAGS if getattr(args, name) is not None]
    if args.accuracy == "dynast" and given:
        raise SettingError(f"{', '.join(given)} only apply to --accuracy supernet; drop them, or use --accuracy supernet")
    return base.replace(
        kind=args.kind, accuracy=args.accuracy or ("supernet" if given else "dynast"), data=args.data or "digits", checkpoint=args.checkpoint,
        width=args.width, subnets=base.subnets if args.subnets is None else args.subnets,
    )  # fmt: skip


def _demo(args: argparse.Namespace) -> int:
    from nag.demo import run_demo
    from nag.demo.report import p_text

    config = _config(args)
    retain_freed_memory()
    result = run_demo(args.out, config, progress=not args.quiet, log=lambda line: print(line, file=sys.stderr))
    stages = ", ".join(f"{s.name.split(' (')[0]} {s.seconds:.0f} s{' (reused)' if s.reused else ''}" for s in result.stages)
    trend = result.summary["sampled"]["accuracy_vs_latency"]
    rho = "undefined" if trend["rho"] is None else f"{trend['rho']:.2f} (p = {p_text(trend['p_value'])})"
    print(f"\nstages: {stages}")
    print(f"accuracy: the search's labels are {result.accuracy['labels']}")
    print(f"accuracy against latency over those {result.summary['sampled']['n']} rows: Spearman rho {rho}")
    print(f"generated architectures (latency measured on this machine; top-1: {result.accuracy['scored']}):")
    print_table(
        ["budget (ms)", "measured (ms)", "top-1", "arch"],
        [[f"{g['budget_ms']:g}", f"{g['measured_ms']:.3f}", f"{100 * g['top1']:.2f}%", g["arch"]] for g in result.generated],
        align_right=[True, True, True, False],
    )
    fit = result.accuracy.get("cross_fit")
    if fit is not None:
        print(
            f"(top-1 is the predictor's estimate: cross-fitted RMSE {fit['rmse_points']:.3f} points, "
            f"Kendall tau {fit['kendall_tau']:.3f})"
        )
    print(f"report: {result.out / 'report.html'}")
    return 0
