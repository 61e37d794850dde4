"""``nag arch``: inspect, sample and export architectures of a search space (no torch unless exporting)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from nag.cli._common import add_setting_options, print_json, print_table, read_arch_args

__all__ = ["register"]


def register(subparsers: Any) -> None:
    arch = subparsers.add_parser("arch", help="inspect, sample and export architectures")
    commands = arch.add_subparsers(dest="arch_command", metavar="COMMAND", required=True)

    info = commands.add_parser("info", help="exact MAdds and parameters of architectures")
    info.add_argument("archs", nargs="+", metavar="ARCH", help="canonical 'd:k:e' string, OFA dict as JSON, or '-' for stdin")
    add_setting_options(info)
    info.add_argument("--json", action="store_true", help="print a JSON list, one object per ARCH")
    info.set_defaults(handler=_info)

    sample = commands.add_parser("sample", help="print uniformly sampled architectures")
    sample.add_argument("--n", type=int, default=10, help="how many (default: %(default)s)")
    sample.add_argument("--seed", type=int, default=None, help="random seed (default: fresh randomness)")
    sample.add_argument("--space", default="ofa-mbv3", help="search space name (default: %(default)s)")
    sample.set_defaults(handler=_sample)

    blocks = commands.add_parser("blocks", help="the latency-table blocks of an architecture, or of the whole space")
    blocks.add_argument("arch", nargs="?", metavar="ARCH", help="list this architecture's blocks (default: every distinct block)")
    add_setting_options(blocks)
    blocks.add_argument("--json", action="store_true", help="print a JSON list of blocks")
    blocks.set_defaults(handler=_blocks)

    export = commands.add_parser("export", help="export a network (seeded random weights) to ONNX, .tflite or .pt2")
    export.add_argument("arch", metavar="ARCH")
    _add_export_options(export)
    export.set_defaults(handler=_export)

    export_block = commands.add_parser("export-block", help="export one latency-table block to ONNX, .tflite or .pt2")
    export_block.add_argument("key", metavar="KEY", help="block key as 'nag arch blocks' lists it")
    _add_export_options(export_block)
    export_block.set_defaults(handler=_export_block)


def _add_export_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", required=True, choices=("onnx", "tflite", "pt2"), dest="fmt")
    parser.add_argument("--out", required=True, help="output file")
    add_setting_options(parser)
    parser.add_argument("--seed", type=int, default=0, help="weight seed (default: %(default)s)")
    parser.add_argument("--no-verify", action="store_true", help="skip running the file and comparing it with torch")
    parser.add_argument(
        "--exporter", choices=("direct", "torch"), default=None,
        help="direct: ONNX or .tflite (NHWC) built from the block specs, without torch (the default for onnx and "
        "tflite); torch: torch's exporters (the reference; the only one for pt2)",
    )  # fmt: skip


def _space(args: argparse.Namespace) -> Any:
    from nag.space import get_space

    return get_space(args.space)


def _info(args: argparse.Namespace) -> int:
    space = _space(args)
    rows = [space.summary(space.parse(a), width=args.width, resolution=args.resolution) for a in read_arch_args(args.archs)]
    if args.json:
        print_json(rows)
        return 0
    if rows:
        print(f"space {rows[0]['space']}, width {rows[0]['width']}, resolution {rows[0]['resolution']}")
    print_table(
        ["arch", "MAdds (M)", "MAdds+classifier (M)", "params (M)"],
        [[r["arch"], f"{r['madds_m']:.1f}", f"{r['madds_total_m']:.1f}", f"{r['params_m']:.2f}"] for r in rows],
        align_right=[False, True, True, True],
    )
    return 0


def _sample(args: argparse.Namespace) -> int:
    space = _space(args)
    for arch in space.sample_many(args.n, seed=args.seed):
        print(space.format(arch))
    return 0


def _blocks(args: argparse.Namespace) -> int:
    space = _space(args)
    if args.arch is None:
        blocks = space.all_blocks(width=args.width, resolution=args.resolution)
    else:
        blocks = space.blocks(space.parse(args.arch), width=args.width, resolution=args.resolution)
    rows = [{"key": b.key, "madds": b.madds, "params": b.params} for b in blocks]
    if args.json:
        print_json(rows)
    else:
        print_table(
            ["key", "MAdds", "params"], [[r["key"], r["madds"], r["params"]] for r in rows], align_right=[False, True, True]
        )
    return 0


def _report_export(result: Any, what: str) -> int:
    check = "not compared with torch" if result.max_abs_error is None else f"max |error| vs torch {result.max_abs_error:.2g}"
    print(f"wrote {result.path} ({result.fmt} by the {result.exporter} exporter, {what}; {check})", file=sys.stderr)
    return 0


def _export(args: argparse.Namespace) -> int:
    space = _space(args)
    arch = space.parse(args.arch)
    blocks = space.blocks(arch, width=args.width, resolution=args.resolution)  # validates before torch loads

    from nag.space.export import export_blocks

    result = export_blocks(blocks, fmt=args.fmt, out=args.out, seed=args.seed, verify=not args.no_verify, exporter=args.exporter)
    return _report_export(result, f"{space.costs(arch, width=args.width, resolution=args.resolution).params_m:.2f} M params")


def _export_block(args: argparse.Namespace) -> int:
    from nag.errors import UnknownNameError

    space = _space(args)
    by_key = {b.key: b for b in space.all_blocks(width=args.width, resolution=args.resolution)}
    if args.key not in by_key:
        raise UnknownNameError(
            f"no block {args.key!r} in {space.name} at this width and resolution; "
            "list the valid keys with 'nag arch blocks' (same --width and --resolution)"
        )

    from nag.space.export import export_blocks

    result = export_blocks(
        by_key[args.key], fmt=args.fmt, out=args.out, seed=args.seed, verify=not args.no_verify, exporter=args.exporter
    )
    return _report_export(result, "one block")
