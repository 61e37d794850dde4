"""The embedded-default pipeline behind ``nag demo``: everything on one machine, no set-up.

What exists so far runs end to end: sample architectures of ``ofa-mbv3``, count their exact costs,
enumerate the latency-table blocks, and export the smallest and the largest sampled network to ONNX (and
to ``.tflite`` when ``litert-torch`` is installed), each checked against torch in its runtime. The report
(CSV, JSON, a plot) goes to the output folder. Latency measurement, the accuracy proxy and the PNAG search
join this pipeline as their issues land.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nag.space import get_space

__all__ = ["DemoReport", "run_demo"]

PNAG_80_MOBILE = "2,3,3,3,3:3,3,0,0,3,5,3,0,3,3,5,0,3,3,5,0,5,5,7,0:3,3,0,0,4,3,3,0,4,4,4,0,4,6,6,0,6,6,3,0"


@dataclass
class DemoReport:
    out: Path
    rows: list[dict[str, Any]]  # one summary per sampled architecture (nag arch info --json fields)
    num_blocks: int  # distinct latency-table blocks at the demo's setting
    exports: list[dict[str, Any]] = field(default_factory=list)  # one per exported file
    notes: list[str] = field(default_factory=list)  # things the user should know (skipped steps)


def _write_atomic(path: Path, write: Callable[[Any], None], *, newline: str | None = None) -> None:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline=newline) as handle:
            write(handle)
        os.replace(name, path)
    finally:
        Path(name).unlink(missing_ok=True)


def _plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    points = ax.scatter(
        [r["madds_m"] for r in rows], [r["params_m"] for r in rows], c=[r["depth"] for r in rows], s=10, cmap="viridis"
    )
    fig.colorbar(points, ax=ax, label="total depth (blocks)")
    ax.set_xlabel("MAdds (M, classifier excluded)")
    ax.set_ylabel("parameters (M)")
    ax.set_title(f"{len(rows)} uniformly sampled ofa-mbv3 networks (width 1.2, 224 px)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run_demo(out: str | os.PathLike[str], *, n: int = 500, seed: int = 0, progress: bool = True) -> DemoReport:
    """Run the pipeline into ``out`` and return what it found."""
    from tqdm import tqdm

    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    space = get_space("ofa-mbv3")
    archs = space.sample_many(n, seed=seed)
    rows = []
    for arch in tqdm(archs, desc="costing architectures", unit="arch", disable=not progress):
        row = space.summary(arch)
        row["depth"] = sum(arch.depths)
        rows.append(row)
    report = DemoReport(out=out_dir, rows=rows, num_blocks=len(space.all_blocks()))

    from nag.space.export import export_blocks

    formats = ["onnx"]
    if importlib.util.find_spec("litert_torch") is not None:
        formats.append("tflite")
    else:
        report.notes.append("litert-torch is not installed, so no .tflite export: pip install 'nag-farm[litert]'")
    ends = {"smallest": min(rows, key=lambda r: r["madds"]), "largest": max(rows, key=lambda r: r["madds"])}
    jobs = [(label, row, fmt) for label, row in ends.items() for fmt in formats]
    for label, row, fmt in tqdm(jobs, desc="exporting and checking", unit="file", disable=not progress):
        blocks = space.blocks(space.parse(row["arch"]))
        result = export_blocks(blocks, fmt=fmt, out=out_dir / f"{label}.{fmt}")
        report.exports.append(
            {"which": label, "arch": row["arch"], "format": fmt, "path": str(result.path), "max_abs_error": result.max_abs_error}
        )

    fields = ["arch", "madds_m", "madds_total_m", "params_m", "depth"]
    _write_atomic(out_dir / "archs.csv", lambda f: _write_csv(f, fields, rows), newline="")
    summary = {"n": n, "seed": seed, "num_blocks": report.num_blocks, "exports": report.exports, "notes": report.notes}
    _write_atomic(out_dir / "summary.json", lambda f: json.dump(summary, f, indent=2))
    _plot(rows, out_dir / "costs.png")
    return report


def _write_csv(handle: Any, fields: list[str], rows: list[dict[str, Any]]) -> None:
    writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
