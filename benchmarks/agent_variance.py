"""Run-to-run variance of ``ort-cpu``: the coefficient of variation of one block's median latency over
repeated measurements, without and with pinning (and thermal gating), idle and beside a busy process.

    python benchmarks/agent_variance.py [--repeats 10] [--runs 30]

Each condition measures the same exported block ``--repeats`` times (each a full measurement of ``--runs``
samples after warm-up); conditions are interleaved so slow drifts of the machine hit all of them alike.
The baseline is the unpinned, ungated condition of the same run; the table gives each condition's CV and
its ratio to that baseline. Thermal gating only acts where the platform exposes thermal zones; the script
says whether it did.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from agents import AgentsConfig, MeasurementSpec, open_agent
from agents.local import local_temperatures_c
from nag.space import get_space
from nag.space.export import cached_export

BLOCK_PREFIX = "expanded_conv-input:28x28x48-output:14x14x96-expand:192-kernel:5"  # a mid-size stage-3 block


@contextlib.contextmanager
def busy_neighbour(cpu: int) -> Iterator[None]:
    """A process spinning on ``cpu`` for the duration (bounded: killed on exit, and it stops itself after 20 min)."""
    code = f"import os,time; os.sched_setaffinity(0, {{{cpu}}}); end = time.time() + 1200\nwhile time.time() < end: pass"
    process = subprocess.Popen([sys.executable, "-c", code])
    try:
        yield
    finally:
        process.kill()
        process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()

    cpus = sorted(os.sched_getaffinity(0))
    measure_cpu, other_cpu = cpus[-1], cpus[0]
    space = get_space("ofa-mbv3")
    block = next(b for b in space.all_blocks(resolution=224) if b.key.startswith(BLOCK_PREFIX))
    model = cached_export(block, fmt="onnx", cache_dir=Path(tempfile.gettempdir()) / "nag-bench-models")
    conditions = {
        "unpinned, ungated (baseline)": MeasurementSpec(warmup_runs=10, runs=args.runs),
        f"pinned to CPU {measure_cpu}, gated at 80 C": MeasurementSpec(
            warmup_runs=10, runs=args.runs, affinity=(measure_cpu,), max_temperature_c=80.0
        ),
    }
    print(f"block {block.key}; {args.repeats} measurements x {args.runs} samples per condition; CPUs {cpus}")
    print(f"thermal zones exposed: {'yes' if local_temperatures_c() else 'no (gating is a no-op here)'}")
    rows = []
    with open_agent("ort-cpu", None, AgentsConfig(adb=None)) as agent:
        prepared = agent.prepare(model)
        for scenario, neighbour in (("idle", None), (f"busy process on CPU {other_cpu}", other_cpu)):
            medians: dict[str, list[float]] = {name: [] for name in conditions}
            with busy_neighbour(neighbour) if neighbour is not None else contextlib.nullcontext():
                for _ in range(args.repeats):
                    for name, spec in conditions.items():
                        medians[name].append(agent.measure(prepared, spec).median_ms)
            baseline_cv = None
            for name, values in medians.items():
                cv = statistics.stdev(values) / statistics.fmean(values)
                baseline_cv = baseline_cv if baseline_cv is not None else cv
                rows.append((scenario, name, statistics.fmean(values), cv, cv / baseline_cv))
    print()
    print("| machine state | condition | mean of medians (ms) | CV of the median | ratio to baseline |")
    print("|---|---|---:|---:|---:|")
    for scenario, name, mean, cv, ratio in rows:
        print(f"| {scenario} | {name} | {mean:.3f} | {cv * 100:.2f}% | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
