"""The :class:`SearchSpace` interface.

A search space owns everything that is specific to one family of networks: the architecture type and its
canonical string (an architecture's identity and its table key), sampling and the evolutionary operators,
the fixed-length encoding that learned models read, and the mapping from an architecture to the blocks it
is built of, at a given width multiplier and input resolution. Costs, torch models and exported files are
all derived from those blocks, so each is defined once.

Implementations are stateless apart from their construction arguments and are safe to share between
threads. Every method that takes user input raises :class:`nag.errors.ArchitectureError` or
:class:`nag.errors.SettingError` with a message that names the problem; none returns a default instead.
"""

from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar, runtime_checkable

from nag.errors import SettingError
from nag.space.blocks import Block
from nag.space.costs import NetworkCosts, count_costs

if TYPE_CHECKING:
    import torch

__all__ = ["STAGED_ATTRIBUTES", "SearchSpace", "StagedSpace", "check_setting", "staged"]

ArchT = TypeVar("ArchT")

MIN_RESOLUTION = 32
MAX_RESOLUTION = 2048


def check_setting(*, width: float, resolution: int, num_classes: int) -> None:
    """Raise :class:`SettingError` unless the network setting is usable."""
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not math.isfinite(width) or not 0 < width <= 4:
        raise SettingError(f"width multiplier must be a number in (0, 4], got {width!r}; e.g. 1.0 (OFA) or 1.2 (PNAG)")
    if isinstance(resolution, bool) or not isinstance(resolution, int) or not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION:
        raise SettingError(
            f"input resolution must be an integer from {MIN_RESOLUTION} to {MAX_RESOLUTION} pixels, got {resolution!r}; e.g. 224"
        )
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise SettingError(f"number of classes must be a positive integer, got {num_classes!r}; e.g. 1000 (ImageNet)")


