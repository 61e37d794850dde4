"""NAG Farm: latency tables measured on real devices, and PNAG, a generator of architectures for any budget.

Importing :mod:`nag` is cheap on purpose: heavy libraries (torch, ray, ONNX Runtime, LiteRT) are imported
only by the modules that use them, never on the CLI's start-up path.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
