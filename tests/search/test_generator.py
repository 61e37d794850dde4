"""The decision sequence and the LSTM generator: valid architectures, masking, batching, other spaces."""

from __future__ import annotations

import random
from typing import Any, ClassVar

import numpy as np
import pytest
import torch

from nag.errors import SettingError
from nag.search.generator import Generator
from nag.search.layout import StagedLayout
from nag.space import Block, SearchSpace
from nag.space.ofa_mbv3 import OFAMobileNetV3Space


class NarrowSpace(OFAMobileNetV3Space):
    """A MobileNet-like space with other choices (and an encoding the fast path does not reproduce)."""

    name: ClassVar[str] = "narrow-test"
    depth_choices: ClassVar[tuple[int, ...]] = (2, 3)
    kernel_choices: ClassVar[tuple[int, ...]] = (3, 7)
    expand_choices: ClassVar[tuple[int, ...]] = (4, 6)


def test_layout_of_ofa_mbv3(space: OFAMobileNetV3Space) -> None:
    layout = StagedLayout.for_space(space)
    assert layout.num_steps == 45 and layout.fast_encoding and layout.encoding_size == 120
    steps = layout.steps()
    assert steps[:3] == [("depth", 0, -1), ("expand", 0, 0), ("kernel", 0, 0)] and steps[9] == ("depth", 1, -1)
    archs = space.sample_many(200, seed=4)
    actions = layout.archs_to_actions(archs)
    assert layout.actions_to_archs(space, actions) == archs
    assert np.array_equal(layout.encode_actions(actions).numpy(), np.asarray([space.encode(a) for a in archs], dtype=np.float32))
    assert layout.active_mask(actions).sum(1).tolist() == [5 + 2 * sum(a.depths) for a in archs]


class Unstaged(SearchSpace[Any]):
    """A space that does not describe stages (it delegates everything else to ofa-mbv3)."""

    name: ClassVar[str] = "unstaged-test"
    default_width: ClassVar[float] = 1.2
    default_resolution: ClassVar[int] = 224

    def __init__(self) -> None:
        self.inner = OFAMobileNetV3Space()

    def parse(self, value: Any) -> Any:
        return self.inner.parse(value)

    def format(self, arch: Any) -> str:
        return self.inner.format(arch)

    def sample(self, rng: random.Random) -> Any:
        return self.inner.sample(rng)

    def mutate(self, arch: Any, rng: random.Random, *, prob: float = 0.1) -> Any:
        return self.inner.mutate(arch, rng, prob=prob)

    def crossover(self, first: Any, second: Any, rng: random.Random) -> Any:
        return self.inner.crossover(first, second, rng)

    @property
    def encoding_size(self) -> int:
        return self.inner.encoding_size

    def encode(self, arch: Any) -> list[float]:
        return self.inner.encode(arch)

    def blocks(self, arch: Any, **setting: Any) -> list[Block]:
        return self.inner.blocks(arch, **setting)

    def all_blocks(self, **setting: Any) -> list[Block]:
        return self.inner.all_blocks(**setting)


def test_a_space_without_stages_is_refused() -> None:
    with pytest.raises(SettingError, match=r"the PNAG generator needs a staged .*'unstaged-test' lacks depth_choices"):
        StagedLayout.for_space(Unstaged())


@pytest.mark.parametrize("mask_unused", [True, False])
@pytest.mark.parametrize("budget_input", ["every", "first"])
def test_sampled_architectures_are_valid_and_scored_consistently(
    space: OFAMobileNetV3Space, mask_unused: bool, budget_input: str
) -> None:
    layout = StagedLayout.for_space(space)
    torch.manual_seed(0)
    generator = Generator(layout, 3, mask_unused=mask_unused, budget_input=budget_input)
    embeddings = generator.budget_embedding.trained(torch.tensor([0, 1, 2]).repeat_interleave(50))
    raw = generator.sample_raw(embeddings, generator=torch.Generator().manual_seed(1))
    assert raw.shape == (150, 45)
    archs = layout.actions_to_archs(space, generator.sample_actions(embeddings, generator=torch.Generator().manual_seed(1)))
    assert all(space.parse(space.format(a)) == a for a in archs)  # canonical, valid members of the space
    assert len({space.format(a) for a in archs}) > 100  # an untrained policy is close to uniform
    rollout = generator(embeddings, raw)
    assert rollout.log_prob.shape == (150,) and (rollout.log_prob < 0).all() and (rollout.entropy > 0).all()
    # Changing an unused slot's value changes the log-probability only without masking.
    active = generator.active(raw)
    row = int(torch.nonzero(~active.all(1))[0])
    step = int(torch.nonzero(~active[row])[0])
    changed = raw.clone()
    changed[row, step] = (changed[row, step] + 1) % 3
    again = generator(embeddings[row : row + 1], changed[row : row + 1]).log_prob
    if mask_unused:
        assert torch.allclose(again, rollout.log_prob[row : row + 1])
    else:
        assert not torch.allclose(again, rollout.log_prob[row : row + 1])


def test_log_prob_is_the_probability_of_the_sampled_sequence(space: OFAMobileNetV3Space) -> None:
    # The teacher-forced, fused pass must equal a step-by-step recomputation through the same LSTM.
    layout = StagedLayout.for_space(space)
    torch.manual_seed(3)
    generator = Generator(layout, 2)
    embedding = generator.budget_embedding.trained(torch.tensor([1]))
    raw = generator.sample_raw(embedding, generator=torch.Generator().manual_seed(5))
    active = generator.active(raw)
    total, state = 0.0, None
    x = torch.cat([embedding, embedding], 1).unsqueeze(1)
    with torch.no_grad():
        for t in range(layout.num_steps):
            out, state = generator.lstm(x, state)
            log_p = torch.log_softmax(generator._logits(out[:, 0], t), -1)
            if active[0, t]:
                total += float(log_p[0, raw[0, t]])
            token = raw[:, t] + generator._offset[t] if active[0, t] else torch.tensor([generator.skip_token])
            x = torch.cat([generator.tokens(token), embedding], 1).unsqueeze(1)
        assert generator(embedding, raw).log_prob.item() == pytest.approx(total, abs=1e-4)


def test_another_staged_space_drives_the_generator() -> None:
    narrow = NarrowSpace()
    layout = StagedLayout.for_space(narrow)
    assert layout.num_steps == 45 and not layout.fast_encoding  # its encode() keeps the 3-choice layout
    generator = Generator(layout, 2)
    actions = generator.sample_actions(generator.budget_embedding.trained(torch.zeros(64, dtype=torch.long)))
    archs = layout.actions_to_archs(narrow, actions)
    assert {d for a in archs for d in a.depths} <= {2, 3}
    assert {k for a in archs for k in a.kernels} <= {0, 3, 7} and {e for a in archs for e in a.expands} <= {0, 4, 6}
    encoded = layout.encode_any(narrow, actions)
    assert torch.equal(encoded, torch.tensor([narrow.encode(a) for a in archs]))
    assert layout.archs_to_actions([narrow.parse({"d": [2] * 5, "ks": [7] * 20, "e": [6] * 20})]).max() == 1
