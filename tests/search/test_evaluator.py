"""The evaluator's minibatch loss and held-out pairwise accuracy, against Eqn. 5 and 6 pair by pair."""

from __future__ import annotations

import itertools

import pytest
import torch

from nag.search.config import EvaluatorConfig
from nag.search.dominance import dominance_of_pairs, pairwise_dominance
from nag.search.evaluator import (
    Evaluator,
    RankingData,
    _all_pairs_loss,
    _BlockRankingLoss,
    pairwise_accuracy,
    ranking_loss,
)


def _brute_force(scores: torch.Tensor, data: RankingData, budgets: list[float], accuracy_condition: bool) -> list[float]:
    """Eqn. 6 per ordered pair (ties on the deciding comparison, and repeated architectures, carry no label)."""
    found = []
    for k, budget in enumerate(budgets):
        correct = total = 0
        for i, j in itertools.permutations(range(len(data)), 2):
            if data.arch_ids[i] == data.arch_ids[j]:
                continue
            ci, cj, ai, aj = (float(v) for v in (data.latency_ms[i], data.latency_ms[j], data.accuracy[i], data.accuracy[j]))
            both = accuracy_condition and ci <= budget and cj <= budget
            label = (ai > aj) - (ai < aj) if both else (ci < cj) - (ci > cj)
            if label:
                total += 1
                si, sj = float(scores[i, k]), float(scores[j, k])
                correct += (si > sj) - (si < sj) == label
        found.append(correct / total if total else float("nan"))
    return found


@pytest.mark.parametrize("accuracy_condition", [True, False])
def test_pairwise_accuracy_counts_each_labelled_pair(accuracy_condition: bool) -> None:
    generator = torch.Generator().manual_seed(0)
    m = 40
    data = RankingData(
        encodings=(torch.rand(m, 12, generator=generator) < 0.3).float(),
        latency_ms=torch.randint(10, 20, (m,), generator=generator).double(),  # ties in cost
        accuracy=torch.randint(70, 75, (m,), generator=generator).double() / 100,  # ties in accuracy
        arch_ids=torch.tensor([n % 35 for n in range(m)]),  # five repeated architectures
    )
    torch.manual_seed(1)
    model = Evaluator(12, 3, embedding_dim=4, hidden=8)
    budgets = [9.0, 14.0, 19.0]  # none, some, all feasible
    expected = _brute_force(model.score_trained(data.encodings).detach(), data, budgets, accuracy_condition)
    found = pairwise_accuracy(
        model, data, torch.tensor(budgets, dtype=torch.float64), chunk=7, accuracy_condition=accuracy_condition
    )
    assert found == pytest.approx(expected, abs=1e-15)
    assert min(found) > 0.2 and max(found) < 0.8  # an untrained evaluator is near chance


@pytest.mark.parametrize("loss", ["hinge", "logistic"])
@pytest.mark.parametrize("accuracy_condition", [True, False])
def test_all_pairs_minibatch_is_eqn_5_over_its_pairs(loss: str, accuracy_condition: bool) -> None:
    # The (K, B, B) block gives the mean of phi(d * (R_i - R_j)) over the labelled (pair, budget) entries
    # of the minibatch's rows, as a loop over its pairs through dominance_of_pairs computes it.
    generator = torch.Generator().manual_seed(2)
    m = 30
    data = RankingData(
        encodings=(torch.rand(m, 12, generator=generator) < 0.3).float(),
        latency_ms=torch.randint(10, 20, (m,), generator=generator).double(),
        accuracy=torch.randint(70, 75, (m,), generator=generator).double() / 100,
        arch_ids=torch.tensor([n % 27 for n in range(m)]),
    )
    torch.manual_seed(3)
    model = Evaluator(12, 3, embedding_dim=4, hidden=8)
    budgets = torch.tensor([9.0, 14.0, 19.0], dtype=torch.float64)
    config = EvaluatorConfig(archs_per_step=12, loss=loss, accuracy_condition=accuracy_condition)  # type: ignore[arg-type]
    with torch.no_grad():
        found = _all_pairs_loss(model, data, budgets, config, torch.Generator().manual_seed(5))
    rows = torch.randperm(m, generator=torch.Generator().manual_seed(5))[:12]  # the rows the minibatch drew
    first, second = torch.triu_indices(12, 12, 1).unbind()
    i, j = rows[first], rows[second]
    labels = dominance_of_pairs(
        data.latency_ms[i],
        data.accuracy[i],
        data.latency_ms[j],
        data.accuracy[j],
        budgets,
        same=data.arch_ids[i] == data.arch_ids[j],
        accuracy_condition=accuracy_condition,
    ).float()
    scores = model.score_trained(data.encodings).detach()
    expected = ranking_loss(labels * (scores[i] - scores[j]), labels != 0, loss)  # type: ignore[arg-type]
    assert (labels != 0).sum() > 100 and (labels == 0).sum() > 0
    assert found.item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize("loss", ["hinge", "logistic"])
def test_block_loss_gradient_is_autograds(loss: str) -> None:
    # The written-out gradient of the (K, B, B) block loss equals autograd's through the plain formula.
    generator = torch.Generator().manual_seed(4)
    cost = torch.randint(10, 20, (9,), generator=generator).double()
    accuracy = torch.randint(70, 75, (9,), generator=generator).double()
    labels = pairwise_dominance(cost, accuracy, torch.tensor([12.0, 18.0], dtype=torch.float64), dtype=torch.float64)
    scores = torch.randn(2, 9, generator=generator, dtype=torch.float64, requires_grad=True)
    z = labels * (scores.unsqueeze(2) - scores.unsqueeze(1))
    expected = torch.autograd.grad(ranking_loss(z, labels != 0, loss), scores)[0]  # type: ignore[arg-type]
    found = torch.autograd.grad(_BlockRankingLoss.apply(scores, labels, loss), scores)[0]
    assert torch.allclose(found, expected, atol=1e-12) and expected.abs().max() > 0.01
