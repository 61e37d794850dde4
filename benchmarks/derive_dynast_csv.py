"""Derive the shipped DyNAS-T table ``nag/accuracy/data/dynast-ofa-mbv3-w1.0/dynast.csv`` from the shared raw CSVs.

    PYTHONPATH=. python benchmarks/derive_dynast_csv.py [--src /work/shared/data/dynast-ofa-mbv3-w1.0] [--out FILE]

Reads IntelLabs/DyNAS-T ``notebooks/data/mbnv3w10_*.csv`` (commit 251cb5e0): 2,373 rows whose
``Sub-network`` column is OFA's dict form (a Python literal). Each dict is parsed by ``ofa-mbv3`` (which
zeroes the slots past a stage's depth, values OFA ignores), so the 2,223 distinct dicts are 2,162 distinct
networks. Repeated rows of one network are averaged when they agree within ``--max-spread`` points of
top-1 (they are re-evaluations of the same weights; all did, the widest spread being 0.096 points);
a wider spread stops the script. MACs and parameters must agree exactly across repeats.

Columns written: ``arch`` (canonical ``d1..d5:k1..k20:e1..e20``), ``accuracy`` (top-1 fraction, the mean
of the repeats, 8 decimals), ``macs`` (DyNAS-T's MACs, classifier included), ``params``, ``n_rows`` (raw
rows averaged), ``spread_points`` (max - min top-1 of the repeats, percent points), ``source_file`` (the
raw files the rows came from, ``;``-separated). Rows sorted by ``arch``.
"""

from __future__ import annotations

import argparse
import ast
import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from nag.data import atomic_write_bytes
from nag.space import get_space

SOURCE = Path("/work/shared/data/dynast-ofa-mbv3-w1.0")
OUT = Path(__file__).resolve().parents[1] / "nag" / "accuracy" / "data" / "dynast-ofa-mbv3-w1.0" / "dynast.csv"


@dataclass
class _Network:
    macs: int  # DyNAS-T MACs (classifier included); equal across repeats
    params: int  # DyNAS-T parameter count; equal across repeats
    top1_percent: list[float] = field(default_factory=list)  # one per raw row
    files: set[str] = field(default_factory=set)  # raw files holding the rows


def derive(source: Path, *, max_spread: float) -> tuple[str, dict[str, float]]:
    """The compact CSV text and a few figures about the repeats."""
    space = get_space("ofa-mbv3")
    networks: dict[str, _Network] = {}
    raw_dicts: set[str] = set()
    rows = 0
    for file in sorted(source.glob("mbnv3w10_*.csv")):
        with file.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                rows += 1
                config = ast.literal_eval(row["Sub-network"])
                if config.get("r") != [224]:
                    raise SystemExit(f"{file}: resolution {config.get('r')} is not [224]")
                raw_dicts.add(repr((config["d"], config["ks"], config["e"])))
                arch = space.format(space.parse(config))
                macs, params = int(row["MACs"]), int(row["Model Parameters"])
                network = networks.setdefault(arch, _Network(macs=macs, params=params))
                if (network.macs, network.params) != (macs, params):
                    raise SystemExit(f"{file}: {arch} has MACs/params {macs}/{params}, elsewhere {network.macs}/{network.params}")
                network.top1_percent.append(float(row["Top-1 Acc (%)"]))
                network.files.add(file.name)
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["arch", "accuracy", "macs", "params", "n_rows", "spread_points", "source_file"])
    spreads = []
    for arch in sorted(networks):
        network = networks[arch]
        spread = max(network.top1_percent) - min(network.top1_percent)
        if spread > max_spread:
            raise SystemExit(f"{arch}: repeats {network.top1_percent} spread {spread:.3f} points > {max_spread}")
        if len(network.top1_percent) > 1:
            spreads.append(spread)
        mean = sum(network.top1_percent) / len(network.top1_percent)
        writer.writerow(
            [
                arch,
                f"{mean / 100:.8f}",
                network.macs,
                network.params,
                len(network.top1_percent),
                f"{spread:.3f}",
                ";".join(sorted(network.files)),
            ]
        )
    spreads.sort()
    figures = {
        "raw_rows": rows,
        "raw_distinct_dicts": len(raw_dicts),
        "networks": len(networks),
        "repeated_networks": len(spreads),
        "max_spread_points": spreads[-1] if spreads else 0.0,
        "median_spread_points": spreads[len(spreads) // 2] if spreads else 0.0,
    }
    return buffer.getvalue(), figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=SOURCE, help="folder of the raw DyNAS-T CSVs (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=OUT, help="CSV to write (default: the packaged file)")
    parser.add_argument(
        "--max-spread", type=float, default=0.2, help="widest top-1 spread (points) averaged (default: %(default)s)"
    )
    args = parser.parse_args()
    text, figures = derive(args.src, max_spread=args.max_spread)
    atomic_write_bytes(args.out, text.encode("utf-8"))
    print(f"wrote {args.out}: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
