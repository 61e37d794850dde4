"""Analytic costs: published figures, and agreement with counts taken on the built torch model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nag.errors import SettingError
from nag.space.blocks import make_divisible
from nag.space.ofa_mbv3 import OFAMobileNetV3Space
from tests.conftest import PNAG_80_MOBILE


def torch_counts(module: nn.Module, input_shape: tuple[int, ...]) -> tuple[int, int, int, tuple[int, ...]]:
    """(conv MAdds, linear MAdds, parameters, output shape) counted on the torch module with forward hooks."""
    conv_madds = linear_madds = 0

    def on_conv(layer: nn.Conv2d, _inputs: object, output: torch.Tensor) -> None:
        nonlocal conv_madds
        kh, kw = layer.kernel_size
        conv_madds += output[0].numel() * (layer.in_channels // layer.groups) * kh * kw

    def on_linear(layer: nn.Linear, _inputs: object, _output: torch.Tensor) -> None:
        nonlocal linear_madds
        linear_madds += layer.in_features * layer.out_features

    handles = []
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            handles.append(layer.register_forward_hook(on_conv))
        elif isinstance(layer, nn.Linear):
            handles.append(layer.register_forward_hook(on_linear))
    with torch.no_grad():
        output = module.eval()(torch.zeros(input_shape))
    for handle in handles:
        handle.remove()
    params = sum(p.numel() for p in module.parameters())
    return conv_madds, linear_madds, params, tuple(output.shape)


def test_published_pnag_80_figures(space: OFAMobileNetV3Space) -> None:
    costs = space.costs(space.parse(PNAG_80_MOBILE))
    assert round(costs.madds_m) == 349  # paper Table 1
    assert round(costs.params_m, 1) == 7.3
    assert costs.madds_total - costs.madds == 1536 * 1000  # the classifier


def test_make_divisible_matches_mobilenet_rounding() -> None:
    assert [make_divisible(v * 1.2) for v in (16, 24, 40, 80, 112, 160, 960, 1280)] == [24, 32, 48, 96, 136, 192, 1152, 1536]
    assert make_divisible(3.0) == 8  # never below the divisor
    assert make_divisible(12) == 16  # 8 would be more than 10% below 12
    assert make_divisible(100) == 104


@pytest.mark.parametrize(("width", "resolution", "seed"), [(1.2, 224, 0), (1.0, 224, 1), (1.2, 160, 2), (1.0, 192, 3)])
def test_analytic_costs_equal_torch_counts(space: OFAMobileNetV3Space, width: float, resolution: int, seed: int) -> None:
    for arch in [*space.sample_many(2, seed=seed), space.parse(PNAG_80_MOBILE)]:
        costs = space.costs(arch, width=width, resolution=resolution)
        conv, linear, params, shape = torch_counts(
            space.build_model(arch, width=width, resolution=resolution), (1, 3, resolution, resolution)
        )
        assert (costs.madds, costs.madds_total - costs.madds, costs.params) == (conv, linear, params)
        assert shape == (1, 1000)


def test_every_block_agrees_with_its_torch_module(space: OFAMobileNetV3Space) -> None:
    from nag.space.models import build_block

    for block in space.all_blocks(width=1.2, resolution=224):
        conv, linear, params, shape = torch_counts(build_block(block), block.input_shape_nchw)
        assert conv + linear == block.madds, block.key
        assert params == block.params, block.key
        assert shape == block.output_shape_nchw, block.key


def test_network_costs_are_the_sum_of_its_blocks(space: OFAMobileNetV3Space) -> None:
    arch = space.parse(PNAG_80_MOBILE)
    blocks = space.blocks(arch)
    assert space.costs(arch).madds_total == sum(b.madds for b in blocks)
    assert space.costs(arch).params == sum(b.params for b in blocks)


def test_costs_grow_with_width_resolution_and_depth(space: OFAMobileNetV3Space) -> None:
    small = space.parse("2,2,2,2,2:3,3,0,0,3,3,0,0,3,3,0,0,3,3,0,0,3,3,0,0:3,3,0,0,3,3,0,0,3,3,0,0,3,3,0,0,3,3,0,0")
    large = space.parse("4,4,4,4,4:" + ",".join(["7"] * 20) + ":" + ",".join(["6"] * 20))
    assert space.costs(small).madds < space.costs(space.parse(PNAG_80_MOBILE)).madds < space.costs(large).madds
    assert space.costs(large, width=1.0).params < space.costs(large, width=1.2).params
    assert space.costs(large, resolution=160).madds < space.costs(large, resolution=224).madds
    assert space.costs(large, resolution=160).params == space.costs(large, resolution=224).params


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"width": 0}, "width multiplier"),
        ({"width": float("nan")}, "width multiplier"),
        ({"resolution": 16}, "input resolution"),
        ({"resolution": 224.0}, "input resolution"),
        ({"num_classes": 0}, "number of classes"),
    ],
)
def test_bad_settings_are_typed_errors(space: OFAMobileNetV3Space, kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(SettingError, match=message):
        space.costs(space.parse(PNAG_80_MOBILE), **kwargs)  # type: ignore[arg-type]
