"""The budget-conditioned architecture generator f(B; theta) of PNAG (Sec. 3.1).

An LSTM (hidden 64 in the paper) reads the budget embedding as its first input, then the embedding of
each previous decision; with ``budget_input="every"`` (the default) the budget embedding is also
concatenated to every later step's input. The paper says only that the generator takes the budget as
input; the published code feeds it once. Fed once, the budget has to survive 45 LSTM steps: on the
synthetic problem of :mod:`nag.search.synthetic` (1,000 rows, 300 iterations) the high budgets then
collapsed onto one mid-size architecture and the mean accuracy gain over the table's best row was
+0.001 to +0.005, against +0.006 with the budget fed at every step.

One decision per step, in the order of :class:`nag.search.layout.StagedLayout` (per stage its depth,
then per slot expand ratio and kernel: 45 steps for ofa-mbv3). Each step has its own output layer over
that decision's choices (stored as one padded ``(T, C, H)`` tensor so that scoring a whole sequence is
one batched product).

The LSTM's parameters are torch's ``nn.LSTM`` (what run directories store), but it runs through
:mod:`nag.search.recurrence`: the token and budget parts of each step's input projection are lookups in
tables computed once per pass, and the backward pass through time is written out. Sampling and learning:

- :meth:`Generator.sample_raw` / :meth:`Generator.sample_actions`: step by step without gradients, a
  whole batch of budgets x architectures at once (Gumbel-max draws, one per step and sequence);
- :meth:`Generator.forward`: teacher-forced over given actions (e.g. sampled on Ray workers), returning
  the log-probability and entropy with gradients;
- :meth:`Generator.sample_rollout`: both at once for in-process training; the backward pass reuses the
  LSTM states of the sampling pass instead of running the recurrence a second time.

Unused slots (past the sampled depth of their stage): with ``mask_unused`` (default) their decisions
add nothing to the log-probability and the entropy, and the next step reads a dedicated "skip" token
instead of the ignored choice, so the policy's state does not depend on noise. Without it (the published
code's behaviour) every decision counts and is fed back.

The entropy is the sum, over the counted steps of the sequence, of each step's categorical entropy given
the sampled prefix (the usual estimate of the sequence entropy H of Eqn. 3, as in ENAS).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from nag.search.budget_embedding import BudgetEmbedding
from nag.search.layout import StagedLayout
from nag.search.recurrence import Unrolled, lstm_recurrence, to_ifog, unroll

__all__ = ["Generator", "Rollout"]

_MASKED = -1e9  # logit of a padded (non-existent) choice


@dataclass(frozen=True, eq=False)
class Rollout:
    """Log-probabilities and entropies of a batch of decision sequences."""

    log_prob: torch.Tensor  # (n,) log pi(actions | b), over the counted steps
    entropy: torch.Tensor  # (n,) sum of the counted steps' entropies


class Generator(nn.Module):
    """LSTM policy over a staged space's decisions, conditioned on a budget embedding."""

    _valid: torch.Tensor  # (T, C) bool buffer: which padded choices exist at each step
    _offset: torch.Tensor  # (T,) buffer: token offset of each step's decision kind

    def __init__(
        self,
        layout: StagedLayout,
        num_budgets: int,
        *,
        hidden: int = 64,
        embedding_dim: int = 64,
        mask_unused: bool = True,
        budget_input: str = "every",
    ) -> None:
        super().__init__()
        self.layout = layout
        self.mask_unused = mask_unused
        self.budget_every_step = budget_input == "every"
        self.budget_embedding = BudgetEmbedding(num_budgets, embedding_dim)
        self.skip_token = layout.skip_token
        self.tokens = nn.Embedding(self.skip_token + 1, embedding_dim)
        self.lstm = nn.LSTM(embedding_dim * (2 if self.budget_every_step else 1), hidden, batch_first=True)
        counts = torch.from_numpy(layout.choice_counts)
        steps, width = len(counts), int(counts.max())
        self.head_weight = nn.Parameter(torch.empty(steps, width, hidden).uniform_(-(hidden**-0.5), hidden**-0.5))
        self.head_bias = nn.Parameter(torch.zeros(steps, width))
        valid = torch.arange(width).unsqueeze(0) < counts.unsqueeze(1)
        self.register_buffer("_valid", valid, persistent=False)  # (T, C): which padded choices exist
        self.register_buffer("_offset", torch.from_numpy(layout.token_offsets.copy()), persistent=False)  # (T,)
        depths, expands = len(layout.depth_choices), len(layout.expand_choices)
        self._kind_offsets = (0, depths, depths + expands)  # first token of the depth, expand and kernel choices

    def _logits(self, hidden: torch.Tensor, step: int | slice) -> torch.Tensor:
        """Masked logits of step(s): ``(n, H)`` -> ``(n, C)`` for one step, ``(n, T, H)`` -> ``(n, T, C)`` for all."""
        if isinstance(step, int):
            logits = hidden @ self.head_weight[step].T + self.head_bias[step]
            return logits.masked_fill(~self._valid[step], _MASKED)
        logits = torch.einsum("nth,tch->ntc", hidden, self.head_weight) + self.head_bias
        return logits.masked_fill(~self._valid, _MASKED)

    def _tokens(self, actions: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        tokens = actions + self._offset
        if self.mask_unused:
            tokens = torch.where(active, tokens, torch.full_like(tokens, self.skip_token))
        return tokens

    def active(self, actions: torch.Tensor) -> torch.Tensor:
        """``(n, T)`` bool: which decisions of ``actions`` the architecture uses."""
        return torch.as_tensor(self.layout.active_mask(actions.numpy()))

    def _gate_parts(self, budget_embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The LSTM's input projections as lookups, gates in (i, f, o, g) order: step 0's input gates ``(n, 4H)``,
        the budget's part of every later step's (biases included) ``(n, 4H)``, each token's part ``(V, 4H)``,
        and the recurrent weights ``(H, 4H)``."""
        lstm = self.lstm.get_parameter
        weight_ih = to_ifog(lstm("weight_ih_l0"))
        bias = to_ifog(lstm("bias_ih_l0") + lstm("bias_hh_l0"))
        dim = self.tokens.embedding_dim
        token_part = budget_embeddings @ weight_ih[:, :dim].T  # step 0 reads the budget where later steps read a token
        per_step = budget_embeddings @ weight_ih[:, dim:].T + bias if self.budget_every_step else bias.expand_as(token_part)
        token_table = self.tokens.weight @ weight_ih[:, :dim].T
        return token_part + per_step, per_step, token_table, to_ifog(lstm("weight_hh_l0")).T

    def _step_logits(self, hidden: torch.Tensor, step: int) -> torch.Tensor:
        return torch.addmm(self.head_bias[step], hidden, self.head_weight[step].T).masked_fill_(~self._valid[step], _MASKED)

    @torch.no_grad()
    def _sample_unrolled(
        self, budget_embeddings: torch.Tensor, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, Unrolled]:
        """Sample raw actions ``(n, T)`` step by step, keeping the LSTM states for a backward pass."""
        n, layout = budget_embeddings.shape[0], self.layout
        first, per_step, token_table, recurrent = self._gate_parts(budget_embeddings)
        # A later step's input gates are one row of a (budget rows x tokens) table: one lookup per step. Equal
        # consecutive budget rows (the trained budgets come in runs of N) share their block of the table.
        starts_run = torch.ones(n, dtype=torch.bool)
        starts_run[1:] = (per_step[1:] != per_step[:-1]).any(1)
        vocabulary = token_table.shape[0]
        combined = (per_step[starts_run].unsqueeze(1) + token_table.unsqueeze(0)).reshape(-1, token_table.shape[1])
        block = (starts_run.cumsum(0) - 1) * vocabulary  # (n,) first row of each sequence's block
        first_token = {
            kind: block + offset for kind, offset in zip(("depth", "expand", "kernel"), self._kind_offsets, strict=True)
        }
        skip = block + self.skip_token
        steps = layout.steps()
        # Gumbel-max: argmax(logits + G) with G = -log(-log(U)) is a draw from softmax(logits). G carries each
        # step's bias and -1e9 at padded choices (never drawn), so a step's draw is one addmm and an argmax.
        noise = torch.rand(len(steps), n, self._valid.shape[1], generator=generator).clamp_(min=1e-12).log_().neg_().log_().neg_()
        noise.add_(self.head_bias.unsqueeze(1)).masked_fill_(~self._valid.unsqueeze(1), _MASKED)
        heads = self.head_weight.transpose(1, 2)  # (T, H, C)
        actions = torch.empty(len(steps), n, dtype=torch.long)
        slot_depths = torch.arange(layout.slots_per_stage)
        depth_values = torch.tensor(layout.depth_choices)
        used: dict[int, torch.Tensor] = {}  # stage -> (n, slots) bool, once its depth is drawn

        def next_inputs(t: int, hidden: torch.Tensor) -> torch.Tensor:
            action = torch.addmm(noise[t], hidden, heads[t]).argmax(1)
            actions[t] = action
            kind, stage, layer = steps[t]
            index = first_token[kind] + action
            if kind == "depth":
                used[stage] = depth_values[action].unsqueeze(1) > slot_depths
            elif self.mask_unused:
                index = torch.where(used[stage][:, layer], index, skip)
            return combined.index_select(0, index)

        states = unroll(first, recurrent, len(steps), next_inputs)
        next_inputs(len(steps) - 1, states.hidden[-1])  # the last step's action (its input is never needed)
        return actions.T.contiguous(), states

    def sample_raw(self, budget_embeddings: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Sample one sequence per row of ``budget_embeddings`` (``(n, D)``): raw ``(n, T)`` actions, every step."""
        return self._sample_unrolled(budget_embeddings.detach(), generator)[0]

    def sample_actions(self, budget_embeddings: torch.Tensor, *, generator: torch.Generator | None = None) -> np.ndarray:
        """Sampled action rows with inactive steps zeroed (equal architectures give equal rows), as numpy."""
        raw = self.sample_raw(budget_embeddings, generator=generator)
        return torch.where(self.active(raw), raw, 0).numpy()

    def sample_rollout(
        self, budget_embeddings: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, Rollout]:
        """Sample raw actions and return them with their :class:`Rollout` (with gradients): the same as
        :meth:`sample_raw` followed by :meth:`forward`, without running the LSTM a second time."""
        raw, states = self._sample_unrolled(budget_embeddings.detach(), generator)
        return raw, self._rollout(budget_embeddings, raw, states)

    def forward(self, budget_embeddings: torch.Tensor, actions: torch.Tensor) -> Rollout:
        """Log-probability and entropy of raw ``actions`` (``(n, T)``) under the budgets, with gradients."""
        return self._rollout(budget_embeddings, actions, None)

    def _rollout(self, budget_embeddings: torch.Tensor, actions: torch.Tensor, states: Unrolled | None) -> Rollout:
        active = self.active(actions)
        tokens = self._tokens(actions, active)[:, :-1].T  # (T - 1, n): the token each later step reads
        first, per_step, token_table, recurrent = self._gate_parts(budget_embeddings)
        hidden = lstm_recurrence(first, per_step, token_table, recurrent, tokens, states)  # (T, n, H)
        logits = torch.baddbmm(self.head_bias.unsqueeze(1), hidden, self.head_weight.transpose(1, 2))  # (T, n, C)
        log_p = torch.log_softmax(logits.masked_fill(~self._valid.unsqueeze(1), _MASKED), dim=-1)
        counted = active.T.float() if self.mask_unused else torch.ones(tokens.shape[0] + 1, tokens.shape[1])
        step_log_prob = log_p.gather(2, actions.T.unsqueeze(2)).squeeze(2)  # (T, n)
        step_entropy = -(log_p.exp() * log_p).sum(2)
        return Rollout(log_prob=(step_log_prob * counted).sum(0), entropy=(step_entropy * counted).sum(0))
