"""Exporting a local farm's models beforehand on every core, against exporting them one by one.

    python benchmarks/prefetch_exports.py [--blocks 24] [--networks 4] [--resolution 224]

A device actor exports each model it lacks just before measuring it, one at a time. For a farm on this
machine, ``farm.tables.prefetch_exports`` can export them first in one process per CPU. Both runs start
from an empty cache and export the same models (the first ``--blocks`` blocks of ofa-mbv3 and ``--networks``
random whole networks) with the default ONNX exporter; the baseline is the serial run (in this process,
as ``processes=1`` runs it) of the same invocation.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from farm.scheduler import Task
from farm.tables import block_tasks, prefetch_exports, validation_archs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=24)
    parser.add_argument("--networks", type=int, default=4)
    parser.add_argument("--resolution", type=int, default=224)
    args = parser.parse_args()
    tasks = block_tasks("ofa-mbv3", width=1.2, resolutions=[args.resolution])[: args.blocks]
    tasks += [Task("ofa-mbv3", 1.2, args.resolution, "network", a) for a in validation_archs("ofa-mbv3", args.networks)]
    cpus = os.cpu_count() or 1
    seconds = {}
    for label, processes in (("one process (baseline)", 1), (f"{cpus} processes", cpus)):
        with tempfile.TemporaryDirectory() as cache:
            started = time.perf_counter()
            exported = prefetch_exports(tasks, kind="ort-cpu", cache_dir=cache, processes=processes)
            seconds[label] = time.perf_counter() - started
            assert exported == len(tasks)
    baseline = seconds["one process (baseline)"]
    print(f"{len(tasks)} ONNX exports ({args.blocks} blocks, {args.networks} networks) at {args.resolution} px, {cpus} CPUs")
    for label, value in seconds.items():
        print(f"  {label:24} {value:7.1f} s  {value / len(tasks):5.2f} s/model  {value / baseline:5.2f}x")


if __name__ == "__main__":
    main()
