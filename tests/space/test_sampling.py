"""Uniform sampling, mutation, crossover and the learning encoding of ofa-mbv3."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nag.errors import ArchitectureError, SettingError
from nag.space.ofa_mbv3 import MBV3Arch, OFAMobileNetV3Space
from tests.conftest import PNAG_80_MOBILE


def test_sampling_is_seeded(space: OFAMobileNetV3Space) -> None:
    assert space.sample_many(20, seed=7) == space.sample_many(20, seed=7)
    assert space.sample_many(20, seed=7) != space.sample_many(20, seed=8)
    with pytest.raises(SettingError):
        space.sample_many(-1)


def test_sampling_is_uniform_per_choice(space: OFAMobileNetV3Space) -> None:
    archs = space.sample_many(6000, seed=0)
    depths = Counter(d for a in archs for d in a.depths)  # 30,000 draws
    kernels = Counter(a.kernels[s] for a in archs for s in a.active_slots())
    expands = Counter(a.expands[s] for a in archs for s in a.active_slots())
    for counts in (depths, kernels, expands):
        total = sum(counts.values())
        assert len(counts) == 3
        for count in counts.values():  # within 5 standard deviations of 1/3
            assert abs(count / total - 1 / 3) < 5 * (2 / 9 / total) ** 0.5
    # every slot's use follows its stage's depth: slot 2 of a stage is used with probability 2/3, slot 3 with 1/3
    third_slot_used = sum(a.kernels[2] != 0 for a in archs) / len(archs)
    fourth_slot_used = sum(a.kernels[3] != 0 for a in archs) / len(archs)
    assert abs(third_slot_used - 2 / 3) < 0.03 and abs(fourth_slot_used - 1 / 3) < 0.03


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32), st.floats(0.0, 1.0))
def test_mutation_gives_valid_architectures(seed: int, prob: float) -> None:
    space = OFAMobileNetV3Space()
    rng = random.Random(seed)
    parent = space.sample(rng)
    child = space.mutate(parent, rng, prob=prob)
    assert space.parse(space.format(child)) == child


def test_mutation_rate(space: OFAMobileNetV3Space) -> None:
    rng = random.Random(1)
    parent = space.parse(PNAG_80_MOBILE)
    assert space.mutate(parent, rng, prob=0.0) == parent
    changed_depths = 0
    trials = 4000
    for _ in range(trials):
        child = space.mutate(parent, rng, prob=0.3)
        changed_depths += sum(a != b for a, b in zip(parent.depths, child.depths, strict=False))
    # a depth is resampled with probability 0.3 and then differs with probability 2/3
    assert abs(changed_depths / (trials * 5) - 0.3 * 2 / 3) < 0.015
    with pytest.raises(ArchitectureError, match="mutation probability"):
        space.mutate(parent, rng, prob=1.5)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32))
def test_crossover_takes_each_choice_from_a_parent(seed: int) -> None:
    space = OFAMobileNetV3Space()
    rng = random.Random(seed)
    first, second = space.sample(rng), space.sample(rng)
    child = space.crossover(first, second, rng)
    for stage in range(5):
        assert child.depths[stage] in (first.depths[stage], second.depths[stage])
    for slot in child.active_slots():
        assert child.kernels[slot] in {p.kernels[slot] for p in (first, second)} - {0}
        assert child.expands[slot] in {p.expands[slot] for p in (first, second)} - {0}
    assert space.crossover(first, first, rng) == first


def _decode(space: OFAMobileNetV3Space, vector: list[float]) -> MBV3Arch:
    """Invert the encoding (independent reading of its documented layout)."""
    kernels, expands = [0] * 20, [0] * 20
    for slot in range(20):
        k_hot = vector[slot * 3 : slot * 3 + 3]
        e_hot = vector[60 + slot * 3 : 60 + slot * 3 + 3]
        if any(k_hot):
            kernels[slot] = (3, 5, 7)[k_hot.index(1.0)]
            expands[slot] = (3, 4, 6)[e_hot.index(1.0)]
    depths = [sum(1 for layer in range(4) if kernels[stage * 4 + layer]) for stage in range(5)]
    return MBV3Arch(depths=tuple(depths), kernels=tuple(kernels), expands=tuple(expands))


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32))
def test_encoding_is_one_hot_per_used_slot_and_invertible(seed: int) -> None:
    space = OFAMobileNetV3Space()
    arch = space.sample(random.Random(seed))
    vector = space.encode(arch)
    assert len(vector) == space.encoding_size == 120
    assert set(vector) <= {0.0, 1.0}
    assert sum(vector) == 2 * len(arch.active_slots())
    assert _decode(space, vector) == arch


def test_encoding_layout_on_a_known_architecture(space: OFAMobileNetV3Space) -> None:
    vector = space.encode(space.parse(PNAG_80_MOBILE))
    assert vector[0:3] == [1.0, 0.0, 0.0]  # slot 0 kernel 3
    assert vector[15:18] == [0.0, 1.0, 0.0]  # slot 5 kernel 5
    assert vector[6:12] == [0.0] * 6  # slots 2 and 3 unused
    assert vector[60 + 12 : 60 + 15] == [0.0, 1.0, 0.0]  # slot 4 expand 4
    assert vector[60 + 13 * 3 : 60 + 14 * 3] == [0.0, 0.0, 1.0]  # slot 13 expand 6
