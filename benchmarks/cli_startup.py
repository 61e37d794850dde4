"""Start-up time of the ``nag`` CLI's light commands, as a ratio to a bare Python start in the same run.

    python benchmarks/cli_startup.py [--repeats 15]

Prints a Markdown table for BENCHMARKS.md: the median wall time of each command over the repeats, and its
ratio to ``python -c pass`` (the floor any Python CLI pays). ``import torch`` is shown for scale: it is what
the light commands must never pay.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

PNAG_80 = "2,3,3,3,3:3,3,0,0,3,5,3,0,3,3,5,0,3,3,5,0,5,5,7,0:3,3,0,0,4,3,3,0,4,4,4,0,4,6,6,0,6,6,3,0"

COMMANDS = {
    "python -c pass (baseline)": [sys.executable, "-c", "pass"],
    "nag --help": [sys.executable, "-m", "nag", "--help"],
    "nag arch info PNAG-80 --json": [sys.executable, "-m", "nag", "arch", "info", PNAG_80, "--json"],
    "nag arch sample --n 1000": [sys.executable, "-m", "nag", "arch", "sample", "--n", "1000", "--seed", "0"],
    "nag arch blocks": [sys.executable, "-m", "nag", "arch", "blocks"],
    "python -c 'import torch' (for scale)": [sys.executable, "-c", "import torch"],
}


def median_seconds(command: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    for command in COMMANDS.values():  # warm the page cache once
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    results = {name: median_seconds(command, args.repeats) for name, command in COMMANDS.items()}
    baseline = results["python -c pass (baseline)"]
    print(f"| command | median wall time (ms, {args.repeats} runs) | ratio to bare Python |")
    print("|---|---:|---:|")
    for name, seconds in results.items():
        print(f"| `{name}` | {seconds * 1000:.0f} | {seconds / baseline:.1f}x |")


if __name__ == "__main__":
    main()
