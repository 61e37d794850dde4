"""Inference's fast paths and its refinement: the numpy policy is the generator's policy, the scorer's
shortcuts give the predictor's and the source's own values, and refinement only ever improves a pick."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from farm.lut import Calibration, LutPredictor
from farm.store import Store
from nag.accuracy import LocalAccuracySource
from nag.accuracy.fitted import FittedAccuracyPredictor
from nag.errors import SettingError
from nag.search.budgets import BudgetSet
from nag.search.config import InferenceConfig, SearchConfig
from nag.search.known_answer import KnownAnswerProblem
from nag.search.layout import StagedLayout
from nag.search.model import new_generator
from nag.search.numpy_model import form_arrays, form_from_arrays
from nag.search.policy import NumpyPolicy
from nag.search.refine import neighbours, refine
from nag.search.scoring import AdditiveForm, CandidateScorer
from nag.space import get_space
from tests.tables import put_block_table

SPACE = get_space("ofa-mbv3")
LAYOUT = StagedLayout.for_space(SPACE)


@pytest.mark.parametrize(("budget_input", "mask_unused"), [("every", True), ("first", True), ("every", False)])
def test_numpy_policy_is_the_generators_policy(budget_input: str, mask_unused: bool) -> None:
    config = SearchConfig().replace(num_budgets=3, generator__budget_input=budget_input, generator__mask_unused=mask_unused)
    generator = new_generator(LAYOUT, config, seed=4)
    with torch.no_grad():  # untrained weights are near uniform: sharpen them so that the check has teeth
        generator.head_weight.mul_(8.0)
        generator.head_bias.normal_(0.0, 1.0)
    policy = NumpyPolicy.from_generator(generator)
    placements = [BudgetSet(budgets_ms=(10.0, 20.0, 30.0)).place(b) for b in (13.0, 30.0)]  # interpolated, trained
    expected = generator.budget_embedding.mix(placements).detach().numpy()
    np.testing.assert_allclose(policy.embed(placements), expected, atol=1e-6)
    embeddings = np.repeat(policy.embed(placements), 300, axis=0)
    raw = policy.sample_raw(embeddings, np.random.default_rng(0))
    with torch.no_grad():
        reference = generator(torch.from_numpy(embeddings), torch.from_numpy(raw)).log_prob.numpy()
    np.testing.assert_allclose(policy.log_prob(embeddings, raw), reference, atol=1e-3, rtol=1e-5)
    # sampling draws from those distributions: decision frequencies match torch's own sampler
    one = np.repeat(embeddings[:1], 20000, axis=0)
    ours = policy.sample(one, np.random.default_rng(1))
    theirs = generator.sample_actions(torch.from_numpy(one), generator=torch.Generator().manual_seed(1))
    for step in (0, 1, 2, 10):
        np.testing.assert_allclose(
            np.bincount(ours[:, step], minlength=3) / 20000, np.bincount(theirs[:, step], minlength=3) / 20000, atol=0.02
        )


def _lut(tmp_path) -> LutPredictor:  # type: ignore[no-untyped-def]
    store = Store(tmp_path / "t.db")
    rng = random.Random(0)
    table, _ = put_block_table(store, lambda i, key: 0.05 + rng.random())
    return LutPredictor(store, table)


def test_additive_form_of_a_block_table_gives_the_tables_own_values(tmp_path) -> None:  # type: ignore[no-untyped-def]
    lut = _lut(tmp_path)
    form = AdditiveForm.probe(LAYOUT, SPACE, lut)
    assert form is not None
    archs = SPACE.sample_many(300, seed=7)
    np.testing.assert_allclose(form(LAYOUT.archs_to_actions(archs)), lut.predict_ms(archs), rtol=1e-12)


@pytest.mark.parametrize("offset_ms", [1.5, -2.0])  # a line; a line that turns into a ratio below its fitted range
def test_a_calibrated_tables_form_is_its_sum_finished_by_the_calibration(tmp_path, offset_ms: float) -> None:  # type: ignore[no-untyped-def]
    lut = _lut(tmp_path)
    archs = SPACE.sample_many(400, seed=8)
    sums = np.asarray(lut.predict_ms(archs))
    low, high = float(np.quantile(sums, 0.5)), float(sums.max())  # half the networks fall below the fitted range
    calibration = Calibration(offset_ms, 1.1, 0.03, 20, 0, "huber-relative", lut.statistic, low, high)
    with Store(tmp_path / "t.db") as store:
        store.put_calibration(lut.table, calibration)
        calibrated = LutPredictor(store, lut.table)
    form = AdditiveForm.probe(LAYOUT, SPACE, calibrated)
    assert form is not None and form.output is not None
    expected = calibrated.predict_ms(archs)
    np.testing.assert_allclose(form(LAYOUT.archs_to_actions(archs)), expected, rtol=1e-12)
    assert not np.allclose(expected, sums)  # the calibration is applied, not skipped
    # stored in inference.npz and read back, it prices the same
    restored = form_from_arrays(form_arrays(form), LAYOUT)
    assert restored is not None
    np.testing.assert_array_equal(restored(LAYOUT.archs_to_actions(archs)), form(LAYOUT.archs_to_actions(archs)))
    # a quantile is not a map of the sum alone: that predictor is asked itself
    assert AdditiveForm.probe(LAYOUT, SPACE, calibrated.with_quantile(0.9)) is None


def test_a_predictor_that_is_not_additive_is_asked_itself() -> None:
    problem = KnownAnswerProblem(seed=0)  # stage-level interaction terms: no additive form
    assert AdditiveForm.probe(LAYOUT, SPACE, problem) is None
    scorer = CandidateScorer(SPACE, LAYOUT, problem, problem)
    assert not scorer.additive
    archs = SPACE.sample_many(50, seed=2)
    actions = LAYOUT.archs_to_actions(archs)
    np.testing.assert_allclose(scorer.latency(actions), problem.predict_ms(archs))
    np.testing.assert_allclose(scorer.accuracy(actions), problem.accuracy(archs))


def test_encoded_accuracy_of_a_fitted_source_equals_its_accuracy() -> None:
    problem = KnownAnswerProblem(seed=1)
    rows = problem.table(300, seed=3)
    fitted = FittedAccuracyPredictor.fit(rows.archs, rows.accuracy)
    archs = SPACE.sample_many(200, seed=5)
    actions = LAYOUT.archs_to_actions(archs)
    np.testing.assert_allclose(fitted.accuracy_encoded(LAYOUT.encode_actions_np(actions)), fitted.accuracy(archs), atol=1e-12)
    scorer = CandidateScorer(SPACE, LAYOUT, problem, fitted)
    np.testing.assert_allclose(scorer.accuracy(actions), fitted.accuracy(archs), atol=1e-12)
    with pytest.raises(SettingError, match="0/1 encoding"):
        fitted.accuracy_encoded(np.full((2, 120), 0.5))


class _EncodedOnly:
    """An encoded source without a neighbourhood: the fitted predictor's values, asked row by row set."""

    def __init__(self, fitted: FittedAccuracyPredictor) -> None:
        self._fitted = fitted

    @property
    def space(self) -> str:
        return self._fitted.space

    def accuracy(self, archs):  # type: ignore[no-untyped-def]
        return self._fitted.accuracy(archs)

    def accuracy_encoded(self, encodings: np.ndarray) -> np.ndarray:
        return self._fitted.accuracy_encoded(encodings)


