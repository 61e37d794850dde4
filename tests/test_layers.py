"""The layering of ARCHITECTURE.md, checked on the code: every import between units points down.

A unit is a top-level package (``agents``, ``farm``) or a subpackage/module of ``nag`` (``nag.search``); the
two modules of ``agents`` that form part of the base (``agents.errors``, ``agents.runtimes``) are units of
their own.
Imports inside a function count as much as those at the top of a file. Known upward imports are listed in
``DEBT`` with the issue that removes them: the list may shrink, never grow (a test fails when an entry is
no longer needed, so that it is struck off).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("nag", "farm", "agents")

# Lowest first. A unit may import units of its own layer or any layer below.
LAYERS: tuple[tuple[str, ...], ...] = (
    (
        "nag.errors",
        "nag.registry",
        "nag.files",
        "nag.stored",
        "nag.ray_session",
        "nag.__init__",
        "agents.errors",
        "agents.runtimes",
    ),  # the base: errors, the class loader, durable writes, stored-entry checks, Ray drivers, opening models
    ("agents",),  # device-side measurement: runtimes, agent kinds (imports nothing of ours above the base)
    ("nag.space",),  # search spaces, blocks, model export
    ("nag.data", "nag.latency", "nag.accuracy"),  # tables, latency predictors, accuracy sources
    ("farm", "nag.search"),  # the farm (Ray actors, scheduling, tables); the search (PNAG and the baselines)
    ("nag.bench", "nag.demo", "nag.reporting", "nag.cli", "nag.__main__"),  # the application
)

# (importer, imported): upward imports that exist today, and the issue that removes each.
DEBT: dict[tuple[str, str], str] = {}


_BASE_MODULES_OF_AGENTS = ("agents.errors", "agents.runtimes")


def _unit(module: str) -> str:
    if module in _BASE_MODULES_OF_AGENTS:
        return module
    parts = module.split(".")
    if parts[0] == "nag":
        return f"nag.{parts[1]}" if len(parts) > 1 else "nag.__init__"  # 'from nag import x' reads nag/__init__.py
    return parts[0]


def _layer(unit: str) -> int:
    for index, units in enumerate(LAYERS):
        if unit in units:
            return index
    raise AssertionError(f"unit {unit!r} is in no layer of tests/test_layers.py (and ARCHITECTURE.md): place it")


def _imports() -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            importer = _unit(".".join(path.relative_to(ROOT).with_suffix("").parts))
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module]
                    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
                    else []
                )
                for name in names:
                    if name.split(".")[0] in PACKAGES and _unit(name) != importer:
                        found.add((importer, _unit(name)))
    return found


def test_every_import_points_down_or_is_known_debt() -> None:
    upward = {(a, b) for a, b in _imports() if _layer(b) > _layer(a)}
    assert upward - set(DEBT) == set(), f"upward imports (see ARCHITECTURE.md): {sorted(upward - set(DEBT))}"


def test_every_debt_entry_still_exists() -> None:
    stale = set(DEBT) - _imports()
    assert not stale, f"paid off, strike from DEBT: {sorted(stale)}"


def test_the_check_sees_imports_inside_functions() -> None:
    # nag.cli imports farm only inside its handlers (so that the CLI starts fast): the check must see it
    assert ("nag.cli", "farm") in _imports()
