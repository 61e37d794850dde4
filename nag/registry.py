"""The one loader of ``"package.module:Name"`` targets, for every registry of the project.

Registries map short, stable names to targets and import them on first use, so that a plug-in with heavy
dependencies (torch, Ray, ONNX Runtime) costs nothing until it is asked for.
"""

from __future__ import annotations

import importlib
from typing import Any

from nag.errors import UnknownNameError

__all__ = ["load_target"]


def load_target(target: str, *, what: str) -> Any:
    """The object named by ``"package.module:Name"``; raises :class:`UnknownNameError` saying ``what`` it was for."""
    module_name, _, name = target.partition(":")
    if not module_name or not name:
        raise UnknownNameError(f"{what} target {target!r} is not of the form 'package.module:Name'")
    try:
        return getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise UnknownNameError(f"cannot load {what} {target!r}: {exc}") from exc
