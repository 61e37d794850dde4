from __future__ import annotations

import os

import pytest

# Test traffic stays on loopback: Ray would otherwise report usage statistics to its servers. Set before any
# test starts Ray (in this process or a child, which inherits the environment).
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from nag.space import get_space
from nag.space.ofa_mbv3 import OFAMobileNetV3Space

# PNAG-80-Mobile, published with the paper (Table 1: 7.3 M params, 349 M MAdds at width 1.2, 224 px).
PNAG_80_MOBILE = "2,3,3,3,3:3,3,0,0,3,5,3,0,3,3,5,0,3,3,5,0,5,5,7,0:3,3,0,0,4,3,3,0,4,4,4,0,4,6,6,0,6,6,3,0"


@pytest.fixture(scope="session")
def space() -> OFAMobileNetV3Space:
    found = get_space("ofa-mbv3")
    assert isinstance(found, OFAMobileNetV3Space)
    return found


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The fuzz suite's tally (tests/fuzz.py), when it ran: cases by target and outcome."""
    import sys

    fuzz = sys.modules.get("tests.fuzz")
    if fuzz is None or not fuzz.TALLY:
        return
    tally = fuzz.TALLY
    targets = sorted({target for target, _ in tally})
    total = sum(tally[(t, "tried")] for t in targets)
    terminalreporter.write_sep("-", f"fuzz: {total} cases")
    for target in targets:
        outcomes = ", ".join(f"{outcome}: {n}" for (t, outcome), n in sorted(tally.items()) if t == target and outcome != "tried")
        terminalreporter.write_line(f"{target}: {tally[(target, 'tried')]} cases ({outcomes})")
