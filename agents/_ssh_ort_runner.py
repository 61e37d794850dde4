"""A self-contained ONNX Runtime timing server that :mod:`agents.ssh` uploads to a board and runs there.

It imports only the standard library, numpy and onnxruntime (what the board must have), runs on Python
3.7+, and is never imported by the farm itself. One process serves one measurement::

    python3 _ssh_ort_runner.py --version
    python3 _ssh_ort_runner.py MODEL --threads N [--affinity 0,2,3]

Protocol: every answer is one JSON object on one stdout line.

- ``--version``: ``{"onnxruntime": "1.20.1", "numpy": "...", "python": "..."}``, exit 0.
- ``MODEL``: pins the process to ``--affinity`` (before ONNX Runtime starts its threads), loads the model
  with ``--threads`` intra-op threads and sequential execution, feeds seeded random inputs, and answers
  ``{"ready": true, "onnxruntime": VERSION}``. Then it reads commands, one per stdin line:

  - ``warmup N``: N untimed inferences -> ``{"ok": true}``
  - ``sample N``: N timed inferences (``time.perf_counter_ns``) -> ``{"ms": MEAN_MS}``
  - ``quit``: exit 0; end of input exits at once, even mid-sample (the driver is gone or gave up)

- Any failure answers ``{"error": MESSAGE, "kind": KIND}`` and exits with status 2, where KIND is
  ``"missing-runtime"`` (numpy or onnxruntime not importable), ``"model"`` (the runtime rejects the model
  or it has dynamic shapes), ``"spec"`` (bad threads/affinity) or ``"protocol"`` (an unknown command).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import sys
import threading
import time
from typing import Any

_ONNX_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(uint8)": "uint8",
    "tensor(int8)": "int8",
    "tensor(bool)": "bool",
}


class RunnerError(Exception):
    """A failure to report as ``{"error": ..., "kind": ...}``."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _answer(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def _runtime() -> tuple[Any, Any]:
    try:
        import numpy
        import onnxruntime
    except ImportError as exc:
        raise RunnerError("missing-runtime", f"{exc}; install them on the board: pip install numpy onnxruntime") from exc
    return numpy, onnxruntime


def _pin(affinity: str | None) -> None:
    if affinity is None:
        return
    try:
        cpus = {int(cpu) for cpu in affinity.split(",")}
    except ValueError as exc:
        raise RunnerError("spec", f"affinity must be CPU ids like 0,2,3, got {affinity!r}") from exc
    if not hasattr(os, "sched_setaffinity"):
        raise RunnerError("spec", "this board's Python cannot set CPU affinity; leave affinity unset")
    allowed = os.sched_getaffinity(0)
    if not cpus <= allowed:
        raise RunnerError("spec", f"affinity {sorted(cpus)} is not within the board's usable CPUs {sorted(allowed)}")
    os.sched_setaffinity(0, cpus)


def _session(model: str, threads: int) -> tuple[Any, dict[str, Any]]:
    numpy, ort = _runtime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ONNX Runtime raises its own exception types for unreadable or invalid graphs
        raise RunnerError("model", f"ONNX Runtime cannot load {model}: {type(exc).__name__}: {exc}") from exc
    rng = numpy.random.default_rng(0)
    feeds = {}
    for item in session.get_inputs():
        shape = item.shape
        if any(not isinstance(d, int) or d <= 0 for d in shape):
            raise RunnerError("model", f"input {item.name!r} has a dynamic shape {shape}; export models with fixed shapes")
        dtype = numpy.dtype(_ONNX_TYPES.get(item.type, "float32"))
        if dtype.kind == "f":
            feeds[item.name] = rng.standard_normal(tuple(shape)).astype(dtype)
        else:
            feeds[item.name] = rng.integers(0, 2, size=tuple(shape)).astype(dtype)
    return session, feeds


def _commands() -> queue.Queue[str]:
    """Stdin's lines, read by a thread that ends the process at end of input, even mid-sample.

    The driver closes the channel after ``quit``, and also when it gives up (a timeout) or is gone (a dropped
    connection): either way nobody reads the answers any more, and the board's CPU must not stay busy.
    """
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in sys.stdin:
            lines.put(line)
        os._exit(0)

    threading.Thread(target=read, name="stdin", daemon=True).start()
    return lines


def _serve(session: Any, feeds: dict[str, Any]) -> None:
    run = session.run
    commands = _commands()
    while True:
        line = commands.get()
        words = line.split()
        if not words:
            continue
        if words == ["quit"]:
            return
        if len(words) != 2 or words[0] not in ("warmup", "sample") or not words[1].isdigit() or int(words[1]) < 1:
            raise RunnerError("protocol", f"unknown command {line.strip()!r}; expected 'warmup N', 'sample N' or 'quit'")
        runs = int(words[1])
        try:
            start = time.perf_counter_ns()
            for _ in range(runs):
                run(None, feeds)
            elapsed_ns = time.perf_counter_ns() - start
        except Exception as exc:  # an inference that fails is the model's problem, reported with its type
            raise RunnerError("model", f"inference failed: {type(exc).__name__}: {exc}") from exc
        _answer({"ok": True} if words[0] == "warmup" else {"ms": elapsed_ns / runs / 1e6})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="ONNX Runtime timing server for agents.ssh (see the module docstring)")
    parser.add_argument("model", nargs="?")
    parser.add_argument("--version", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--affinity", default=None)
    args = parser.parse_args(argv)
    try:
        if args.version:
            numpy, ort = _runtime()
            _answer({"onnxruntime": ort.__version__, "numpy": numpy.__version__, "python": platform.python_version()})
            return 0
        if args.model is None:
            raise RunnerError("protocol", "no model given; usage: _ssh_ort_runner.py MODEL --threads N [--affinity 0,1]")
        if args.threads < 1:
            raise RunnerError("spec", f"threads must be >= 1, got {args.threads}")
        _pin(args.affinity)  # before the runtime creates its thread pool, which inherits the mask
        session, feeds = _session(args.model, args.threads)
        _answer({"ready": True, "onnxruntime": _runtime()[1].__version__})
        _serve(session, feeds)
    except RunnerError as exc:
        _answer({"error": str(exc), "kind": exc.kind})
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
