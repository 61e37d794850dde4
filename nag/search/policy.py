"""The trained generator's policy in plain numpy: sampling for inference without torch.

Training needs torch (gradients, the fused LSTM over whole sequences); inference only needs to draw
sequences from the trained policy. :class:`NumpyPolicy` holds the generator's weights as numpy arrays
(copied from a :class:`~nag.search.generator.Generator`, or read from a run directory's ``inference.npz``
without importing torch) and runs the same LSTM step by step: the token and budget parts of each step's
input projection are precomputed (a token's is a row lookup), so a step is one ``(n, H) x (H, 4H)`` product
and a few element-wise operations.

It is the same policy, not an approximation: :meth:`NumpyPolicy.log_prob` equals
:meth:`nag.search.generator.Generator.forward`'s log-probability to float32 precision (checked in the
tests), and sampling draws each step from exactly those distributions. The random stream is numpy's
(``np.random.Generator``), so a seed draws different architectures than torch's sampler would.

Several budgets are sampled in one pass (:meth:`NumpyPolicy.sample_blocks`): one block of rows per budget,
each with its own random stream. The element-wise work runs over all rows at once; the two matrix products
of a step run per block, because a BLAS product's rounding may depend on how many rows it is given (this
OpenBLAS rounds a 64 x 3 head's products differently for different row counts). So a budget's draws are the
same bits whether it is sampled alone or with others.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from nag.search.budgets import BudgetPlacement, mix_embeddings
from nag.search.layout import StagedLayout

if TYPE_CHECKING:
    from nag.search.generator import Generator

__all__ = ["GENERATOR_WEIGHTS", "NumpyPolicy"]

# the generator's state-dict entries the policy is built from (torch's names; ``inference.npz`` keeps them)
GENERATOR_WEIGHTS = (
    "budget_embedding.table.weight",
    "tokens.weight",
    "lstm.weight_ih_l0",
    "lstm.weight_hh_l0",
    "lstm.bias_ih_l0",
    "lstm.bias_hh_l0",
    "head_weight",
    "head_bias",
)

_CHUNK_ROWS = 2048  # rows of element-wise work at a time (a few MB): a million candidates' arrays do not fit a cache

# picks each step's actions: (step, every row's probabilities (n, C)) -> (n,) choice indices
Pick = Callable[[int, np.ndarray], np.ndarray]


@dataclass(frozen=True, eq=False)
class NumpyPolicy:
    """The generator's LSTM policy as numpy float32 arrays (the generator's own precision); read-only, thread-safe."""

    layout: StagedLayout
    budget_table: np.ndarray  # (K, D) trained budget embeddings
    token_gates: np.ndarray  # (V, 4H) token embedding projected by the input weights' token half
    budget_weight: np.ndarray  # (D, 4H) input weights' budget half (zeros when the budget is fed once)
    first_weight: np.ndarray  # (D, 4H) input weights applied to the first step's budget-only input
    recurrent: np.ndarray  # (H, 4H) recurrent weights, transposed
    bias: np.ndarray  # (4H,) both LSTM biases
    head_weight: np.ndarray  # (T, C, H) per-step output layers
    head_bias: np.ndarray  # (T, C)
    counts: np.ndarray  # (T,) choices of each step (the first ``counts[t]`` of the padded ``C`` exist)
    offsets: np.ndarray  # (T,) token offset of each step's decision kind
    skip_token: int  # the token fed after an unused slot (with mask_unused)
    mask_unused: bool  # unused slots are fed the skip token and not counted

    @classmethod
    def from_generator(cls, generator: Generator) -> NumpyPolicy:
        """Copy a (trained) :class:`Generator`'s weights."""
        import torch

        with torch.no_grad():
            state = generator.state_dict()
            weights = {name: state[name].detach().float().numpy() for name in GENERATOR_WEIGHTS}
        return cls.from_weights(
            generator.layout, weights, mask_unused=bool(generator.mask_unused), budget_every_step=generator.budget_every_step
        )

    @classmethod
    def from_weights(
        cls, layout: StagedLayout, weights: Mapping[str, np.ndarray], *, mask_unused: bool, budget_every_step: bool
    ) -> NumpyPolicy:
        """The policy of a generator's weights (float32 arrays named as in :data:`GENERATOR_WEIGHTS`, torch's
        layout); the shapes must match ``layout`` (checked by the caller, e.g. :mod:`nag.search.numpy_model`)."""
        size = weights["lstm.weight_hh_l0"].shape[1]
        order = np.r_[0 : 2 * size, 3 * size : 4 * size, 2 * size : 3 * size]  # torch's (i, f, g, o) -> (i, f, o, g)
        w_ih = weights["lstm.weight_ih_l0"][order]  # (4H, D or 2D)
        tokens = weights["tokens.weight"]
        dim = tokens.shape[1]
        token_half = w_ih[:, :dim]
        budget_half = w_ih[:, dim:] if budget_every_step else np.zeros_like(token_half)
        return cls(
            layout=layout,
            budget_table=weights["budget_embedding.table.weight"].copy(),
            token_gates=tokens @ token_half.T,
            budget_weight=budget_half.T.copy(),
            first_weight=(token_half + budget_half).T.copy(),
            recurrent=weights["lstm.weight_hh_l0"][order].T.copy(),
            bias=(weights["lstm.bias_ih_l0"] + weights["lstm.bias_hh_l0"])[order].copy(),
            head_weight=weights["head_weight"].copy(),
            head_bias=weights["head_bias"].copy(),
            counts=layout.choice_counts.copy(),
            offsets=layout.token_offsets.copy(),
            skip_token=layout.skip_token,
            mask_unused=mask_unused,
        )

    def embed(self, placements: list[BudgetPlacement]) -> np.ndarray:
        """Budget embeddings ``(n, D)`` of placed budgets, interpolated as in Sec. 3.2."""
        return mix_embeddings(self.budget_table, placements)

    # -- the recurrence ---------------------------------------------------------------------------------
    def _cell(self, gates: np.ndarray, cell: np.ndarray, hidden: np.ndarray, squashed: np.ndarray, update: np.ndarray) -> None:
        """One LSTM update: ``cell`` and ``hidden`` (n, H) overwritten from ``gates`` (n, 4H); ``squashed`` (n, 3H)
        and ``update`` (n, H) are work space (allocated once per pass: fresh arrays of a million rows cost page
        faults at every step).

        The operations and their order are those of ``o * tanh(c)``, ``c = f * c + i * tanh(g)`` with the gates
        squashed as ``0.5 * (tanh(0.5 x) + 1)``, so the bits are those of computing each into a new array; the
        squashed gates go to one contiguous array (in-place work on the strided column slices of ``gates``
        measured slower)."""
        size = cell.shape[1]  # gates are stored as (input, forget, output, cell) so that one call squashes three
        np.multiply(gates[:, : 3 * size], 0.5, out=squashed)
        np.tanh(squashed, out=squashed)
        squashed += 1.0
        squashed *= 0.5
        np.tanh(gates[:, 3 * size :], out=update)
        update *= squashed[:, :size]
        cell *= squashed[:, size : 2 * size]
        cell += update
        np.tanh(cell, out=hidden)
        hidden *= squashed[:, 2 * size :]

    def _run(self, blocks: Sequence[np.ndarray], pick: Pick) -> np.ndarray:
        """Run the recurrence over blocks of rows (``(n_b, D)`` budget embeddings each); ``pick`` chooses each
        step's actions. Returns the raw actions ``(sum n_b, T)``, blocks in order."""
        layout = self.layout
        bounds = np.cumsum([0, *(len(block) for block in blocks)])
        rows = [slice(int(a), int(b)) for a, b in itertools.pairwise(bounds)]
        n, size = int(bounds[-1]), self.recurrent.shape[0]
        budget_gates = np.empty((n, 4 * size), dtype=np.float32)
        gates = np.empty_like(budget_gates)
        for block, embeddings in zip(rows, blocks, strict=True):  # per block: a product's rounding may depend on its rows
            embeddings = np.asarray(embeddings, dtype=np.float32)
            budget_gates[block] = embeddings @ self.budget_weight + self.bias
            gates[block] = embeddings @ self.first_weight + self.bias
        steps = layout.steps()
        depth_values = np.asarray(layout.depth_choices)
        depth_step = {layout.depth_step(s): s for s in range(layout.num_stages)}
        depths = np.zeros((n, layout.num_stages), dtype=np.int64)
        hidden, cell = np.zeros((n, size), dtype=np.float32), np.zeros((n, size), dtype=np.float32)
        summed = np.empty_like(gates)
        chunks = [slice(start, min(start + _CHUNK_ROWS, n)) for start in range(0, n, _CHUNK_ROWS)]
        squashed, update = (
            np.empty((min(n, _CHUNK_ROWS), 3 * size), dtype=np.float32),
            np.empty((min(n, _CHUNK_ROWS), size), np.float32),
        )
        actions = np.zeros((n, len(steps)), dtype=np.int64)
        for t, (kind, stage, layer) in enumerate(steps):
            for block in rows:
                np.matmul(hidden[block], self.recurrent, out=summed[block])
            for chunk in chunks:  # element-wise work a cache-sized slice of rows at a time
                rows_in = chunk.stop - chunk.start
                summed[chunk] += gates[chunk]
                self._cell(summed[chunk], cell[chunk], hidden[chunk], squashed[:rows_in], update[:rows_in])
            count = int(self.counts[t])
            logits = np.empty((n, count), dtype=np.float32)
            for block in rows:
                np.matmul(hidden[block], self.head_weight[t, :count].T, out=logits[block])
            logits += self.head_bias[t, :count]
            logits -= logits.max(axis=1, keepdims=True)
            probs = np.exp(logits, out=logits)
            probs /= probs.sum(axis=1, keepdims=True)
            action = actions[:, t]
            action[:] = pick(t, probs)
            if t in depth_step:
                depths[:, depth_step[t]] = depth_values[action]
            token = action + self.offsets[t]
            if self.mask_unused and kind != "depth":
                token = np.where(depths[:, stage] > layer, token, self.skip_token)
            for chunk in chunks:
                np.take(self.token_gates, token[chunk], axis=0, out=gates[chunk], mode="clip")  # in range; 'raise' buffers
                gates[chunk] += budget_gates[chunk]
        return actions

    def sample_raw(self, embeddings: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One raw action sequence ``(n, T)`` per row of ``embeddings``, each step drawn from the policy."""
        return self._run([embeddings], _drawing([rng], [len(embeddings)]))

    def sample(self, embeddings: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Sampled actions with inactive steps zeroed (equal architectures give equal rows)."""
        return self.layout.canonical_actions(self.sample_raw(embeddings, rng))

    def sample_blocks(self, blocks: Sequence[np.ndarray], rngs: Sequence[np.random.Generator]) -> list[np.ndarray]:
        """:meth:`sample` of each block of embeddings with its own random stream, in one pass: the same rows
        as sampling each block alone with its stream."""
        if len(blocks) != len(rngs):
            raise ValueError(f"give one random stream per block: {len(blocks)} blocks, {len(rngs)} streams")
        raw = self.layout.canonical_actions(self._run(blocks, _drawing(rngs, [len(block) for block in blocks])))
        return np.split(raw, np.cumsum([len(block) for block in blocks])[:-1])

    def log_prob(self, embeddings: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """``log pi(actions | b)`` of raw ``actions`` ``(n, T)``, counting the steps the generator counts."""
        found = np.zeros(actions.shape[0])
        counted = self.layout.active_mask(actions) if self.mask_unused else np.ones(actions.shape, dtype=bool)

        def replay(step: int, probs: np.ndarray) -> np.ndarray:
            chosen = actions[:, step]
            found[:] += np.where(counted[:, step], np.log(probs[np.arange(len(chosen)), chosen]), 0.0)
            return chosen

        self._run([embeddings], replay)
        return found


def _drawing(rngs: Sequence[np.random.Generator], sizes: Sequence[int]) -> Pick:
    """Draw every row's action from its probabilities: one uniform per row and step, each block of ``sizes``
    rows from its own stream (the comparison itself runs over all rows at once)."""

    def draw(_step: int, probs: np.ndarray) -> np.ndarray:
        cumulative = np.cumsum(probs, axis=1)
        uniform = (
            rngs[0].random((sizes[0], 1))
            if len(rngs) == 1
            else np.concatenate([r.random((n, 1)) for r, n in zip(rngs, sizes, strict=True)])
        )
        drawn = (cumulative < uniform * cumulative[:, -1:]).sum(axis=1)
        return np.minimum(drawn, probs.shape[1] - 1)

    return draw
