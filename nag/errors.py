"""Typed errors of the :mod:`nag` package.

Every error a user can cause derives from :class:`NagError`; its message says what was wrong, the bad
value, and how to fix it. The CLI turns a :class:`NagError` into a one-line message and exit status 2.
"""

from __future__ import annotations

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
    """A bad value as an error message quotes it: its ``repr``, cut to ``limit`` characters.

    Never raises (``repr`` of a >4300-digit int or of a deeply nested list does), so a message about a
    hostile value is still one short line.
    """
    try:
        text = repr(value)
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
