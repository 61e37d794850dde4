"""The ``ofa-mbv3`` weight-sharing supernet (OFA's ``OFAMobileNetV3``), its subnets, and its checkpoints.

State-dict layout (OFA's ``ofa_mbv3_d234_e346_k357_w1.2``; the module tree mirrors OFA's, so the names are
the module paths themselves)::

    first_conv.{conv.weight, bn.*}                                  stem (static)
    blocks.0.conv.{depth_conv,point_linear}.{conv.weight, bn.*}     first block (static, expand 1)
    blocks.N.conv.inverted_bottleneck.conv.conv.weight              N = 1..20: stage s, layer l -> 1 + 4 s + l
    blocks.N.conv.inverted_bottleneck.bn.bn.*
    blocks.N.conv.depth_conv.conv.conv.weight                       7x7 depthwise
    blocks.N.conv.depth_conv.conv.{7to5,5to3}_matrix                kernel transformation, 25x25 and 9x9
    blocks.N.conv.depth_conv.bn.bn.*
    blocks.N.conv.depth_conv.se.fc.{reduce,expand}.{weight,bias}   SE stages (2, 4, 5)
    blocks.N.conv.point_linear.conv.conv.weight, ...point_linear.bn.bn.*
    final_expand_layer.{conv.weight, bn.*}, feature_mix_layer.conv.weight, classifier.linear.{weight,bias}

``bn.*`` is ``weight, bias, running_mean, running_var, num_batches_tracked``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nag.accuracy.supernet.dynamic import DynamicMBConvLayer
from nag.accuracy.supernet.errors import CheckpointError
from nag.errors import SettingError
from nag.space.blocks import MBConvBlock
from nag.space.models import BlockNetwork, MBConvLayer, build_block, build_network
from nag.space.ofa_mbv3 import (
    DEPTH_CHOICES,
    EXPAND_CHOICES,
    KERNEL_CHOICES,
    NUM_SLOTS,
    SLOTS_PER_STAGE,
    STAGES,
    MBV3Arch,
    OFAMobileNetV3Space,
)

__all__ = ["OFAMobileNetV3Supernet", "largest_arch", "load_supernet", "sample_arch", "save_supernet", "smallest_arch"]

WIDTHS = (1.0, 1.2)  # width multipliers OFA published supernets for
_SPACE = OFAMobileNetV3Space()
_OPTIONAL_KEY_SUFFIX = ".num_batches_tracked"  # absent from checkpoints of old torch versions; harmless if missing


def sample_arch(
    rng: random.Random, *, depths: tuple[int, ...] = DEPTH_CHOICES, kernels: tuple[int, ...] = KERNEL_CHOICES,
    expands: tuple[int, ...] = EXPAND_CHOICES,
) -> MBV3Arch:  # fmt: skip
    """A uniformly sampled architecture whose depths, kernels and expand ratios come from the given subsets."""
    ds = tuple(rng.choice(depths) for _ in STAGES)
    ks, es = [0] * NUM_SLOTS, [0] * NUM_SLOTS
    for stage, depth in enumerate(ds):
        for layer in range(depth):
            slot = stage * SLOTS_PER_STAGE + layer
            ks[slot], es[slot] = rng.choice(kernels), rng.choice(expands)
    return MBV3Arch(depths=ds, kernels=tuple(ks), expands=tuple(es))


def _uniform(depth: int, kernel: int, expand: int) -> MBV3Arch:
    used = [layer < depth for _ in STAGES for layer in range(SLOTS_PER_STAGE)]
    return MBV3Arch(
        depths=(depth,) * len(STAGES),
        kernels=tuple(kernel if u else 0 for u in used),
        expands=tuple(expand if u else 0 for u in used),
    )


def largest_arch() -> MBV3Arch:
    """Depth 4, kernel 7, expand 6 everywhere."""
    return _uniform(max(DEPTH_CHOICES), max(KERNEL_CHOICES), max(EXPAND_CHOICES))


def smallest_arch() -> MBV3Arch:
    """Depth 2, kernel 3, expand 3 everywhere."""
    return _uniform(min(DEPTH_CHOICES), min(KERNEL_CHOICES), min(EXPAND_CHOICES))


class _Residual(nn.Module):
    """OFA's ``ResidualBlock``: the layer as ``conv`` (hence ``blocks.N.conv....``), identity shortcut or none."""

    def __init__(self, conv: nn.Module, *, residual: bool) -> None:
        super().__init__()
        self.conv = conv
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return out + x if self.residual else out


