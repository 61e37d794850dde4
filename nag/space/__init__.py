"""Search spaces: the :class:`SearchSpace` interface and a registry by name.

``get_space("ofa-mbv3")`` returns the space of the PNAG paper. A user's own space can be named by dotted
path, ``"package.module:ClassName"``, without registering it.
"""

from __future__ import annotations

from typing import Any

from nag.errors import UnknownNameError
from nag.registry import load_target
from nag.space._base import SearchSpace, StagedSpace, check_setting, staged
from nag.space.blocks import Block, ConvBlock, LinearBlock, MBConvBlock, PoolBlock
from nag.space.costs import NetworkCosts, count_costs

__all__ = [
    "Block",
    "ConvBlock",
    "LinearBlock",
    "MBConvBlock",
    "NetworkCosts",
    "PoolBlock",
    "SearchSpace",
    "StagedSpace",
    "available_spaces",
    "check_setting",
    "count_costs",
    "get_space",
    "staged",
]

# name -> "module:Class"; imported on first use so that a space with heavy dependencies costs nothing until asked for.
_REGISTRY: dict[str, str] = {
    "ofa-mbv3": "nag.space.ofa_mbv3:OFAMobileNetV3Space",
}


def available_spaces() -> list[str]:
    return sorted(_REGISTRY)


def _load_class(target: str) -> Any:
    return load_target(target, what="search space class")


def get_space(name: str) -> SearchSpace[Any]:
    """The search space registered as ``name``, or a user's class given as ``"module:Class"``."""
    if name in _REGISTRY:
        return _load_class(_REGISTRY[name])()
    if ":" in name:
        cls = _load_class(name)
        if not (isinstance(cls, type) and issubclass(cls, SearchSpace)):
            raise UnknownNameError(f"{name!r} is not a SearchSpace subclass")
        return cls()
    raise UnknownNameError(
        f"unknown search space {name!r}; valid names: {', '.join(available_spaces())} "
        "(or a 'package.module:Class' path to your own SearchSpace)"
    )
