"""The fair known-answer problem: its optimum is exact, and it is not additive (:mod:`nag.search.known_answer`)."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from nag.errors import ArchitectureError, SettingError
from nag.latency.additive import AdditiveLatencyPredictor
from nag.search.known_answer import KnownAnswerProblem
from nag.search.synthetic import SyntheticProblem
from nag.space import get_space

SPACE = get_space("ofa-mbv3")


@pytest.fixture(scope="module")
def known() -> KnownAnswerProblem:
    return KnownAnswerProblem(seed=0)


def _every_arch(problem: KnownAnswerProblem) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every architecture of a restricted problem as (depths, kernels, expands) value arrays, by brute force."""
    stage = [
        (depth, [k for k, _ in layers] + [0] * (4 - depth), [e for _, e in layers] + [0] * (4 - depth))
        for depth in problem.depths
        for layers in itertools.product(itertools.product(problem.kernels, problem.expands), repeat=depth)
    ]
    pick = np.indices((len(stage),) * 5).reshape(5, -1).T  # (archs, stages): an option per stage
    depths = np.array([o[0] for o in stage])[pick]
    kernels = np.array([o[1] for o in stage])[pick].reshape(len(pick), 20)
    expands = np.array([o[2] for o in stage])[pick].reshape(len(pick), 20)
    return depths, kernels, expands


