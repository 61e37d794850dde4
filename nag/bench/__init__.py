"""``nag bench``: every search method on the same task, every answer scored by the sources.

:func:`nag.bench.runner.run_bench` runs the methods and scores them (:mod:`nag.bench.evaluate`);
:mod:`nag.bench.report` writes the CSV/JSON, the paper's Table 2-5 analogues and the figures.
"""
