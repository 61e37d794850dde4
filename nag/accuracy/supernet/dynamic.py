"""Once-for-All's dynamic layers: one set of largest weights, run at a smaller kernel, width or depth.

Module and parameter names follow OFA's ``ofa.imagenet_classification.elastic_nn.modules.dynamic_layers``
and ``dynamic_op`` exactly, so that the state dict of a supernet built from these layers has the layout of
OFA's published checkpoints: a dynamic convolution holds its largest ``nn.Conv2d`` as ``.conv`` (so a key
reads ``...inverted_bottleneck.conv.conv.weight``), a dynamic batch-norm its ``nn.BatchNorm2d`` as ``.bn``
(``...bn.bn.running_mean``), and the depthwise convolution its kernel transformation matrices as
``7to5_matrix`` (25 x 25) and ``5to3_matrix`` (9 x 9) (OFA's ``KERNEL_TRANSFORM_MODE = 1``).

Every layer reads its active setting from attributes set by :class:`DynamicMBConvLayer`; input widths are
taken from the input tensor, as in OFA.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from nag.space.blocks import Activation, make_divisible
from nag.space.models import MBConvLayer, SEModule, activation

__all__ = [
    "DynamicBatchNorm2d",
    "DynamicConv2d",
    "DynamicMBConvLayer",
    "DynamicSE",
    "DynamicSeparableConv2d",
    "activation",
]

SE_REDUCTION = 4  # squeeze-excitation middle width = make_divisible(mid // 4, 8), as OFA's SEModule


def _crop(kernel: int, target: int) -> slice:
    """Centre ``target x target`` window of a ``kernel x kernel`` filter (OFA's ``sub_filter_start_end``)."""
    start = kernel // 2 - target // 2
    return slice(start, start + target)


class DynamicConv2d(nn.Module):
    """A 1x1 convolution whose active output width is ``active_out_channel``; input width from the input."""

    def __init__(self, max_in_channels: int, max_out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(max_in_channels, max_out_channels, 1, bias=False)
        self.active_out_channel = max_out_channels

    def active_weight(self, out_channels: int, in_channels: int) -> torch.Tensor:
        return self.conv.weight[:out_channels, :in_channels]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.active_weight(self.active_out_channel, x.size(1)))


class DynamicSeparableConv2d(nn.Module):
    """Depthwise convolution with an elastic kernel: the largest filter, and a learnt map per smaller size.

    A k x k filter is the centre crop of the next larger active filter, flattened and multiplied by that
    step's ``<large>to<small>_matrix`` (initialised to the identity), applied from the largest size down.
    """

    def __init__(self, max_channels: int, kernel_sizes: tuple[int, ...], stride: int) -> None:
        super().__init__()
        self.kernel_sizes = tuple(sorted(set(kernel_sizes)))
        self.stride = stride
        largest = self.kernel_sizes[-1]
        self.conv = nn.Conv2d(max_channels, max_channels, largest, stride, padding=largest // 2, groups=max_channels, bias=False)
        for small, large in zip(self.kernel_sizes[:-1], self.kernel_sizes[1:], strict=True):
            self.register_parameter(f"{large}to{small}_matrix", nn.Parameter(torch.eye(small * small)))
        self.active_kernel_size = largest

    def active_filter(self, channels: int, kernel: int) -> torch.Tensor:
        """The ``channels x 1 x kernel x kernel`` filter of the active setting (OFA's ``get_active_filter``)."""
        if kernel not in self.kernel_sizes:
            raise ValueError(f"kernel {kernel} is not one of this layer's sizes {self.kernel_sizes}")
        weight = self.conv.weight[:channels]
        for large, small in zip(self.kernel_sizes[::-1], self.kernel_sizes[-2::-1], strict=False):
            if large <= kernel:
                break
            cropped = weight[:, :, _crop(large, small), _crop(large, small)].contiguous()
            flat = cropped.view(-1, small * small)
            weight = F.linear(flat, getattr(self, f"{large}to{small}_matrix")).view(channels, 1, small, small)
        return weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels, kernel = x.size(1), self.active_kernel_size
        weight = self.active_filter(channels, kernel).contiguous()
        return F.conv2d(x, weight, None, self.stride, kernel // 2, 1, channels)


class DynamicBatchNorm2d(nn.Module):
    """Batch-norm over the first ``C`` channels of its largest statistics, ``C`` from the input.

    In training mode the sliced running statistics are views, so the largest buffers are updated in place.
    """

    def __init__(self, max_channels: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(max_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bn, channels = self.bn, x.size(1)
        if channels == bn.num_features:
            return bn(x)
        assert bn.running_mean is not None and bn.running_var is not None  # track_running_stats is on
        momentum = 0.0 if bn.momentum is None else bn.momentum
        if bn.training and bn.num_batches_tracked is not None:
            bn.num_batches_tracked.add_(1)
            if bn.momentum is None:  # cumulative moving average, as nn.BatchNorm2d
                momentum = 1.0 / float(bn.num_batches_tracked)
        return F.batch_norm(
            x, bn.running_mean[:channels], bn.running_var[:channels], bn.weight[:channels], bn.bias[:channels],
            bn.training, momentum, bn.eps,
        )  # fmt: skip


class DynamicSE(nn.Module):
    """Squeeze-excitation on the first ``C`` channels (``C`` from the input); OFA's ``DynamicSE`` names."""

    def __init__(self, max_channels: int) -> None:
        super().__init__()
        mid = make_divisible(max_channels // SE_REDUCTION)
        self.fc = nn.Sequential(
            OrderedDict(
                [
                    ("reduce", nn.Conv2d(max_channels, mid, 1, bias=True)),
                    ("relu", nn.ReLU(inplace=True)),
                    ("expand", nn.Conv2d(mid, max_channels, 1, bias=True)),
                    ("h_sigmoid", nn.Hardsigmoid(inplace=True)),
                ]
            )
        )

    @property
    def reduce_conv(self) -> nn.Conv2d:
        return cast(nn.Conv2d, self.fc.reduce)

    @property
    def expand_conv(self) -> nn.Conv2d:
        return cast(nn.Conv2d, self.fc.expand)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.size(1)
        mid = make_divisible(channels // SE_REDUCTION)
        reduce, expand = self.reduce_conv, self.expand_conv
        y = x.mean((2, 3), keepdim=True)
        y = F.relu(F.conv2d(y, reduce.weight[:mid, :channels], cast(torch.Tensor, reduce.bias)[:mid]))
        y = F.hardsigmoid(F.conv2d(y, expand.weight[:channels, :mid], cast(torch.Tensor, expand.bias)[:channels]))
        return x * y


class DynamicMBConvLayer(nn.Module):
    """OFA's ``DynamicMBConvLayer``: elastic kernel and expand ratio over one fixed input and output width.

    ``active_kernel_size`` and ``active_expand_ratio`` select the subnet; the middle width is
    ``make_divisible(round(in_channels * expand), 8)``, the first channels of the largest middle width.
    """

    def __init__(
        self, *, in_channels: int, out_channels: int, kernel_sizes: tuple[int, ...], expand_ratios: tuple[int, ...],
        stride: int, act: Activation, se: bool,
    ) -> None:  # fmt: skip
        super().__init__()
        self.in_channels, self.out_channels, self.stride, self.act, self.use_se = in_channels, out_channels, stride, act, se
        self.kernel_sizes, self.expand_ratios = tuple(sorted(kernel_sizes)), tuple(sorted(expand_ratios))
        max_mid = self.middle_channels(max(self.expand_ratios))
        self.inverted_bottleneck = nn.Sequential(
            OrderedDict(
                [("conv", DynamicConv2d(in_channels, max_mid)), ("bn", DynamicBatchNorm2d(max_mid)), ("act", activation(act))]
            )
        )
        depth = OrderedDict(
            [
                ("conv", DynamicSeparableConv2d(max_mid, self.kernel_sizes, stride)),
                ("bn", DynamicBatchNorm2d(max_mid)),
                ("act", activation(act)),
            ]
        )
        if se:
            depth["se"] = DynamicSE(max_mid)
        self.depth_conv = nn.Sequential(depth)
        self.point_linear = nn.Sequential(
            OrderedDict([("conv", DynamicConv2d(max_mid, out_channels)), ("bn", DynamicBatchNorm2d(out_channels))])
        )
        self.active_kernel_size = max(self.kernel_sizes)
        self.active_expand_ratio = max(self.expand_ratios)

    def middle_channels(self, expand_ratio: int) -> int:
        return make_divisible(round(self.in_channels * expand_ratio))

    # Typed views of the submodules (nn.Sequential's attribute access is untyped).
    @property
    def ib_conv(self) -> DynamicConv2d:
        return cast(DynamicConv2d, self.inverted_bottleneck.conv)

    @property
    def ib_bn(self) -> nn.BatchNorm2d:
        return cast(DynamicBatchNorm2d, self.inverted_bottleneck.bn).bn

    @property
    def dw_conv(self) -> DynamicSeparableConv2d:
        return cast(DynamicSeparableConv2d, self.depth_conv.conv)

    @property
    def dw_bn(self) -> nn.BatchNorm2d:
        return cast(DynamicBatchNorm2d, self.depth_conv.bn).bn

    @property
    def se(self) -> DynamicSE:
        return cast(DynamicSE, self.depth_conv.se)

    @property
    def pl_conv(self) -> DynamicConv2d:
        return cast(DynamicConv2d, self.point_linear.conv)

    @property
    def pl_bn(self) -> nn.BatchNorm2d:
        return cast(DynamicBatchNorm2d, self.point_linear.bn).bn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.ib_conv.active_out_channel = self.middle_channels(self.active_expand_ratio)
        self.dw_conv.active_kernel_size = self.active_kernel_size
        return cast(torch.Tensor, self.point_linear(self.depth_conv(self.inverted_bottleneck(x))))

    @torch.no_grad()
    def copy_active_to(self, layer: MBConvLayer) -> None:
        """Copy the active subnet's weights into a standalone ``MBConvLayer`` of the same setting."""
        mid, out = self.middle_channels(self.active_expand_ratio), self.out_channels
        if layer.inverted_bottleneck is None:
            raise ValueError("the standalone layer has no expand convolution; it was built with expand ratio 1")
        ib, dw, pl = layer.inverted_bottleneck, layer.depth_conv, layer.point_linear
        cast(nn.Conv2d, ib.conv).weight.copy_(self.ib_conv.active_weight(mid, self.in_channels))
        copy_bn(self.ib_bn, cast(nn.BatchNorm2d, ib.bn))
        cast(nn.Conv2d, dw.conv).weight.copy_(self.dw_conv.active_filter(mid, self.active_kernel_size))
        copy_bn(self.dw_bn, cast(nn.BatchNorm2d, dw.bn))
        if self.use_se:
            source, target = self.se, cast(SEModule, dw.se)
            reduce, expand = cast(nn.Conv2d, target.fc.reduce), cast(nn.Conv2d, target.fc.expand)
            se_mid = reduce.out_channels
            reduce.weight.copy_(source.reduce_conv.weight[:se_mid, :mid])
            cast(torch.Tensor, reduce.bias).copy_(cast(torch.Tensor, source.reduce_conv.bias)[:se_mid])
            expand.weight.copy_(source.expand_conv.weight[:mid, :se_mid])
            cast(torch.Tensor, expand.bias).copy_(cast(torch.Tensor, source.expand_conv.bias)[:mid])
        cast(nn.Conv2d, pl.conv).weight.copy_(self.pl_conv.active_weight(out, mid))
        copy_bn(self.pl_bn, cast(nn.BatchNorm2d, pl.bn))

    @torch.no_grad()
    def sort_channels(self, *, protected: int = 0) -> None:
        """Reorder the middle channels by importance, the L1 norm of their point-linear weights (descending).

        OFA's ``re_organize_middle_weights``: the expand convolution, both batch-norms, the depthwise filters
        and SE follow the same permutation (and SE's own middle channels are sorted by their expand weights),
        so the network computes the same function. With ``protected = p > 0`` (OFA's ``expand_ratio_stage``)
        channels are sorted only within the groups that the widths of the p+1 largest expand ratios delimit,
        so channels already trained as part of a smaller width stay inside it.
        """
        importance = self.pl_conv.conv.weight.abs().sum(dim=(0, 2, 3))
        if protected > 0:
            widths = [self.middle_channels(e) for e in sorted(self.expand_ratios, reverse=True)]
            right, base = len(importance), -len(widths) * 1e5
            for left in widths[1 : protected + 1]:
                importance[left:right] += base
                base += 1e5
                right = left
        order = torch.argsort(importance, descending=True)
        _permute(self.pl_conv.conv.weight, order, dim=1)
        _permute_bn(self.dw_bn, order)
        _permute(self.dw_conv.conv.weight, order, dim=0)
        if self.use_se:
            reduce, expand = self.se.reduce_conv, self.se.expand_conv
            for tensor, dim in ((expand.weight, 0), (expand.bias, 0), (reduce.weight, 1)):
                _permute(tensor, order, dim=dim)
            se_order = torch.argsort(expand.weight.abs().sum(dim=(0, 2, 3)), descending=True)
            for tensor, dim in ((expand.weight, 1), (reduce.weight, 0), (reduce.bias, 0)):
                _permute(tensor, se_order, dim=dim)
        _permute_bn(self.ib_bn, order)
        _permute(self.ib_conv.conv.weight, order, dim=0)


def _permute(tensor: torch.Tensor | None, order: torch.Tensor, *, dim: int) -> None:
    if tensor is None:
        raise ValueError("cannot permute a missing bias")
    tensor.data.copy_(tensor.data.index_select(dim, order))


def copy_bn(source: nn.BatchNorm2d, target: nn.BatchNorm2d) -> None:
    """Copy the first ``target.num_features`` channels of a batch-norm (affine and running statistics)."""
    n = target.num_features
    assert source.running_mean is not None and source.running_var is not None
    assert target.running_mean is not None and target.running_var is not None
    with torch.no_grad():
        target.weight.copy_(source.weight[:n])
        target.bias.copy_(source.bias[:n])
        target.running_mean.copy_(source.running_mean[:n])
        target.running_var.copy_(source.running_var[:n])


def _permute_bn(bn: nn.BatchNorm2d, order: torch.Tensor) -> None:
    assert bn.running_mean is not None and bn.running_var is not None
    for tensor in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
        tensor.data.copy_(tensor.data[order])
