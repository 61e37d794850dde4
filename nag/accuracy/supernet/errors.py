"""Typed errors of the supernet package (candidates for :mod:`nag.errors`)."""

from __future__ import annotations

from nag.errors import NagError

__all__ = ["CheckpointError", "DataError"]


class CheckpointError(NagError, ValueError):
    """A supernet checkpoint is missing, unreadable, or not of OFA's ``ofa-mbv3`` layout (the message names the key)."""


class DataError(NagError, ValueError):
    """A data set cannot be used: an unknown name, a folder not in ImageNet layout, an unreadable image."""
