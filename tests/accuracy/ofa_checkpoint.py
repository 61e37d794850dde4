"""A checkpoint in OFA's accuracy-predictor layout (128 inputs, three hidden layers of 400), seeded, whose
outputs sit near 0.75: what the tests save where a user would give OFA's ``acc_predictor.pth``."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


def ofa_mlp() -> nn.Sequential:
    """The network, seeded; the last layer scaled down so that its outputs sit near 0.75."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Linear(128, 400), nn.ReLU(), nn.Linear(400, 400), nn.ReLU(), nn.Linear(400, 400), nn.ReLU(), nn.Linear(400, 1)
    )
    with torch.no_grad():
        net[6].bias.fill_(0.75)  # type: ignore[operator]
        net[6].weight.mul_(0.01)  # type: ignore[operator]
    return net


def save_ofa_checkpoint(path: Path) -> Path:
    """:func:`ofa_mlp`'s state dict saved at ``path``; returns it."""
    torch.save(ofa_mlp().state_dict(), path)
    return path
