"""The accuracy estimate that ``generate`` reports: a small regression MLP over the architecture encoding.

The evaluator gives scores, not accuracies, and a generated architecture is usually in no table, so a
search also fits this surrogate to the accuracies it was given (table rows, or labels from an accuracy
source) on the training split, and reports its error on the held-out split.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from tqdm import tqdm

from nag.search.config import SurrogateConfig
from nag.search.optim import adam

__all__ = ["AccuracySurrogate", "SurrogateReport", "fit_surrogate"]


@dataclass(frozen=True)
class SurrogateReport:
    """Held-out error of the surrogate."""

    heldout_mae: float  # mean absolute error on held-out rows, accuracy fraction
    heldout_rmse: float  # root-mean-square error on held-out rows
    heldout_rank_corr: float  # Spearman rank correlation of estimate and truth on held-out rows


class AccuracySurrogate(nn.Module):
    """MLP(encoding -> hidden -> hidden -> 1) plus the training mean: predicts accuracy fractions."""

    mean: torch.Tensor  # buffer: mean training accuracy
    scale: torch.Tensor  # buffer: standard deviation of the training accuracies

    def __init__(self, encoding_size: int, *, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(encoding_size, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1)
        )
        self.register_buffer("mean", torch.zeros(()))
        self.register_buffer("scale", torch.ones(()))

    def forward(self, encodings: torch.Tensor) -> torch.Tensor:
        return self.mean + self.scale * self.net(encodings).squeeze(-1)


def _ranks(values: torch.Tensor) -> torch.Tensor:
    ranks = torch.empty_like(values)
    ranks[values.argsort()] = torch.arange(len(values), dtype=values.dtype)
    return ranks


def fit_surrogate(
    model: AccuracySurrogate,
    train: tuple[torch.Tensor, torch.Tensor],
    heldout: tuple[torch.Tensor, torch.Tensor],
    config: SurrogateConfig,
    *,
    seed: int,
    progress: bool = False,
) -> SurrogateReport:
    """Fit by Adam on mean squared error (targets standardised); deterministic for a given ``seed``."""
    encodings, accuracy = train
    accuracy = accuracy.float()
    model.mean.fill_(float(accuracy.mean()))
    model.scale.fill_(float(accuracy.std()) if len(accuracy) > 1 and float(accuracy.std()) > 0 else 1.0)
    generator = torch.Generator().manual_seed(seed)
    optimiser = adam(model.parameters(), lr=config.lr)
    model.train()
    for _ in tqdm(range(config.steps), desc="accuracy surrogate", disable=not progress, leave=False):
        batch = torch.randint(len(accuracy), (config.batch_size,), generator=generator)
        loss = ((model(encodings[batch]) - accuracy[batch]) / model.scale).pow(2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    with torch.no_grad():
        estimate, truth = model(heldout[0]), heldout[1].float()
    if len(truth) < 2:
        return SurrogateReport(float("nan"), float("nan"), float("nan"))
    error = estimate - truth
    rank_corr = torch.corrcoef(torch.stack([_ranks(estimate), _ranks(truth)]))[0, 1]
    return SurrogateReport(float(error.abs().mean()), float(error.pow(2).mean().sqrt()), float(rank_corr))