class SearchSpace(ABC, Generic[ArchT]):
    """A family of networks, its architectures, and the blocks they are made of."""

    name: ClassVar[str]  # registry name, e.g. "ofa-mbv3"
    default_width: ClassVar[float]
    default_resolution: ClassVar[int]
    default_num_classes: ClassVar[int] = 1000

    # -- identity -----------------------------------------------------------------------------------
    @abstractmethod
    def parse(self, value: str | Mapping[str, Any]) -> ArchT:
        """An architecture from its canonical string (or a space-specific dict form); validated."""

    @abstractmethod
    def format(self, arch: ArchT) -> str:
        """The canonical string of ``arch``; ``parse(format(a)) == a``."""

    # -- sampling and evolution ----------------------------------------------------------------------
    @abstractmethod
    def sample(self, rng: random.Random) -> ArchT:
        """One architecture drawn uniformly as the space's reference implementation draws it."""

    def sample_many(self, n: int, *, seed: int | None = None) -> list[ArchT]:
        """``n`` architectures from a ``random.Random(seed)`` stream (reproducible for a given seed)."""
        if n < 0:
            raise SettingError(f"number of architectures must be >= 0, got {n}")
        rng = random.Random(seed)
        return [self.sample(rng) for _ in range(n)]

    @abstractmethod
    def mutate(self, arch: ArchT, rng: random.Random, *, prob: float = 0.1) -> ArchT:
        """A copy of ``arch`` whose every choice is resampled with probability ``prob``."""

    @abstractmethod
    def crossover(self, first: ArchT, second: ArchT, rng: random.Random) -> ArchT:
        """A child taking every choice from one of the two parents, uniformly."""

    # -- learning -----------------------------------------------------------------------------------
    @property
    @abstractmethod
    def encoding_size(self) -> int:
        """Length of :meth:`encode`'s vector."""

    @abstractmethod
    def encode(self, arch: ArchT) -> list[float]:
        """A fixed-length numeric encoding of ``arch`` for learned models."""

    # -- blocks, costs, models ----------------------------------------------------------------------
    @abstractmethod
    def blocks(
        self, arch: ArchT, *, width: float | None = None, resolution: int | None = None, num_classes: int | None = None
    ) -> list[Block]:
        """The blocks ``arch`` is built of, input to output; its table latency is a sum over them."""

    @abstractmethod
    def all_blocks(
        self, *, width: float | None = None, resolution: int | None = None, num_classes: int | None = None
    ) -> list[Block]:
        """Every distinct block any architecture of the space can use at this setting (unique keys)."""

    def costs(
        self, arch: ArchT, *, width: float | None = None, resolution: int | None = None, num_classes: int | None = None
    ) -> NetworkCosts:
        """Exact analytic MAdds and parameters of ``arch`` (see :mod:`nag.space.costs`)."""
        return count_costs(self.blocks(arch, width=width, resolution=resolution, num_classes=num_classes))

    def build_model(
        self, arch: ArchT, *, width: float | None = None, resolution: int | None = None, num_classes: int | None = None
    ) -> torch.nn.Module:
        """The standalone torch model of ``arch`` (imports torch)."""
        from nag.space.models import build_network

        return build_network(self.blocks(arch, width=width, resolution=resolution, num_classes=num_classes))

    def summary(
        self, arch: ArchT, *, width: float | None = None, resolution: int | None = None, num_classes: int | None = None
    ) -> dict[str, Any]:
        """A JSON-ready description of ``arch``: the fields of ``nag arch info --json``.

        ``arch`` (canonical), ``space``, ``width``, ``resolution``, ``num_classes``, ``madds_m`` (classifier
        excluded), ``madds_total_m`` (included), ``params_m``, and the exact integers ``madds``,
        ``madds_total``, ``params``.
        """
        width, resolution, num_classes = self.resolve_setting(width=width, resolution=resolution, num_classes=num_classes)
        costs = self.costs(arch, width=width, resolution=resolution, num_classes=num_classes)
        return {
            "arch": self.format(arch),
            "space": self.name,
            "width": width,
            "resolution": resolution,
            "num_classes": num_classes,
            "madds_m": round(costs.madds_m, 3),
            "madds_total_m": round(costs.madds_total_m, 3),
            "params_m": round(costs.params_m, 4),
            "madds": costs.madds,
            "madds_total": costs.madds_total,
            "params": costs.params,
        }

    def resolve_setting(self, *, width: float | None, resolution: int | None, num_classes: int | None) -> tuple[float, int, int]:
        """Fill unset values with the space's defaults and validate them."""
        setting = (
            self.default_width if width is None else width,
            self.default_resolution if resolution is None else resolution,
            self.default_num_classes if num_classes is None else num_classes,
        )
        check_setting(width=setting[0], resolution=setting[1], num_classes=setting[2])
        return setting

    def parse_many(self, values: Sequence[str | Mapping[str, Any]]) -> list[ArchT]:
        return [self.parse(value) for value in values]


STAGED_ATTRIBUTES = ("depth_choices", "kernel_choices", "expand_choices", "num_stages", "slots_per_stage")


@runtime_checkable
class StagedSpace(Protocol):
    """An optional capability of a :class:`SearchSpace`: a MobileNet-like staged layout, ``num_stages`` stages of
    ``slots_per_stage`` layer slots; a stage uses the first ``depth`` slots (one of ``depth_choices``), and each used
    slot picks a kernel size and an expand ratio. The PNAG generator, the additive latency model, the fitted
    accuracy predictor's fast encoding and the known-answer problem need it. Declared by class attributes
    (``OFAMobileNetV3Space`` has them); :func:`staged` checks a space for it."""

    @property
    def name(self) -> str: ...
    @property
    def depth_choices(self) -> tuple[int, ...]: ...
    @property
    def kernel_choices(self) -> tuple[int, ...]: ...
    @property
    def expand_choices(self) -> tuple[int, ...]: ...
    @property
    def num_stages(self) -> int: ...
    @property
    def slots_per_stage(self) -> int: ...


def staged(space: SearchSpace[Any], needed_by: str) -> StagedSpace:
    """``space`` as a :class:`StagedSpace`; raises :class:`SettingError` naming what it lacks and who needs it."""
    if isinstance(space, StagedSpace):
        return space
    missing = [name for name in STAGED_ATTRIBUTES if name not in dir(space)]
    raise SettingError(
        f"{needed_by} needs a staged (MobileNet-like) search space; {space.name!r} lacks {', '.join(missing)} "
        f"(a space declares {', '.join(STAGED_ATTRIBUTES)}: see nag.space.StagedSpace)"
    )