class OFAMobileNetV3Supernet(nn.Module):
    """All of ``ofa-mbv3`` in one network: depth 2-4 per stage, kernel 3/5/7 and expand 3/4/6 per layer.

    Call :meth:`set_active` with an architecture, then run it; the active subnet stays until the next call.
    Not thread-safe (the active setting is module state). ``state_dict()`` has OFA's layout (module docstring).
    """

    def __init__(self, *, width: float = 1.2, num_classes: int = 1000) -> None:
        super().__init__()
        if width not in WIDTHS:
            raise SettingError(f"supernet width multiplier must be one of {WIDTHS} (OFA's published supernets), got {width!r}")
        self.width, self.num_classes = width, num_classes
        # Block specs at the largest architecture; the resolution only labels shapes in specs, not weights.
        specs = _SPACE.blocks(largest_arch(), width=width, resolution=224, num_classes=num_classes)
        stem, first, tail = specs[0], specs[1], specs[-4:]
        assert isinstance(first, MBConvBlock)
        self.first_conv = build_block(stem).train()
        self.blocks = nn.ModuleList([_Residual(MBConvLayer(first), residual=first.residual)])
        for spec in specs[2:-4]:
            assert isinstance(spec, MBConvBlock)
            layer = DynamicMBConvLayer(
                in_channels=spec.in_channels, out_channels=spec.out_channels, kernel_sizes=KERNEL_CHOICES,
                expand_ratios=EXPAND_CHOICES, stride=spec.stride, act=spec.act, se=spec.se,
            )  # fmt: skip
            self.blocks.append(_Residual(layer, residual=spec.residual))
        self.final_expand_layer = build_block(tail[0]).train()
        self.feature_mix_layer = build_block(tail[2]).train()
        self.classifier = build_block(tail[3]).train()
        self.depths = [max(DEPTH_CHOICES)] * len(STAGES)
        self.active_arch = largest_arch()

    def dynamic_layer(self, slot: int) -> DynamicMBConvLayer:
        layer = self.blocks[1 + slot].get_submodule("conv")
        assert isinstance(layer, DynamicMBConvLayer)
        return layer

    def set_active(self, arch: MBV3Arch | str | Mapping[str, Any]) -> MBV3Arch:
        """Make ``arch`` (an architecture, its string or OFA dict) the active subnet; returns it parsed."""
        parsed = _SPACE.parse(arch) if not isinstance(arch, MBV3Arch) else arch
        self.depths = list(parsed.depths)
        for slot in parsed.active_slots():
            layer = self.dynamic_layer(slot)
            layer.active_kernel_size, layer.active_expand_ratio = parsed.kernels[slot], parsed.expands[slot]
        self.active_arch = parsed
        return parsed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks[0](self.first_conv(x))
        for stage, depth in enumerate(self.depths):
            for layer in range(depth):
                x = self.blocks[1 + stage * SLOTS_PER_STAGE + layer](x)
        x = self.final_expand_layer(x).mean((2, 3), keepdim=True)
        return self.classifier(self.feature_mix_layer(x))

    def sort_channels(self, *, protected: int = 0) -> None:
        """Sort every layer's middle channels by importance (:meth:`DynamicMBConvLayer.sort_channels`)."""
        for slot in range(NUM_SLOTS):
            self.dynamic_layer(slot).sort_channels(protected=protected)

    @torch.no_grad()
    def extract(self, arch: MBV3Arch | str | Mapping[str, Any] | None = None) -> BlockNetwork:
        """The standalone subnet (``nag.space.models``, OFA's standalone names) with this supernet's weights.

        ``arch`` defaults to the active one. In eval mode the subnet's output equals the supernet's at
        ``arch``; the subnet is returned in eval mode, on the CPU, and shares no storage with the supernet.
        """
        parsed = self.set_active(arch) if arch is not None else self.active_arch
        specs = _SPACE.blocks(parsed, width=self.width, resolution=224, num_classes=self.num_classes)
        net = build_network(specs)
        own = self.state_dict()
        for prefix in ("first_conv", "final_expand_layer", "feature_mix_layer", "classifier"):
            net.get_submodule(prefix).load_state_dict(
                {k[len(prefix) + 1 :]: v for k, v in own.items() if k.startswith(prefix + ".")}
            )
        net.get_submodule("blocks.0.mobile_inverted_conv").load_state_dict(self.blocks[0].get_submodule("conv").state_dict())
        for index, slot in enumerate(parsed.active_slots(), start=1):
            target = net.get_submodule(f"blocks.{index}.mobile_inverted_conv")
            assert isinstance(target, MBConvLayer)
            self.dynamic_layer(slot).copy_active_to(target)
        return net.cpu().eval()


