"""Typed errors of the :mod:`nag` package.

Every error a user can cause derives from :class:`NagError`; its message says what was wrong, the bad
value, and how to fix it. The CLI turns a :class:`NagError` into a one-line message and exit status 2.
"""

from __future__ import annotations

__all__ = [
    "ArchitectureError",
    "ExportError",
    "MissingDependencyError",
    "NagError",
    "SettingError",
    "UnknownNameError",
]


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
