"""Reading back what nag stored (the JSON files of a run directory): checks that raise a ValueError naming the entry.

A reader of a stored file takes its entries through these instead of indexing and converting blindly
(``value["constant_ms"]``, ``float(...)``, ``cls(**value)``), so that damaged content raises
:class:`StoredValueError` (a ValueError) that says which entry is wrong and how, and the loader turns exactly
that into its typed error (:class:`nag.search.rundir.RunDirError`). A KeyError, TypeError or AttributeError
then stays what it is: a mistake in the reader, not a damaged file. ``where`` is the entry's name as the
message gives it (``"budgets_ms"``, ``"metrics.trials[0].seed"``).
"""

from __future__ import annotations

import dataclasses
import math
import types
from collections.abc import Mapping
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from nag.errors import show_value

__all__ = [
    "StoredValueError",
    "check_type",
    "dataclass_values",
    "entry",
    "integer",
    "items",
    "mapping",
    "number",
    "numbers",
    "text",
]


class StoredValueError(ValueError):
    """A stored entry that is missing or not what its file holds there; the message names the entry."""


def mapping(value: Any, where: str) -> Mapping[str, Any]:
    """``value`` when it is an object (a JSON dict)."""
    if not isinstance(value, Mapping):
        raise StoredValueError(f"{where} holds {show_value(value)}, not an object")
    return value


def entry(data: Any, key: str, where: str) -> Any:
    """``data[key]``, where ``data`` must be an object that has ``key``."""
    if key not in mapping(data, where):
        raise StoredValueError(f"{where} has no {key!r}")
    return data[key]


def number(value: Any, where: str, *, finite: bool = False) -> float:
    """``value`` as a float: an int or a float (not a bool), finite if asked."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise StoredValueError(f"{where} is {show_value(value)}, not a number")
    try:
        result = float(value)
    except OverflowError:  # an int too large for a float
        raise StoredValueError(f"{where} is {show_value(value)}, not a finite number") from None
    if finite and not math.isfinite(result):
        raise StoredValueError(f"{where} is {value!r}, not a finite number")
    return result


def integer(value: Any, where: str) -> int:
    """``value`` when it is an int (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise StoredValueError(f"{where} is {show_value(value)}, not an integer")
    return value


def text(value: Any, where: str) -> str:
    """``value`` when it is a string."""
    if not isinstance(value, str):
        raise StoredValueError(f"{where} is {show_value(value)}, not a string")
    return value


def items(value: Any, where: str) -> list[Any]:
    """``value`` when it is a list."""
    if not isinstance(value, list):
        raise StoredValueError(f"{where} holds {show_value(value)}, not a list")
    return value


def numbers(value: Any, where: str, *, finite: bool = False) -> dict[str, float]:
    """An object of numbers, as ``{str: float}``."""
    return {str(k): number(v, f"{where}[{k!r}]", finite=finite) for k, v in mapping(value, where).items()}


def _allowed(hint: Any) -> tuple[type, ...]:
    """The JSON types a value of type ``hint`` may have."""
    origin, args = get_origin(hint), get_args(hint)
    if origin is Literal:
        return tuple({type(arg) for arg in args})
    if origin is Union or origin is types.UnionType:
        return tuple(t for arg in args for t in _allowed(arg))
    if origin is tuple or hint is tuple:
        return (list, tuple)
    if hint is float:
        return (float, int)  # JSON writes a whole float as an integer
    return (hint,)


def check_type(value: Any, hint: Any, where: str) -> None:
    """Raise :class:`StoredValueError` unless ``value`` has type ``hint`` as JSON holds it: a class, ``X | None``, a
    ``Literal`` (of its values' types), or a tuple of numbers (a list); a bool is never taken for a number."""
    allowed = _allowed(hint)
    if isinstance(value, bool) != (bool in allowed) or not isinstance(value, allowed):
        raise StoredValueError(f"{where} is {show_value(value)}, not {' or '.join(t.__name__ for t in allowed)}")
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            number(item, f"{where}[{index}]")


def dataclass_values(cls: type, data: Any, where: str, *, unknown: bool = False) -> dict[str, Any]:
    """The values of dataclass ``cls``'s fields in the object ``data``, each checked against its type hint
    (:func:`check_type`); a required field that is missing raises, and so does a key ``cls`` does not have
    unless ``unknown`` (then it is left out)."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    data = mapping(data, where)
    extra = sorted(str(k) for k in data if k not in known)
    if extra and not unknown:
        raise StoredValueError(f"{where} has unknown entries {show_value(extra, 200)}; known: {sorted(known)}")
    missing = [
        name
        for name, f in known.items()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and name not in data
    ]
    if missing:
        raise StoredValueError(f"{where} has no {', '.join(map(repr, missing))}")
    hints = get_type_hints(cls)
    values = {name: data[name] for name in known if name in data}
    for name, value in values.items():
        check_type(value, hints[name], f"{where}.{name}")
    return values
