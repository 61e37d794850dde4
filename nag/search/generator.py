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

Two passes, so that sampling can happen anywhere (in-process or on Ray workers) and learning in one place:

- :meth:`Generator.sample_actions`: step by step without gradients, a whole batch of budgets x
  architectures at once;
- :meth:`Generator.forward`: teacher-forced over given actions with the fused LSTM, returning the
  log-probability and entropy with gradients.

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

    def _with_budget(self, inputs: torch.Tensor, budget_embeddings: torch.Tensor) -> torch.Tensor:
        """Step inputs ``(n, t, D)``, with the budget embedding appended to each under ``budget_input="every"``."""
        if not self.budget_every_step:
            return inputs
        return torch.cat([inputs, budget_embeddings.unsqueeze(1).expand_as(inputs)], dim=2)

    def active(self, actions: torch.Tensor) -> torch.Tensor:
        """``(n, T)`` bool: which decisions of ``actions`` the architecture uses."""
        return torch.as_tensor(self.layout.active_mask(actions.numpy()))

    @torch.no_grad()
    def sample_raw(self, budget_embeddings: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Sample one sequence per row of ``budget_embeddings`` (``(n, D)``): raw ``(n, T)`` actions, every step."""
        n, layout = budget_embeddings.shape[0], self.layout
        depth_steps = {layout.depth_step(s): s for s in range(layout.num_stages)}
        depth_values = torch.tensor(layout.depth_choices)
        depths = torch.zeros(n, layout.num_stages, dtype=torch.long)
        x, state = self._with_budget(budget_embeddings.unsqueeze(1), budget_embeddings), None
        chosen = []
        for t, (kind, stage, layer) in enumerate(layout.steps()):
            out, state = self.lstm(x, state)
            probs = torch.softmax(self._logits(out[:, 0], t), dim=-1)
            action = torch.multinomial(probs, 1, generator=generator).squeeze(1)
            if t in depth_steps:
                depths[:, depth_steps[t]] = depth_values[action]
            active = torch.ones(n, dtype=torch.bool) if kind == "depth" else depths[:, stage] > layer
            token = action + self._offset[t]
            if self.mask_unused:
                token = torch.where(active, token, torch.full_like(token, self.skip_token))
            x = self._with_budget(self.tokens(token).unsqueeze(1), budget_embeddings)
            chosen.append(action)
        return torch.stack(chosen, 1)

    def sample_actions(self, budget_embeddings: torch.Tensor, *, generator: torch.Generator | None = None) -> np.ndarray:
        """Sampled action rows with inactive steps zeroed (equal architectures give equal rows), as numpy."""
        raw = self.sample_raw(budget_embeddings, generator=generator)
        return torch.where(self.active(raw), raw, 0).numpy()

    def forward(self, budget_embeddings: torch.Tensor, actions: torch.Tensor) -> Rollout:
        """Log-probability and entropy of raw ``actions`` (``(n, T)``) under the budgets, with gradients."""
        active = self.active(actions)
        tokens = self._tokens(actions, active)[:, :-1]
        inputs = torch.cat([budget_embeddings.unsqueeze(1), self.tokens(tokens)], dim=1)  # (n, T, D)
        hidden, _ = self.lstm(self._with_budget(inputs, budget_embeddings))
        log_p = torch.log_softmax(self._logits(hidden, slice(None)), dim=-1)  # (n, T, C)
        counted = active.float() if self.mask_unused else torch.ones_like(active, dtype=torch.float32)
        step_log_prob = log_p.gather(2, actions.unsqueeze(2)).squeeze(2)
        step_entropy = -(log_p.exp() * log_p).sum(2)
        return Rollout(log_prob=(step_log_prob * counted).sum(1), entropy=(step_entropy * counted).sum(1))
