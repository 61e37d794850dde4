"""Reference networks: a small fixed set of whole networks per search space, measured to compare devices
(``nag farm check``) and, later, one device with itself over time.

The set spans the space's cost range: from 64 seeded samples (seed 0, so the same on every machine and in
every version of this module), the cheapest, the median and the most expensive by multiply-adds.
"""

from __future__ import annotations

from nag.space import get_space

__all__ = ["REFERENCE_COUNT", "reference_archs"]

REFERENCE_COUNT = 3
_POOL = 64  # seeded samples the references are chosen from


def reference_archs(space_name: str) -> list[str]:
    """The space's reference networks, cheapest first (architecture strings)."""
    space = get_space(space_name)
    pool = sorted(
        {space.format(a) for a in space.sample_many(_POOL, seed=0)}, key=lambda a: (space.costs(space.parse(a)).madds, a)
    )
    return [pool[0], pool[len(pool) // 2], pool[-1]]
