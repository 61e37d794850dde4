"""The generator's LSTM recurrence, given each step's input gates, with the backward pass written out.

The generator's LSTM reads, at every step, a token embedding and the budget embedding. Both come from
tiny tables (a dozen tokens, K budgets), so their input projections are table lookups computed once per
pass, and the only per-step product left is the recurrent one, ``h @ W_hh``. torch's fused LSTM (oneDNN
on CPU) recomputes the input product at every step and records a backward that took 28 ms for the
search's 160 sequences of 45 steps (2 cores, busy), against about 6 ms here.

- :func:`unroll` runs the recurrence from zero state, time-major, keeping what the backward pass needs;
  the caller supplies each next step's input gates from the hidden state, so sampling (the next input
  depends on the action drawn from the hidden state) and teacher forcing share one loop.
- :func:`lstm_recurrence` is the autograd function: hidden states ``(T, n, H)`` from input gates
  ``(T, n, 4H)`` and recurrent weights ``(H, 4H)``. Given the :class:`Unrolled` states of a sampling pass
  over the same inputs it reuses them instead of running the loop again. Its backward is
  back-propagation through time: one ``(n, 4H) x (4H, H)`` product and a few element-wise operations
  per step, and the recurrent weights' gradient as one product over all steps.

Gates are in the order (input, forget, output, cell), so that one sigmoid squashes the first three;
:func:`to_ifog` reorders torch's (input, forget, cell, output) rows. ``tests/search/test_recurrence.py``
checks the function against ``torch.nn.LSTM`` and against numerical gradients.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["Unrolled", "lstm_recurrence", "to_ifog", "unroll"]


def to_ifog(weight: torch.Tensor) -> torch.Tensor:
    """Rows of an LSTM weight or bias from torch's (i, f, g, o) order to (i, f, o, g)."""
    i, f, g, o = weight.chunk(4, dim=0)
    return torch.cat([i, f, o, g], dim=0)


@dataclass(frozen=True, eq=False)
class Unrolled:
    """The states of one forward pass, time-major (T steps, n sequences, hidden size H)."""

    squashed: torch.Tensor  # (T, n, 3H) sigmoid of the input, forget and output gates
    candidate: torch.Tensor  # (T, n, H) tanh of the cell gate
    cells: torch.Tensor  # (T + 1, n, H) cell state before each step (index 0: zeros), and after the last
    squashed_cells: torch.Tensor  # (T, n, H) tanh of each step's new cell state
    hidden: torch.Tensor  # (T + 1, n, H) hidden state before each step (index 0: zeros), and after the last


@torch.no_grad()
def unroll(
    first: torch.Tensor, recurrent: torch.Tensor, steps: int, next_inputs: Callable[[int, torch.Tensor], torch.Tensor]
) -> Unrolled:
    """Run ``steps`` LSTM steps from zero state. ``first`` ``(n, 4H)`` is step 0's input gates;
    ``next_inputs(t, h_t)`` returns step ``t + 1``'s from step ``t``'s hidden state ``(n, H)``, as a new tensor
    (the recurrent product is added to it in place).
    """
    n, size = first.shape[0], recurrent.shape[0]
    squashed = first.new_empty(steps, n, 3 * size)
    candidate = first.new_empty(steps, n, size)
    cells = first.new_empty(steps + 1, n, size)
    squashed_cells = first.new_empty(steps, n, size)
    hidden = first.new_empty(steps + 1, n, size)
    cells[0].zero_()
    hidden[0].zero_()
    gates = first  # the initial state is zero: step 0's gates are its inputs
    for t in range(steps):
        if t > 0:
            gates = next_inputs(t - 1, hidden[t]).addmm_(hidden[t], recurrent)
        s = torch.sigmoid(gates[:, : 3 * size], out=squashed[t])
        torch.tanh(gates[:, 3 * size :], out=candidate[t])
        torch.addcmul(s[:, size : 2 * size] * cells[t], s[:, :size], candidate[t], out=cells[t + 1])
        torch.tanh(cells[t + 1], out=squashed_cells[t])
        torch.mul(s[:, 2 * size :], squashed_cells[t], out=hidden[t + 1])
    return Unrolled(squashed, candidate, cells, squashed_cells, hidden)


