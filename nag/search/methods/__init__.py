"""Search methods behind one interface (:class:`SearchMethod`), by short stable names.

=============== ==========================================================================================
``pnag``        the generator trained once over K budgets, any budget by inference (the product)
``pnag-no-acc`` PNAG without the accuracy condition of the dominance rule (paper Table 2 ablation)
``independent`` the PNAG generator trained for one budget at a time (paper Table 3)
``mnasnet``     per-budget REINFORCE, reward acc * (lat/B)^-0.07 (paper Table 2)
``tunas``       per-budget REINFORCE, reward acc - 0.07 |lat/B - 1| (paper Table 2)
``evolution``   OFA's evolutionary search per budget at OFA's settings, asking the accuracy source
``random``      the best of N uniform samples under each budget
``local``       PNAG's refinement climbed from the best of N uniform samples (the control for the generator)
=============== ==========================================================================================

Adding a method: one module beside these with a class satisfying :class:`SearchMethod`, and one line in
:data:`METHODS`; the contract tests (``tests/search/methods/test_contract.py``) then run it. A method of
your own can also be named by ``"package.module:Class"`` without registering it.
"""

from __future__ import annotations

from typing import Any

from nag.errors import UnknownNameError
from nag.registry import load_target
from nag.search.methods._base import Answer, MethodRun, Proposer, SearchMethod, SearchTask

__all__ = ["METHODS", "Answer", "MethodRun", "Proposer", "SearchMethod", "SearchTask", "available_methods", "get_method"]

# name -> "module:Class"; imported on first use.
METHODS: dict[str, str] = {
    "pnag": "nag.search.methods.pnag:Pnag",
    "pnag-no-acc": "nag.search.methods.pnag:PnagNoAccuracy",
    "independent": "nag.search.methods.pnag:Independent",
    "mnasnet": "nag.search.methods.reinforce:MnasNet",
    "tunas": "nag.search.methods.reinforce:TuNAS",
    "evolution": "nag.search.methods.evolution:Evolution",
    "random": "nag.search.methods.random_search:RandomSearch",
    "local": "nag.search.methods.local_search:LocalSearch",
}


def available_methods() -> list[str]:
    return list(METHODS)


def get_method(name: str, **options: Any) -> SearchMethod:
    """A new instance of the method registered as ``name`` (or a ``"module:Class"``), built with ``options``."""
    if name in METHODS:
        target = METHODS[name]
    elif ":" in name:
        target = name
    else:
        raise UnknownNameError(
            f"unknown search method {name!r}; valid names: {', '.join(METHODS)} (or a 'package.module:Class' of your own)"
        )
    method = load_target(target, what="search method")(**options)
    if not isinstance(method, SearchMethod):
        raise UnknownNameError(f"{target!r} does not implement SearchMethod (name, amortised, run)")
    return method
