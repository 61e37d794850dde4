"""``SupernetAccuracy``: an :class:`~nag.accuracy.AccuracySource` that evaluates subnets of a supernet."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nag.accuracy.supernet.data import Data, DataSpec
from nag.accuracy.supernet.evaluation import EvalSettings, ResultsTable, SubnetEvaluator, evaluate
from nag.accuracy.supernet.network import OFAMobileNetV3Supernet
from nag.space.ofa_mbv3 import OFAMobileNetV3Space

__all__ = ["SupernetAccuracy"]


class SupernetAccuracy:
    """Top-1 of ``ofa-mbv3`` architectures from a supernet: extract, recalibrate batch-norm, evaluate.

    Results are cached in memory and, with ``cache``, in a CSV table (the format of ``evaluate``) that later
    instances reuse. The supernet and data are loaded on the first call. Not thread-safe. ``accuracy``
    raises :class:`nag.errors.ArchitectureError` for an architecture outside the space, and the loading
    errors of :func:`load_supernet` / :func:`load_data`.
    """

    def __init__(
        self,
        checkpoint: str | Path | OFAMobileNetV3Supernet,
        data: DataSpec | Data,
        *,
        settings: EvalSettings | None = None,
        cache: str | Path | None = None,
        use_ray: bool = False,
        progress: bool = False,
    ) -> None:
        self.checkpoint, self.data, self.settings = checkpoint, data, settings or EvalSettings()
        self.cache_path, self.use_ray, self.progress = cache, use_ray, progress
        self._space = OFAMobileNetV3Space()
        self._cache: dict[str, float] = {}
        if cache is not None:
            self._cache = {arch: accuracy for arch, (accuracy, _) in ResultsTable(cache).read().items()}
        self._evaluator: SubnetEvaluator | None = None

    @property
    def space(self) -> str:
        return self._space.name

    def known(self, archs: Sequence[Any]) -> int:
        """How many of ``archs`` already have an accuracy (in memory or in the cache table): no evaluation needed."""
        return sum(1 for a in archs if str(self._space.parse(a)) in self._cache)

    def accuracy(self, archs: Sequence[Any]) -> list[float]:
        keys = [str(self._space.parse(a)) for a in archs]
        missing = list(dict.fromkeys(k for k in keys if k not in self._cache))
        if missing:
            if self.use_ray:
                found = evaluate(
                    self.checkpoint, missing, self.data, out=self.cache_path, settings=self.settings, use_ray=True,
                    progress=self.progress,
                )  # fmt: skip
            else:
                if self._evaluator is None:
                    self._evaluator = SubnetEvaluator(self.checkpoint, self.data, self.settings)
                found = evaluate(
                    self._evaluator.supernet, missing, self._evaluator.data, out=self.cache_path, settings=self.settings,
                    progress=self.progress,
                )  # fmt: skip
            self._cache.update({arch: accuracy for arch, (accuracy, _) in found.items()})
        return [self._cache[k] for k in keys]
