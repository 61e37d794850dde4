"""LiteRT's ``benchmark_model``: the command line we run, and the parser of what it prints.

Written against the output format documented for TensorFlow Lite / LiteRT ``benchmark_model`` (TF 2.x
through LiteRT 2.x). Lines may carry a log prefix (``INFO: ``, or logcat's ``I tflite  : ``)::

    Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
    count=50 first=20544 curr=20321 min=19923 max=21633 avg=20429.3 std=312 p5=19950 median=20400 p95=21300
    Inference timings in us: Init: 25342, First inference: 51134, Warmup (avg): 22037.5, Inference (avg): 20429.3

The last ``count=`` line is the timed phase (the one before it, when present, the warm-up); older versions
print no percentiles, a single warm-up run prints only ``count=1 curr=...``, and a phase whose runs all took
the same time prints ``count=N curr=X(all same)``. Numbers may be in
scientific notation (``avg=2.95034e+06``). Anything without the summary line, or whose figures are not
positive, is an :class:`OutputParseError` that quotes the output's tail -- never 0 ms.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agents.errors import OutputParseError, TransientAgentError, UnsupportedModelError

__all__ = [
    "BenchmarkModelOutput",
    "BenchmarkModelRunner",
    "PhaseStats",
    "benchmark_argv",
    "parse_benchmark_output",
    "shell_command",
    "taskset_mask",
]

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_SUMMARY = re.compile(
    rf"Inference timings in us: Init: (?P<init>{_NUMBER}), First inference: (?P<first>{_NUMBER}), "
    rf"Warmup \(avg\): (?P<warmup>{_NUMBER}|nan|-nan), Inference \(avg\): (?P<inference>{_NUMBER})"
)
_COUNT_LINE = re.compile(rf"(?:^|\s)count=(?P<count>\d+)(?P<rest>(?:\s+\w+={_NUMBER}(?:\(all same\))?)*)\s*$")
_PAIR = re.compile(rf"(\w+)=({_NUMBER})")


@dataclass(frozen=True)
class PhaseStats:
    """One ``count=...`` line: a phase's statistics in microseconds (None where the version omits it)."""

    count: int
    avg_us: float | None
    std_us: float | None
    min_us: float | None
    max_us: float | None
    first_us: float | None
    curr_us: float | None
    p5_us: float | None
    median_us: float | None
    p95_us: float | None


@dataclass(frozen=True)
class BenchmarkModelOutput:
    init_us: float  # interpreter initialisation
    first_inference_us: float
    warmup_avg_us: float | None  # None when the tool printed nan (no warm-up)
    inference_avg_us: float  # mean of the timed runs: the figure a sample is made of
    timed: PhaseStats | None  # the timed phase's count= line, when printed
    warmup: PhaseStats | None  # the warm-up phase's count= line, when printed

    @property
    def inference_avg_ms(self) -> float:
        return self.inference_avg_us / 1000.0


def _tail(text: str, limit: int = 300) -> str:
    flat = " | ".join(line.strip() for line in text.strip().splitlines()[-6:])
    return flat[-limit:] if flat else "(no output)"


def _phase(match: re.Match[str]) -> PhaseStats:
    values = {key: float(value) for key, value in _PAIR.findall(match.group("rest"))}
    if "(all same)" in match.group("rest") and "curr" in values:  # every run took the same time
        for key in ("avg", "min", "max", "median", "p5", "p95"):
            values.setdefault(key, values["curr"])
        values.setdefault("std", 0.0)
    return PhaseStats(
        count=int(match.group("count")), avg_us=values.get("avg"), std_us=values.get("std"), min_us=values.get("min"),
        max_us=values.get("max"), first_us=values.get("first"), curr_us=values.get("curr"), p5_us=values.get("p5"),
        median_us=values.get("median"), p95_us=values.get("p95"),
    )  # fmt: skip


def parse_benchmark_output(text: str) -> BenchmarkModelOutput:
    """Parse ``benchmark_model``'s output; raises :class:`OutputParseError` when it holds no valid timings."""
    summary = None
    phases = []
    for line in text.splitlines():
        found = _SUMMARY.search(line)
        if found:
            summary = found
            continue
        counted = _COUNT_LINE.search(line)
        if counted:
            phases.append(_phase(counted))
    if summary is None:
        raise OutputParseError(f"benchmark_model printed no 'Inference timings in us' line; output ends: {_tail(text)}")
    inference = float(summary.group("inference"))
    if not inference > 0:
        raise OutputParseError(
            f"benchmark_model reported a non-positive inference time {inference} us; output ends: {_tail(text)}"
        )
    timed = phases[-1] if phases else None
    if timed is not None and timed.avg_us is not None and abs(timed.avg_us - inference) > 1e-3 * inference + 1:
        raise OutputParseError(
            f"benchmark_model's timed phase says avg={timed.avg_us} us but its summary says {inference} us; output ends: {_tail(text)}"
        )
    warmup_text = summary.group("warmup")
    return BenchmarkModelOutput(
        init_us=float(summary.group("init")),
        first_inference_us=float(summary.group("first")),
        warmup_avg_us=None if "nan" in warmup_text else float(warmup_text),
        inference_avg_us=inference,
        timed=timed,
        warmup=phases[-2] if len(phases) >= 2 else None,
    )