def _fitted_on_known_answer(seed: int) -> tuple[KnownAnswerProblem, FittedAccuracyPredictor]:
    problem = KnownAnswerProblem(seed=seed)
    rows = problem.table(400, seed=seed + 3)
    return problem, FittedAccuracyPredictor.fit(rows.archs, rows.accuracy)


def test_a_fitted_sources_neighbourhood_gives_its_values() -> None:
    _, fitted = _fitted_on_known_answer(1)
    assert isinstance(fitted, LocalAccuracySource) and not isinstance(_EncodedOnly(fitted), LocalAccuracySource)
    rng = np.random.default_rng(0)
    for arch in SPACE.sample_many(8, seed=11):
        row = LAYOUT.archs_to_actions([arch])[0]
        moves = neighbours(LAYOUT, row)  # single swaps (the closed form) and depth moves (gathered)
        first, second = rng.integers(0, len(moves), (2, 40))
        trades = LAYOUT.canonical_actions(np.where(moves[first] != row, moves[first], moves[second]))
        far = LAYOUT.archs_to_actions(SPACE.sample_many(20, seed=int(rng.integers(1000))))  # many columns changed
        rows = LAYOUT.encode_actions_np(np.concatenate([row[None, :], moves, trades, far]))
        near = fitted.around(LAYOUT.encode_actions_np(row[None, :])[0])
        expected = fitted.accuracy_encoded(rows)
        assert np.ptp(expected) > 0.01  # rows that differ, so equal values would be a real agreement
        np.testing.assert_allclose(near.accuracy_encoded(rows), expected, rtol=1e-12, atol=0)
    with pytest.raises(SettingError, match="one encoded architecture"):
        fitted.around(rows[:2])
    with pytest.raises(SettingError, match="0/1 encoding"):
        near.accuracy_encoded(np.full((1, rows.shape[1]), 0.5))


