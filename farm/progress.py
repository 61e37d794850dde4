"""A progress bar fed by a measurement job's :class:`farm.scheduler.JobReport` (the ``on_progress`` callback)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from farm.scheduler import JobReport

__all__ = ["job_progress"]


@contextmanager
def job_progress(total: int, description: str, *, enabled: bool = True) -> Iterator[Callable[[JobReport], None]]:
    """Yield an ``on_progress`` callback that draws a bar of ``total`` tasks on stderr (closed on exit)."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=description, unit="item", file=sys.stderr, disable=not enabled)

    def update(report: JobReport) -> None:
        bar.n = report.total
        bar.set_postfix(done=report.done, skipped=report.skipped, failed=len(report.failed), refresh=False)
        bar.refresh()

    try:
        yield update
    finally:
        bar.close()
