"""Block enumeration for latency tables, keyed as OFA's published lookup tables."""

from __future__ import annotations

import pytest

from nag.space.blocks import MBConvBlock
from nag.space.ofa_mbv3 import OFAMobileNetV3Space
from tests.conftest import PNAG_80_MOBILE


@pytest.mark.parametrize(("width", "resolution"), [(1.2, 224), (1.2, 160), (1.0, 208), (1.0, 128)])
def test_space_has_96_distinct_blocks_like_ofa_tables(space: OFAMobileNetV3Space, width: float, resolution: int) -> None:
    blocks = space.all_blocks(width=width, resolution=resolution)
    assert len(blocks) == len({b.key for b in blocks}) == 96


def test_keys_are_named_as_ofa_names_them(space: OFAMobileNetV3Space) -> None:
    keys = [b.key for b in space.all_blocks(width=1.2, resolution=224)]
    for expected in (
        "Conv-input:224x224x3-output:112x112x24",
        "expanded_conv-input:112x112x24-output:112x112x24-expand:24-kernel:3-stride:1-idskip:1-se:0-hs:0",
        "expanded_conv-input:112x112x24-output:56x56x32-expand:144-kernel:7-stride:2-idskip:0-se:0-hs:0",
        "expanded_conv-input:28x28x48-output:28x28x48-expand:192-kernel:5-stride:1-idskip:1-se:1-hs:0",
        "expanded_conv-input:14x14x96-output:14x14x136-expand:384-kernel:3-stride:1-idskip:0-se:1-hs:1",
        "expanded_conv-input:7x7x192-output:7x7x192-expand:1152-kernel:7-stride:1-idskip:1-se:1-hs:1",
        "Conv_1-input:7x7x192-output:7x7x1152",
        "AvgPool2D-input:7x7x1152-output:1x1x1152",
        "Conv_2-input:1x1x1152-output:1x1x1536",
        "Logits-input:1x1x1536-output:1000",
    ):
        assert expected in keys


def test_spatial_sizes_follow_the_stage_strides(space: OFAMobileNetV3Space) -> None:
    blocks = space.blocks(space.parse(PNAG_80_MOBILE))
    stage_firsts = [(b.in_size, b.out_size) for b in blocks if isinstance(b, MBConvBlock) and b.in_channels != b.out_channels]
    assert stage_firsts == [(112, 56), (56, 28), (28, 14), (14, 14), (14, 7)]
    assert blocks[0].out_size == 112 and blocks[-4].in_size == 7


def test_every_architecture_is_covered_by_the_table(space: OFAMobileNetV3Space) -> None:
    for resolution in (160, 224):
        table = {b.key for b in space.all_blocks(resolution=resolution)}
        for arch in space.sample_many(300, seed=resolution):
            blocks = space.blocks(arch, resolution=resolution)
            assert len(blocks) == 2 + sum(arch.depths) + 4
            assert {b.key for b in blocks} <= table


def test_residual_only_where_shapes_allow(space: OFAMobileNetV3Space) -> None:
    for block in space.all_blocks():
        if isinstance(block, MBConvBlock):
            assert block.residual == (block.stride == 1 and block.in_channels == block.out_channels)
            assert ("-idskip:1-" in block.key) == block.residual