def test_refinement_through_a_neighbourhood_climbs_as_through_the_source() -> None:
    problem, fitted = _fitted_on_known_answer(2)
    local = CandidateScorer(SPACE, LAYOUT, problem, fitted)
    plain = CandidateScorer(SPACE, LAYOUT, problem, _EncodedOnly(fitted))
    assert local.local and not plain.local
    starts = np.unique(LAYOUT.archs_to_actions(SPACE.sample_many(80, seed=4)), axis=0)
    latency, accuracy = plain.latency(starts), plain.accuracy(starts)
    for quantile in (0.2, 0.5, 0.8):
        budget = float(np.quantile(latency, quantile))
        ours = refine(starts, latency, accuracy, budget, local, steps=8, pairs=20, climbs=2)
        theirs = refine(starts, latency, accuracy, budget, plain, steps=8, pairs=20, climbs=2)
        assert ours is not None and theirs is not None and ours.steps > 0
        np.testing.assert_array_equal(ours.actions, theirs.actions)
        assert (ours.latency_ms, ours.steps) == (theirs.latency_ms, theirs.steps)
        # the source's own value (a product's last bit may depend on the rows labelled with it)
        assert ours.accuracy == fitted.accuracy_encoded(LAYOUT.encode_actions_np(ours.actions[None, :]))[0]
        assert ours.accuracy == pytest.approx(theirs.accuracy, rel=1e-14, abs=0)


def test_neighbours_are_one_decision_away_and_valid() -> None:
    row = LAYOUT.archs_to_actions(
        [SPACE.parse("2,3,4,3,2:3,5,0,0,7,3,5,0,3,3,5,7,5,7,3,0,3,5,0,0:3,4,0,0,6,4,3,0,3,3,4,6,4,4,3,0,6,4,0,0")]
    )[0]
    found = neighbours(LAYOUT, row)
    used_slots = 2 + 3 + 4 + 3 + 2
    depth_moves = 1 + 2 + 1 + 2 + 1  # depth 2 or 4: one way; depth 3: both
    assert len(found) == len(np.unique(found, axis=0)) == used_slots * 4 + depth_moves
    for moved in found:
        arch = LAYOUT.actions_to_archs(SPACE, moved[None, :])[0]  # parses: a valid architecture
        before, after = SPACE.parse(SPACE.format(LAYOUT.actions_to_archs(SPACE, row[None, :])[0])), arch
        changed_depths = sum(a != b for a, b in zip(before.depths, after.depths, strict=True))
        changed_choices = sum(a != b for a, b in zip(before.kernels + before.expands, after.kernels + after.expands, strict=True))
        assert (changed_depths == 1) or (changed_depths == 0 and changed_choices == 1)


def test_refinement_only_improves_stays_feasible_and_reports_the_sources_values() -> None:
    problem = KnownAnswerProblem(seed=0)
    scorer = CandidateScorer(SPACE, LAYOUT, problem, problem)
    starts = np.unique(LAYOUT.archs_to_actions(SPACE.sample_many(60, seed=9)), axis=0)
    latency, accuracy = scorer.latency(starts), scorer.accuracy(starts)
    budget = float(np.quantile(latency, 0.5))
    best_start = accuracy[latency <= budget].max()
    found = refine(starts, latency, accuracy, budget, scorer, steps=10, pairs=20, climbs=2)
    assert found is not None and found.steps > 0
    arch = LAYOUT.actions_to_archs(SPACE, found.actions[None, :])[0]
    assert found.latency_ms == pytest.approx(problem.predict_ms([arch])[0]) and found.latency_ms <= budget
    assert found.accuracy == pytest.approx(problem.accuracy([arch])[0]) and found.accuracy > best_start
    optimum = problem.best_under(budget)[0]
    assert optimum - found.accuracy < optimum - best_start  # closer to the exact optimum than the best start
    assert refine(starts, latency, accuracy, float(latency.min()) - 1.0, scorer, steps=5, pairs=5) is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"refine_steps": -1}, "refine_steps must be an integer >= 0"),
        ({"refine_pairs": 1.5}, "refine_pairs must be an integer >= 0"),
        ({"refine_climbs": 0}, "refine_climbs must be a positive number"),
    ],
)
def test_bad_refinement_settings_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(SettingError, match=message):
        InferenceConfig(**changes)  # type: ignore[arg-type]