def _brute_front(latency: np.ndarray, accuracy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best accuracy at each latency where it improves, by sorting every point (no DP)."""
    order = np.lexsort((-accuracy, latency))
    running = np.maximum.accumulate(accuracy[order])
    improves = np.r_[True, running[1:] > running[:-1]]
    return latency[order][improves], running[improves]


@pytest.mark.parametrize(
    "choices",
    [
        {"kernels": (3, 7), "expands": (6,), "depths": (2, 3)},  # fusion, pairs, depth factor, balance, cache
        {"kernels": (7,), "expands": (3, 6), "depths": (2, 3)},  # widths: overhead and the cache penalty
        {"kernels": (3, 5, 7), "expands": (4,), "depths": (2,)},  # all three kernel ranks
    ],
)
def test_front_equals_brute_force_on_a_restricted_problem(choices: dict[str, tuple[int, ...]]) -> None:
    problem = KnownAnswerProblem(seed=3, kernels=choices["kernels"], expands=choices["expands"], depths=choices["depths"])
    depths, kernels, expands = _every_arch(problem)
    latency, accuracy = problem.evaluate_arrays(depths, kernels, expands)
    brute_latency, brute_accuracy = _brute_front(latency, accuracy)
    front_latency, front_accuracy, _ = problem.pareto_front()
    assert len(brute_latency) > 20  # a front worth checking
    # Summed in the same order as the DP, so the values agree exactly, not just closely.
    assert np.array_equal(front_latency, brute_latency) and np.array_equal(front_accuracy, brute_accuracy)
    for budget in front_latency[:: max(1, len(front_latency) // 15)]:
        best = problem.best_under(float(budget))
        assert best is not None
        accuracy_opt, latency_opt, arch = best
        assert (
            latency_opt == budget and problem.predict_ms([arch]) == [latency_opt] and problem.accuracy([arch]) == [accuracy_opt]
        )
        parsed = SPACE.parse(arch)
        assert set(parsed.depths) <= set(problem.depths) and {k for k in parsed.kernels if k} <= set(problem.kernels)


def test_no_sampled_architecture_beats_the_optimum(known: KnownAnswerProblem) -> None:
    front_latency, front_accuracy, _ = known.pareto_front()
    assert (np.diff(front_latency) > 0).all() and (np.diff(front_accuracy) > 0).all()
    latency, accuracy = known.evaluate(known.sample_uniform(20_000, seed=5))
    at = np.searchsorted(front_latency, latency, side="right") - 1  # the front's point at each sample's latency
    assert (at >= 0).all() and (accuracy <= front_accuracy[at]).all()
    # The optimum is well above what sampling finds: there is room for a search to show regret.
    median = float(np.median(latency))
    best = known.best_under(median)
    assert best is not None and best[0] > accuracy[latency <= median].max() + 0.005
    for budget in (20.0, 30.0, 40.0):
        accuracy_opt, latency_opt, arch = known.best_under(budget)  # type: ignore[misc]
        assert latency_opt <= budget
        assert known.predict_ms([arch]) == [latency_opt] and known.accuracy([arch]) == [accuracy_opt]
    assert known.best_under(float(front_latency[0]) - 1e-9) is None


def test_magnitudes_are_phone_like(known: KnownAnswerProblem) -> None:
    table = known.table(2000, seed=2)
    assert min(table.latency_ms) > 18 and np.median(table.latency_ms) < 45 and max(table.latency_ms) < 70
    assert table.accuracy is not None and min(table.accuracy) > 0.70 and max(table.accuracy) < 0.80
    assert table.space == "ofa-mbv3" and SPACE.format(SPACE.parse(table.archs[0])) == table.archs[0]


def test_an_additive_latency_model_cannot_fit_it(known: KnownAnswerProblem) -> None:
    synthetic, fair = SyntheticProblem(seed=0).table(2000, seed=3), known.table(2000, seed=3)
    additive = AdditiveLatencyPredictor.fit(synthetic.archs, synthetic.latency_ms).report
    not_additive = AdditiveLatencyPredictor.fit(fair.archs, fair.latency_ms).report
    assert additive is not None and not_additive is not None
    assert additive.heldout_rmse_ms < 1e-4  # measured: ~8e-8 ms
    assert not_additive.heldout_rmse_ms > 0.7 and not_additive.heldout_mape > 0.015  # measured: ~1.1 ms, ~2.4 %
    assert not_additive.max_abs_error_ms > 3.0  # measured: ~5 ms


def _with(arch: str, *, slot: int, kernel: int) -> str:
    parsed = SPACE.parse(arch)
    kernels = list(parsed.kernels)
    kernels[slot] = kernel
    return SPACE.format(SPACE.parse({"d": list(parsed.depths), "ks": kernels, "e": list(parsed.expands)}))


def test_accuracy_interacts_across_stages(known: KnownAnswerProblem) -> None:
    # Two slot changes in different stages: an additive accuracy gives f(ab) - f(a) - f(b) + f() == 0.
    synthetic = SyntheticProblem(seed=0)
    for base in [SPACE.format(a) for a in known.sample_uniform(50, seed=7)]:
        plain = _with(_with(base, slot=0, kernel=3), slot=8, kernel=3)
        first, second = _with(plain, slot=0, kernel=7), _with(plain, slot=8, kernel=7)
        both = _with(first, slot=8, kernel=7)
        f = synthetic.accuracy([plain, first, second, both])
        assert abs(f[3] - f[1] - f[2] + f[0]) < 1e-12
        f = known.accuracy([plain, first, second, both])
        interaction, gains = f[3] - f[1] - f[2] + f[0], (f[1] - f[0]) * (f[2] - f[0])
        # Diminishing returns across stages (concave in the stages' sum): the interaction opposes the gains'
        # product. Measured: |interaction| 5e-7 .. 1e-4 for gains of -5e-3 .. 2e-3.
        assert abs(interaction) > 2e-7 and np.sign(interaction) == -np.sign(gains)


def test_depth_balance_interacts_across_stages(known: KnownAnswerProblem) -> None:
    # Deepening one stage helps less when its neighbour stays shallow than when the neighbour deepens too.
    shallow = "2,2,2,2,2:5,5,0,0,5,5,0,0,5,5,0,0,5,5,0,0,5,5,0,0:4,4,0,0,4,4,0,0,4,4,0,0,4,4,0,0,4,4,0,0"
    one = "2,4,2,2,2:5,5,0,0,5,5,5,5,5,5,0,0,5,5,0,0,5,5,0,0:4,4,0,0,4,4,4,4,4,4,0,0,4,4,0,0,4,4,0,0"
    other = "2,2,4,2,2:5,5,0,0,5,5,0,0,5,5,5,5,5,5,0,0,5,5,0,0:4,4,0,0,4,4,0,0,4,4,4,4,4,4,0,0,4,4,0,0"
    both = "2,4,4,2,2:5,5,0,0,5,5,5,5,5,5,5,5,5,5,0,0,5,5,0,0:4,4,0,0,4,4,4,4,4,4,4,4,4,4,0,0,4,4,0,0"
    f = known.accuracy([shallow, one, other, both])
    assert f[3] - f[1] - f[2] + f[0] > 1e-3  # the balance bonus (4 * balance in Q) outweighs the saturation


def test_accuracy_depends_on_layer_order(known: KnownAnswerProblem) -> None:
    # The same layers in another order: equal for an accuracy additive over layers, not here. A large kernel
    # after a small one helps more than before it.
    synthetic = SyntheticProblem(seed=0)
    for number, arch in enumerate(known.sample_uniform(50, seed=8)):
        stage = number % 5
        slot = 4 * stage + arch.depths[stage] - 2  # the stage's last two layers
        expands = list(arch.expands)
        expands[slot + 1] = expands[slot]
        same_expand = SPACE.format(SPACE.parse({"d": list(arch.depths), "ks": list(arch.kernels), "e": expands}))
        small_then_large = _with(_with(same_expand, slot=slot, kernel=3), slot=slot + 1, kernel=7)
        large_then_small = _with(_with(same_expand, slot=slot, kernel=7), slot=slot + 1, kernel=3)
        assert synthetic.accuracy([small_then_large]) == pytest.approx(synthetic.accuracy([large_then_small]), abs=1e-15)
        gained, lost = known.accuracy([small_then_large, large_then_small])
        assert gained > lost + 1e-4


def test_latency_interacts_within_a_stage(known: KnownAnswerProblem) -> None:
    # Same blocks, so an additive model prices them alike; consecutive equal kernels fuse and cost less.
    fused = "2,2,2,2,2:3,3,0,0,5,5,0,0,5,5,0,0,5,5,0,0,5,5,0,0:4,4,0,0,4,4,0,0,4,4,0,0,4,4,0,0,4,4,0,0"
    unfused = "2,2,2,2,2:3,3,0,0,5,5,0,0,5,5,0,0,5,5,0,0,5,7,0,0:4,4,0,0,4,4,0,0,4,4,0,0,4,4,0,0,4,4,0,0"
    fused_7 = "2,2,2,2,2:3,3,0,0,5,5,0,0,5,5,0,0,5,5,0,0,7,7,0,0:4,4,0,0,4,4,0,0,4,4,0,0,4,4,0,0,4,4,0,0"
    # Going from 5,5 to 5,7 to 7,7 adds a larger kernel each time, yet the last step (re-fusing) is cheaper.
    a, b, c = known.predict_ms([fused, unfused, fused_7])
    assert b > a and c - b < b - a


def test_determinism_per_seed_and_round_trip() -> None:
    archs = [SPACE.format(a) for a in SPACE.sample_many(30, seed=1)]
    first, again, other = KnownAnswerProblem(seed=4), KnownAnswerProblem(seed=4), KnownAnswerProblem(seed=5)
    assert first.predict_ms(archs) == again.predict_ms(archs) and first.accuracy(archs) == again.accuracy(archs)
    assert first.predict_ms(archs) != other.predict_ms(archs) and first.accuracy(archs) != other.accuracy(archs)
    assert first.sample_uniform(5, seed=2) == again.sample_uniform(5, seed=2)
    restored = KnownAnswerProblem.from_dict(json.loads(json.dumps(first.to_dict())))
    assert first.to_dict()["kind"] == "known-answer" and restored.predict_ms(archs) == first.predict_ms(archs)
    with pytest.raises(SettingError, match="kind"):
        KnownAnswerProblem.from_dict({**first.to_dict(), "kind": "additive"})


def test_samples_like_the_space_and_validates_arrays(known: KnownAnswerProblem) -> None:
    assert known.sample_uniform(20, seed=2) == SyntheticProblem(seed=0).sample_uniform(20, seed=2)  # OFA's uniform
    depths, kernels, expands = np.full((1, 5), 2), np.zeros((1, 20), dtype=int), np.zeros((1, 20), dtype=int)
    kernels[:, [0, 1, 4, 5, 8, 9, 12, 13, 16, 17]], expands[:, [0, 1, 4, 5, 8, 9, 12, 13, 16, 17]] = 3, 4
    arch = SPACE.parse({"d": depths[0].tolist(), "ks": kernels[0].tolist(), "e": expands[0].tolist()})
    assert known.evaluate_arrays(depths, kernels, expands)[0].tolist() == known.predict_ms([arch])
    kernels[0, 1] = 4
    with pytest.raises(ArchitectureError, match=r"kernel 4 is not a choice of ofa-mbv3; choose from \(3, 5, 7\)"):
        known.evaluate_arrays(depths, kernels, expands)
    with pytest.raises(ArchitectureError, match="need depths"):
        known.evaluate_arrays(depths, kernels[:, :19], expands)


def test_restrictions_are_validated() -> None:
    with pytest.raises(SettingError, match=r"kernels must be a non-empty subset of \(3, 5, 7\), got \(4,\)"):
        KnownAnswerProblem(kernels=(4,))
    with pytest.raises(SettingError, match="depths"):
        KnownAnswerProblem(depths=())
