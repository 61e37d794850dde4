"""The latency-predictor contract: every kind registered in ``LATENCY_KINDS`` passes the same tests.

Driven by the registry, as ``tests/agents/test_contract.py`` is for agent kinds: a kind registered without a
factory below fails here. Each predictor is built as the product builds it (the additive model fitted on a
table, the farm's block-table predictor over a real SQLite store, the known-answer problem), stored as a run
directory stores it and loaded back through the run directory's own loader.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from nag.errors import NagError
from nag.latency import LatencyPredictor, QuantileLatencyPredictor, StorableLatencyPredictor, SummedLatencyPredictor
from nag.search.rundir import LATENCY_KINDS, check_storable, load_latency
from nag.space import get_space

SPACE = get_space("ofa-mbv3")
ARCHS = [SPACE.format(a) for a in SPACE.sample_many(24, seed=5)]


def _additive(folder: Path) -> LatencyPredictor:
    from nag.latency.additive import AdditiveLatencyPredictor
    from nag.search.synthetic import SyntheticProblem

    table = SyntheticProblem(seed=0).table(400, seed=2)
    return AdditiveLatencyPredictor.fit(table.archs, table.latency_ms, space="ofa-mbv3")


def _lut(folder: Path) -> LatencyPredictor:
    from farm.lut import LutPredictor, calibrate
    from farm.store import Store
    from tests.tables import put_block_table

    with Store(folder / "tables.db") as store:  # calibrated on 10 networks, as 'nag table validate' leaves a table
        table, _ = put_block_table(store, lambda i, _key: 0.05 + 0.01 * (i % 11))
        sums = {a: LutPredictor(store, table).table_sum_ms(a) for a in ARCHS[-10:]}
        calibrate(store, table, networks={a: 0.2 + s * (1 + 0.02 * (i % 3)) for i, (a, s) in enumerate(sums.items())})
        return LutPredictor(store, table)


def _known_answer(folder: Path) -> LatencyPredictor:
    from nag.search.known_answer import KnownAnswerProblem

    return KnownAnswerProblem(seed=3)


# kind -> factory (a scratch folder -> the predictor); every registered kind must appear.
FACTORIES: dict[str, Callable[[Path], LatencyPredictor]] = {
    "additive": _additive,
    "lut": _lut,
    "known-answer": _known_answer,
}


@pytest.fixture(params=sorted(LATENCY_KINDS), scope="module")
def kind_predictor(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, LatencyPredictor]:
    kind = request.param
    if kind not in FACTORIES:
        pytest.fail(f"latency kind {kind!r} is registered but has no factory in tests/latency/test_contract.py")
    return kind, FACTORIES[kind](tmp_path_factory.mktemp(kind))


def test_predictions_are_positive_in_order_and_per_architecture(kind_predictor: tuple[str, LatencyPredictor]) -> None:
    _, predictor = kind_predictor
    assert isinstance(predictor, LatencyPredictor) and predictor.space == "ofa-mbv3"
    values = predictor.predict_ms(ARCHS)
    assert len(values) == len(ARCHS) and all(isinstance(v, float) and math.isfinite(v) and v > 0 for v in values)
    assert predictor.predict_ms(ARCHS[::-1]) == pytest.approx(values[::-1], rel=1e-12)
    assert predictor.predict_ms(ARCHS[3:4]) == pytest.approx(values[3:4], rel=1e-12)
    assert predictor.predict_ms([SPACE.parse(a) for a in ARCHS[:3]]) == pytest.approx(values[:3], rel=1e-12)
    assert predictor.predict_ms([]) == []
    assert len(set(values)) > 1  # it tells architectures apart


def test_a_malformed_architecture_is_a_typed_error(kind_predictor: tuple[str, LatencyPredictor]) -> None:
    with pytest.raises(NagError):
        kind_predictor[1].predict_ms(["5,5:not-an-architecture"])


def test_a_run_directory_stores_it_by_its_registered_name(kind_predictor: tuple[str, LatencyPredictor]) -> None:
    kind, predictor = kind_predictor
    assert isinstance(predictor, StorableLatencyPredictor)
    stored = json.loads(json.dumps(check_storable(predictor)))  # as latency.json holds it
    assert stored["kind"] == kind
    again = load_latency(stored)
    assert type(again) is type(predictor)
    assert again.predict_ms(ARCHS) == pytest.approx(predictor.predict_ms(ARCHS), rel=1e-12)


def test_it_answers_the_same_from_several_threads(kind_predictor: tuple[str, LatencyPredictor]) -> None:
    _, predictor = kind_predictor
    expected = predictor.predict_ms(ARCHS)
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _i: predictor.predict_ms(ARCHS), range(8)))
    assert all(a == expected for a in answers)


def test_a_declared_quantile_brackets_the_estimate(kind_predictor: tuple[str, LatencyPredictor]) -> None:
    """The optional capability: a predictor that answers quantiles answers its estimate at the median, more above
    it and less below, and a run directory keeps the quantile."""
    _, predictor = kind_predictor
    if not isinstance(predictor, QuantileLatencyPredictor):
        pytest.skip(f"{type(predictor).__name__} does not declare quantiles")
    estimate = predictor.predict_ms(ARCHS)
    assert predictor.with_quantile(0.5).predict_ms(ARCHS) == pytest.approx(estimate, rel=1e-9)
    high, low = predictor.with_quantile(0.9), predictor.with_quantile(0.1)
    assert all(lo < e < hi for lo, e, hi in zip(low.predict_ms(ARCHS), estimate, high.predict_ms(ARCHS), strict=True))
    stored = load_latency(json.loads(json.dumps(check_storable(high))))
    assert isinstance(stored, QuantileLatencyPredictor) and stored.quantile == 0.9
    assert stored.predict_ms(ARCHS) == pytest.approx(high.predict_ms(ARCHS), rel=1e-12)


def test_a_declared_sum_map_is_exact(kind_predictor: tuple[str, LatencyPredictor]) -> None:
    """The optional capability inference prices candidates through: a predictor that declares itself a map of an
    inner predictor's values answers exactly that map of them (and, answering a quantile, declares none)."""
    _, predictor = kind_predictor
    if not isinstance(predictor, SummedLatencyPredictor):
        pytest.skip(f"{type(predictor).__name__} does not declare a sum map")
    summed = predictor.summed()
    if summed is None:
        pytest.skip(f"this {type(predictor).__name__} is not a map of a sum (e.g. uncalibrated)")
    inner, output = summed
    assert list(output(inner.predict_ms(ARCHS))) == pytest.approx(predictor.predict_ms(ARCHS), rel=1e-12)
    assert inner.predict_ms(ARCHS) != pytest.approx(predictor.predict_ms(ARCHS), rel=1e-6)  # the map does something
    if isinstance(predictor, QuantileLatencyPredictor):
        assert predictor.with_quantile(0.9).summed() is None  # type: ignore[attr-defined]
