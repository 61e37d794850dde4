"""Stand-ins for hardware this machine cannot have (an Android phone and its ``benchmark_model``).

They stand in at the wire, never for the project's own classes: :mod:`agents.testing.adb_standin` is an
ADB server speaking the real host protocol with simulated devices behind it, and
:mod:`agents.testing.benchmark_model` really runs a ``.tflite`` model in LiteRT and prints what LiteRT's
``benchmark_model`` prints. Used by tests and benchmarks; nothing here is imported by the agents.
"""

from __future__ import annotations
