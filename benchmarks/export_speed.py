"""Export time per block and per whole network, direct exporters against torch's; LiteRT latency of the files.

    python benchmarks/export_speed.py [--formats onnx,tflite] [--blocks 24] [--networks 4] [--tflite-blocks 12]
                                      [--resolution 224] [--repeats 3] [--latency-rounds 10]

ONNX (``--formats`` has ``onnx``): the direct exporter against torch's dynamo exporter, both writing the same
models (the same seeded weights, checked equal in ``tests/space``) to files through
``nag.space.export.export_blocks`` without verification: ``--blocks`` blocks spread over the ofa-mbv3 table at
``--resolution`` (width 1.2) and ``--networks`` sampled networks. Each exporter first exports one block untimed
(imports, first-call set-up); that one-time cost is reported apart (the direct exporter runs first, so its
figure includes importing ``onnx`` but not torch, which it never needs). The direct exporter also reports
export plus its check against torch (what ``cached_export`` does on a miss).

``.tflite`` (``--formats`` has ``tflite``): the direct exporter (``nag.space.tflite_graph``) against
``litert-torch`` (``exporter="torch"``, the baseline) on ``--tflite-blocks`` blocks and two whole networks
(PNAG-80-Mobile, 349 M MAdds, and the largest network of the space, 842 M MAdds), then the latency of those
networks at 1 thread, in rounds that alternate the runtimes (a busy machine slows them alike): LiteRT on the
direct file and on litert-torch's, each with the interpreter's default op resolver (which applies the XNNPACK
delegate, as ``agents/litert_cpu`` and an app do) and without default delegates (LiteRT's builtin kernels),
and ONNX Runtime on the direct ONNX file (as ``agents/ort_cpu``). The number of XNNPACK partitions (DELEGATE
nodes in the execution plan) is printed: 1 means the whole graph runs in XNNPACK.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nag.space import get_space
from nag.space.export import export_blocks

PNAG_80_MOBILE = "2,3,3,3,3:3,3,0,0,3,5,3,0,3,3,5,0,3,3,5,0,5,5,7,0:3,3,0,0,4,3,3,0,4,4,4,0,4,6,6,0,6,6,3,0"
LARGEST = "4,4,4,4,4:" + ",".join(["7"] * 20) + ":" + ",".join(["6"] * 20)


def _seconds(specs: Any, out: Path, *, exporter: str, verify: bool = False) -> float:
    started = time.perf_counter()
    export_blocks(specs, fmt=out.suffix[1:], out=out, exporter=exporter, verify=verify)
    return time.perf_counter() - started


def _median_ms(
    items: Sequence[Any], folder: Path, *, fmt: str, exporter: str, repeats: int, verify: bool = False, tag: str = ""
) -> float:  # fmt: skip
    """Median over ``items`` of each item's median time over ``repeats`` exports, in ms (files kept as
    ``<exporter><tag>-<n>.<fmt>``)."""
    per_item = []
    for n, specs in enumerate(items):
        out = folder / f"{exporter}{tag}-{n}.{fmt}"
        per_item.append(statistics.median(_seconds(specs, out, exporter=exporter, verify=verify) for _ in range(repeats)))
    return 1e3 * statistics.median(per_item)


def _export_rows(
    fmt: str, blocks: Sequence[Any], networks: Sequence[Any], folder: Path, *, repeats: int
) -> dict[str, dict[str, float]]:  # fmt: skip
    """First, per-block and per-network export times of both exporters (direct first: it pays its imports)."""
    rows: dict[str, dict[str, float]] = {}
    for exporter, times in (("direct", repeats), ("torch", 1)):
        first = _seconds(blocks[-1], folder / f"{exporter}-first.{fmt}", exporter=exporter)
        rows[exporter] = {
            "first": first,
            "block": _median_ms(blocks, folder, fmt=fmt, exporter=exporter, repeats=times, tag="-block"),
            "network": _median_ms(networks, folder, fmt=fmt, exporter=exporter, repeats=times, tag="-network"),
        }
    return rows


def _spread(space: Any, resolution: int, count: int) -> list[Any]:
    """``count`` blocks spread over the ofa-mbv3 table at width 1.2."""
    table = space.all_blocks(width=1.2, resolution=resolution)
    return table[:: max(1, len(table) // count)][:count]


def _export_section(
    fmt: str, baseline: str, blocks: Sequence[Any], networks: Sequence[Any], folder: Path, *, repeats: int, resolution: int
) -> None:  # fmt: skip
    """Export both exporters' files (kept in ``folder``) and print the table of times and ratios."""
    rows = _export_rows(fmt, blocks, networks, folder, repeats=repeats)
    checked = [
        _median_ms(items, folder, fmt=fmt, exporter="direct", repeats=1, verify=True, tag="-checked")
        for items in (blocks, networks)
    ]
    base, direct = rows["torch"], rows["direct"]
    print(
        f"\n{fmt} export, ofa-mbv3 width 1.2 at {resolution} px: median of {len(blocks)} blocks and of {len(networks)} "
        f"networks (direct: median of {repeats} exports each)\n"
    )
    print(f"| export | direct (ms) | {baseline}, baseline (ms) | ratio |")
    print("|---|---:|---:|---:|")
    print(f"| per block | {direct['block']:.1f} | {base['block']:.0f} | {direct['block'] / base['block']:.4f}x |")
    print(f"| per whole network | {direct['network']:.0f} | {base['network']:.0f} | {direct['network'] / base['network']:.4f}x |")
    print(f"| per block, with the check against torch | {checked[0]:.1f} | | |")
    print(f"| per whole network, with the check against torch | {checked[1]:.0f} | | |")
    print(f"| first export in the process (imports, set-up; s) | {direct['first']:.2f} | {base['first']:.2f} | |")


