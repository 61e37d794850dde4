"""The OFA MobileNetV3 search space (``ofa-mbv3``), the space of the PNAG paper and of Once-for-All.

Architecture grammar -- the canonical string, an architecture's identity and its table key::

    ARCH    := DEPTHS ":" KERNELS ":" EXPANDS
    DEPTHS  := 5 comma-separated depths, one per stage, each in {2, 3, 4}
    KERNELS := 20 comma-separated kernel sizes, one per slot, each in {3, 5, 7}, or 0 for an unused slot
    EXPANDS := 20 comma-separated expand ratios, one per slot, each in {3, 4, 6}, or 0 for an unused slot

Slot ``stage * 4 + layer`` holds layer ``layer`` of stage ``stage`` (both from 0); a stage of depth d uses
its first d slots and the others are 0. Example (PNAG-80-Mobile)::

    2,3,3,3,3:3,3,0,0,3,5,3,0,3,3,5,0,3,3,5,0,5,5,7,0:3,3,0,0,4,3,3,0,4,4,4,0,4,6,6,0,6,6,3,0

OFA's dict form ``{"ks": [20], "e": [20], "d": [5]}`` is accepted too; its values past a stage's depth
are ignored (OFA keeps arbitrary values there).

Network (channels at width 1.2; all widths are ``make_divisible(base * width, 8)``)::

    stem        3x3 conv, stride 2, BN, h-swish                        3 -> 24
    first block MBConv expand 1, 3x3 depthwise, stride 1, ReLU, skip  24 -> 24
    stage 1..5  MBConv blocks, outputs 32, 48, 96, 136, 192; first block of a stage has the stage's
                stride (2, 2, 2, 1, 2), the rest stride 1 with an identity skip; activation ReLU, ReLU,
                h-swish, h-swish, h-swish; squeeze-excitation in stages 2, 4 and 5
    Conv_1      1x1 conv, BN, h-swish                                 192 -> 1152
    AvgPool2D   global average pooling
    Conv_2      1x1 conv, no BN, no bias, h-swish (feature mix)        1152 -> 1536
    Logits      linear with bias                                       1536 -> classes
"""

from __future__ import annotations

import functools
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from nag.errors import ArchitectureError
from nag.errors import show_value as show
from nag.space._base import SearchSpace
from nag.space._parse import MAX_INT_DIGITS, check_arch_mapping, check_arch_text, load_arch_json, parse_int
from nag.space.blocks import Activation, Block, ConvBlock, LinearBlock, MBConvBlock, PoolBlock, conv_output_size, make_divisible

__all__ = ["MBV3Arch", "OFAMobileNetV3Space", "StageSpec"]

NUM_STAGES = 5
SLOTS_PER_STAGE = 4
NUM_SLOTS = NUM_STAGES * SLOTS_PER_STAGE
DEPTH_CHOICES = (2, 3, 4)
KERNEL_CHOICES = (3, 5, 7)
EXPAND_CHOICES = (3, 4, 6)
OFA_DICT_IGNORED_KEYS = frozenset({"r", "wid"})  # present in OFA's net configs; not part of the architecture


@dataclass(frozen=True)
class StageSpec:
    """One searchable stage of the space (before the width multiplier)."""

    base_width: int  # output channels at width 1.0
    stride: int  # stride of the stage's first block
    act: Activation
    se: bool


# Once-for-All's MobileNetV3 layout (ofa_mbv3_d234_e346_k357).
STEM_BASE_WIDTH = 16
FIRST_BLOCK_BASE_WIDTH = 16
FINAL_EXPAND_BASE_WIDTH = 960
FEATURE_MIX_BASE_WIDTH = 1280
STAGES = (
    StageSpec(base_width=24, stride=2, act="relu", se=False),
    StageSpec(base_width=40, stride=2, act="relu", se=True),
    StageSpec(base_width=80, stride=2, act="h_swish", se=False),
    StageSpec(base_width=112, stride=1, act="h_swish", se=True),
    StageSpec(base_width=160, stride=2, act="h_swish", se=True),
)


