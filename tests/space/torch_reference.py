"""What the direct exporters' tests share: one block of every kind, the space's extreme networks, and the
comparison of an exported model with the torch module of the same weights on random inputs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from nag.space.blocks import Block, ConvBlock, LinearBlock, MBConvBlock, PoolBlock
from nag.space.models import build_block, build_network, load_weights
from nag.space.ofa_mbv3 import OFAMobileNetV3Space
from nag.space.weights import seeded_weights

Specs = Block | Sequence[Block]
# Builds the exported model of specs with these weights; returns a function from an NCHW input to the NCHW output.
Runner = Callable[[Specs, dict[str, np.ndarray]], Callable[[np.ndarray], np.ndarray]]

# The smallest and the largest ofa-mbv3 networks: depth 2, kernel 3, expand 3 everywhere; depth 4, kernel 7, expand 6.
SMALLEST = "2,2,2,2,2:" + ",".join(["3,3,0,0"] * 5) + ":" + ",".join(["3,3,0,0"] * 5)
LARGEST = "4,4,4,4,4:" + ",".join(["7"] * 20) + ":" + ",".join(["6"] * 20)


def blocks_of_every_kind(space: OFAMobileNetV3Space, resolution: int) -> dict[str, Block]:
    blocks = space.all_blocks(width=1.2, resolution=resolution)
    mbconv = [b for b in blocks if isinstance(b, MBConvBlock)]
    by_name = {b.name: b for b in blocks if isinstance(b, ConvBlock)}
    return {
        "stem conv, BN, h-swish, stride 2": by_name["Conv"],
        "MBConv expand 1, ReLU, skip": mbconv[0],
        "MBConv stride 2, ReLU, no SE": next(b for b in mbconv if b.stride == 2 and not b.se and b.act == "relu"),
        "MBConv SE, ReLU, stride 2": next(b for b in mbconv if b.se and b.act == "relu" and b.stride == 2),
        "MBConv SE, h-swish, skip, kernel 7": next(b for b in mbconv if b.se and b.act == "h_swish" and b.residual and b.kernel == 7),
        "MBConv h-swish, no SE, skip, expand 6": next(b for b in mbconv if not b.se and b.act == "h_swish" and b.residual and b.expand_ratio == 6),
        "final expand conv 1x1, BN, h-swish": by_name["Conv_1"],
        "global average pool": next(b for b in blocks if isinstance(b, PoolBlock)),
        "feature mix conv, no BN, h-swish": by_name["Conv_2"],
        "classifier": next(b for b in blocks if isinstance(b, LinearBlock)),
        # Not in ofa-mbv3, but ConvBlock allows them: a biased conv without BN, ReLU and no activation.
        "conv with bias, no BN, ReLU": ConvBlock(
            name="Conv", in_size=9, in_channels=5, out_channels=12, kernel=3, stride=1, act="relu", batch_norm=False, bias=True
        ),
        "conv with BN, no activation, kernel 5": ConvBlock(
            name="Conv", in_size=11, in_channels=4, out_channels=8, kernel=5, stride=2, act="none"
        ),
        "MBConv expand 3, SE, no activation": MBConvBlock(
            in_size=8, in_channels=16, out_channels=16, expand_ratio=3, kernel=5, stride=1, se=True, act="none"
        ),
        # Stride 2 on an odd input: TFLite's SAME padding equals torch's there (on even inputs it does not).
        "MBConv stride 2 on an odd input, kernel 7, SE, h-swish": MBConvBlock(
            in_size=13, in_channels=16, out_channels=24, expand_ratio=4, kernel=7, stride=2, se=True, act="h_swish"
        ),
    }  # fmt: skip


def max_error(runner: Runner, specs: Specs, weights: dict[str, np.ndarray], *, inputs: int = 2) -> tuple[float, float]:
    """Max |exported - torch| over random inputs, and the largest |torch output| (the scale)."""
    run = runner(specs, weights)
    module = build_network(specs) if isinstance(specs, Sequence) else build_block(specs)
    load_weights(module, {name: value.copy() for name, value in weights.items()}).eval()
    first = specs[0] if isinstance(specs, Sequence) else specs
    rng = np.random.default_rng(7)
    error = scale = 0.0
    for _ in range(inputs):
        x = rng.standard_normal(first.input_shape_nchw).astype(np.float32)
        with torch.no_grad():
            expected = module(torch.from_numpy(x)).numpy()
        actual = run(x)
        assert actual.shape == expected.shape
        error = max(error, float(np.abs(actual - expected).max()))
        scale = max(scale, float(np.abs(expected).max()))
    return error, scale


def within(error: float, scale: float) -> bool:
    """The tolerance of every comparison: float32 rounding, relative to the output's scale."""
    return error <= 1e-5 * max(1.0, scale)


@dataclass
class ErrorLog:
    """Checks exported models against torch and keeps (what, max abs error, max |output|) for a summary."""

    title: str
    runner: Runner
    rows: list[tuple[str, float, float]] = field(default_factory=list)

    def check(self, what: str, specs: Specs, seed: int = 0) -> None:
        error, scale = max_error(self.runner, specs, seeded_weights(specs, seed=seed))
        self.rows.append((what, error, scale))
        assert scale > 0.1, f"{what}: outputs near zero would hide a wrong graph"
        assert within(error, scale), f"{what}: max abs error {error:.3g} at output scale {scale:.3g}"

    def check_every_kind(self, space: OFAMobileNetV3Space, resolution: int) -> None:
        for what, block in blocks_of_every_kind(space, resolution).items():
            self.check(f"{what} @ {resolution}", block, seed=resolution)

    def print(self) -> None:
        print(f"\n{self.title}, max abs error (max |output|):")
        for what, error, scale in self.rows:
            print(f"  {what:60} {error:.2e} ({scale:.3g})")
