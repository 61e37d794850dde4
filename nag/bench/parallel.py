"""Running a bench's methods as parallel Ray tasks on a cluster (``nag bench --ray-address``).

Each method (and each K of the sweep) is one Ray task holding one CPU: it receives the pickled
:class:`nag.search.methods.SearchTask` and returns its :class:`nag.search.methods.MethodRun`; scoring
stays on the driver. A method's times are measured inside its task, so they are the method's own wall
times on the node that ran it; on a cluster with fewer free CPUs than methods the tasks queue rather than
share a core. Ray must already be initialised (``ray.init(address=...)``) by the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tqdm import tqdm

from nag.errors import SettingError
from nag.search.methods import MethodRun, SearchTask, get_method

__all__ = ["run_methods_on_ray"]


def _run_one(name: str, options: dict[str, Any], task: SearchTask, budgets_ms: Sequence[float]) -> MethodRun:
    from nag.search.api import compute_threads

    with compute_threads(1):
        return get_method(name, **options).run(task, budgets_ms, progress=False)


def run_methods_on_ray(
    plan: Sequence[tuple[str, dict[str, Any]]], task: SearchTask, budgets_ms: Sequence[float], *, progress: bool = False
) -> list[MethodRun]:
    """Every ``(name, options)`` of ``plan`` as one Ray task; the runs in plan order."""
    import ray

    if not ray.is_initialized():
        raise SettingError("running methods on Ray needs a connected cluster: pass --ray-address HEAD:PORT (or auto)")
    remote = ray.remote(num_cpus=1, max_retries=0)(_run_one)
    shared = ray.put(task)
    pending = {remote.remote(name, options, shared, tuple(budgets_ms)): n for n, (name, options) in enumerate(plan)}
    done: dict[int, MethodRun] = {}
    with tqdm(total=len(plan), desc="methods on Ray", unit="method", disable=not progress) as bar:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                done[pending.pop(ref)] = ray.get(ref)
                bar.update(1)
    return [done[n] for n in range(len(plan))]