def taskset_mask(cpus: Sequence[int]) -> str:
    """The hexadecimal CPU mask ``taskset`` takes for these CPU ids."""
    return format(sum(1 << cpu for cpu in set(cpus)), "x")


def benchmark_argv(
    binary: str,
    graph: str,
    *,
    threads: int,
    warmup_runs: int,
    num_runs: int,
    run_delay_s: float = 0.0,
    use_xnnpack: bool = True,
    use_gpu: bool = False,
    affinity: Sequence[int] | None = None,
) -> list[str]:
    """The argument vector of one invocation: exactly ``warmup_runs`` + ``num_runs`` inferences.

    ``--min_secs=0`` and ``--warmup_min_secs=0`` stop the tool from adding runs to fill a minimum time,
    so every sample averages the same number of inferences. With ``affinity``, runs under ``taskset``.
    """
    argv = [
        binary,
        f"--graph={graph}",
        f"--num_threads={threads}",
        f"--warmup_runs={warmup_runs}",
        "--warmup_min_secs=0",
        f"--num_runs={num_runs}",
        "--min_secs=0",
        f"--use_xnnpack={str(use_xnnpack).lower()}",
    ]
    if run_delay_s > 0:
        argv.append(f"--run_delay={run_delay_s:g}")
    if use_gpu:
        argv.append("--use_gpu=true")
    if affinity is not None:
        argv = ["taskset", taskset_mask(affinity), *argv]
    return argv


def shell_command(argv: Sequence[str]) -> str:
    """One shell command line with every argument quoted (no interpolation into unquoted text)."""
    return shlex.join(argv)


_MODEL_PROBLEMS = (
    "failed to load",
    "failed to mmap",
    "failed to build the interpreter",
    "not a valid flatbuffer",
    "failed to allocate",
    "didn't find op",
    "unsupported",
    "could not open",
)


class BenchmarkModelRunner:
    """A :class:`agents._base.Runner` that runs ``benchmark_model`` once per sample through ``execute``.

    ``execute(argv) -> (exit status, output)`` runs an argument vector on the device (ADB shell, SSH);
    every invocation warms up ``warmup_runs`` times and then times ``runs`` inferences.
    """

    def __init__(
        self,
        execute: Callable[[list[str]], tuple[int, str]],
        *,
        binary: str,
        graph: str,
        threads: int,
        warmup_runs: int,
        run_delay_s: float,
        use_xnnpack: bool,
        use_gpu: bool,
        affinity: Sequence[int] | None,
    ) -> None:
        self._execute = execute
        self._argv = dict(
            threads=threads, warmup_runs=warmup_runs, run_delay_s=run_delay_s, use_xnnpack=use_xnnpack,
            use_gpu=use_gpu, affinity=affinity,
        )  # fmt: skip
        self._binary, self._graph = binary, graph
        self.last: BenchmarkModelOutput | None = None  # the last invocation's parsed output (provenance)

    def warmup(self, runs: int) -> None:
        """Nothing to do: every invocation warms up on its own (the tool restarts per sample)."""

    def sample(self, runs: int) -> float:
        argv = benchmark_argv(self._binary, self._graph, num_runs=runs, **self._argv)  # type: ignore[arg-type]
        status, output = self._execute(argv)
        if status != 0:
            lowered = output.lower()
            message = f"benchmark_model exited with status {status}; output ends: {_tail(output)}"
            if any(problem in lowered for problem in _MODEL_PROBLEMS):
                raise UnsupportedModelError(message)
            raise TransientAgentError(message)
        self.last = parse_benchmark_output(output)
        if self.last.timed is not None and self.last.timed.count != runs:
            raise OutputParseError(
                f"benchmark_model timed {self.last.timed.count} runs where {runs} were asked (did --max_secs cut it short?)"
            )
        return self.last.inference_avg_ms

    def close(self) -> None:
        """Nothing held between invocations."""
