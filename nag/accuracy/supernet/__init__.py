"""Accuracy from a once-for-all weight-sharing supernet of ``ofa-mbv3`` (imports torch; Ray only when asked).

- :mod:`.network`: :class:`OFAMobileNetV3Supernet` (OFA's layout), ``extract``, checkpoints.
- :mod:`.data`: the embedded digits set and ImageNet-layout folders (:class:`DataSpec`).
- :mod:`.train`: progressive shrinking (:func:`train_supernet`).
- :mod:`.evaluation`: batch-norm recalibration, top-1, resumable evaluation of many subnets, on Ray or not.
- :mod:`.source`: :class:`SupernetAccuracy`, an :class:`nag.accuracy.AccuracySource`.
- :mod:`.cli`: ``nag supernet train|eval`` (``register(subparsers)``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # names load lazily (below), so that importing nag.accuracy.supernet.cli costs no torch import
    from nag.accuracy.supernet.data import DIGITS, Data, DataSpec, load_data
    from nag.accuracy.supernet.errors import CheckpointError, DataError
    from nag.accuracy.supernet.evaluation import EvalSettings, ResultsTable, SubnetEvaluator, evaluate, recalibrate_bn, top1
    from nag.accuracy.supernet.network import (
        OFAMobileNetV3Supernet,
        largest_arch,
        load_supernet,
        sample_arch,
        save_supernet,
        smallest_arch,
    )
    from nag.accuracy.supernet.source import SupernetAccuracy
    from nag.accuracy.supernet.train import DEFAULT_PHASES, Phase, TrainConfig, train_supernet

__all__ = [
    "DEFAULT_PHASES",
    "DIGITS",
    "CheckpointError",
    "Data",
    "DataError",
    "DataSpec",
    "EvalSettings",
    "OFAMobileNetV3Supernet",
    "Phase",
    "ResultsTable",
    "SubnetEvaluator",
    "SupernetAccuracy",
    "TrainConfig",
    "evaluate",
    "largest_arch",
    "load_data",
    "load_supernet",
    "recalibrate_bn",
    "sample_arch",
    "save_supernet",
    "smallest_arch",
    "top1",
    "train_supernet",
]

_WHERE = {
    "DEFAULT_PHASES": "nag.accuracy.supernet.train",
    "DIGITS": "nag.accuracy.supernet.data",
    "CheckpointError": "nag.accuracy.supernet.errors",
    "Data": "nag.accuracy.supernet.data",
    "DataError": "nag.accuracy.supernet.errors",
    "DataSpec": "nag.accuracy.supernet.data",
    "EvalSettings": "nag.accuracy.supernet.evaluation",
    "OFAMobileNetV3Supernet": "nag.accuracy.supernet.network",
    "Phase": "nag.accuracy.supernet.train",
    "ResultsTable": "nag.accuracy.supernet.evaluation",
    "SubnetEvaluator": "nag.accuracy.supernet.evaluation",
    "SupernetAccuracy": "nag.accuracy.supernet.source",
    "TrainConfig": "nag.accuracy.supernet.train",
    "evaluate": "nag.accuracy.supernet.evaluation",
    "largest_arch": "nag.accuracy.supernet.network",
    "load_data": "nag.accuracy.supernet.data",
    "load_supernet": "nag.accuracy.supernet.network",
    "recalibrate_bn": "nag.accuracy.supernet.evaluation",
    "sample_arch": "nag.accuracy.supernet.network",
    "save_supernet": "nag.accuracy.supernet.network",
    "smallest_arch": "nag.accuracy.supernet.network",
    "top1": "nag.accuracy.supernet.evaluation",
    "train_supernet": "nag.accuracy.supernet.train",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
