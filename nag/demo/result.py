"""What a demo run found (:class:`DemoResult`), and ``demo.json``, from which ``nag report DIR`` redraws the report.

``demo.json`` holds everything the report shows except the figures' PNG files (``validation.png`` stays a
file beside it); ``"format"`` is :data:`FORMAT`. It is written with every run, after the last stage.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nag.data import atomic_write_bytes
from nag.demo.config import DemoConfig
from nag.errors import NagError

__all__ = ["DEMO_FILE", "DemoFileError", "DemoResult", "Stage", "load_result", "save_result"]

DEMO_FILE = "demo.json"
FORMAT = 1


class DemoFileError(NagError, ValueError):
    """A demo directory has no readable ``demo.json`` (an older ``nag demo`` wrote it, or it was damaged)."""


@dataclass
class Stage:
    name: str
    seconds: float
    reused: bool  # the output of an earlier run was used as it was
    detail: str  # one line: what the stage did or found


@dataclass
class DemoResult:
    """Everything the report shows; ``report`` writes it out (see :mod:`nag.demo.report`)."""

    out: Path
    config: DemoConfig
    stages: list[Stage] = field(default_factory=list)
    table: dict[str, Any] = field(default_factory=dict)  # the latency table's identity and validation figures
    accuracy: dict[str, Any] = field(default_factory=dict)  # where the labels and the generated networks' top-1 come from
    sampled: list[dict[str, Any]] = field(default_factory=list)  # the search's labelled rows: arch, latency_ms (LUT), accuracy
    generated: list[dict[str, Any]] = field(default_factory=list)  # one per budget: generate()'s dict + measured_ms, top1
    proposals: list[dict[str, Any]] = field(default_factory=list)  # budget_ms, latencies_ms of raw policy draws
    uniform_ms: list[float] = field(default_factory=list)  # table latencies of as many uniformly sampled archs
    search: dict[str, Any] = field(default_factory=dict)  # the search run's headline metrics
    summary: dict[str, Any] = field(default_factory=dict)  # the report's numbers (summary.json), once written
    files: dict[str, str] = field(default_factory=dict)  # output files named per run (e.g. the subnets' tables)
    rescale: dict[str, Any] = field(default_factory=dict)  # the references now against the build (farm.drift.Rescale)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of everything but ``out`` and ``summary`` (the report recomputes the summary)."""
        return {
            "format": FORMAT,
            "config": self.config.to_dict(),
            "stages": [s.__dict__ for s in self.stages],
            **{name: getattr(self, name) for name in _PLAIN},
        }

    @classmethod
    def from_dict(cls, out: Path, value: dict[str, Any]) -> DemoResult:
        """The result :meth:`to_dict` wrote, placed in ``out``."""
        stages = [Stage(**s) for s in value["stages"]]
        optional = {n: value[n] for n in _ADDED if n in value}  # absent from an older demo.json
        plain = {n: value[n] for n in _PLAIN if n not in _ADDED}
        return cls(out=out, config=DemoConfig.from_dict(value["config"]), stages=stages, **plain, **optional)


_PLAIN = ("table", "accuracy", "sampled", "generated", "proposals", "uniform_ms", "search", "files", "rescale")
_ADDED = ("rescale",)  # fields later than the first demo.json


def save_result(result: DemoResult) -> Path:
    """Write ``demo.json`` into ``result.out`` (atomically); returns its path."""
    path = result.out / DEMO_FILE
    atomic_write_bytes(path, (json.dumps(result.to_dict(), indent=1) + "\n").encode())
    return path


def load_result(folder: str | Path) -> DemoResult:
    """The :class:`DemoResult` saved in ``folder``; :class:`DemoFileError` when it is missing or unreadable."""
    folder = Path(folder)
    path = folder / DEMO_FILE
    rerun = f"rerun 'nag demo --out {folder}' (it reuses what was measured and trained) to write it"
    if not path.is_file():
        raise DemoFileError(f"{str(folder)!r} has no {DEMO_FILE}: an older 'nag demo' wrote this folder; {rerun}")
    try:
        value = json.loads(path.read_text())
        if value.get("format") != FORMAT:
            raise DemoFileError(f"{str(path)!r} is format {value.get('format')!r}, not {FORMAT}; {rerun}")
        return DemoResult.from_dict(folder, value)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        if isinstance(exc, DemoFileError):
            raise
        raise DemoFileError(f"{str(path)!r} is not a readable demo result ({exc}); {rerun}") from None
