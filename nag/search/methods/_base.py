"""The interface every search method implements, and the task they all receive.

A :class:`SearchMethod` answers a list of latency budgets with one architecture each. Every method gets
the same :class:`SearchTask`: the search space, the latency predictor that decides feasibility while it
searches, the accuracy source, and the labelled architectures that learning methods train on (PNAG's M
rows). What a method returns is only architectures and times: the bench scores every answer with the
sources itself (:mod:`nag.search.bench`), never with a method's own estimate.

Call order: construct the method (its options), then :meth:`SearchMethod.run` once per task. A method is
not thread-safe while it runs; distinct instances are independent. ``run`` raises
:class:`nag.errors.NagError` subclasses for a task it cannot handle (e.g. a per-query method given a slow
accuracy source), with the fix in the message.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from nag.accuracy import AccuracySource
from nag.latency import LatencyPredictor
from nag.search.config import SearchConfig
from nag.space import SearchSpace

__all__ = ["Answer", "MethodRun", "Proposer", "SearchMethod", "SearchTask"]

# Raw draws of a method's policy for a budget: (budget_ms, n) -> n architecture strings (the paper's Fig. 3).
Proposer = Callable[[float, int], list[str]]


@dataclass(frozen=True, eq=False)
class SearchTask:
    """What every method is given; identical for all methods of one bench."""

    space: SearchSpace[Any]  # the search space
    latency: LatencyPredictor  # prices architectures while searching (feasibility)
    accuracy: AccuracySource  # the accuracy source; methods that query accuracy per architecture ask it
    archs: tuple[str, ...]  # labelled architectures (canonical strings) for methods that learn from data
    latency_ms: tuple[float, ...]  # their latencies (ms), one per row
    accuracy_labels: tuple[float, ...]  # their accuracies (fractions), one per row
    config: SearchConfig  # base settings of the generator-based methods (K, steps, iterations, seed)
    fast_accuracy: bool = True  # the source answers thousands of queries in seconds (not a supernet evaluation)

    @property
    def seed(self) -> int:
        return self.config.seed


@dataclass(frozen=True)
class Answer:
    """One method's architecture for one budget."""

    budget_ms: float  # the budget asked for
    arch: str  # canonical architecture string
    time_s: float  # wall time spent on this budget alone (inference, or the whole per-budget search)


@dataclass(frozen=True, eq=False)
class MethodRun:
    """A method's answers to a task's budgets, in order, and what it cost."""

    method: str  # the label the bench reports (e.g. "pnag", "pnag-k30")
    answers: tuple[Answer, ...]  # one per budget, in the order asked
    setup_s: float  # one-off time shared by every budget (training); 0 for methods that search per budget
    propose: Proposer | None = None  # raw policy draws per budget, for methods that have a policy
    notes: dict[str, Any] = field(default_factory=dict)  # method-specific facts for the report (JSON-ready)
    amortised: bool = False  # one training served every budget
    variants: tuple[
        MethodRun, ...
    ] = ()  # further answers from the same setup (e.g. PNAG without refinement), each reported as a method

    @property
    def total_s(self) -> float:
        """Time for all budgets: setup plus every budget's own time (the paper's Table 4)."""
        return self.setup_s + sum(a.time_s for a in self.answers)


@runtime_checkable
class SearchMethod(Protocol):
    """A way of answering latency budgets with architectures."""

    @property
    def name(self) -> str:
        """The label under which results are reported."""

    @property
    def amortised(self) -> bool:
        """True when one training serves every budget (PNAG); False when each budget is searched anew."""

    def run(self, task: SearchTask, budgets_ms: Sequence[float], *, progress: bool = False) -> MethodRun:
        """One architecture per budget of ``budgets_ms``, in order."""
