"""The accuracy-source contract: every kind registered in ``ACCURACY_KINDS`` passes the same tests.

Driven by the registry, as ``tests/agents/test_contract.py`` is for agent kinds: a kind registered without a
factory below fails here, so a new source cannot ship untested. Each source is opened the way users open it,
through its spec (``open_source("KIND:TARGET")``), on small real inputs the tests make: a table written as CSV,
OFA's predictor layout saved as a checkpoint, the shipped DyNAS-T rows, an (untrained) supernet checkpoint
evaluated on the bundled digits.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from nag.accuracy import AccuracySource, EncodedAccuracySource, EnumerableAccuracySource, StorableFitSource
from nag.accuracy.registry import ACCURACY_KINDS, OpenedSource, SourceOptions, open_source
from nag.data import write_csv
from nag.errors import NagError
from nag.space import get_space

SPACE = get_space("ofa-mbv3")
ARCHS = [SPACE.format(a) for a in SPACE.sample_many(40, seed=11)]  # the rows a table source knows


def _table_csv(folder: Path) -> str:
    rng = np.random.default_rng(0)
    madds = np.asarray([SPACE.costs(SPACE.parse(a)).madds for a in ARCHS], dtype=float)
    accuracy = 0.70 + 0.08 * (madds - madds.min()) / (madds.max() - madds.min()) + rng.normal(0, 0.003, len(ARCHS))
    return str(write_csv(folder / "rows.csv", ARCHS, [1.0] * len(ARCHS), list(accuracy)))


def _ofa_checkpoint(folder: Path) -> str:
    from tests.accuracy.ofa_checkpoint import save_ofa_checkpoint

    return str(save_ofa_checkpoint(folder / "acc_predictor.pth"))


def _supernet_checkpoint(folder: Path) -> str:
    from nag.accuracy.supernet import OFAMobileNetV3Supernet, save_supernet

    path = folder / "supernet.pt"
    save_supernet(OFAMobileNetV3Supernet(width=1.0, num_classes=10), path)
    return str(path)


# kind -> (spec from a scratch folder, the options it is opened with); every registered kind must appear.
FACTORIES: dict[str, Callable[[Path], tuple[str, SourceOptions]]] = {
    "table": lambda folder: (f"table:{_table_csv(folder)}", SourceOptions()),
    "fitted": lambda folder: (f"fitted:{_table_csv(folder)}", SourceOptions()),
    "dynast": lambda folder: ("dynast", SourceOptions()),
    "ofa-predictor": lambda folder: (f"ofa-predictor:{_ofa_checkpoint(folder)}", SourceOptions(resolution=160)),
    "supernet": lambda folder: (
        f"supernet:{_supernet_checkpoint(folder)}",
        SourceOptions(data="digits", cache=str(folder / "evaluated.csv")),
    ),
}


@pytest.fixture(params=sorted(ACCURACY_KINDS), scope="module")
def opened(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> OpenedSource:
    kind = request.param
    if kind not in FACTORIES:
        pytest.fail(f"accuracy kind {kind!r} is registered but has no factory in tests/accuracy/test_contract.py")
    spec, options = FACTORIES[kind](tmp_path_factory.mktemp(kind))
    return open_source(spec, options)


def _some(opened: OpenedSource, n: int) -> list[str]:
    """Architectures the source can label: its own rows when it only knows rows, else any of the space."""
    if isinstance(opened.source, EnumerableAccuracySource):
        return list(opened.source.archs)[:n]
    return ARCHS[:n]


def test_labels_are_fractions_in_order_and_repeatable(opened: OpenedSource) -> None:
    source = opened.source
    assert isinstance(source, AccuracySource) and source.space == "ofa-mbv3"
    archs = _some(opened, 4 if not opened.fast else 12)
    values = source.accuracy(archs)
    assert len(values) == len(archs) and all(isinstance(v, float) and math.isfinite(v) and 0.0 <= v <= 1.0 for v in values)
    assert source.accuracy(list(reversed(archs))) == pytest.approx(list(reversed(values)), abs=1e-9)  # per architecture
    assert source.accuracy(archs[:1]) == pytest.approx(values[:1], abs=1e-9)  # not a function of the batch
    parsed = [SPACE.parse(a) for a in archs[:2]]
    assert source.accuracy(parsed) == pytest.approx(values[:2], abs=1e-9)  # strings or parsed architectures
    assert source.accuracy([]) == []


def test_a_malformed_architecture_is_a_typed_error(opened: OpenedSource) -> None:
    with pytest.raises(NagError):
        opened.source.accuracy(["7,7,7:not-an-architecture"])


def test_declared_capabilities_hold(opened: OpenedSource) -> None:
    source = opened.source
    archs = _some(opened, 6)
    if isinstance(source, EncodedAccuracySource):
        encoded = np.asarray([SPACE.encode(SPACE.parse(a)) for a in archs], dtype=np.float32)
        assert source.accuracy_encoded(encoded) == pytest.approx(source.accuracy(archs), abs=1e-6)
    if isinstance(source, EnumerableAccuracySource):
        known = set(source.archs)
        outside = next(a for a in (SPACE.format(x) for x in SPACE.sample_many(200, seed=99)) if a not in known)
        with pytest.raises(NagError):  # a table never invents a label
            source.accuracy([outside])
    if isinstance(source, StorableFitSource):
        again = type(source).from_arrays(source.to_arrays())  # type: ignore[attr-defined]
        assert again.accuracy(archs) == pytest.approx(source.accuracy(archs), abs=1e-12)
