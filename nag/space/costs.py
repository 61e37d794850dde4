"""Whole-network costs, summed exactly over a network's block specs (no torch needed).

Conventions (they reproduce the published PNAG/OFA figures): ``madds`` counts the multiply-adds of every
convolution, squeeze-excitation 1x1 convolutions included, and excludes the final classifier;
``madds_total`` adds the classifier; ``params`` counts every parameter, batch-norm included.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from nag.space.blocks import Block, LinearBlock

__all__ = ["NetworkCosts", "count_costs"]


@dataclass(frozen=True)
class NetworkCosts:
    madds: int  # multiply-adds of all convolutions (SE included), classifier excluded
    madds_total: int  # ``madds`` plus the classifier's multiply-adds
    params: int  # all parameters, batch-norm included

    @property
    def madds_m(self) -> float:
        return self.madds / 1e6

    @property
    def madds_total_m(self) -> float:
        return self.madds_total / 1e6

    @property
    def params_m(self) -> float:
        return self.params / 1e6


def count_costs(blocks: Iterable[Block]) -> NetworkCosts:
    """Sum the analytic costs of a network's blocks."""
    madds = classifier_madds = params = 0
    for block in blocks:
        if isinstance(block, LinearBlock):
            classifier_madds += block.madds
        else:
            madds += block.madds
        params += block.params
    return NetworkCosts(madds=madds, madds_total=madds + classifier_madds, params=params)