def _slot_name(slot: int) -> str:
    return f"slot {slot} (stage {slot // SLOTS_PER_STAGE + 1} layer {slot % SLOTS_PER_STAGE + 1})"


def _choices(values: Sequence[int]) -> str:
    return ", ".join(str(v) for v in values)


@dataclass(frozen=True)
class MBV3Arch:
    """One architecture of ``ofa-mbv3``; validated on construction, unused slots are 0.

    ``str(arch)`` is the canonical string (see the module docstring).
    """

    depths: tuple[int, ...]  # 5 stage depths, each in DEPTH_CHOICES
    kernels: tuple[int, ...]  # 20 slot kernel sizes, KERNEL_CHOICES inside a stage's depth, 0 past it
    expands: tuple[int, ...]  # 20 slot expand ratios, EXPAND_CHOICES inside a stage's depth, 0 past it

    def __post_init__(self) -> None:
        _check_lengths(self.depths, self.kernels, self.expands)
        for stage, depth in enumerate(self.depths):
            if depth not in DEPTH_CHOICES:
                raise ArchitectureError(f"depth of stage {stage + 1} is {depth}; choose from {_choices(DEPTH_CHOICES)}")
        for slot in range(NUM_SLOTS):
            used = slot % SLOTS_PER_STAGE < self.depths[slot // SLOTS_PER_STAGE]
            for what, value, choices in (
                ("kernel", self.kernels[slot], KERNEL_CHOICES),
                ("expand ratio", self.expands[slot], EXPAND_CHOICES),
            ):
                if used and value not in choices:
                    hint = " (a slot inside the stage's depth cannot be 0)" if value == 0 else ""
                    raise ArchitectureError(f"{what} of {_slot_name(slot)} is {value}{hint}; choose from {_choices(choices)}")
                if not used and value != 0:
                    raise ArchitectureError(
                        f"{what} of {_slot_name(slot)} is {value}, but stage {slot // SLOTS_PER_STAGE + 1} has "
                        f"depth {self.depths[slot // SLOTS_PER_STAGE]}; slots past a stage's depth must be 0"
                    )

    def __str__(self) -> str:
        return ":".join(",".join(str(v) for v in part) for part in (self.depths, self.kernels, self.expands))

    def active_slots(self) -> list[int]:
        """Indices of the used slots, in network order."""
        return [stage * SLOTS_PER_STAGE + layer for stage, depth in enumerate(self.depths) for layer in range(depth)]

    def to_ofa_dict(self) -> dict[str, list[int]]:
        """OFA's dict form. Unused slots hold OFA's defaults (smallest choices), which OFA ignores."""
        return {
            "ks": [k or KERNEL_CHOICES[0] for k in self.kernels],
            "e": [e or EXPAND_CHOICES[0] for e in self.expands],
            "d": list(self.depths),
        }


def _check_lengths(depths: Sequence[int], kernels: Sequence[int], expands: Sequence[int]) -> None:
    for what, values, expected in (
        ("depths", depths, NUM_STAGES),
        ("kernels", kernels, NUM_SLOTS),
        ("expands", expands, NUM_SLOTS),
    ):
        if len(values) != expected:
            raise ArchitectureError(f"{what}: expected {expected} values, got {len(values)}")
        for position, value in enumerate(values):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ArchitectureError(f"{what}: value {show(value)} at position {position + 1} is not an integer")
            if not -(10**MAX_INT_DIGITS) < value < 10**MAX_INT_DIGITS:
                raise ArchitectureError(
                    f"{what}: value {show(value)} at position {position + 1} has over {MAX_INT_DIGITS} digits; not a choice of the space"
                )


def _parse_ints(section: str, what: str, expected: int) -> tuple[int, ...]:
    tokens = section.split(",")
    if len(tokens) != expected:
        raise ArchitectureError(f"{what}: expected {expected} comma-separated values, got {len(tokens)} in {show(section)}")
    return tuple(parse_int(token, what, position + 1) for position, token in enumerate(tokens))


# A search reads each of a table's architectures more than once (loading it, then labelling); the parsed object is
# immutable, so equal strings share one. Bounded: a 16,000-row table fits, a million strings do not grow memory.
@functools.lru_cache(maxsize=1 << 15)
def _parse_string(text: str) -> MBV3Arch:
    stripped = check_arch_text(text)
    if stripped.startswith("{"):
        return _parse_dict(load_arch_json(stripped))
    sections = stripped.split(":")
    if len(sections) != 3:
        raise ArchitectureError(
            f"architecture must be 'depths:kernels:expands' (3 sections separated by ':'), got {len(sections)} "
            f"section(s) in {show(text, 120)}; e.g. 2,2,2,2,2:3,3,0,0,...:3,3,0,0,..."
        )
    depths = _parse_ints(sections[0], "depths", NUM_STAGES)
    kernels = _parse_ints(sections[1], "kernels", NUM_SLOTS)
    expands = _parse_ints(sections[2], "expands", NUM_SLOTS)
    return MBV3Arch(depths=depths, kernels=kernels, expands=expands)


def _parse_dict(value: Any) -> MBV3Arch:
    if not isinstance(value, Mapping):
        raise ArchitectureError(f"an architecture dict must be a mapping with keys 'ks', 'e', 'd'; got {type(value).__name__}")
    check_arch_mapping(value)
    unknown = set(value) - {"ks", "e", "d"} - OFA_DICT_IGNORED_KEYS
    missing = {"ks", "e", "d"} - set(value)
    if unknown or missing:
        raise ArchitectureError(
            "an architecture dict needs exactly the keys 'ks' (20 kernels), 'e' (20 expand ratios), 'd' (5 depths)"
            + (f"; missing {sorted(missing)}" if missing else "")
            + (f"; unknown {sorted(k[:40] if isinstance(k, str) else show(k, 40) for k in unknown)}" if unknown else "")
        )
    lists = []
    for key in ("d", "ks", "e"):
        if not isinstance(value[key], (list, tuple)):
            raise ArchitectureError(f"'{key}' must be a list, got {type(value[key]).__name__}")
        lists.append(list(value[key]))
    depths, kernels, expands = lists
    _check_lengths(depths, kernels, expands)
    for stage, depth in enumerate(depths):  # checked here too, as the zeroing below reads the depths
        if depth not in DEPTH_CHOICES:
            raise ArchitectureError(f"depth of stage {stage + 1} is {depth}; choose from {_choices(DEPTH_CHOICES)}")
    for slot in range(NUM_SLOTS):
        if slot % SLOTS_PER_STAGE >= depths[slot // SLOTS_PER_STAGE]:
            kernels[slot] = expands[slot] = 0
    return MBV3Arch(depths=tuple(depths), kernels=tuple(kernels), expands=tuple(expands))


class OFAMobileNetV3Space(SearchSpace[MBV3Arch]):
    """``ofa-mbv3``: 5 stages of depth 2-4, kernels 3/5/7, expand ratios 3/4/6 (about 2.2e19 networks)."""

    name: ClassVar[str] = "ofa-mbv3"
    default_width: ClassVar[float] = 1.2
    default_resolution: ClassVar[int] = 224
    depth_choices: ClassVar[tuple[int, ...]] = DEPTH_CHOICES
    kernel_choices: ClassVar[tuple[int, ...]] = KERNEL_CHOICES
    expand_choices: ClassVar[tuple[int, ...]] = EXPAND_CHOICES
    num_stages: ClassVar[int] = NUM_STAGES
    slots_per_stage: ClassVar[int] = SLOTS_PER_STAGE

    # -- identity -----------------------------------------------------------------------------------
    def parse(self, value: str | Mapping[str, Any]) -> MBV3Arch:
        if isinstance(value, MBV3Arch):
            return value
        if isinstance(value, str):
            return _parse_string(value)
        if isinstance(value, Mapping):
            return _parse_dict(value)
        raise ArchitectureError(
            f"an architecture is a 'depths:kernels:expands' string or an OFA dict, got {type(value).__name__}"
        )

    def format(self, arch: MBV3Arch) -> str:
        return str(arch)

    # -- sampling and evolution ----------------------------------------------------------------------
    def sample(self, rng: random.Random) -> MBV3Arch:
        """Uniform as OFA samples: each stage's depth, then each used slot's kernel and expand ratio."""
        depths = tuple(rng.choice(DEPTH_CHOICES) for _ in range(NUM_STAGES))
        kernels = [0] * NUM_SLOTS
        expands = [0] * NUM_SLOTS
        for stage, depth in enumerate(depths):
            for layer in range(depth):
                slot = stage * SLOTS_PER_STAGE + layer
                kernels[slot] = rng.choice(KERNEL_CHOICES)
                expands[slot] = rng.choice(EXPAND_CHOICES)
        return MBV3Arch(depths=depths, kernels=tuple(kernels), expands=tuple(expands))

    def mutate(self, arch: MBV3Arch, rng: random.Random, *, prob: float = 0.1) -> MBV3Arch:
        """OFA's evolutionary mutation: resample each depth, kernel and expand ratio with probability ``prob``.

        A slot that a deeper stage newly uses gets uniform values (OFA keeps uniform values there anyway).
        """
        if not 0.0 <= prob <= 1.0:
            raise ArchitectureError(f"mutation probability must be in [0, 1], got {prob}")
        kernels = [k or rng.choice(KERNEL_CHOICES) for k in arch.kernels]
        expands = [e or rng.choice(EXPAND_CHOICES) for e in arch.expands]
        for slot in range(NUM_SLOTS):
            if rng.random() < prob:
                kernels[slot] = rng.choice(KERNEL_CHOICES)
        for slot in range(NUM_SLOTS):
            if rng.random() < prob:
                expands[slot] = rng.choice(EXPAND_CHOICES)
        depths = [rng.choice(DEPTH_CHOICES) if rng.random() < prob else d for d in arch.depths]
        return _from_full(depths, kernels, expands)

    def crossover(self, first: MBV3Arch, second: MBV3Arch, rng: random.Random) -> MBV3Arch:
        """OFA's uniform crossover: every depth, kernel and expand ratio from either parent.

        A used slot of the child takes its values from a parent that uses that slot.
        """
        depths = [rng.choice(pair) for pair in zip(first.depths, second.depths, strict=False)]
        kernels, expands = [0] * NUM_SLOTS, [0] * NUM_SLOTS
        for slot in range(NUM_SLOTS):
            if slot % SLOTS_PER_STAGE >= depths[slot // SLOTS_PER_STAGE]:
                continue
            donors = [parent for parent in (first, second) if parent.kernels[slot]]
            kernels[slot] = rng.choice(donors).kernels[slot]
            expands[slot] = rng.choice(donors).expands[slot]
        return MBV3Arch(depths=tuple(depths), kernels=tuple(kernels), expands=tuple(expands))

    # -- learning -----------------------------------------------------------------------------------
    @property
    def encoding_size(self) -> int:
        return NUM_SLOTS * (len(KERNEL_CHOICES) + len(EXPAND_CHOICES))

    def encode(self, arch: MBV3Arch) -> list[float]:
        """One-hot kernel per slot (3 x 20, order 3/5/7), then one-hot expand per slot (3 x 20, order 3/4/6).

        Unused slots are all-zero; depth is implied by them. This is the 120-dim encoding of the PNAG code
        and the first 120 features of OFA's accuracy predictor.
        """
        vector = [0.0] * self.encoding_size
        offset = NUM_SLOTS * len(KERNEL_CHOICES)
        for slot in arch.active_slots():
            vector[slot * len(KERNEL_CHOICES) + KERNEL_CHOICES.index(arch.kernels[slot])] = 1.0
            vector[offset + slot * len(EXPAND_CHOICES) + EXPAND_CHOICES.index(arch.expands[slot])] = 1.0
        return vector

    # -- blocks -------------------------------------------------------------------------------------
    def channels(self, width: float) -> dict[str, Any]:
        """Channel counts at a width multiplier: stem, first block, stages (list), final expand, feature mix."""
        return {
            "stem": make_divisible(STEM_BASE_WIDTH * width),
            "first_block": make_divisible(FIRST_BLOCK_BASE_WIDTH * width),
            "stages": [make_divisible(stage.base_width * width) for stage in STAGES],
            "final_expand": make_divisible(FINAL_EXPAND_BASE_WIDTH * width),
            "feature_mix": make_divisible(FEATURE_MIX_BASE_WIDTH * width),
        }

    def _head(self, channels: dict[str, Any], resolution: int) -> list[Block]:
        stem = ConvBlock(
            name="Conv", in_size=resolution, in_channels=3, out_channels=channels["stem"], kernel=3, stride=2, act="h_swish"
        )
        first = MBConvBlock(
            in_size=stem.out_size, in_channels=channels["stem"], out_channels=channels["first_block"],
            expand_ratio=1, kernel=3, stride=1, se=False, act="relu",
        )  # fmt: skip
        return [stem, first]

    def _tail(self, channels: dict[str, Any], size: int, num_classes: int) -> list[Block]:
        final = channels["final_expand"]
        return [
            ConvBlock(name="Conv_1", in_size=size, in_channels=channels["stages"][-1], out_channels=final, kernel=1, stride=1, act="h_swish"),
            PoolBlock(in_size=size, channels=final),
            ConvBlock(
                name="Conv_2", in_size=1, in_channels=final, out_channels=channels["feature_mix"], kernel=1, stride=1,
                act="h_swish", batch_norm=False,
            ),
            LinearBlock(in_features=channels["feature_mix"], out_features=num_classes),
        ]  # fmt: skip

    def blocks(
        self, arch: MBV3Arch, *, width: float | None = None, resolution: int | None = None, num_classes: int | None = None
    ) -> list[Block]:
        width, resolution, num_classes = self.resolve_setting(width=width, resolution=resolution, num_classes=num_classes)
        channels = self.channels(width)
        network = self._head(channels, resolution)
        size, in_channels = network[-1].out_size, channels["first_block"]  # type: ignore[union-attr]
        for stage_index, (stage, out_channels) in enumerate(zip(STAGES, channels["stages"], strict=False)):
            for layer in range(arch.depths[stage_index]):
                slot = stage_index * SLOTS_PER_STAGE + layer
                block = MBConvBlock(
                    in_size=size, in_channels=in_channels, out_channels=out_channels, expand_ratio=arch.expands[slot],
                    kernel=arch.kernels[slot], stride=stage.stride if layer == 0 else 1, se=stage.se, act=stage.act,
                )  # fmt: skip
                network.append(block)
                size, in_channels = block.out_size, out_channels
        return network + self._tail(channels, size, num_classes)

    def all_blocks(
        self, *, width: float | None = None, resolution: int | None = None, num_classes: int | None = None
    ) -> list[Block]:
        """Stem, first block, then per stage its first and later blocks for every (kernel, expand), then the tail.

        96 blocks for every setting (2 + 5 x 2 x 9 + 4), as in OFA's published tables.
        """
        width, resolution, num_classes = self.resolve_setting(width=width, resolution=resolution, num_classes=num_classes)
        channels = self.channels(width)
        found = self._head(channels, resolution)
        size, in_channels = found[-1].out_size, channels["first_block"]  # type: ignore[union-attr]
        for stage, out_channels in zip(STAGES, channels["stages"], strict=False):
            out_size = conv_output_size(size, stage.stride)
            for first_layer in (True, False):
                for kernel in KERNEL_CHOICES:
                    for expand in EXPAND_CHOICES:
                        found.append(
                            MBConvBlock(
                                in_size=size if first_layer else out_size,
                                in_channels=in_channels if first_layer else out_channels,
                                out_channels=out_channels,
                                expand_ratio=expand,
                                kernel=kernel,
                                stride=stage.stride if first_layer else 1,
                                se=stage.se,
                                act=stage.act,
                            )
                        )
            size, in_channels = out_size, out_channels
        found += self._tail(channels, size, num_classes)
        unique = {block.key: block for block in found}
        return list(unique.values())


def _from_full(depths: Sequence[int], kernels: Sequence[int], expands: Sequence[int]) -> MBV3Arch:
    """An architecture from full 20-slot lists (OFA's representation); values past the depths are dropped."""
    return _parse_dict({"d": list(depths), "ks": list(kernels), "e": list(expands)})
