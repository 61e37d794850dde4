"""``nag demo``: the whole pipeline on one machine with no set-up (see :mod:`nag.demo.pipeline`).

- :mod:`.config`: :class:`DemoConfig` (the default, sized for a 2-core laptop) and ``QUICK`` (tests).
- :mod:`.pipeline`: :func:`run_demo`, the stages and their reuse between runs.
- :mod:`.report`: the figures, tables and the self-contained HTML page.
"""

from __future__ import annotations

from nag.demo.config import QUICK, DemoConfig
from nag.demo.pipeline import DemoResult, run_demo

__all__ = ["QUICK", "DemoConfig", "DemoResult", "run_demo"]