def save_supernet(supernet: OFAMobileNetV3Supernet, path: str | Path, *, extra: Mapping[str, Any] | None = None) -> None:
    """Write ``{"state_dict": <OFA layout>, "nag": {width, num_classes, ...extra}}`` durably (temp + rename)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    meta = {"width": supernet.width, "num_classes": supernet.num_classes, **dict(extra or {})}
    tmp = target.with_name(target.name + ".tmp")
    torch.save({"state_dict": {k: v.detach().cpu() for k, v in supernet.state_dict().items()}, "nag": meta}, tmp)
    tmp.replace(target)


def _infer_setting(state: Mapping[str, torch.Tensor], path: str) -> tuple[float, int]:
    for key in ("first_conv.conv.weight", "classifier.linear.weight"):
        if key not in state:
            raise CheckpointError(f"{path}: key {key!r} is missing; is this an OFA MobileNetV3 supernet state dict?")
    stem = int(state["first_conv.conv.weight"].shape[0])
    widths = {_SPACE.channels(w)["stem"]: w for w in WIDTHS}
    if stem not in widths:
        raise CheckpointError(
            f"{path}: first_conv.conv.weight has {stem} output channels; expected one of {sorted(widths)} "
            f"(widths {WIDTHS}); this is not an ofa-mbv3 supernet of a supported width"
        )
    return widths[stem], int(state["classifier.linear.weight"].shape[0])


def load_supernet(path: str | Path, *, map_location: str = "cpu") -> OFAMobileNetV3Supernet:
    """A supernet from a checkpoint: OFA's published file (``{"state_dict": ...}``) or a bare state dict.

    Width and class count are read from the shapes. Raises :class:`CheckpointError` naming the first
    missing, unexpected or mis-shaped key (``num_batches_tracked`` buffers may be absent).
    """
    where = str(path)
    try:
        raw = torch.load(where, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"supernet checkpoint {where!r} does not exist; train one with 'nag supernet train'") from None
    except (RuntimeError, EOFError, ValueError) as exc:  # torch's errors for a file it cannot unpickle
        raise CheckpointError(f"supernet checkpoint {where!r} cannot be read by torch.load: {exc}") from None
    state = raw.get("state_dict", raw) if isinstance(raw, Mapping) else None
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{where}: expected a state dict of tensors, or {{'state_dict': ...}} as OFA's checkpoints")
    width, num_classes = _infer_setting(state, where)
    supernet = OFAMobileNetV3Supernet(width=width, num_classes=num_classes)
    load_state(supernet, state, where=where)
    return supernet


def load_state(supernet: OFAMobileNetV3Supernet, state: Mapping[str, torch.Tensor], *, where: str = "state dict") -> None:
    """Copy an OFA-layout state dict into ``supernet``, checking every key and shape first."""
    expected = supernet.state_dict()
    for key, value in expected.items():
        if key not in state:
            if key.endswith(_OPTIONAL_KEY_SUFFIX):
                continue
            raise CheckpointError(
                f"{where}: key {key!r} is missing (expected shape {tuple(value.shape)}); not an OFA ofa-mbv3 layout"
            )
        if tuple(state[key].shape) != tuple(value.shape):
            raise CheckpointError(
                f"{where}: key {key!r} has shape {tuple(state[key].shape)}, expected {tuple(value.shape)} "
                f"for width {supernet.width} and {supernet.num_classes} classes"
            )
    unexpected = sorted(set(state) - set(expected))
    if unexpected:
        raise CheckpointError(f"{where}: unexpected key {unexpected[0]!r} ({len(unexpected)} in all); not an OFA ofa-mbv3 layout")
    supernet.load_state_dict(dict(state), strict=False)
