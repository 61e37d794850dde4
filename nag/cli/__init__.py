"""The ``nag`` command line. Command groups register themselves; heavy libraries load inside handlers only."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from agents.errors import AgentError
from nag import __version__
from nag.accuracy.supernet import cli as supernet
from nag.cli import agent, arch, bench, demo, farm, search, table
from nag.cli._common import OneLineErrorParser
from nag.errors import NagError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="nag",
        description="NAG Farm: latency tables measured on real devices, and PNAG architecture generation for any budget.",
    )
    parser.add_argument("--version", action="version", version=f"nag-farm {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in (demo, arch, agent, farm, table, search, bench, supernet):
        group.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 bad input, 130 interrupted)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except (NagError, AgentError) as exc:
        print("nag: error: " + " ".join(str(exc).split()), file=sys.stderr)  # always one line
        return 2
    except KeyboardInterrupt:
        print("nag: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. 'nag arch sample --n 1000 | head'
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
