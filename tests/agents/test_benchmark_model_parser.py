"""The benchmark_model parser, on outputs in the documented formats of several TFLite/LiteRT versions."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.benchmark_model import benchmark_argv, parse_benchmark_output, shell_command, taskset_mask
from agents.errors import OutputParseError

DATA = Path(__file__).parent / "data"


def test_plain_tf2_output_with_scientific_notation() -> None:
    parsed = parse_benchmark_output((DATA / "benchmark_model_tf2_plain.txt").read_text())
    assert parsed.inference_avg_us == pytest.approx(2.95034e6)
    assert parsed.inference_avg_ms == pytest.approx(2950.34)
    assert parsed.init_us == 17187 and parsed.first_inference_us == 3512391
    assert parsed.timed is not None and parsed.timed.count == 50 and parsed.timed.std_us == 109798
    assert parsed.timed.median_us is None  # this version prints no percentiles
    assert (
        parsed.warmup is not None
        and parsed.warmup.count == 1
        and parsed.warmup.curr_us == 3512391
        and parsed.warmup.avg_us is None
    )


def test_litert_output_with_prefix_and_percentiles() -> None:
    parsed = parse_benchmark_output((DATA / "benchmark_model_litert_info.txt").read_text())
    assert parsed.inference_avg_ms == pytest.approx(41.3186)
    assert parsed.timed is not None and parsed.timed.count == 20
    assert (parsed.timed.p5_us, parsed.timed.median_us, parsed.timed.p95_us) == (40530, 41102, 43991)
    assert parsed.warmup is not None and parsed.warmup.count == 5 and parsed.warmup_avg_us == pytest.approx(43012.4)


def test_logcat_prefixed_output() -> None:
    parsed = parse_benchmark_output((DATA / "benchmark_model_logcat.txt").read_text())
    assert parsed.inference_avg_us == pytest.approx(18301.9)
    assert parsed.timed is not None and parsed.timed.count == 55 and parsed.timed.min_us == 17544


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no 'Inference timings in us' line"),
        ("Segmentation fault\n", "Segmentation fault"),
        ((DATA / "benchmark_model_failed_load.txt").read_text(), "Benchmarking failed"),
        ("INFO: Inference timings in us: Init: 1, First inference: 2, Warmup (avg): 3, Inference (avg): 0\n", "non-positive"),
        (
            "count=10 first=5 curr=5 min=5 max=5 avg=900 std=0\nInference timings in us: Init: 1, First inference: 2, Warmup (avg): 3, Inference (avg): 500\n",
            "avg=900.0 us but its summary says 500.0",
        ),
        ("count=50 first=1 curr=1 min=1 max=1 avg=1 std=0\n", "no 'Inference timings"),  # timings without the summary
    ],
)
def test_unparsable_output_is_an_error_never_zero(text: str, message: str) -> None:
    with pytest.raises(OutputParseError) as info:
        parse_benchmark_output(text)
    assert message in str(info.value)


def test_argv_is_exact_and_quoted() -> None:
    argv = benchmark_argv(
        "/data/local/tmp/benchmark_model",
        "/data/local/tmp/m m.tflite",
        threads=4,
        warmup_runs=5,
        num_runs=20,
        affinity=(4, 5, 6, 7),
    )
    assert argv[:2] == ["taskset", "f0"]
    assert "--graph=/data/local/tmp/m m.tflite" in argv and "--min_secs=0" in argv and "--warmup_min_secs=0" in argv
    assert "--num_runs=20" in argv and "--warmup_runs=5" in argv and "--num_threads=4" in argv
    assert shell_command(argv).endswith("--use_xnnpack=true") and "'--graph=/data/local/tmp/m m.tflite'" in shell_command(argv)
    assert "--use_gpu=true" in benchmark_argv("b", "g", threads=1, warmup_runs=0, num_runs=1, use_gpu=True)
    assert taskset_mask([0]) == "1" and taskset_mask([0, 1, 2, 3]) == "f"


def test_all_same_phase() -> None:
    text = "INFO: count=3 curr=1500(all same)\nINFO: Inference timings in us: Init: 10, First inference: 1500, Warmup (avg): nan, Inference (avg): 1500\n"
    parsed = parse_benchmark_output(text)
    assert parsed.timed is not None and parsed.timed.count == 3 and parsed.timed.avg_us == 1500 and parsed.timed.std_us == 0
    assert parsed.warmup_avg_us is None and parsed.inference_avg_ms == 1.5
