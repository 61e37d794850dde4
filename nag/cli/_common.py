"""Pieces shared by the CLI's command groups. Nothing here imports torch or ray."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

__all__ = ["OneLineErrorParser", "add_setting_options", "print_json", "print_table", "read_arch_args"]


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
