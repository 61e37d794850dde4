"""A stand-in for LiteRT's ``benchmark_model`` that really runs the model here and prints what it prints.

The model is loaded with the LiteRT interpreter (``ai_edge_litert``, or the older ``tflite_runtime``),
its inputs are filled with random data and every ``invoke()`` is timed with :func:`time.perf_counter`.
The run loop is the real tool's (``BenchmarkModel::Run``): a warm-up phase of at least ``--warmup_runs``
runs and at least ``--warmup_min_secs`` seconds, then a timed phase of at least ``--num_runs`` runs and
at least ``--min_secs`` seconds, each phase cut off once ``--max_secs`` have passed; ``--run_delay``
seconds are slept after every run. The printed statistics follow ``StatWithPercentiles`` exactly
(integer microseconds; ``avg`` as a C++ stream prints a double, i.e. ``f"{x:.6g}"``; ``std`` truncated;
percentile p = the ``n*p//100``-th smallest value; ``count=1 curr=...`` when all values are equal)::

    INFO: STARTING!
    INFO: Log parameter values verbosely: [0]
    INFO: Min num runs: [5]                        <- only the flags given on the command line
    INFO: Graph: [/data/local/tmp/m.tflite]
    INFO: Loaded model /data/local/tmp/m.tflite
    INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
    INFO: The input model file size (MB): 0.007908
    INFO: Initialized session in 1.203ms.
    INFO: Running benchmark for at least 1 iterations and at least 0 seconds but terminate if exceeding 150 seconds.
    INFO: count=1 curr=231 p5=231 median=231 p95=231

    INFO: Running benchmark for at least 5 iterations and at least 0 seconds but terminate if exceeding 150 seconds.
    INFO: count=5 first=61 curr=58 min=57 max=61 avg=58.6 std=1 p5=57 median=58 p95=61

    INFO: Inference timings in us: Init: 1203, First inference: 231, Warmup (avg): 231, Inference (avg): 58.6
    INFO: Note: as the benchmark tool itself affects memory footprint, ...
    INFO: Memory footprint delta from the start of the tool (MB): init=0.5 overall=0.5

Like the real tool, everything goes to standard error. Errors are ``ERROR: `` lines ending with
``ERROR: Benchmarking failed.`` and exit status 1. Deliberate differences: an unknown flag is an error
(the real tool only warns ``Unconsumed cmdline flags`` and carries on), ``--use_gpu=true`` always fails
(there is no GPU delegate here), and only the flags below are known.

Use it in-process with :func:`run` (a device path is mapped to a host file through ``root_map``), or as a
program: ``python -m agents.testing.benchmark_model --graph=m.tflite --num_threads=4``.
"""

from __future__ import annotations

import math
import os
import posixpath
import re
import resource
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np

__all__ = [
    "FLAG_DEFAULTS",
    "BenchmarkFlags",
    "FlagError",
    "RootMap",
    "format_stat",
    "main",
    "parse_flags",
    "run",
    "run_streaming",
    "usage",
]

RootMap: TypeAlias = "Path | Callable[[str], Path]"
"""Where a ``--graph`` path lives on the host: a device root folder (device ``/a/b`` is ``root/a/b``;
relative paths start at ``/``), or a function from the path as given to a host path."""

FLAG_DEFAULTS: dict[str, object] = {
    "graph": "",
    "num_threads": -1,
    "warmup_runs": 1,
    "num_runs": 50,
    "min_secs": 1.0,
    "warmup_min_secs": 0.5,
    "max_secs": 150.0,
    "run_delay": -1.0,
    "use_xnnpack": False,
    "use_gpu": False,
}

# The parameters the real tool logs, in its order, when they were set on the command line.
_LOGGED = (
    ("num_runs", "Min num runs"),
    ("min_secs", "Min runs duration (seconds)"),
    ("max_secs", "Max runs duration (seconds)"),
    ("run_delay", "Inter-run delay (seconds)"),
    ("num_threads", "Num threads"),
    ("warmup_runs", "Min warmup runs"),
    ("warmup_min_secs", "Min warmup runs duration (seconds)"),
    ("graph", "Graph"),
    ("num_threads", "#threads used for CPU inference"),
    ("use_gpu", "Use gpu"),
    ("use_xnnpack", "Use xnnpack"),
)
_FLAG = re.compile(r"--(?P<name>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*)", re.DOTALL)


