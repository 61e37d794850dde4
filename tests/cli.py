"""Running ``nag`` as a user does (a fresh ``python -m nag`` process of this checkout), checking its errors, and
hostile inputs shared by the bad-input tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_nag(
    *argv: str, env: dict[str, str] | None = None, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python -m nag ARGV`` with this checkout first on the path; ``$NAG_AGENTS_CONFIG`` unset unless ``env`` sets it."""
    base = {**os.environ, "PYTHONPATH": str(ROOT)}
    base.pop("NAG_AGENTS_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "nag", *argv], input=stdin, capture_output=True, text=True, env={**base, **(env or {})},
        timeout=timeout,
    )  # fmt: skip


def one_line_error(result: subprocess.CompletedProcess[str], *needles: str, max_chars: int = 600) -> str:
    """Assert the bad-input contract: exit 2, no traceback, one short stderr line holding every needle; returns it."""
    assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("nag: error: ") and len(lines[0]) <= max_chars, lines[0][:2000]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def yaml_alias_bomb(levels: int = 9) -> str:
    """A YAML flow list whose last item, through aliases, holds 10**levels strings: a few hundred bytes that
    ``repr`` would spell out in gigabytes (so a message must never ``repr`` a value unbounded)."""
    items = ['&l0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    items += [f"&l{n} [" + ", ".join([f"*l{n - 1}"] * 10) + "]" for n in range(1, levels)]
    return "[" + ", ".join(items) + "]"
