"""Typed errors of the :mod:`nag` package.

Every error a user can cause derives from :class:`NagError`; its message says what was wrong, the bad
value, and how to fix it. The CLI turns a :class:`NagError` into a one-line message and exit status 2.
"""

from __future__ import annotations

import reprlib
from typing import Any

__all__ = [
    "ArchitectureError",
    "ExportError",
    "MissingDependencyError",
    "NagError",
    "SettingError",
    "UnknownNameError",
    "show_value",
]


def show_value(value: Any, limit: int = 60) -> str:
    """A bad value as an error message quotes it: a ``repr`` bounded in depth, items and length (``limit``).

    Never raises and never takes long: not for a >4300-digit int (whose ``repr`` raises), a list nested
    100,000 deep, or a YAML alias bomb (a value that ``repr`` would spell out in billions of characters).
    """
    short = reprlib.Repr()
    short.maxlevel, short.maxlist, short.maxdict, short.maxtuple, short.maxset = 3, 6, 4, 6, 6
    short.maxstring = short.maxother = short.maxlong = limit
    try:
        text = short.repr(value)
    except (ValueError, RecursionError):
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


class NagError(Exception):
    """Base class of every error that bad input or a missing part can cause."""


class ArchitectureError(NagError, ValueError):
    """An architecture string or dict does not describe a member of the search space."""


class SettingError(NagError, ValueError):
    """A network setting (width multiplier, input resolution, class count) is out of range."""


class UnknownNameError(NagError, LookupError):
    """A name looked up in a registry (a search space, an export format) is not registered.

    The message lists the valid names.
    """

    def __str__(self) -> str:  # LookupError would quote the message like a key; keep it readable.
        return str(self.args[0]) if self.args else ""


class MissingDependencyError(NagError, ImportError):
    """An optional dependency is not installed; the message says which extra to install."""


class ExportError(NagError, RuntimeError):
    """A model could not be exported, or the exported file disagrees with the torch model."""