class FlagError(ValueError):
    """The command line cannot be run; the message is the tool's error text (one or more lines)."""


@dataclass(frozen=True)
class BenchmarkFlags:
    """One command line of the tool, parsed (see :data:`FLAG_DEFAULTS` for the defaults)."""

    graph: str  # --graph: the model file, as given (a device path inside the ADB stand-in)
    num_threads: int  # --num_threads: interpreter threads; -1 lets LiteRT choose
    warmup_runs: int  # --warmup_runs: minimum number of warm-up runs
    num_runs: int  # --num_runs: minimum number of timed runs
    min_secs: float  # --min_secs: minimum duration of the timed phase
    warmup_min_secs: float  # --warmup_min_secs: minimum duration of the warm-up phase
    max_secs: float  # --max_secs: a phase stops adding runs after this many seconds
    run_delay: float  # --run_delay: seconds slept after each run; <= 0 means none
    use_xnnpack: bool  # --use_xnnpack: false runs the builtin kernels without the default XNNPACK delegate
    use_gpu: bool  # --use_gpu: always fails here (no GPU delegate)
    given: tuple[str, ...]  # names of the flags set on the command line (the tool logs only these)

    @property
    def xnnpack(self) -> bool:
        """Whether XNNPACK runs the model: the default, unless ``--use_xnnpack=false`` was given."""
        return self.use_xnnpack or "use_xnnpack" not in self.given


def _parse_value(name: str, text: str) -> object:
    default = FLAG_DEFAULTS[name]
    if isinstance(default, bool):
        if text in ("true", "1"):
            return True
        if text in ("false", "0"):
            return False
        raise ValueError(text)
    if isinstance(default, int):
        return int(text, 10)
    if isinstance(default, float):
        return float(text)
    return text


def parse_flags(argv: Sequence[str]) -> BenchmarkFlags:
    """Parse the arguments after the program name; raises :class:`FlagError` with the tool's error text.

    Every argument is ``--name=value``; booleans are ``true``/``false``/``1``/``0``.
    """
    values = dict(FLAG_DEFAULTS)
    given: list[str] = []
    unconsumed: list[str] = []
    for arg in argv:
        match = _FLAG.fullmatch(arg)
        if match is None or match["name"] not in FLAG_DEFAULTS:
            unconsumed.append(arg)
            continue
        name = match["name"]
        try:
            values[name] = _parse_value(name, match["value"])
        except ValueError:
            raise FlagError(f"Failed to parse flag '{name}' against argv '{arg}'\n{usage()}") from None
        given.append(name)
    if unconsumed:
        raise FlagError(f"Unconsumed cmdline flags: {' '.join(unconsumed)}\n{usage()}")
    if not values["graph"]:
        raise FlagError("Please specify the name of your TF Lite input file with --graph")
    return BenchmarkFlags(given=tuple(dict.fromkeys(given)), **values)  # type: ignore[arg-type]


def usage() -> str:
    """The flag list the tool prints after a flag error."""
    lines = ["usage: benchmark_model", "Flags:"]
    for name, default in FLAG_DEFAULTS.items():
        kind = {bool: "bool", int: "int32", float: "float", str: "string"}[type(default)]
        shown = str(default).lower() if isinstance(default, bool) else _format_param(default)
        lines.append(f"\t--{name}={shown}\t{kind}\toptional")
    return "\n".join(lines)


