"""``nag demo``: the whole pipeline on one machine with no set-up (see :mod:`nag.demo.pipeline`).

- :mod:`.config`: :class:`DemoConfig` (the default, sized for a 2-core laptop) and ``QUICK`` (tests).
- :mod:`.pipeline`: :func:`run_demo`, the stages and their reuse between runs.
- :mod:`.accuracy`: the accuracy stages: the DyNAS-T rows, or a supernet on train / search-validation / test.
- :mod:`.result`: :class:`DemoResult` and ``demo.json``, from which ``nag report DIR`` redraws the report.
- :mod:`.report`: the figures, tables and the self-contained HTML page.
"""

from __future__ import annotations

from nag.demo.config import ACCURACIES, QUICK, DemoConfig
from nag.demo.pipeline import DemoResult, run_demo
from nag.demo.result import DemoFileError, load_result

__all__ = ["ACCURACIES", "QUICK", "DemoConfig", "DemoFileError", "DemoResult", "load_result", "run_demo"]
