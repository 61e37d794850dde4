"""ONNX export time per block and per whole network: the direct exporter against torch's dynamo exporter.

    python benchmarks/export_speed.py [--blocks 24] [--networks 4] [--resolution 224] [--repeats 3]

Both exporters write the same models (the same seeded weights, checked equal in ``tests/space``) to files
through ``nag.space.export.export_blocks`` without verification: ``--blocks`` blocks spread over the
ofa-mbv3 table at ``--resolution`` (width 1.2) and ``--networks`` sampled networks. The baseline is the
dynamo exporter (``exporter="torch"``), measured in the same run. Each exporter first exports one block
untimed (imports, the dynamo exporter's first-call set-up); that one-time cost is reported apart (the
direct exporter runs first, so its figure includes importing ``onnx`` but not torch, which it never needs). The
direct exporter also reports export plus its check against torch (what ``cached_export`` does on a miss).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nag.space import get_space
from nag.space.export import export_blocks


def _seconds(specs: Any, out: Path, *, exporter: str, verify: bool = False) -> float:
    started = time.perf_counter()
    export_blocks(specs, fmt="onnx", out=out, exporter=exporter, verify=verify)
    return time.perf_counter() - started


def _median_ms(items: Sequence[Any], folder: Path, *, exporter: str, repeats: int, verify: bool = False) -> float:
    """Median over ``items`` of each item's median time over ``repeats`` exports, in ms."""
    per_item = []
    for n, specs in enumerate(items):
        out = folder / f"{exporter}-{n}.onnx"
        per_item.append(statistics.median(_seconds(specs, out, exporter=exporter, verify=verify) for _ in range(repeats)))
    return 1e3 * statistics.median(per_item)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=24)
    parser.add_argument("--networks", type=int, default=4)
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3, help="exports per item for the direct exporter (median)")
    args = parser.parse_args()
    space = get_space("ofa-mbv3")
    table = space.all_blocks(width=1.2, resolution=args.resolution)
    step = max(1, len(table) // args.blocks)
    blocks = table[::step][: args.blocks]
    networks = [space.blocks(a, width=1.2, resolution=args.resolution) for a in space.sample_many(args.networks, seed=13)]
    rows: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work)
        for exporter, repeats in (
            ("direct", args.repeats),
            ("torch", 1),
        ):  # direct first: its first export pays for onnx's import
            first = _seconds(table[-1], folder / f"{exporter}-first.onnx", exporter=exporter)
            rows[exporter] = {
                "first": first,
                "block": _median_ms(blocks, folder, exporter=exporter, repeats=repeats),
                "network": _median_ms(networks, folder, exporter=exporter, repeats=repeats),
            }
        checked_block = _median_ms(blocks, folder, exporter="direct", repeats=1, verify=True)
        checked_network = _median_ms(networks, folder, exporter="direct", repeats=1, verify=True)
    base, direct = rows["torch"], rows["direct"]
    print(
        f"\nONNX export, ofa-mbv3 width 1.2 at {args.resolution} px: median of {len(blocks)} blocks and of "
        f"{len(networks)} networks (direct: median of {args.repeats} exports each)\n"
    )
    print("| export | direct (ms) | dynamo exporter, baseline (ms) | ratio |")
    print("|---|---:|---:|---:|")
    print(f"| per block | {direct['block']:.1f} | {base['block']:.0f} | {direct['block'] / base['block']:.4f}x |")
    print(f"| per whole network | {direct['network']:.0f} | {base['network']:.0f} | {direct['network'] / base['network']:.4f}x |")
    print(f"| per block, with the check against torch | {checked_block:.1f} | | |")
    print(f"| per whole network, with the check against torch | {checked_network:.0f} | | |")
    print(f"| first export in the process (imports, set-up; s) | {direct['first']:.2f} | {base['first']:.2f} | |")


if __name__ == "__main__":
    main()
