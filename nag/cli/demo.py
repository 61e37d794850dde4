"""``nag demo``: the whole pipeline on the embedded default, on this machine."""

from __future__ import annotations

import argparse
from typing import Any

from nag.cli._common import print_table

__all__ = ["register"]


def register(subparsers: Any) -> None:
    demo = subparsers.add_parser("demo", help="run the pipeline end to end on the embedded default")
    demo.add_argument("--out", default="nag-demo", help="output folder (default: %(default)s)")
    demo.add_argument("--n", type=int, default=500, help="architectures to sample (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    demo.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    from nag.demo import PNAG_80_MOBILE, run_demo
    from nag.space import get_space

    report = run_demo(args.out, n=args.n, seed=args.seed)
    rows = sorted(report.rows, key=lambda r: r["madds"])
    picks = [rows[0], rows[len(rows) // 4], rows[len(rows) // 2], rows[3 * len(rows) // 4], rows[-1]]
    print(f"\n{len(rows)} sampled ofa-mbv3 architectures (width 1.2, 224 px); quartiles by MAdds:")
    print_table(
        ["arch", "MAdds (M)", "params (M)"],
        [[r["arch"], f"{r['madds_m']:.1f}", f"{r['params_m']:.2f}"] for r in picks],
        align_right=[False, True, True],
    )
    space = get_space("ofa-mbv3")
    reference = space.summary(space.parse(PNAG_80_MOBILE))
    print(
        f"\nPNAG-80-Mobile: {reference['madds_m']:.0f} M MAdds, {reference['params_m']:.1f} M params "
        "(the paper's Table 1: 349 M, 7.3 M)"
    )
    print(f"distinct latency-table blocks at 224 px: {report.num_blocks}")
    for item in report.exports:
        print(f"exported the {item['which']} network to {item['path']}; max |error| vs torch {item['max_abs_error']:.2g}")
    for note in report.notes:
        print(f"note: {note}")
    print(f"report: {report.out / 'archs.csv'}, {report.out / 'summary.json'}, {report.out / 'costs.png'}")
    return 0
