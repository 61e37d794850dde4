"""The fuzz suite's contract and its tally (issue 14): run ``nag`` in-process on a generated input and check it.

Every case must end in exit 0 or 2, never in a traceback (any exception other than the CLI's own typed
errors escapes :func:`nag.cli.main` and fails the case), never hang (each case runs under a wall-clock alarm),
and every latency or accuracy it prints must be a finite number in range. The tally counts cases by target and
outcome; ``tests/conftest.py`` prints it at the end of a run (the figures RELIABILITY.md quotes).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import signal
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, settings

__all__ = ["FUZZ", "TALLY", "CaseHang", "Result", "bounded", "check_numbers", "fuzz", "run_case"]

# Fixed examples in CI (derandomized, so a red run is reproducible); NAG_FUZZ_RANDOM=1 explores new ones.
FUZZ = settings(
    deadline=None,
    derandomize=not os.environ.get("NAG_FUZZ_RANDOM"),
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large, HealthCheck.filter_too_much,
    ],
)  # fmt: skip


def fuzz(cases: int) -> settings:
    """The suite's settings with ``cases`` generated examples."""
    return settings(FUZZ, max_examples=cases)


TALLY: Counter[tuple[str, str]] = Counter()  # (target, outcome) -> cases

_NON_FINITE = re.compile(r"(?<![\w.])-?(nan|inf|infinity)(?![\w.])", re.IGNORECASE)


class CaseHang(BaseException):  # a BaseException, so no `except Exception` in the code under test swallows it
    """A case ran past its time bound."""


@contextlib.contextmanager
def bounded(seconds: float) -> Iterator[None]:
    """Raise :class:`CaseHang` in the main thread if the block runs longer than ``seconds``."""

    def alarm(signum: int, frame: Any) -> None:
        raise CaseHang(f"the case ran longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def _environment(env: Mapping[str, str] | None) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in (env or {})}
    os.environ.update(env or {})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


def run_case(target: str, argv: list[str], *, env: Mapping[str, str] | None = None, seconds: float = 30.0) -> Result:
    """``nag ARGV`` in this process, checked against the contract; returns what it printed."""
    from nag.cli import main

    out, err = io.StringIO(), io.StringIO()
    TALLY[(target, "tried")] += 1
    try:
        with _environment(env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), bounded(seconds):
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse's usage errors and --help
                code = exc.code if isinstance(exc.code, int) else 2
    except CaseHang:
        TALLY[(target, "hang")] += 1
        raise
    except Exception:
        TALLY[(target, "traceback")] += 1
        raise
    result = Result(code, out.getvalue(), err.getvalue())
    TALLY[(target, f"exit {code}")] += 1
    assert code in (0, 2), (argv, code, result.err[-2000:])
    assert "Traceback" not in result.err, result.err[-3000:]
    if code == 2:
        lines = result.err.strip().splitlines()
        assert lines and lines[-1].startswith("nag") and "error:" in lines[-1], result.err[-2000:]
        assert len(lines[-1]) < 2000, lines[-1][:300]
    else:
        check_numbers(result.out)
    return result


def check_numbers(text: str) -> None:
    """No printed result is NaN or infinite; every JSON latency is > 0 and every accuracy within [0, 100]."""
    assert not _NON_FINITE.search(text), text[:2000]
    try:
        data = json.loads(text)
    except ValueError:
        return
    _check_json(data)


def _check_json(value: Any, key: str = "") -> None:
    if isinstance(value, Mapping):
        for name, item in value.items():
            _check_json(item, str(name))
    elif isinstance(value, list):
        for item in value:
            _check_json(item, key)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        assert math.isfinite(value), (key, value)
        if "latency" in key and key.endswith("_ms"):
            assert value > 0, (key, value)
        if key in ("accuracy", "top1", "source_accuracy", "accuracy_estimate"):
            assert 0 <= value <= 100, (key, value)
