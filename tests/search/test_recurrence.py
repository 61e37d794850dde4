"""The generator's hand-written LSTM recurrence against torch's LSTM and against numerical gradients."""

from __future__ import annotations

import pytest
import torch

from nag.search.recurrence import lstm_recurrence, to_ifog, unroll

VOCABULARY, SIZE, DIM = 5, 4, 3


def _lookups(n: int, steps: int, *, seed: int) -> tuple[torch.Tensor, ...]:
    """Random float64 input-gate lookups, recurrent weights and tokens of a small recurrence."""
    generator = torch.Generator().manual_seed(seed)

    def draw(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator, dtype=torch.float64).requires_grad_()

    tokens = torch.randint(VOCABULARY, (steps - 1, n), generator=generator)
    return draw(n, 4 * SIZE), draw(n, 4 * SIZE), draw(VOCABULARY, 4 * SIZE), draw(SIZE, 4 * SIZE), tokens


def test_equals_torch_lstm_and_its_gradients() -> None:
    # An nn.LSTM over [token embedding, per-row input], with step 0 reading [per-row input, per-row input],
    # is the recurrence with lookups: first = W [b, b] + bias, per_step = W_b b + bias, table = W_e E.
    torch.manual_seed(0)
    n, steps = 6, 7
    lstm = torch.nn.LSTM(2 * DIM, SIZE).double()
    embedding = torch.randn(VOCABULARY, DIM, dtype=torch.float64, requires_grad=True)
    rows = torch.randn(n, DIM, dtype=torch.float64, requires_grad=True)
    tokens = torch.randint(VOCABULARY, (steps - 1, n))
    inputs = torch.cat([rows.unsqueeze(0), embedding[tokens]])  # (T, n, D)
    reference, _ = lstm(torch.cat([inputs, rows.expand(steps, n, DIM)], dim=2))

    weight, bias = to_ifog(lstm.weight_ih_l0), to_ifog(lstm.bias_ih_l0 + lstm.bias_hh_l0)
    per_step = rows @ weight[:, DIM:].T + bias
    ours = lstm_recurrence(
        rows @ weight[:, :DIM].T + per_step, per_step, embedding @ weight[:, :DIM].T, to_ifog(lstm.weight_hh_l0).T, tokens
    )
    assert torch.allclose(ours, reference, atol=1e-12)

    weights = torch.randn_like(reference)
    leaves = [*lstm.parameters(), embedding, rows]
    expected = torch.autograd.grad((reference * weights).sum(), leaves)
    found = torch.autograd.grad((ours * weights).sum(), leaves)
    for a, b in zip(found, expected, strict=True):
        assert torch.allclose(a, b, atol=1e-12)


@pytest.mark.parametrize("steps", [1, 2, 6])
def test_backward_matches_numerical_gradients(steps: int) -> None:
    first, per_step, table, recurrent, tokens = _lookups(3, steps, seed=steps)
    assert torch.autograd.gradcheck(lambda *x: lstm_recurrence(*x, tokens), (first, per_step, table, recurrent))


def test_states_of_a_sampling_pass_are_reused_exactly() -> None:
    # Unrolled with the tokens chosen along the way (as the sampler does), the states give the same hidden
    # states and gradients as running the recurrence again over those tokens.
    first, per_step, table, recurrent, _ = _lookups(4, 5, seed=1)
    chosen: list[torch.Tensor] = []

    def next_inputs(_t: int, hidden: torch.Tensor) -> torch.Tensor:
        chosen.append((hidden.sum(1) > 0).long() + 2 * (hidden[:, 0] > 0).long())
        return table.detach().index_select(0, chosen[-1]) + per_step.detach()

    states = unroll(first.detach(), recurrent.detach(), 5, next_inputs)
    tokens = torch.stack(chosen)
    again = lstm_recurrence(first, per_step, table, recurrent, tokens)
    reused = lstm_recurrence(first, per_step, table, recurrent, tokens, states)
    assert torch.equal(again, reused)
    leaves = [first, per_step, table, recurrent]
    for a, b in zip(torch.autograd.grad(again.sum(), leaves), torch.autograd.grad(reused.sum(), leaves), strict=True):
        assert torch.equal(a, b)
