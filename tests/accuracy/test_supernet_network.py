"""The supernet: subnet extraction, kernel transformation, channel sorting, OFA's checkpoint layout."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from nag.accuracy.supernet import (
    CheckpointError,
    OFAMobileNetV3Supernet,
    largest_arch,
    load_supernet,
    sample_arch,
    save_supernet,
    smallest_arch,
)
from nag.accuracy.supernet.dynamic import DynamicSeparableConv2d


def _randomised(width: float, num_classes: int, seed: int = 0) -> OFAMobileNetV3Supernet:
    """A supernet whose batch-norms and kernel matrices are far from their initial (identity-like) values."""
    torch.manual_seed(seed)
    net = OFAMobileNetV3Supernet(width=width, num_classes=num_classes)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)
        for name, p in net.named_parameters():
            if name.endswith("_matrix"):
                p.add_(0.1 * torch.randn_like(p))
    return net.eval()


def _archs() -> list:
    rng = random.Random(3)
    return [smallest_arch(), largest_arch(), *(sample_arch(rng) for _ in range(2))]


@pytest.mark.parametrize(("width", "num_classes"), [(1.2, 1000), (1.0, 10)])
def test_extracted_subnet_computes_what_the_supernet_computes(width: float, num_classes: int) -> None:
    net = _randomised(width, num_classes)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    outputs = []
    for arch in _archs():
        net.set_active(arch)
        with torch.no_grad():
            expected = net(x)
        subnet = net.extract(arch)
        assert next(k for k in subnet.state_dict() if "mobile_inverted_conv" in k).startswith("blocks.0.mobile_inverted_conv.")
        assert len(subnet.blocks) == 1 + sum(arch.depths)
        with torch.no_grad():
            got = subnet(x)
        assert (got - expected).abs().max().item() < 1e-4, str(arch)
        outputs.append(expected)
    assert (outputs[0] - outputs[1]).abs().max() > 1e-3  # different subnets really compute different functions


def test_smaller_kernels_are_transformed_centre_crops() -> None:
    conv = DynamicSeparableConv2d(4, (3, 5, 7), 1)
    weight = conv.conv.weight
    assert torch.equal(conv.active_filter(4, 5), weight[:, :, 1:6, 1:6])  # identity matrices: a plain crop
    assert torch.equal(conv.active_filter(4, 3), weight[:, :, 2:5, 2:5])
    with torch.no_grad():
        getattr(conv, "7to5_matrix").mul_(2.0)
        getattr(conv, "5to3_matrix").mul_(3.0)
    assert torch.allclose(conv.active_filter(4, 5), 2 * weight[:, :, 1:6, 1:6])
    assert torch.allclose(conv.active_filter(4, 3), 6 * weight[:, :, 2:5, 2:5])  # 7 -> 5 -> 3, both maps applied
    assert torch.equal(conv.active_filter(2, 7), weight[:2])


def test_sorting_channels_keeps_the_largest_network_and_orders_by_importance() -> None:
    net = _randomised(1.0, 10)
    x = torch.randn(2, 3, 32, 32)
    net.set_active(largest_arch())
    with torch.no_grad():
        before = net(x)
        net.sort_channels()
        after = net(x)
    assert (before - after).abs().max().item() < 1e-4
    for slot in (0, 7, 19):
        importance = net.dynamic_layer(slot).point_linear.conv.conv.weight.abs().sum(dim=(0, 2, 3))
        assert torch.all(importance[:-1] >= importance[1:])


def test_protected_sorting_keeps_channels_inside_their_width() -> None:
    net = _randomised(1.0, 10)
    layer = net.dynamic_layer(4)
    w4 = layer.middle_channels(4)
    marker = layer.point_linear.conv.conv.weight
    with torch.no_grad():
        marker[:, w4:] *= 100  # the channels past expand 4 are the most important ones
        inside = set(marker.abs().sum(dim=(0, 2, 3))[:w4].tolist())
        layer.sort_channels(protected=1)
    assert set(layer.point_linear.conv.conv.weight.abs().sum(dim=(0, 2, 3))[:w4].tolist()) == inside


def test_state_dict_has_ofa_layout() -> None:
    net = OFAMobileNetV3Supernet(width=1.2, num_classes=1000)
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert shapes["first_conv.conv.weight"] == (24, 3, 3, 3)
    assert shapes["blocks.0.conv.depth_conv.conv.weight"] == (24, 1, 3, 3)
    assert "blocks.0.conv.inverted_bottleneck.conv.weight" not in shapes  # the first block has expand ratio 1
    assert shapes["blocks.1.conv.inverted_bottleneck.conv.conv.weight"] == (144, 24, 1, 1)  # 24 x 6
    assert shapes["blocks.1.conv.depth_conv.conv.conv.weight"] == (144, 1, 7, 7)
    assert shapes["blocks.1.conv.depth_conv.conv.7to5_matrix"] == (25, 25)
    assert shapes["blocks.1.conv.depth_conv.conv.5to3_matrix"] == (9, 9)
    assert shapes["blocks.1.conv.point_linear.conv.conv.weight"] == (32, 144, 1, 1)
    assert shapes["blocks.1.conv.point_linear.bn.bn.running_var"] == (32,)
    assert shapes["blocks.5.conv.depth_conv.se.fc.reduce.weight"] == (48, 192, 1, 1)  # stage 2: 32 x 6, SE 192 // 4
    assert "blocks.9.conv.depth_conv.se.fc.reduce.weight" not in shapes  # no SE in stage 3
    assert shapes["blocks.20.conv.point_linear.conv.conv.weight"] == (192, 1152, 1, 1)
    assert "blocks.21.conv.point_linear.conv.conv.weight" not in shapes
    assert shapes["final_expand_layer.conv.weight"] == (1152, 192, 1, 1)
    assert shapes["feature_mix_layer.conv.weight"] == (1536, 1152, 1, 1)
    assert "feature_mix_layer.conv.bias" not in shapes
    assert shapes["classifier.linear.weight"] == (1000, 1536)


@pytest.mark.parametrize("wrapped", [True, False])
def test_checkpoint_of_ofa_layout_loads(tmp_path: Path, wrapped: bool) -> None:
    net = _randomised(1.0, 10, seed=5)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    path = tmp_path / "ofa.pth"
    torch.save({"state_dict": state, "epoch": 120} if wrapped else state, path)
    loaded = load_supernet(path)
    assert (loaded.width, loaded.num_classes) == (1.0, 10)
    x = torch.randn(2, 3, 32, 32)
    for arch in _archs()[1:3]:
        net.set_active(arch)
        with torch.no_grad():
            assert torch.allclose(loaded.extract(arch)(x), net(x), atol=1e-5)


def test_save_supernet_round_trips(tmp_path: Path) -> None:
    net = _randomised(1.2, 7, seed=2)
    save_supernet(net, tmp_path / "s.pt", extra={"data": "digits"})
    raw = torch.load(tmp_path / "s.pt", weights_only=True)
    assert raw["nag"] == {"width": 1.2, "num_classes": 7, "data": "digits"} and "state_dict" in raw
    loaded = load_supernet(tmp_path / "s.pt")
    for key, value in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_checkpoint_with_a_bad_key_names_it(tmp_path: Path) -> None:
    state = OFAMobileNetV3Supernet(width=1.0, num_classes=10).state_dict()
    key = "blocks.3.conv.depth_conv.conv.7to5_matrix"
    for broken, pattern in (
        ({k: v for k, v in state.items() if k != key}, "missing"),
        ({**state, key: torch.zeros(9, 9)}, r"shape \(9, 9\), expected \(25, 25\)"),
        ({**state, "blocks.21.conv.x": torch.zeros(1)}, "unexpected key 'blocks.21.conv.x'"),
    ):
        torch.save({"state_dict": broken}, tmp_path / "bad.pth")
        with pytest.raises(CheckpointError, match=pattern) as info:
            load_supernet(tmp_path / "bad.pth")
        assert ("blocks.21.conv.x" if "unexpected" in pattern else key) in str(info.value)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_supernet(tmp_path / "nothing.pth")
    no_counters = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    torch.save(no_counters, tmp_path / "old.pth")
    assert load_supernet(tmp_path / "old.pth").num_classes == 10
