"""Typed errors of the farm's latency tables: the store, OFA's LUT files, the LUT predictor, validation.

Every class derives from :class:`nag.errors.NagError`, so the CLI prints it as one line and exits with
status 2. Messages say what was wrong, the bad value, and how to fix it. Errors of the device side
(:mod:`agents.errors`) and of the scheduler are not here.
"""

from __future__ import annotations

from nag.errors import NagError

__all__ = [
    "CalibrationError",
    "CorruptStoreError",
    "FarmError",
    "InvalidEntryError",
    "MissingBlockError",
    "NotAStoreError",
    "ReferenceSeriesError",
    "SchemaVersionError",
    "StoreError",
    "StoreNotFoundError",
    "TableAmbiguousError",
    "TableConflictError",
    "TableFileError",
    "TableNotFoundError",
    "UnknownBlockError",
    "ValidationInputError",
]


class FarmError(NagError):
    """Base class of the errors in this module."""


class StoreError(FarmError):
    """Base class of the errors of a latency store (:mod:`farm.store`)."""


class NotAStoreError(StoreError, ValueError):
    """The path is not an SQLite database, or is a database that is not a nag-farm latency store."""


class StoreNotFoundError(StoreError, FileNotFoundError):
    """The store was opened with ``create=False`` and no file exists at the path."""


class CorruptStoreError(StoreError):
    """SQLite found the store's file damaged (a bad page, a broken b-tree); the message says how to recover
    what is intact (``nag table check --db DB --salvage OUT``) and rebuild the rest."""


class SchemaVersionError(StoreError):
    """The store was written by a newer nag-farm whose schema this version cannot read."""


class InvalidEntryError(StoreError, ValueError):
    """An entry to be stored is malformed: an unknown item kind, an empty item, a NaN or negative latency,
    a measurement that does not belong to the table it is put into, or a bad table key field."""


class TableConflictError(StoreError, ValueError):
    """An entry already stored differs from the one being put, and replacing was not asked for."""


class TableNotFoundError(FarmError, LookupError):
    """No table in the store matches the request (device, space, width, resolution)."""


class TableAmbiguousError(FarmError, LookupError):
    """Several tables match a request that needs exactly one; the message lists them and how to narrow."""


class TableFileError(FarmError, ValueError):
    """A table file (OFA LUT YAML, CSV, Parquet) has a bad name, layout, column or value."""


class UnknownBlockError(TableFileError, LookupError):
    """A block key in a table file is not a block of the search space; the message names the closest valid key."""


class MissingBlockError(FarmError, LookupError):
    """An architecture uses a block the table does not hold; the message names the key and how to fill it."""


class CalibrationError(FarmError, ValueError):
    """A calibration cannot be fitted (too few or degenerate network measurements) or read back."""


class ValidationInputError(FarmError, ValueError):
    """Predicted and measured latencies cannot be compared (lengths differ, too few, not finite, not > 0)."""


class ReferenceSeriesError(FarmError, LookupError):
    """A table has no reference series to compare with (built before references, or imported), or no device of
    its group is in the farm to measure the references now."""