def _format_param(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _percentile(ordered: Sequence[int], percent: int) -> int:
    return ordered[len(ordered) * percent // 100] if ordered else 0


def format_stat(values_us: Sequence[int]) -> str:
    """A phase's ``count=...`` text, as ``StatWithPercentiles<int64_t>::OutputToStream`` writes it."""
    count = len(values_us)
    ordered = sorted(values_us)
    if count == 0:
        text = "count=0"
    elif ordered[0] == ordered[-1]:
        text = f"count={count} curr={values_us[-1]}" + ("(all same)" if count > 1 else "")
    else:
        avg = sum(values_us) / count
        variance = int(sum(v * v for v in values_us) / count - avg * avg)  # the tool keeps it as int64
        std = int(math.sqrt(variance)) if variance > 0 else 0
        text = (
            f"count={count} first={values_us[0]} curr={values_us[-1]} min={ordered[0]} max={ordered[-1]} avg={avg:.6g} std={std}"
        )
    return text + f" p5={_percentile(ordered, 5)} median={_percentile(ordered, 50)} p95={_percentile(ordered, 95)}"


def _average(values_us: Sequence[int]) -> float:
    return sum(values_us) / len(values_us) if values_us else math.nan


def _host_path(path: str, root_map: RootMap | None) -> Path:
    if root_map is None:
        return Path(path)
    if isinstance(root_map, Path):
        device_path = posixpath.normpath(posixpath.join("/", path))
        return root_map.joinpath(*[part for part in device_path.split("/") if part])
    return root_map(path)


class _Failure(Exception):
    """The run failed; the message is the ERROR text to print before ``Benchmarking failed.``."""


def _interpreter_module() -> Any:
    try:
        import ai_edge_litert.interpreter as module
    except ImportError:
        try:
            import tflite_runtime.interpreter as module
        except ImportError:
            raise _Failure("no LiteRT interpreter: pip install ai-edge-litert") from None
    return module


def _load(module: Any, host: Path, flags: BenchmarkFlags) -> Any:
    """A ready interpreter for ``host`` with random inputs set; raises :class:`_Failure`."""
    kwargs: dict[str, Any] = {"num_threads": None if flags.num_threads == -1 else flags.num_threads}
    if not flags.xnnpack:
        kwargs["experimental_op_resolver_type"] = module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        interpreter = module.Interpreter(model_path=str(host), **kwargs)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise _Failure(f"Failed to build the interpreter for {flags.graph}: {exc}") from None
    rng = np.random.default_rng()
    for detail in interpreter.get_input_details():
        dtype, shape = np.dtype(detail["dtype"]), tuple(int(d) for d in detail["shape"])
        if dtype.kind == "f":
            data = (rng.random(shape, dtype=np.float32) - 0.5).astype(dtype)
        elif dtype.kind == "b":
            data = rng.integers(0, 2, size=shape).astype(np.bool_)
        elif dtype.kind in "iu":
            info = np.iinfo(dtype)
            data = rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
        else:
            raise _Failure(f"Input tensor '{detail['name']}' has type {dtype}, which random data cannot fill")
        interpreter.set_tensor(detail["index"], data)
    return interpreter


def _phase(
    interpreter: Any,
    *,
    min_runs: int,
    min_secs: float,
    max_secs: float,
    run_delay: float,
    emit: Callable[[str], None],
    cancel: threading.Event | None,
    slowdown: Callable[[], float],
) -> list[int]:
    """One phase of ``BenchmarkModel::Run``: the per-run times in integer microseconds.

    ``slowdown()`` (read at every run) stretches each inference: a factor 1.15 makes it take 15% longer, as a
    slower phone of the same model would (the stand-in's way to inject disagreement and drift).
    """
    emit(
        f"INFO: Running benchmark for at least {min_runs} iterations and at least {min_secs:.6g} seconds "
        f"but terminate if exceeding {max_secs:.6g} seconds."
    )
    now = time.perf_counter()
    min_finish, max_finish = now + min_secs, now + max_secs
    times: list[int] = []
    while (len(times) < min_runs or now < min_finish) and now <= max_finish:
        if cancel is not None and cancel.is_set():
            raise _Failure("Benchmark cancelled: the caller went away")
        start = time.perf_counter()
        interpreter.invoke()
        factor = slowdown()
        if factor > 1:
            time.sleep((time.perf_counter() - start) * (factor - 1))
        end = time.perf_counter()
        times.append(int((end - start) * 1e6))
        if run_delay > 0:
            time.sleep(run_delay)
        now = time.perf_counter()
    emit(f"INFO: {format_stat(times)}")
    emit("")
    return times


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def run_streaming(
    argv: Sequence[str],
    *,
    emit: Callable[[str], None],
    root_map: RootMap | None = None,
    cancel: threading.Event | None = None,
    slowdown: Callable[[], float] = lambda: 1.0,
) -> int:
    """Run the tool on ``argv`` (the arguments after the program name); returns the exit status.

    Each output line is passed to ``emit`` (without its newline) as soon as the tool would print it.
    Setting ``cancel`` stops the run before its next inference (exit status 1). Thread-safe: every call
    builds its own interpreter.
    """
    try:
        flags = parse_flags(argv)
    except FlagError as exc:
        for line in str(exc).splitlines():
            emit(f"ERROR: {line}")
        return 1
    emit("INFO: STARTING!")
    emit("INFO: Log parameter values verbosely: [0]")
    for name, description in _LOGGED:
        if name in flags.given:
            emit(f"INFO: {description}: [{_format_param(getattr(flags, name))}]")
    try:
        return _benchmark(flags, emit=emit, root_map=root_map, cancel=cancel, slowdown=slowdown)
    except _Failure as exc:
        emit(f"ERROR: {exc}")
        emit("ERROR: Benchmarking failed.")
        return 1


def _benchmark(
    flags: BenchmarkFlags,
    *,
    emit: Callable[[str], None],
    root_map: RootMap | None,
    cancel: threading.Event | None,
    slowdown: Callable[[], float],
) -> int:
    host = _host_path(flags.graph, root_map)
    if not host.is_file():
        emit(f"ERROR: Could not open '{flags.graph}'.")
        raise _Failure(f"Failed to mmap model {flags.graph}")
    module = _interpreter_module()  # imported before the clock starts: the real tool has nothing to import
    rss_start = _peak_rss_mb()
    started = time.perf_counter()
    interpreter = _load(module, host, flags)
    emit(f"INFO: Loaded model {flags.graph}")
    if flags.use_gpu:
        emit('ERROR: Can not open OpenCL library on this device - dlopen failed: library "libOpenCL.so" not found')
        emit("ERROR: Falling back to OpenGL")
        emit("ERROR: TfLiteGpuDelegate Init: OpenGL ES 3.1 or above is required to use OpenGL inference.")
        raise _Failure("Failed to apply GPU delegate.")
    if flags.xnnpack:
        emit("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.")
    init_us = int((time.perf_counter() - started) * 1e6)
    rss_init = _peak_rss_mb()
    emit(f"INFO: The input model file size (MB): {host.stat().st_size / 1e6:.6g}")
    emit(f"INFO: Initialized session in {init_us / 1000.0:.6g}ms.")
    common = {"max_secs": flags.max_secs, "run_delay": flags.run_delay, "emit": emit, "cancel": cancel, "slowdown": slowdown}
    warmup = _phase(interpreter, min_runs=flags.warmup_runs, min_secs=flags.warmup_min_secs, **common)  # type: ignore[arg-type]
    timed = _phase(interpreter, min_runs=flags.num_runs, min_secs=flags.min_secs, **common)  # type: ignore[arg-type]
    emit(
        f"INFO: Inference timings in us: Init: {init_us}, First inference: {warmup[0] if warmup else 0}, "
        f"Warmup (avg): {_average(warmup):.6g}, Inference (avg): {_average(timed):.6g}"
    )
    rss_end = _peak_rss_mb()
    emit(
        "INFO: Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE "
        "to the actual memory footprint of the model at runtime. Take the information at your discretion."
    )
    emit(
        f"INFO: Memory footprint delta from the start of the tool (MB): init={rss_init - rss_start:.6g} "
        f"overall={rss_end - rss_start:.6g}"
    )
    return 0


def run(argv: Sequence[str], *, root_map: RootMap | None = None) -> tuple[int, str]:
    """Run the tool on ``argv`` (the arguments after the program name) in this process.

    Returns (exit status, everything it printed, one ``\\n``-terminated line each). ``root_map`` says
    where ``--graph`` lives on the host (None: the path is a host path).
    """
    lines: list[str] = []
    status = run_streaming(argv, emit=lines.append, root_map=root_map)
    return status, "".join(line + "\n" for line in lines)


def main(argv: Sequence[str] | None = None) -> int:
    """The command line program: prints to standard error, like the real tool, and returns its status.

    LiteRT's own native log lines (it announces the XNNPACK delegate itself) are silenced, so every
    line is printed once, by this stand-in.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    sys.stderr.flush()
    saved_stderr = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    with os.fdopen(os.dup(saved_stderr), "w", buffering=1, encoding="utf-8") as out:

        def emit(line: str) -> None:
            out.write(line + "\n")

        os.dup2(devnull, 2)
        try:
            return run_streaming(args, emit=emit)
        finally:
            os.dup2(saved_stderr, 2)
            os.close(saved_stderr)
            os.close(devnull)


if __name__ == "__main__":
    raise SystemExit(main())
