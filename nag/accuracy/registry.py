"""Accuracy sources by short stable names, opened from one ``KIND[:TARGET]`` spelling.

==================== ==================================================================== =========
spec                 what answers                                                         fast
==================== ==================================================================== =========
``table:FILE``       the rows of a table with an accuracy column (only its own rows)      yes
``fitted:FILE``      a predictor fitted on a table's rows (any architecture)              yes
``dynast``           a predictor fitted on the shipped DyNAS-T rows: real ImageNet top-1  yes
                     of 2,223 OFA-MobileNetV3 w1.0 subnets (any architecture)
``ofa-predictor:PTH`` OFA's published ``acc_predictor.pth``                                yes
``supernet:CKPT``    subnets of a weight-sharing supernet, evaluated on ``data``           no
==================== ==================================================================== =========

"Fast" sources answer thousands of queries in seconds, so methods that ask per architecture (evolution,
random search, selection by the source at inference) may use them. Adding a source: one opener function
here and one line in :data:`ACCURACY_KINDS`; the contract tests then run it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nag.accuracy._protocol import AccuracySource
from nag.errors import SettingError

__all__ = ["ACCURACY_KINDS", "SPEC_FORMS", "OpenedSource", "SourceOptions", "fit_fingerprint", "open_source", "parse_spec"]


@dataclass(frozen=True)
class SourceOptions:
    """What some sources need besides their target."""

    space: str = "ofa-mbv3"  # search space of the architectures
    resolution: int = 224  # input resolution (ofa-predictor's resolution feature)
    data: str | None = None  # supernet: an image folder (ImageNet layout) or "digits"
    data_resolution: int | None = None  # supernet: evaluation resolution (default 32 for digits, else ``resolution``)
    cache: str | None = None  # supernet: CSV that keeps evaluated subnets (resumable)
    load_table: Callable[[str], Any] | None = None  # table:/fitted: reads a file into an ArchTable (CLI column options)


@dataclass(frozen=True, eq=False)
class OpenedSource:
    """An accuracy source and how it may be used."""

    source: AccuracySource  # the source
    spec: str  # the spec it was opened from (stored in run and bench directories)
    fast: bool  # answers thousands of queries in seconds


def _table(target: str, options: SourceOptions) -> AccuracySource:
    from nag.accuracy.table import TableAccuracySource

    return TableAccuracySource(_load(target, options))


def _fitted(target: str, options: SourceOptions) -> AccuracySource:
    from nag.accuracy.fitted import FittedAccuracyPredictor

    table = _load(target, options)
    return FittedAccuracyPredictor.fit(table.archs, table.accuracy, space=table.space)


def _dynast(target: str, options: SourceOptions) -> AccuracySource:
    from nag.accuracy.dynast import dynast_source

    return dynast_source()


def _ofa(target: str, options: SourceOptions) -> AccuracySource:
    from nag.accuracy.ofa_predictor import OFAAccuracyPredictor

    return OFAAccuracyPredictor(target, resolution=options.resolution, space=options.space)


def _supernet(target: str, options: SourceOptions) -> AccuracySource:
    if options.data is None:
        raise SettingError("--accuracy supernet:CKPT needs --data DIR|digits (the images its subnets are evaluated on)")
    from nag.accuracy.supernet import DataSpec, SupernetAccuracy

    resolution = options.data_resolution or (32 if options.data == "digits" else options.resolution)
    return SupernetAccuracy(target, DataSpec(source=options.data, resolution=resolution), cache=options.cache)


def _load(target: str, options: SourceOptions) -> Any:
    if options.load_table is not None:
        return options.load_table(target)
    from nag.data import load_table

    return load_table(target, space=options.space, require_accuracy=True)


# kind -> (opener, needs a target, fast)
ACCURACY_KINDS: dict[str, tuple[Callable[[str, SourceOptions], AccuracySource], bool, bool]] = {
    "table": (_table, True, True),
    "fitted": (_fitted, True, True),
    "dynast": (_dynast, False, True),
    "ofa-predictor": (_ofa, True, True),
    "supernet": (_supernet, True, False),
}
SPEC_FORMS = (
    "dynast (real ImageNet top-1 of OFA w1.0 subnets, fitted), fitted:FILE (a predictor fitted on a table's accuracy "
    "column), table:FILE (a table's rows only), ofa-predictor:PATH (OFA's acc_predictor.pth) or supernet:CKPT (with --data)"
)


def parse_spec(spec: str) -> tuple[str, str]:
    """``"KIND:TARGET"`` (or a bare ``"KIND"`` for sources without a target) -> (kind, target)."""
    kind, _, target = str(spec).partition(":")
    if kind not in ACCURACY_KINDS:
        raise SettingError(f"--accuracy {spec!r}: unknown kind {kind!r}; expected {SPEC_FORMS}")
    _, needs_target, _ = ACCURACY_KINDS[kind]
    if needs_target and not target:
        raise SettingError(f"--accuracy {spec!r}: {kind} needs a target, as {kind}:PATH; expected {SPEC_FORMS}")
    if not needs_target and target:
        raise SettingError(f"--accuracy {spec!r}: {kind} takes no target; write just '{kind}'")
    return kind, target


def open_source(spec: str, options: SourceOptions | None = None) -> OpenedSource:
    """The accuracy source named by ``spec``; typed errors say which spellings exist."""
    kind, target = parse_spec(spec)
    opener, _, fast = ACCURACY_KINDS[kind]
    return OpenedSource(opener(target, options or SourceOptions()), spec, fast)


def fit_fingerprint(spec: str, settings: Mapping[str, Any]) -> str | None:
    """A digest of everything a fitted source (``dynast``, ``fitted:FILE``) is fitted from: the spec, the
    caller's ``settings`` that read its table (JSON-able), the fit's own settings and the table file's bytes.
    Equal digests mean a stored fit (:meth:`FittedAccuracyPredictor.to_arrays`) is the fit that opening the
    spec would make. None for the other kinds, and when the file cannot be read (opening it will say why).
    """
    from nag.accuracy.fitted import DEFAULT_ALPHA, DEFAULT_GAMMA, MODEL

    kind, target = parse_spec(spec)
    if kind == "dynast":
        from nag.accuracy.dynast import TABLE

        path = TABLE
    elif kind == "fitted":
        path = Path(target)
    else:
        return None
    digest = hashlib.sha256(
        json.dumps(
            {"spec": spec, "settings": dict(settings), "fit": [MODEL, DEFAULT_GAMMA, DEFAULT_ALPHA, 0]},
            sort_keys=True,
            default=str,
        ).encode()
    )
    try:
        digest.update(path.read_bytes())
    except OSError:
        return None
    return digest.hexdigest()
