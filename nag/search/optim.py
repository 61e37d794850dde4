"""Adam for the search's small networks: torch's fused CPU kernel, called without ``torch.optim``.

``torch.optim``'s step wrapper imports ``torch._dynamo`` on the first step of a process, which took about
a second of a 2-core machine's CPU in every ``nag search``, for nothing the search uses. :class:`Adam`
makes the same update as ``torch.optim.Adam(params, lr=..., weight_decay=..., fused=True)`` (L2 weight
decay added to the gradient, bias-corrected moments; checked equal to the bit in the tests) by calling the
kernel that optimiser calls, once per step for all tensors. Where that kernel is missing (another torch),
:func:`adam` returns ``torch.optim.Adam`` itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import torch

__all__ = ["Adam", "Optimiser", "adam"]


class Optimiser(Protocol):
    """What the search's training loops use of an optimiser."""

    def zero_grad(self) -> None: ...

    def step(self) -> object: ...


class Adam:
    """Adam with torch's default betas and eps, on CPU tensors; parameters without a gradient are skipped."""

    def __init__(self, params: Iterable[torch.nn.Parameter], *, lr: float, weight_decay: float = 0.0) -> None:
        self.params = list(params)
        self.lr, self.weight_decay = lr, weight_decay
        self.betas, self.eps = (0.9, 0.999), 1e-8
        self._state: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}  # moments and step count

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        live: list[torch.Tensor] = [p for p in self.params if p.grad is not None]
        if not live:
            return
        for p in live:
            if id(p) not in self._state:
                self._state[id(p)] = (torch.zeros_like(p), torch.zeros_like(p), torch.zeros((), dtype=torch.float32))
        first, second, steps = zip(*(self._state[id(p)] for p in live), strict=True)
        torch._foreach_add_(list(steps), 1)
        torch._fused_adam_(
            live,
            [p.grad for p in live],  # type: ignore[misc]
            list(first),
            list(second),
            [],
            list(steps),
            lr=self.lr,
            beta1=self.betas[0],
            beta2=self.betas[1],
            weight_decay=self.weight_decay,
            eps=self.eps,
            amsgrad=False,
            maximize=False,
        )


def adam(params: Iterable[torch.nn.Parameter], *, lr: float, weight_decay: float = 0.0) -> Optimiser:
    """:class:`Adam` where torch has the fused kernel, else ``torch.optim.Adam``."""
    if hasattr(torch, "_fused_adam_") and hasattr(torch, "_foreach_add_"):
        return Adam(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
