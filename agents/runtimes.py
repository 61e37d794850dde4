"""Loading the local inference runtimes (ONNX Runtime, LiteRT): the one home for how a model file is opened.

Imports are lazy and a missing runtime raises :class:`MissingRuntimeError` saying what to install. Used by
the local agents and by export verification in :mod:`nag.space.export`.
"""

from __future__ import annotations

import os
from typing import Any

from agents.errors import MissingRuntimeError, UnsupportedModelError

__all__ = ["litert_interpreter", "litert_module", "litert_version", "onnx_session", "random_inputs"]


def litert_module() -> Any:
    """The LiteRT interpreter module: ``ai_edge_litert.interpreter``, else the older ``tflite_runtime``."""
    try:
        from ai_edge_litert import interpreter

        return interpreter
    except ImportError:
        try:
            from tflite_runtime import interpreter  # the pre-rename package

            return interpreter
        except ImportError as exc:
            raise MissingRuntimeError("running .tflite models needs LiteRT: pip install ai-edge-litert") from exc


def litert_version() -> str:
    from importlib import metadata

    for distribution in ("ai-edge-litert", "tflite-runtime"):
        try:
            return f"{distribution} {metadata.version(distribution)}"
        except metadata.PackageNotFoundError:
            continue
    return "unknown"


def litert_interpreter(path: str | os.PathLike[str], *, num_threads: int | None = None) -> Any:
    """A LiteRT interpreter for ``path`` with tensors allocated."""
    module = litert_module()
    try:
        interpreter = module.Interpreter(model_path=str(path), num_threads=num_threads)
        interpreter.allocate_tensors()
    except ValueError as exc:  # LiteRT reports unreadable or unsupported models as ValueError
        raise UnsupportedModelError(f"LiteRT cannot load {path}: {exc}") from exc
    return interpreter


def onnx_session(path: str | os.PathLike[str], *, threads: int = 1, providers: list[str] | None = None) -> Any:
    """An ONNX Runtime session: ``threads`` intra-op threads, sequential execution, all graph optimisations."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise MissingRuntimeError("running .onnx models needs ONNX Runtime: pip install onnxruntime") from exc
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=providers or ["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own exception types for invalid graphs
        raise UnsupportedModelError(f"ONNX Runtime cannot load {path}: {type(exc).__name__}: {exc}") from exc


_ONNX_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(uint8)": "uint8",
}


def random_inputs(specs: list[tuple[str, list[Any], str]], *, seed: int = 0) -> dict[str, Any]:
    """Random input arrays for (name, shape, dtype) triples; dtypes in numpy or ONNX ('tensor(float)') spelling."""
    import numpy as np

    rng = np.random.default_rng(seed)
    arrays = {}
    for name, shape, dtype in specs:
        if any(not isinstance(d, (int, np.integer)) or d <= 0 for d in shape):
            raise UnsupportedModelError(f"input {name!r} has a dynamic shape {shape}; export models with fixed shapes")
        numpy_dtype = np.dtype(_ONNX_TYPES.get(dtype, dtype))
        if numpy_dtype.kind == "f":
            arrays[name] = rng.standard_normal(tuple(int(d) for d in shape)).astype(numpy_dtype)
        else:
            arrays[name] = rng.integers(0, 2, size=tuple(int(d) for d in shape)).astype(numpy_dtype)
    return arrays