def _litert_invoke(path: Path, *, delegates: bool) -> tuple[Callable[[], object], int]:
    """An invoke of the file at 1 thread on a random input, and its number of XNNPACK partitions."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.AUTO if delegates else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interpreter = Interpreter(model_path=str(path), num_threads=1, experimental_op_resolver_type=resolver)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    interpreter.set_tensor(detail["index"], np.random.default_rng(0).standard_normal(detail["shape"]).astype(np.float32))
    partitions = sum(op["op_name"] == "DELEGATE" for op in interpreter._get_ops_details())
    return interpreter.invoke, partitions


def _ort_invoke(path: Path) -> Callable[[], object]:
    import numpy as np

    from agents.runtimes import onnx_session

    session = onnx_session(path, threads=1)
    (first,) = session.get_inputs()
    feed = {first.name: np.random.default_rng(0).standard_normal(first.shape).astype(np.float32)}
    return lambda: session.run(None, feed)


def _latencies(invokes: dict[str, Callable[[], object]], *, rounds: int, per_round: int) -> dict[str, float]:
    """Median ms of each invoke, timed in ``rounds`` that each run every invoke ``per_round`` times in turn."""
    for invoke in invokes.values():  # warm-up: first-call packing and allocation
        for _ in range(3):
            invoke()
    samples: dict[str, list[float]] = {name: [] for name in invokes}
    for _ in range(rounds):
        for name, invoke in invokes.items():
            for _ in range(per_round):
                started = time.perf_counter()
                invoke()
                samples[name].append(1e3 * (time.perf_counter() - started))
    return {name: statistics.median(values) for name, values in samples.items()}


def _tflite_section(space: Any, args: argparse.Namespace, folder: Path) -> None:
    blocks = _spread(space, args.resolution, args.tflite_blocks)
    archs = {"PNAG-80-Mobile": PNAG_80_MOBILE, "largest": LARGEST}
    networks = [space.blocks(space.parse(a), width=1.2, resolution=args.resolution) for a in archs.values()]
    _export_section("tflite", "litert-torch", blocks, networks, folder, repeats=args.repeats, resolution=args.resolution)
    print(
        f"\nLatency at {args.resolution} px, 1 thread, median ms of {args.latency_rounds} x 5 runs per runtime (rounds alternate)\n"
    )
    print("| network (M MAdds) | LiteRT, direct .tflite (XNNPACK) | LiteRT, litert-torch .tflite (XNNPACK) | "
          "LiteRT, direct, builtin kernels | LiteRT, litert-torch, builtin kernels | ONNX Runtime, direct ONNX | "
          "direct / ORT | litert-torch / ORT | XNNPACK partitions (direct, litert-torch) |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for n, (name, arch) in enumerate(archs.items()):
        onnx_file = folder / f"latency-{n}.onnx"
        export_blocks(networks[n], fmt="onnx", out=onnx_file, verify=False)
        direct_file, torch_file = folder / f"direct-network-{n}.tflite", folder / f"torch-network-{n}.tflite"
        (direct_x, direct_parts), (torch_x, torch_parts) = (_litert_invoke(f, delegates=True) for f in (direct_file, torch_file))
        invokes = {
            "direct": direct_x,
            "torch": torch_x,
            "direct builtin": _litert_invoke(direct_file, delegates=False)[0],
            "torch builtin": _litert_invoke(torch_file, delegates=False)[0],
            "ort": _ort_invoke(onnx_file),
        }
        ms = _latencies(invokes, rounds=args.latency_rounds, per_round=5)
        madds = space.costs(space.parse(arch), width=1.2, resolution=args.resolution).madds / 1e6
        print(
            f"| {name} ({madds:.0f}) | {ms['direct']:.1f} | {ms['torch']:.1f} | {ms['direct builtin']:.1f} | "
            f"{ms['torch builtin']:.1f} | {ms['ort']:.1f} | {ms['direct'] / ms['ort']:.2f}x | {ms['torch'] / ms['ort']:.2f}x | "
            f"{direct_parts}, {torch_parts} |"
        )
    _kernel_rows(folder, rounds=args.latency_rounds)


def _kernel_rows(folder: Path, *, rounds: int) -> None:
    """Where the time goes: one MBConv block (56 x 56, 32 channels, expand 6, ReLU) per depthwise kernel size."""
    from nag.space.blocks import MBConvBlock

    print(
        f"\nOne MBConv block per kernel size (56 x 56 x 32, expand 6 (192 wide), stride 1, ReLU), 1 thread, median ms of {rounds} x 5 runs\n"
    )
    print("| depthwise kernel | LiteRT direct (XNNPACK) | LiteRT direct, builtin kernels | ONNX Runtime | XNNPACK / ORT |")
    print("|---|---:|---:|---:|---:|")
    for kernel in (3, 5, 7):
        block = MBConvBlock(
            in_size=56, in_channels=32, out_channels=32, expand_ratio=6, kernel=kernel, stride=1, se=False, act="relu"
        )
        tflite_file, onnx_file = folder / f"kernel{kernel}.tflite", folder / f"kernel{kernel}.onnx"
        export_blocks(block, fmt="tflite", out=tflite_file, verify=False)
        export_blocks(block, fmt="onnx", out=onnx_file, verify=False)
        invokes = {
            "xnnpack": _litert_invoke(tflite_file, delegates=True)[0],
            "builtin": _litert_invoke(tflite_file, delegates=False)[0],
            "ort": _ort_invoke(onnx_file),
        }
        ms = _latencies(invokes, rounds=rounds, per_round=5)
        print(
            f"| {kernel}x{kernel} | {ms['xnnpack']:.2f} | {ms['builtin']:.2f} | {ms['ort']:.2f} | {ms['xnnpack'] / ms['ort']:.2f}x |"
        )


def _onnx_section(space: Any, args: argparse.Namespace, folder: Path) -> None:
    blocks = _spread(space, args.resolution, args.blocks)
    networks = [space.blocks(a, width=1.2, resolution=args.resolution) for a in space.sample_many(args.networks, seed=13)]
    _export_section("onnx", "dynamo exporter", blocks, networks, folder, repeats=args.repeats, resolution=args.resolution)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--formats", default="onnx,tflite", help="comma-separated: onnx, tflite")
    parser.add_argument("--blocks", type=int, default=24, help="ONNX: blocks spread over the table")
    parser.add_argument("--networks", type=int, default=4, help="ONNX: sampled networks")
    parser.add_argument("--tflite-blocks", type=int, default=12, help=".tflite: blocks spread over the table")
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3, help="exports per item for the direct exporter (median)")
    parser.add_argument("--latency-rounds", type=int, default=10, help=".tflite: rounds of 5 runs per runtime")
    args = parser.parse_args()
    formats = {f.strip() for f in args.formats.split(",")}
    if not formats or not formats <= {"onnx", "tflite"}:
        parser.error(f"--formats takes onnx and/or tflite, got {args.formats!r}")
    space = get_space("ofa-mbv3")
    print(f"load average at start: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as work:
        if "onnx" in formats:
            _onnx_section(space, args, Path(work))
        if "tflite" in formats:
            _tflite_section(space, args, Path(work))
    print(f"\nload average at end: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
