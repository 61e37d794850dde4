"""What a search run reports about itself: the one definition of ``metrics.json``.

``nag search`` writes a :class:`RunMetrics` (through :meth:`RunMetrics.to_dict`, keys unchanged since the first
run directories); the CLI, the demo, the benchmarks and :func:`nag.search.rundir.load_run` read it back through
:meth:`RunMetrics.from_dict`, which checks every field and names the one that is wrong. Keys a reader does not
know are kept (``extra``) and written back, so a newer nag's additions survive an older reader.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from nag import stored
from nag.errors import show_value
from nag.search.inference import Generated

__all__ = ["EvaluatorMetrics", "GeneratorMetrics", "MetricsError", "RunMetrics", "TrialMetrics"]


# A metrics mapping that is not the shape ``metrics.json`` has; the message names the field (``where``). The
# readers of every stored file raise the one error (nag.stored), so this is its name here.
MetricsError = stored.StoredValueError


@dataclass(frozen=True)
class EvaluatorMetrics:
    """How the evaluator trained: its held-out pairwise accuracy per trained budget (keys: budgets in ms, 4 decimals)."""

    heldout_pairwise_accuracy: dict[str, float]  # NaN where a budget had no held-out pairs
    heldout_pairwise_accuracy_mean: float  # over the budgets that had pairs
    loss_every_100_steps: list[float]
    seconds: float

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "evaluator") -> EvaluatorMetrics:
        return cls(
            heldout_pairwise_accuracy=stored.numbers(
                stored.entry(data, "heldout_pairwise_accuracy", where), f"{where}.heldout_pairwise_accuracy"
            ),
            heldout_pairwise_accuracy_mean=stored.number(
                stored.entry(data, "heldout_pairwise_accuracy_mean", where), f"{where}.heldout_pairwise_accuracy_mean"
            ),
            loss_every_100_steps=[
                stored.number(v, f"{where}.loss_every_100_steps[{i}]")
                for i, v in enumerate(stored.items(data.get("loss_every_100_steps", []), f"{where}.loss_every_100_steps"))
            ],
            seconds=stored.number(data.get("seconds", 0.0), f"{where}.seconds"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "heldout_pairwise_accuracy": dict(self.heldout_pairwise_accuracy),
            "heldout_pairwise_accuracy_mean": self.heldout_pairwise_accuracy_mean,
            "loss_every_100_steps": list(self.loss_every_100_steps),
            "seconds": self.seconds,
        }


@dataclass(frozen=True)
class GeneratorMetrics:
    """How the generator trained: its history (one record per logged step, as training wrote it) and its time."""

    history: list[dict[str, Any]]
    seconds: float

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "generator") -> GeneratorMetrics:
        history = stored.items(stored.entry(data, "history", where), f"{where}.history")
        for i, record in enumerate(history):
            if not isinstance(record, Mapping):
                raise MetricsError(f"{where}.history[{i}] holds {show_value(record)}, not an object")
        return cls(history=[dict(r) for r in history], seconds=stored.number(data.get("seconds", 0.0), f"{where}.seconds"))

    def to_dict(self) -> dict[str, Any]:
        return {"history": [dict(r) for r in self.history], "seconds": self.seconds}


@dataclass(frozen=True)
class TrialMetrics:
    """One training trial (a seed and an entropy weight): its networks' metrics, and its answers at the K trained
    budgets, whose mean estimated accuracy (0 where infeasible) is the ``selection_score`` that picks the best trial."""

    seed: int
    entropy_weight: float
    evaluator: EvaluatorMetrics
    generator: GeneratorMetrics
    picks_at_trained_budgets: list[Generated]
    selection_score: float

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "trial") -> TrialMetrics:
        picks = stored.items(stored.entry(data, "picks_at_trained_budgets", where), f"{where}.picks_at_trained_budgets")
        return cls(
            seed=stored.integer(stored.entry(data, "seed", where), f"{where}.seed"),
            entropy_weight=stored.number(stored.entry(data, "entropy_weight", where), f"{where}.entropy_weight"),
            evaluator=EvaluatorMetrics.from_dict(stored.entry(data, "evaluator", where), f"{where}.evaluator"),
            generator=GeneratorMetrics.from_dict(stored.entry(data, "generator", where), f"{where}.generator"),
            picks_at_trained_budgets=[
                Generated.from_dict(p, where=f"{where}.picks_at_trained_budgets[{i}]") for i, p in enumerate(picks)
            ],
            selection_score=stored.number(stored.entry(data, "selection_score", where), f"{where}.selection_score"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "entropy_weight": self.entropy_weight,
            "evaluator": self.evaluator.to_dict(),
            "generator": self.generator.to_dict(),
            "picks_at_trained_budgets": [p.to_dict() for p in self.picks_at_trained_budgets],
            "selection_score": self.selection_score,
        }


@dataclass(frozen=True)
class RunMetrics:
    """Everything ``metrics.json`` holds: the data, the trained budgets, every trial, the best one, the timings."""

    space: str  # the search space's registry name
    data: dict[str, Any]  # how the rows were labelled and fitted (notes from preparation, free-form)
    budgets_ms: list[float]  # the K trained budgets, ascending
    best_trial: int  # index into ``trials`` of the trial kept
    selection: str  # how the best trial was chosen, in words
    evaluator_heldout_pairwise_accuracy: dict[str, float]  # the best trial's, per trained budget
    trials: list[TrialMetrics]
    timings_s: dict[str, float]  # "prepare" and "total" at least
    overlapped: bool = False  # the surrogate fit and held-out accuracy ran on a spare core
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know, kept as read

    @property
    def best(self) -> TrialMetrics:
        """The trial whose networks the run directory holds."""
        return self.trials[self.best_trial]

    @property
    def total_s(self) -> float:
        """Wall time of the whole search, seconds (0 when not recorded)."""
        return self.timings_s.get("total", 0.0)

    @classmethod
    def from_dict(cls, data: Any) -> RunMetrics:
        """Check and read a ``metrics.json`` mapping; raises :class:`MetricsError` naming the first wrong field."""
        if not isinstance(data, Mapping):
            raise MetricsError(f"the metrics hold {show_value(data)}, not an object")
        space = stored.entry(data, "space", "metrics")
        if not isinstance(space, str):
            raise MetricsError(f"metrics.space is {show_value(space)}, not a space name")
        notes = data.get("data", {})
        if not isinstance(notes, Mapping):
            raise MetricsError(f"metrics.data holds {show_value(notes)}, not an object")
        budgets = [
            stored.number(b, f"metrics.budgets_ms[{i}]", finite=True)
            for i, b in enumerate(stored.items(stored.entry(data, "budgets_ms", "metrics"), "metrics.budgets_ms"))
        ]
        trials = [
            TrialMetrics.from_dict(t, f"metrics.trials[{i}]")
            for i, t in enumerate(stored.items(stored.entry(data, "trials", "metrics"), "metrics.trials"))
        ]
        best = stored.integer(stored.entry(data, "best_trial", "metrics"), "metrics.best_trial")
        if not 0 <= best < len(trials):
            raise MetricsError(f"metrics.best_trial is {best}, but there are {len(trials)} trial(s)")
        overlapped = data.get("overlapped", False)
        if not isinstance(overlapped, bool):
            raise MetricsError(f"metrics.overlapped is {show_value(overlapped)}, not true or false")
        return cls(
            space=space,
            data=dict(notes),
            budgets_ms=budgets,
            best_trial=best,
            selection=str(data.get("selection", "")),
            evaluator_heldout_pairwise_accuracy=stored.numbers(
                data.get("evaluator_heldout_pairwise_accuracy", trials[best].evaluator.heldout_pairwise_accuracy),
                "metrics.evaluator_heldout_pairwise_accuracy",
            ),
            trials=trials,
            timings_s=stored.numbers(data.get("timings_s", {}), "metrics.timings_s"),
            overlapped=overlapped,
            extra={k: v for k, v in data.items() if k not in _KNOWN},
        )

    def to_dict(self) -> dict[str, Any]:
        """The ``metrics.json`` mapping (JSON-ready; the same keys as every earlier version wrote)."""
        known = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("trials", "extra")}
        return {
            **self.extra,
            **{k: (dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v) for k, v in known.items()},
            "trials": [t.to_dict() for t in self.trials],
        }


_KNOWN = {f.name for f in fields(RunMetrics)} - {"extra"}  # the keys metrics.json has always had
