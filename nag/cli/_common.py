"""Pieces shared by the CLI's command groups. Nothing here imports torch or ray."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

__all__ = ["OneLineErrorParser", "add_setting_options", "print_json", "print_table", "read_arch_args", "retain_freed_memory"]


class OneLineErrorParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr, exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def add_setting_options(parser: argparse.ArgumentParser, *, space: bool = True) -> None:
    """--space, --width, --resolution: the setting at which an architecture is built and costed."""
    if space:
        parser.add_argument("--space", default="ofa-mbv3", help="search space name (default: %(default)s)")
    parser.add_argument("--width", type=float, default=None, help="width multiplier (default: the space's, 1.2 for ofa-mbv3)")
    parser.add_argument("--resolution", type=int, default=None, help="input resolution in pixels (default: the space's, 224)")


def read_arch_args(values: Sequence[str]) -> list[str]:
    """Architecture arguments, where '-' stands for one architecture per line of standard input."""
    archs: list[str] = []
    for value in values:
        if value == "-":
            archs.extend(line.strip() for line in sys.stdin if line.strip())
        else:
            archs.append(value)
    return archs


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2)
    sys.stdout.write("\n")


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, align_right: Sequence[bool] | None = None) -> None:
    """A plain, aligned text table (numbers right-aligned when ``align_right`` says so)."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    right = list(align_right) if align_right is not None else [False] * len(headers)
    for n, row in enumerate(cells):
        line = "  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(row, widths, right, strict=False))
        print(line.rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def add_farm_options(parser: argparse.ArgumentParser, *, measurement: bool = True) -> None:
    """Where the farm is (--address, --executor) and, with ``measurement``, how to measure (--runs, ...)."""
    parser.add_argument("--address", default=None, help="Ray cluster HEAD:PORT (default: a local farm of this machine's devices)")
    parser.add_argument(
        "--executor",
        choices=("ray", "threads"),
        default="ray",
        help="a local farm on a Ray of its own, one actor per device (default; a crashed device actor restarts), "
        "or on one thread per device without Ray (starts at once)",
    )
    if measurement:
        parser.add_argument("--runs", type=int, default=30, help="timed samples per measurement (default: %(default)s)")
        parser.add_argument("--warmup", type=int, default=10, help="warm-up inferences (default: %(default)s)")
        parser.add_argument("--threads", type=int, default=1)
        parser.add_argument("--runs-per-sample", type=int, default=1, help="inferences averaged into one sample")


def measurement_spec(args: argparse.Namespace) -> Any:
    """The :class:`agents.MeasurementSpec` of --runs, --warmup, --threads and --runs-per-sample."""
    from agents import MeasurementSpec

    return MeasurementSpec(warmup_runs=args.warmup, runs=args.runs, threads=args.threads, runs_per_sample=args.runs_per_sample)


def open_farm(args: argparse.Namespace, *, kinds: Sequence[str] | None = None) -> Any:
    """The farm of --address (a cluster), else a local farm of this machine's devices (of ``kinds``) on --executor."""
    from farm.client import Farm
    from nag.errors import SettingError

    if args.address and args.executor != "ray":
        raise SettingError("--executor threads is for a local farm; a cluster (--address) runs on Ray")
    return Farm.connect(args.address) if args.address else Farm.local(kinds=kinds, executor=args.executor)


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters
_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc's largest allowed M_MMAP_THRESHOLD on 64-bit systems


def retain_freed_memory() -> bool:
    """Have glibc keep freed memory for reuse instead of handing it back to the system at every free: for the
    commands that train (``nag search``, ``nag demo``), called at their start. A setting of the whole process,
    so the command decides it, not the library it calls.

    Training allocates and frees tensors of hundreds of kilobytes to megabytes many thousand times. With
    glibc's defaults each of them was mapped afresh (or the heap trimmed and regrown): a 20-second
    ``nag search`` took about a million page faults and 2 s of system CPU (0.3 s with this).
    Allocations up to 32 MB now come from the heap, which is trimmed only when more than 1 GB at its top is
    free. This holds for the rest of the process (memory is kept up to its peak, and reused). Returns False
    where the C library is not glibc (nothing changed).
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)) and bool(mallopt(_M_TRIM_THRESHOLD, 1 << 30))
