"""Limits and helpers shared by the search spaces' parsers: every architecture string, JSON text and dict
passes through these before any real parsing, so that no input -- a 100 kB string, a 5,000-digit number,
lists nested 100,000 deep -- costs more than a bounded amount of work or ends in anything but an
:class:`~nag.errors.ArchitectureError` whose message is one short line.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from nag.errors import ArchitectureError
from nag.errors import show_value as show

__all__ = [
    "MAX_ARCH_CHARS",
    "MAX_ARCH_DEPTH",
    "MAX_INT_DIGITS",
    "check_arch_mapping",
    "check_arch_text",
    "load_arch_json",
    "parse_int",
]

MAX_ARCH_CHARS = 4096  # an architecture string or JSON form; ofa-mbv3's canonical string is under 100 characters
MAX_ARCH_DEPTH = 4  # nesting of a JSON/dict form: {"ks": [...]} is 2 deep
MAX_INT_DIGITS = 6  # one choice (a depth, kernel size or expand ratio) is a small integer


def check_arch_text(text: str) -> str:
    """``text`` stripped, after checking its length against :data:`MAX_ARCH_CHARS`."""
    if len(text) > MAX_ARCH_CHARS:
        raise ArchitectureError(
            f"architecture text is {len(text)} characters, over the limit of {MAX_ARCH_CHARS}; "
            f"an architecture is a short 'depths:kernels:expands' string or dict, starting {show(text[:40])}"
        )
    return text.strip()


def _json_depth(text: str) -> int:
    """The deepest nesting of ``[``/``{`` in JSON text, outside strings (the text is at most MAX_ARCH_CHARS)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _json_int(token: str) -> int:
    if len(token.lstrip("-")) > MAX_INT_DIGITS:
        raise ArchitectureError(
            f"number {show(token)} in the architecture has over {MAX_INT_DIGITS} digits; not a choice of the space"
        )
    return int(token)


def load_arch_json(text: str) -> Any:
    """JSON text of an architecture's dict form, with depth and number-length limits; raises ArchitectureError."""
    text = check_arch_text(text)
    depth = _json_depth(text)
    if depth > MAX_ARCH_DEPTH:
        raise ArchitectureError(
            f"architecture JSON is nested {depth} deep, over the limit of {MAX_ARCH_DEPTH}; "
            'the dict form is flat lists, e.g. {"ks": [3, ...], "e": [3, ...], "d": [2, ...]}'
        )
    try:
        return json.loads(text, parse_int=_json_int)
    except json.JSONDecodeError as exc:
        raise ArchitectureError(f"architecture looks like JSON but does not parse: {exc.msg} in {show(text)}") from None
    except ArchitectureError:  # from _json_int
        raise
    except (ValueError, RecursionError) as exc:  # e.g. a float literal that int() cannot take
        raise ArchitectureError(f"architecture JSON cannot be read ({type(exc).__name__}) in {show(text)}") from None


def parse_int(token: str, what: str, position: int) -> int:
    """One non-negative integer of an architecture string (at most :data:`MAX_INT_DIGITS` digits)."""
    token = token.strip()
    if not (token.isascii() and token.isdigit()):
        raise ArchitectureError(f"{what}: {show(token)} at position {position} is not a non-negative integer")
    if len(token) > MAX_INT_DIGITS:
        raise ArchitectureError(
            f"{what}: the value at position {position} has {len(token)} digits, over {MAX_INT_DIGITS}; not a choice of the space"
        )
    return int(token)


def check_arch_mapping(value: Mapping[Any, Any]) -> None:
    """A dict form's depth and size, checked without ``repr`` of anything unbounded."""
    if len(value) > 16:
        raise ArchitectureError(f"an architecture dict has {len(value)} keys; it needs only a few, e.g. 'ks', 'e', 'd'")
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_ARCH_DEPTH:
            raise ArchitectureError(
                f"an architecture dict is nested over {MAX_ARCH_DEPTH} deep; its values are flat lists of integers"
            )
        children = item.values() if isinstance(item, Mapping) else item if isinstance(item, (list, tuple)) else ()
        if len(children) > MAX_ARCH_CHARS:
            raise ArchitectureError(f"an architecture dict holds a list of {len(children)} items; its lists hold 5 or 20")
        stack.extend((child, depth + 1) for child in children if isinstance(child, (Mapping, list, tuple)))