_tanh_backward = torch.ops.aten.tanh_backward  # (grad, tanh(x)) -> grad * (1 - tanh(x)^2), one operation
_sigmoid_backward = torch.ops.aten.sigmoid_backward  # (grad, sigmoid(x)) -> grad * s * (1 - s)


class _Recurrence(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        first: torch.Tensor,
        per_step: torch.Tensor,
        token_table: torch.Tensor,
        recurrent: torch.Tensor,
        tokens: torch.Tensor,
        states: Unrolled | None,
    ) -> torch.Tensor:
        if states is None:
            states = unroll(
                first, recurrent, tokens.shape[0] + 1, lambda t, _h: torch.add(token_table.index_select(0, tokens[t]), per_step)
            )
        ctx.save_for_backward(
            recurrent, tokens, states.squashed, states.candidate, states.cells, states.squashed_cells, states.hidden
        )
        ctx.vocabulary = token_table.shape[0]
        return states.hidden[1:]

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        recurrent, tokens, squashed, candidate, cells, squashed_cells, hidden = ctx.saved_tensors
        steps, n, size = candidate.shape
        grad_hidden = grad_output.contiguous()
        grad_gates = grad_hidden.new_empty(steps, n, 4 * size)
        through = grad_hidden.new_empty(n, 3 * size)  # what multiplies each sigmoid gate's derivative
        grad_h, grad_c = grad_hidden[-1], torch.zeros_like(grad_hidden[-1])
        transposed = recurrent.T
        # Per step, so that every operand is a small block still in cache (batched over all steps, the same
        # element-wise work streams (T, n, H) tensors through memory and was measured 2x slower).
        for t in range(steps - 1, -1, -1):
            if t < steps - 1:
                grad_h = torch.addmm(grad_hidden[t], grad_gates[t + 1], transposed)
            s, g, tanh_c = squashed[t], candidate[t], squashed_cells[t]
            grad_c = grad_c + _tanh_backward(grad_h * s[:, 2 * size :], tanh_c)  # dc_t
            torch.mul(grad_c, g, out=through[:, :size])
            torch.mul(grad_c, cells[t], out=through[:, size : 2 * size])
            torch.mul(grad_h, tanh_c, out=through[:, 2 * size :])
            # written whole: a strided half of the output row is far slower to write
            torch.cat([_sigmoid_backward(through, s), _tanh_backward(grad_c * s[:, :size], g)], dim=1, out=grad_gates[t])
            grad_c = grad_c * s[:, size : 2 * size]  # dc_{t-1} through the forget gate
        later = grad_gates[1:].reshape(-1, 4 * size)
        grad_recurrent = hidden[:-1].reshape(-1, size).T @ grad_gates.reshape(-1, 4 * size)
        grad_table = later.new_zeros(ctx.vocabulary, 4 * size).index_add_(0, tokens.reshape(-1), later)
        return grad_gates[0], grad_gates[1:].sum(0), grad_table, grad_recurrent, None, None


def lstm_recurrence(
    first: torch.Tensor,
    per_step: torch.Tensor,
    token_table: torch.Tensor,
    recurrent: torch.Tensor,
    tokens: torch.Tensor,
    states: Unrolled | None = None,
) -> torch.Tensor:
    """Hidden states ``(T, n, H)`` of an LSTM from zero state whose input gates are lookups: step 0's are
    ``first`` ``(n, 4H)``; step t's (t >= 1) are ``token_table[tokens[t - 1]] + per_step``, with ``token_table``
    ``(V, 4H)``, ``per_step`` ``(n, 4H)`` and ``tokens`` ``(T - 1, n)``. Gates include both biases and are in
    (i, f, o, g) order; ``recurrent`` is ``(H, 4H)`` (``to_ifog(weight_hh).T``). Differentiable in the four
    tensors of gates and weights. ``states``: the :func:`unroll` of these same inputs (e.g. by the sampler that
    chose the tokens), reused instead of running the recurrence again.
    """
    return _Recurrence.apply(first, per_step, token_table, recurrent.contiguous(), tokens.contiguous(), states)
