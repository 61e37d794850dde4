"""The search's Adam makes torch's fused Adam update, to the bit, without importing torch._dynamo."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from nag.search.optim import Adam


@pytest.mark.parametrize("weight_decay", [0.0, 3e-5])
def test_same_update_as_torch_fused_adam(weight_decay: float) -> None:
    torch.manual_seed(0)
    ours, theirs = torch.nn.Linear(5, 3), torch.nn.Linear(5, 3)
    theirs.load_state_dict(ours.state_dict())
    unused = torch.nn.Parameter(torch.ones(2))  # never gets a gradient: skipped by both
    mine = Adam([*ours.parameters(), unused], lr=0.01, weight_decay=weight_decay)
    reference = torch.optim.Adam([*theirs.parameters(), unused], lr=0.01, weight_decay=weight_decay, fused=True)
    for step in range(20):
        x = torch.randn(8, 5, generator=torch.Generator().manual_seed(step))
        for model, optimiser in ((ours, mine), (theirs, reference)):
            optimiser.zero_grad()
            model(x).pow(2).mean().backward()
            optimiser.step()
    for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(unused, torch.ones(2)) and not torch.equal(ours.weight, theirs.weight.new_zeros(3, 5))


def test_a_training_step_does_not_import_dynamo() -> None:
    code = (
        "import sys, torch\n"
        "from nag.search.optim import adam\n"
        "layer = torch.nn.Linear(3, 1)\n"
        "optimiser = adam(layer.parameters(), lr=0.1)\n"
        "layer(torch.ones(2, 3)).sum().backward()\n"
        "optimiser.step()\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "False"
